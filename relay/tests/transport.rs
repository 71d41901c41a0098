//! Transport-level behaviour: TCP_NODELAY, outgoing-buffer overflow accounting, SIGTERM.

mod common;

use std::time::{Duration, Instant};

use common::{QUIET, TestRelay, token};
use relay::protocol::event;
use serde_json::json;

/// With Nagle's algorithm on, a small write while an earlier one to the same peer is still
/// unacknowledged waits for that peer's delayed ACK (40 ms on Linux once the connection is
/// interactive). A conversation hits exactly that: the relay acks the operator's message,
/// then a moment later writes the visitor's answer to the same operator. With TCP_NODELAY a
/// loopback round trip takes about a millisecond. The bound sits far from both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_round_trips_are_not_held_back_by_nagle() {
    let relay = TestRelay::start_with(|c| c.rate_limit_per_minute = 10_000).await;
    let mut ann = relay.operator(1, "Ann").await;
    let mut v = relay.client("V").await;
    ann.drain(QUIET).await;
    let mut rtts = Vec::with_capacity(40);
    for round in 0..40 {
        let t0 = Instant::now();
        let ack = ann
            .emit_with_ack(
                event::OPERATOR_MESSAGE,
                json!({"to": v.sid, "type": "text", "message": format!("q{round}")}),
            )
            .await;
        assert!(ack["messageId"].is_string());
        v.expect(event::INCOMING_OPERATOR_MESSAGE).await;
        v.emit(
            event::CLIENT_MESSAGE,
            json!({"type": "text", "message": format!("a{round}")}),
        );
        ann.expect(event::INCOMING_MESSAGE).await;
        rtts.push(t0.elapsed());
    }
    rtts.sort();
    let median = rtts[rtts.len() / 2];
    assert!(
        median < Duration::from_millis(20),
        "median round trip {median:?}: is TCP_NODELAY off?"
    );
}

/// An operator that stops reading: once its TCP buffers and its outgoing packet buffer are
/// full, further emits to it are dropped and counted, and other operators still get everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_overflows_only_its_own_buffer_and_drops_are_counted() {
    let relay = TestRelay::start_with(|c| {
        c.socket_buffer_packets = 16;
        c.rate_limit_per_minute = 100_000;
    })
    .await;
    // an operator connection that is never read again
    let options = wire::Options {
        auth: Some(json!({"token": token(2, "Stalled")}).to_string()),
        ..wire::Options::default()
    };
    let stalled = wire::Connection::connect(&wire::Endpoint::new(relay.addr, "/chat"), options)
        .await
        .expect("connect");
    stalled
        .emit(event::JOIN, &json!({"role": "operator"}), None)
        .expect("send");
    let mut ann = relay.operator(1, "Ann").await;
    let mut v = relay.client("V").await;
    relay
        .wait_metric("relay_connected_operator_sockets", 2.0)
        .await;
    ann.drain(QUIET).await;

    const N: usize = 300;
    let text = "x".repeat(60_000); // 300 × 60 kB = 18 MB, far over loopback socket buffers
    // paced in groups the reading operator absorbs, so only the stalled one can overflow
    for group in 0..N / 6 {
        for i in 0..6 {
            let n = group * 6 + i;
            v.emit(
                event::CLIENT_MESSAGE,
                json!({"type": "text", "message": format!("{n} {text}")}),
            );
        }
        let mut got = 0;
        while got < 6 {
            let Some((name, _)) = ann.recv_within(Duration::from_secs(10)).await else {
                panic!("reading operator missed messages of group {group}");
            };
            if name == event::INCOMING_MESSAGE {
                got += 1;
            }
        }
    }
    assert!(
        relay.metric("relay_emit_dropped_total").await > 0.0,
        "drops to the stalled socket are counted"
    );
    v.expect_silence(QUIET).await;
    drop(stalled);
}

#[cfg(unix)]
#[tokio::test]
async fn binary_drains_and_exits_zero_on_sigterm() {
    use std::process::Stdio;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .env("RELAY_JWT_SECRET", common::SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn relay");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut client = None;
    for _ in 0..100 {
        if let Ok(c) = common::Client::connect(addr, None).await {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut client = client.expect("relay binary accepts connections");
    let pid = child.id().expect("pid").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits within the drain timeout")
        .expect("wait");
    assert!(exit.success(), "exit status {exit:?}");
    let mut told = false;
    while let Some((name, _)) = client.recv_within(Duration::from_secs(2)).await {
        if name == "disconnect" || name == "closed" {
            told = true;
            break;
        }
    }
    assert!(told, "connected socket was disconnected on shutdown");
}
