//! Per-socket order and the connect race: the two socketioxide pitfalls the relay works around.

mod common;

use std::time::Duration;

use common::{Client, QUIET, TestRelay};
use relay::protocol::event;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_messages_back_to_back_arrive_in_order() {
    let relay = TestRelay::start_with(|c| c.rate_limit_per_minute = 10_000).await;
    let mut ann = relay.operator(1, "Ann").await;
    let mut bob = relay.operator(2, "Bob").await;
    let mut v = relay.client("V").await;
    ann.drain(QUIET).await;
    bob.drain(QUIET).await;

    for i in 0..1000 {
        v.emit(
            event::CLIENT_MESSAGE,
            json!({"type": "text", "message": i.to_string()}),
        );
        ann.emit(
            event::OPERATOR_MESSAGE,
            json!({"to": v.sid, "type": "text", "message": i.to_string()}),
        );
    }
    let mut from_v = Vec::with_capacity(1000);
    let mut from_ann = Vec::with_capacity(1000);
    while from_v.len() < 1000 || from_ann.len() < 1000 {
        let (name, data) = bob.recv().await;
        let n: u32 = match name.as_str() {
            event::INCOMING_MESSAGE => data["message"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("number"),
            event::OPERATOR_MESSAGE_BROADCAST => data["message"]["text"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("number"),
            other => panic!("unexpected {other}"),
        };
        if name == event::INCOMING_MESSAGE {
            from_v.push(n);
        } else {
            from_ann.push(n);
        }
    }
    let expected: Vec<u32> = (0..1000).collect();
    assert_in_order(&from_v, "visitor → operators");
    assert_in_order(&from_ann, "operator → operators");
    let mut to_v = Vec::with_capacity(1000);
    while to_v.len() < 1000 {
        let data = v.expect(event::INCOMING_OPERATOR_MESSAGE).await;
        to_v.push(
            data["message"]
                .as_str()
                .and_then(|s| s.parse::<u32>().ok())
                .expect("number"),
        );
    }
    assert_in_order(&to_v, "operator → visitor");
    assert_eq!(to_v, expected);
}

fn assert_in_order(got: &[u32], path: &str) {
    if let Some(i) = got.iter().enumerate().position(|(i, &n)| n as usize != i) {
        panic!("{path}: message {} arrived at position {i}", got[i]);
    }
}

/// Events sent right after the connect answer must not miss their handler: 2,000 visitors
/// each join and send one message at once; the operator must get all 2,000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_clients_sending_at_once_are_all_delivered() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    const N: usize = 2000;
    // the operator gets 4,000 events in a burst: leave its buffer ample room, this test is
    // about the connect race, not buffer sizing
    let relay = TestRelay::start_with(|c| c.socket_buffer_packets = 16_384).await;
    let mut ann = relay.operator(1, "Ann").await;
    let addr = relay.addr;
    let mut tasks = Vec::with_capacity(N);
    for i in 0..N {
        tasks.push(tokio::spawn(async move {
            let c = Client::connect(addr, None).await.expect("connect");
            // pipelined: join and message leave in the same instant as the connect answer
            c.emit(
                event::JOIN,
                json!({"role": "client", "username": format!("v{i}")}),
            );
            c.emit(
                event::CLIENT_MESSAGE,
                json!({"type": "text", "message": format!("hello {i}")}),
            );
            c
        }));
    }
    let mut clients = Vec::with_capacity(N);
    for t in tasks {
        clients.push(t.await.expect("task"));
    }
    let mut seen = std::collections::HashSet::new();
    while seen.len() < N {
        let Some((name, data)) = ann.recv_within(Duration::from_secs(10)).await else {
            panic!("only {} of {N} messages delivered", seen.len());
        };
        if name == event::INCOMING_MESSAGE {
            assert!(
                seen.insert(data["message"].as_str().unwrap_or_default().to_owned()),
                "duplicate {data}"
            );
        }
    }
    assert_eq!(relay.metric("relay_emit_dropped_total").await, 0.0);
    assert_eq!(relay.metric("relay_inbound_dropped_total").await, 0.0);
    drop(clients);
}
