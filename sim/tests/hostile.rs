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

/// A scheduled fault whose command fails is a failed fault: counted, named in the
/// examples, and the run fails by the default gate, although the chat itself was correct.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_that_fails_fails_the_run_and_says_why() {
    let dir = common::temp_dir("failed-fault");
    let scenario = dir.join("failed-fault.toml");
    std::fs::write(
        &scenario,
        r#"[scenario]
name = "failed-fault"
duration = "4s"
drain = "1s"

[[faults]]
at = "1s"
command = "echo no such node >&2; exit 3"
node = 1

[[bots]]
name = "operators"
role = "operator"
count = 3
messages_per_minute = 30

[[bots]]
name = "visitors"
role = "client"
count = 10
lifetime = "1500ms"
reconnects = 2
messages_per_minute = 30
"#,
    )
    .expect("write");
    let r = run(RunOptions::new(scenario, dir.join("out")))
        .await
        .expect("the run happens")
        .result;
    let c = |k: &str| r.counters.get(k).copied().unwrap_or(0);
    assert_eq!(c("faults.failed"), 1, "{:?}", r.counters);
    assert_eq!(
        (c("violations"), c("disconnected.fault")),
        (0, 0),
        "{:?}",
        r.examples
    );
    assert!(
        c("delivered") > 0 && c("connect.failed") == 0,
        "{:?}",
        r.counters
    );
    assert!(
        !r.passed,
        "a run that did not break what it was asked to fails"
    );
    let failed: Vec<&str> = r
        .thresholds
        .iter()
        .filter(|t| !t.passed)
        .map(|t| t.metric.as_str())
        .collect();
    assert_eq!(failed, ["faults.failed"]);
    let why = &r.examples["faults.failed"][0].detail;
    assert!(why.contains("exit status: 3"), "{why}");
    let page = reports::html::render(&r);
    assert!(
        page.contains(r#"id="faults-failed""#) && page.contains("exit status: 3"),
        "the report says so"
    );
}
