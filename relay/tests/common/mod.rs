//! Test helpers: a relay on 127.0.0.1:0 in-process, operator tokens, HTTP GET.
#![allow(dead_code, missing_docs, unused_imports)]

pub mod client;
pub mod cluster;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use relay::Config;
use relay::auth::{Claims, OperatorIdentity, sign_hs256};
use relay::clock::{Clock, ManualClock};
use relay::protocol::event;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use client::{Client, ConnectError, WAIT};

pub const SECRET: &str = "relay-tests-secret-0123456789";

/// Silence long enough to trust that nothing more is coming on loopback.
pub const QUIET: Duration = Duration::from_millis(300);

/// A relay serving on an ephemeral port until dropped or stopped.
pub struct TestRelay {
    pub addr: SocketAddr,
    pub clock: Option<Arc<ManualClock>>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), relay::ServeError>>>,
}

impl TestRelay {
    /// Default configuration with the test secret.
    pub async fn start() -> TestRelay {
        Self::start_with(|_| {}).await
    }

    /// Default configuration adjusted by `tweak`, with a manual rate-limit clock.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestRelay {
        let mut config = Config::with_secret(SECRET);
        let (clock, handle) = Clock::manual();
        config.clock = clock;
        tweak(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(relay::serve(listener, config, async move {
            let _ = rx.await;
        }));
        TestRelay {
            addr,
            clock: Some(handle),
            shutdown: Some(tx),
            handle: Some(server),
        }
    }

    /// Fires the shutdown future and waits for `serve` to return.
    pub async fn stop(mut self) -> Result<(), relay::ServeError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let handle = self.handle.take().expect("running");
        tokio::time::timeout(Duration::from_secs(15), handle)
            .await
            .expect("serve returned in time")
            .expect("serve task did not panic")
    }

    pub fn advance(&self, by: Duration) {
        self.clock.as_ref().expect("manual clock").advance(by);
    }

    /// A connected socket that has not joined.
    pub async fn socket(&self) -> Client {
        Client::connect(self.addr, None).await.expect("connect")
    }

    /// An operator socket joined with a valid token in the `join` payload.
    pub async fn operator(&self, id: u64, name: &str) -> Client {
        operator_at(self.addr, id, name).await
    }

    /// A visitor socket joined as `username`.
    pub async fn client(&self, username: &str) -> Client {
        client_at(self.addr, username).await
    }

    /// Body of `GET path`.
    pub async fn get(&self, path: &str) -> String {
        http_get(self.addr, path).await.1
    }

    /// Value of an unlabelled or labelled series in `/metrics`.
    pub async fn metric(&self, series: &str) -> f64 {
        metric_value(&self.get("/metrics").await, series)
    }

    /// Waits until `series` in `/metrics` equals `want`.
    pub async fn wait_metric(&self, series: &str, want: f64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let got = self.metric(series).await;
            if got == want {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{series} is {got}, want {want}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// An operator socket on the relay at `addr`, joined with a valid token; returns once the
/// join was handled.
pub async fn operator_at(addr: SocketAddr, id: u64, name: &str) -> Client {
    let mut c = Client::connect(addr, None).await.expect("connect");
    c.emit(
        event::JOIN,
        json!({"role": "operator", "token": token(id, name), "operatorId": id, "name": name}),
    );
    // join is answered by nothing; make sure it was processed before returning
    let _ = c
        .emit_with_ack(event::GET_CONNECTED_OPERATORS, Value::Null)
        .await;
    // other operators' presence may come first (a cluster's other nodes announce freely)
    c.wait_for(event::CONNECTED_OPERATORS_LIST).await;
    c
}

/// A visitor socket on the relay at `addr`, joined as `username`.
pub async fn client_at(addr: SocketAddr, username: &str) -> Client {
    let mut c = Client::connect(addr, None).await.expect("connect");
    let ack = c
        .emit_with_ack(event::JOIN, json!({"role": "client", "username": username}))
        .await;
    assert!(ack.get("error").is_none(), "client join refused: {ack}");
    c
}

/// A valid HS256 token for operator `id`.
pub fn token(id: u64, name: &str) -> String {
    sign_hs256(
        SECRET.as_bytes(),
        &Claims::new(
            &OperatorIdentity {
                operator_id: id,
                name: name.to_owned(),
            },
            3600,
        ),
    )
}

/// Status code and body of a plain HTTP/1.1 GET.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// Sends a raw HTTP/1.1 request and reads the whole answer.
pub async fn http_request(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut raw))
        .await
        .expect("answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Reads one series' value from a Prometheus text exposition.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
}
