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
