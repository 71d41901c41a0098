//! Helpers for the simulator's tests.
#![allow(dead_code, missing_docs)]

pub mod browser;
pub mod fault_proxy;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The JWT secret of relays the tests start.
pub const SECRET: &str = "sim-tests-secret-0123456789";

/// The workspace's `scenarios/` folder.
pub fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

/// A fresh temporary folder under the target dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A reference relay on 127.0.0.1 with budget `rate_limit` a minute, until the returned
/// sender is dropped.
pub async fn relay(rate_limit: u32) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut config = relay::Config::with_secret(SECRET);
    config.rate_limit_per_minute = rate_limit;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(relay::serve(listener, config, async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// A cluster of Node processes (`tests/js/cluster-server.mjs`) on a Redis of its own: the
/// children (killed on drop), their URLs, and the Redis (stopped on drop).
pub struct NodeCluster {
    pub nodes: Vec<tokio::process::Child>,
    pub urls: Vec<String>,
    pub redis: relay::embedded::RedisServer,
}

/// Starts `n` nodes of `cluster-server.mjs` on a fresh Redis, with `env` (e.g. its
/// `CLUSTER_FAULTS`).
pub async fn node_cluster(n: usize, env: &[(&str, &str)]) -> NodeCluster {
    let redis = tokio::task::block_in_place(relay::embedded::RedisServer::start)
        .expect("redis-server (scripts/test installs it)");
    let url = redis.url();
    let mut nodes = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..n {
        let mut all: Vec<(&str, &str)> = vec![("REDIS_URL", url.as_str())];
        all.extend_from_slice(env);
        let (child, u) = node("cluster-server.mjs", &all).await;
        nodes.push(child);
        urls.push(u);
    }
    NodeCluster { nodes, urls, redis }
}

/// Starts the Node backend `script` of `tests/js` on a free port, with the tests' JWT
/// secret and `env`; returns the child (killed on drop) and its URL.
pub async fn node(script: &str, env: &[(&str, &str)]) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt as _;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        dir.join("node_modules/socket.io").is_dir(),
        "socket.io is not installed: run scripts/test (it runs `npm ci` in {})",
        dir.display()
    );
    let mut child = tokio::process::Command::new("node")
        .arg(script)
        .arg("0")
        .current_dir(&dir)
        .env("RELAY_JWT_SECRET", SECRET)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (is Node.js installed?)");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(15), lines.next_line())
        .await
        .expect("the server starts in time")
        .expect("read")
        .expect("a line");
    let port = line
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (child, format!("http://127.0.0.1:{port}/chat"))
}

/// The run failed on `class` and on no other violation class, with an example of it, and
/// its only failed class threshold is that class's.
pub fn fails_on_exactly(
    r: &reports::model::RunResult,
    class: reports::model::Violation,
    what: &dyn std::fmt::Debug,
) {
    use reports::model::Violation;
    assert!(!r.passed, "{what:?}: the run passed");
    assert!(
        r.counters[class.name()] > 0,
        "{what:?}: no {class}: {:?}",
        r.counters
    );
    assert!(
        r.examples.get(class.name()).is_some_and(|e| !e.is_empty()),
        "{what:?}: no example of {class}"
    );
    for other in Violation::ALL.into_iter().filter(|v| *v != class) {
        assert_eq!(
            r.counters[other.name()],
            0,
            "{what:?} is reported as {other} too: {:?}",
            r.examples.get(other.name())
        );
    }
    let failed: Vec<&str> = r
        .thresholds
        .iter()
        .filter(|t| !t.passed && Violation::from_name(&t.metric).is_some())
        .map(|t| t.metric.as_str())
        .collect();
    assert_eq!(failed, [class.name()], "{what:?}: failed class thresholds");
}
