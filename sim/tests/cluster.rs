//! The oracle against a cluster: smoke's bots spread over two relays sharing one Redis pass
//! before and after that Redis restarts, and an embedded cluster (`[target] relays`) passes
//! on a Redis the simulator starts itself.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use relay::embedded::{Node, RedisServer};
use sim::run::{RunOptions, run};

fn node(redis: &RedisServer) -> Node {
    let mut config = relay::Config::with_secret(common::SECRET);
    config.rate_limit_per_minute = 60; // smoke's [limits] budget
    config.redis_url = Some(redis.url());
    Node::start(config, IpAddr::V4(Ipv4Addr::LOCALHOST)).expect("relay node starts")
}

async fn smoke_on(urls: &[String], label: &str) -> reports::model::RunResult {
    let dir = common::temp_dir(label);
    let opts = RunOptions::new(common::scenarios_dir().join("smoke.toml"), dir)
        .against_each(urls.to_vec(), common::SECRET);
    run(opts).await.expect("the run happens").result
}

fn assert_passed(r: &reports::model::RunResult, when: &str) {
    let failed: Vec<_> = r.thresholds.iter().filter(|t| !t.passed).collect();
    assert!(
        r.passed,
        "{when}: failed {failed:?}\nexamples: {:?}",
        r.examples
    );
    assert!(r.counters["delivered"] > 10_000, "{when}: {:?}", r.counters);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_passes_on_two_relays_sharing_redis_before_and_after_it_restarts() {
    let mut redis = RedisServer::start().expect("redis-server (scripts/test installs it)");
    let (a, b) = tokio::task::block_in_place(|| (node(&redis), node(&redis)));
    let urls = [a.addr(), b.addr()].map(|addr| format!("http://{addr}/chat"));
    assert_passed(
        &smoke_on(&urls, "cluster-before").await,
        "before the restart",
    );

    tokio::task::block_in_place(|| redis.restart()).expect("redis restarts");
    // both nodes notice, put their (now empty) presence back and hear each other again
    let deadline = Instant::now() + Duration::from_secs(10);
    for addr in [a.addr(), b.addr()] {
        loop {
            let body =
                tokio::task::block_in_place(|| relay::embedded::health(addr)).unwrap_or_default();
            if body.contains("\"status\":\"ok\"") && body.contains("\"cluster\"") {
                break;
            }
            assert!(Instant::now() < deadline, "{addr} did not recover: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_passed(&smoke_on(&urls, "cluster-after").await, "after the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_cluster_runs_on_a_redis_the_simulator_starts() {
    let dir = common::temp_dir("embedded-cluster");
    let scenario = dir.join("two-relays.toml");
    let smoke = std::fs::read_to_string(common::scenarios_dir().join("smoke.toml")).expect("smoke");
    let two = smoke
        .replace("duration = \"15s\"", "duration = \"6s\"")
        .replace("[limits]", "[target]\nrelays = 2\n\n[limits]")
        .replace("rate_limit.rejected.min = 1", "");
    std::fs::write(&scenario, two).expect("write");
    // REDIS_URL unset in tests: the simulator starts its own redis-server
    let r = run(RunOptions::new(&scenario, dir.join("out")))
        .await
        .expect("the run happens")
        .result;
    assert_eq!(r.target.kind, "embedded cluster of 2 relays");
    assert_passed(&r, "embedded cluster");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_node_passes_through_a_killed_relay_and_a_redis_restart() {
    let dir = common::temp_dir("multi-node");
    let r = run(RunOptions::new(
        common::scenarios_dir().join("multi-node.toml"),
        dir,
    ))
    .await
    .expect("the run happens")
    .result;
    assert_passed(&r, "multi-node");
    let c = &r.counters;
    assert!(
        c["disconnected.fault"] > 0,
        "relay 2's sockets were cut: {c:?}"
    );
    assert_eq!(c["disconnected.unexpected"], 0, "{c:?}");
    assert_eq!(c["lost"], 0, "nothing lost on healthy sockets: {c:?}");
    assert_eq!(
        c["duplicated"], 0,
        "nothing twice after reconnecting: {c:?}"
    );
    assert!(
        r.paths["reconnect"].intended.count >= c["disconnected.fault"],
        "every cut bot came back"
    );
    for path in ["same_node", "cross_node"] {
        assert!(r.paths.contains_key(path), "no {path} latency");
    }
}
