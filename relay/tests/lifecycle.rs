//! Presence bookkeeping through `/metrics` and `/health`, shutdown, and start-up refusals.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Client, QUIET, TestRelay, http_get};
use relay::protocol::event;
use serde_json::{Value, json};

#[tokio::test]
async fn presence_maps_return_to_zero_after_every_kind_of_disconnect() {
    let relay = TestRelay::start().await;
    let mut watcher = relay.operator(100, "Watcher").await;
    let mut others = Vec::new();
    for i in 0..5u64 {
        others.push(relay.operator(i, "Op").await); // ids 0..5
        others.push(relay.operator(i, "Op").await); // a second tab each
    }
    let mut visitors = Vec::new();
    for i in 0..20 {
        visitors.push(relay.client(&format!("v{i}")).await);
    }
    let _unjoined = relay.socket().await;
    let mut refused = relay.socket().await; // the relay itself disconnects this one
    refused.emit(event::JOIN, json!({"role": "operator", "token": "forged"}));
    refused.wait_for("disconnect").await;
    relay.wait_metric("relay_connected_operators", 6.0).await;
    relay
        .wait_metric("relay_connected_operator_sockets", 11.0)
        .await;
    relay.wait_metric("relay_connected_clients", 20.0).await;
    relay.wait_metric("relay_connected_sockets", 32.0).await;
    let health: Value = serde_json::from_str(&relay.get("/health").await).expect("json");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["operators"], 6);
    assert_eq!(health["operatorSockets"], 11);
    assert_eq!(health["clients"], 20);
    assert_eq!(health["sockets"], 32);
    watcher.drain(QUIET).await;

    // every path: graceful close, namespace disconnect packet, socket dropped mid-stream
    for (i, v) in visitors.into_iter().enumerate() {
        match i % 3 {
            0 => v.close(),
            1 => v.emit_raw("41".to_owned()),
            _ => drop(v),
        }
    }
    for (i, op) in others.into_iter().enumerate() {
        if i % 2 == 0 {
            op.close()
        } else {
            op.emit_raw("41".to_owned())
        }
    }
    drop(_unjoined);
    relay.wait_metric("relay_connected_clients", 0.0).await;
    relay.wait_metric("relay_connected_operators", 1.0).await;
    relay
        .wait_metric("relay_connected_operator_sockets", 1.0)
        .await;
    relay.wait_metric("relay_connected_sockets", 1.0).await;

    let got = watcher.drain(QUIET).await;
    let count = |name: &str| got.iter().filter(|(n, _)| n == name).count();
    assert_eq!(count(event::CHAT_ENDED), 20, "one chatEnded per visitor");
    assert_eq!(
        count(event::OPERATOR_DISCONNECTED),
        5,
        "one per operator, not per tab"
    );
    watcher.emit_bare(event::GET_CONNECTED_OPERATORS);
    assert_eq!(
        watcher.expect(event::CONNECTED_OPERATORS_LIST).await,
        json!([{"operatorId": 100, "name": "Watcher"}])
    );
    watcher.close();
    relay.wait_metric("relay_connected_operators", 0.0).await;
    relay.wait_metric("relay_connected_sockets", 0.0).await;
}

#[tokio::test]
async fn a_message_queued_before_disconnect_is_still_delivered_before_chat_ended() {
    let relay = TestRelay::start().await;
    let mut ann = relay.operator(1, "Ann").await;
    let v = relay.client("V").await;
    ann.drain(QUIET).await;
    v.emit(
        event::CLIENT_MESSAGE,
        json!({"type": "text", "message": "bye"}),
    );
    v.emit_raw("41".to_owned());
    assert_eq!(ann.expect(event::INCOMING_MESSAGE).await["message"], "bye");
    ann.expect(event::CHAT_ENDED).await;
}

#[tokio::test]
async fn shutdown_disconnects_sockets_and_serve_returns() {
    let relay = TestRelay::start().await;
    let mut ann = relay.operator(1, "Ann").await;
    let addr = relay.addr;
    relay.stop().await.expect("clean stop");
    let mut saw_end = false;
    while let Some((name, _)) = ann.recv_within(Duration::from_secs(5)).await {
        if name == "disconnect" || name == "closed" {
            saw_end = true;
            break;
        }
    }
    assert!(saw_end, "socket was told or closed");
    assert!(
        Client::connect(addr, None).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let relay = TestRelay::start().await;
    let (status, body) = http_get(relay.addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("# TYPE relay_connected_sockets gauge"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE relay_messages_relayed counter"),
        "{body}"
    );
    assert!(body.trim_end().ends_with("# EOF"));
}

fn relay_binary(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_relay"));
    cmd.args(args)
        .env_remove("RELAY_JWT_SECRET")
        .env_remove("RELAY_INSECURE_DEV");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run relay binary")
}

#[test]
fn binary_refuses_to_start_without_a_secret() {
    let out = relay_binary(&["--port", "0"], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RELAY_JWT_SECRET is not set"), "{err}");
}

#[test]
fn binary_rejects_bad_values_clearly() {
    let out = relay_binary(
        &[],
        &[
            ("RATE_LIMIT_PER_MINUTE", "lots"),
            ("RELAY_JWT_SECRET", "0123456789abcdef0"),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--rate-limit-per-minute") && err.contains("lots"),
        "{err}"
    );
    let out = relay_binary(&["--jwt-secret", "short"], &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16"));
}

#[tokio::test]
async fn insecure_dev_mode_trusts_claimed_identity() {
    let relay = TestRelay::start_with(|c| {
        c.jwt_secret = None;
        c.insecure_dev = true;
    })
    .await;
    let mut watcher = relay.socket().await;
    watcher.emit(
        event::JOIN,
        json!({"role": "operator", "operatorId": 5, "name": "Dev"}),
    );
    watcher.emit_bare(event::GET_CONNECTED_OPERATORS);
    assert_eq!(
        watcher.expect(event::CONNECTED_OPERATORS_LIST).await,
        json!([{"operatorId": 5, "name": "Dev"}])
    );
}
