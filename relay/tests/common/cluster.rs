//! Cluster fixtures: a throwaway Redis and relay nodes on it, each on its own runtime thread
//! so a test can kill one abruptly.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use relay::Config;
use relay::embedded::{Node, RedisServer};
use serde_json::Value;

use super::{SECRET, WAIT, http_get, metric_value};

/// Redis and `n` relays sharing it.
pub struct Cluster {
    pub redis: RedisServer,
    pub nodes: Vec<Node>,
}

impl Cluster {
    pub fn start(n: usize) -> Cluster {
        let redis = RedisServer::start().expect("redis-server starts (scripts/test installs it)");
        let nodes = (0..n).map(|_| start_node(&redis.url())).collect();
        Cluster { redis, nodes }
    }

    pub fn addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].addr()
    }
}

/// One relay node on `redis_url`.
pub fn start_node(redis_url: &str) -> Node {
    let mut config = Config::with_secret(SECRET);
    config.redis_url = Some(redis_url.to_owned());
    Node::start(config, IpAddr::V4(Ipv4Addr::LOCALHOST)).expect("relay node starts")
}

/// `/health` of a node, parsed.
pub async fn health(addr: SocketAddr) -> Value {
    let (status, body) = http_get(addr, "/health").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("health is JSON")
}

/// Waits until `/health` satisfies `want`, for at most `within`; how long it took.
pub async fn wait_health(
    addr: SocketAddr,
    within: Duration,
    want: impl Fn(&Value) -> bool,
) -> Duration {
    let start = tokio::time::Instant::now();
    loop {
        let h = health(addr).await;
        if want(&h) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "health never became as wanted: {h}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Value of `series` in a node's `/metrics`.
pub async fn metric(addr: SocketAddr, series: &str) -> f64 {
    metric_value(&http_get(addr, "/metrics").await.1, series)
}

/// Default wait, for symmetry with single-node tests.
pub const CLUSTER_WAIT: Duration = WAIT;
