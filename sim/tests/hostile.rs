//! The hostile scenarios CI runs against the reference relay: a poor network (every bot
//! behind the simulator's fault proxy) and churn. Each must pass, and must have really
//! been hostile.

mod common;

use sim::run::{RunOptions, run};

async fn scenario(file: &str) -> reports::model::RunResult {
    let dir = common::temp_dir(file);
    run(RunOptions::new(common::scenarios_dir().join(file), dir))
        .await
        .expect("the run happens")
        .result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poor_network_passes_with_nothing_lost_on_healthy_sockets() {
    let r = scenario("poor-network.toml").await;
    let c = |k: &str| r.counters.get(k).copied().unwrap_or(0);
    let failed: Vec<_> = r.thresholds.iter().filter(|t| !t.passed).collect();
    assert!(r.passed, "{failed:#?}\n{:#?}", r.examples);
    // the network was hostile: connections cut, bots back, messages gone with them
    assert!(c("network.cuts") >= 20, "{:?}", r.counters);
    assert!(c("disconnected.fault") >= 20, "{:?}", r.counters);
    assert!(c("lost.disconnected") > 0, "{:?}", r.counters);
    assert!(r.paths["reconnect"].intended.count >= 20);
    // and yet nothing was lost on a healthy socket, nothing duplicated
    assert_eq!((c("lost"), c("duplicated"), c("violations")), (0, 0, 0));
    // latency toxics show in the figures: 40 ms ± 20 ms on half the connections
    assert!(
        r.paths["fanout"].intended.p99_ms >= 20.0,
        "{:?}",
        r.paths["fanout"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_passes_with_presence_exact() {
    let r = scenario("churn.toml").await;
    let failed: Vec<_> = r.thresholds.iter().filter(|t| !t.passed).collect();
    assert!(r.passed, "{failed:#?}\n{:#?}", r.examples);
    assert!(
        r.paths["presence"].intended.count > 1000,
        "{:?}",
        r.paths["presence"]
    );
}
