//! Exact rate-limit accounting on a controlled clock: message 101 within the minute is
//! refused and never delivered; the window rolls; typing has its own silent budget.

mod common;

use std::time::Duration;

use common::{QUIET, TestRelay};
use relay::protocol::event;
use serde_json::json;

fn text(i: usize) -> serde_json::Value {
    json!({"type": "text", "message": format!("m{i}")})
}

#[tokio::test]
async fn message_101_within_the_minute_is_refused_and_never_delivered() {
    let relay = TestRelay::start().await;
    let mut ann = relay.operator(1, "Ann").await;
    let mut v = relay.client("V").await;
    ann.drain(QUIET).await;

    for i in 0..99 {
        v.emit(event::CLIENT_MESSAGE, text(i));
    }
    // the ack proves all 100 were counted at t = 0 before the clock moves
    let ack = v.emit_with_ack(event::CLIENT_MESSAGE, text(99)).await;
    assert!(ack["messageId"].is_string(), "{ack}");
    relay.advance(Duration::from_secs(59));
    v.emit(event::CLIENT_MESSAGE, text(100));
    let limited = v.expect(event::RATE_LIMIT_EXCEEDED).await;
    assert_eq!(
        limited["retryAfterMs"], 1_000,
        "first message leaves the window at 60 s"
    );

    let got = ann.drain(QUIET).await;
    let delivered: Vec<&str> = got
        .iter()
        .filter(|(n, _)| n == event::INCOMING_MESSAGE)
        .filter_map(|(_, d)| d["message"].as_str())
        .collect();
    assert_eq!(delivered.len(), 100);
    assert!(
        !delivered.contains(&"m100"),
        "the refused message was delivered"
    );
    assert_eq!(
        relay
            .metric("relay_rate_limited_total{kind=\"message\"}")
            .await,
        1.0
    );

    // at exactly 60 s the first 100 leave the window together
    relay.advance(Duration::from_secs(1));
    let ack = v.emit_with_ack(event::CLIENT_MESSAGE, text(101)).await;
    assert!(ack["messageId"].is_string(), "{ack}");
    assert_eq!(ann.expect(event::INCOMING_MESSAGE).await["message"], "m101");
    v.expect_silence(QUIET).await;
}

#[tokio::test]
async fn window_rolls_and_budget_is_per_socket() {
    let relay = TestRelay::start_with(|c| c.rate_limit_per_minute = 3).await;
    let mut tab1 = relay.operator(1, "Ann").await;
    let mut tab2 = relay.operator(1, "Ann").await;
    let v = relay.client("V").await;
    tab1.drain(QUIET).await;
    tab2.drain(QUIET).await;
    let msg = json!({"to": v.sid, "type": "text", "message": "x"});
    for _ in 0..3 {
        let ack = tab1
            .emit_with_ack(event::OPERATOR_MESSAGE, msg.clone())
            .await;
        assert!(ack["messageId"].is_string());
        relay.advance(Duration::from_secs(20));
    }
    // t = 60 s: the first left the window, so one more fits, then none
    let ack = tab1
        .emit_with_ack(event::OPERATOR_MESSAGE, msg.clone())
        .await;
    assert!(ack["messageId"].is_string(), "{ack}");
    let ack = tab1
        .emit_with_ack(event::OPERATOR_MESSAGE, msg.clone())
        .await;
    assert_eq!(ack["retryAfterMs"], 20_000, "{ack}");
    // the other tab of the same operator has its own budget
    let ack = tab2
        .emit_with_ack(event::OPERATOR_MESSAGE, msg.clone())
        .await;
    assert!(ack["messageId"].is_string(), "{ack}");
}

#[tokio::test]
async fn typing_has_its_own_budget_and_is_dropped_silently() {
    let relay = TestRelay::start_with(|c| {
        c.rate_limit_per_minute = 2;
        c.typing_rate_limit_per_minute = 5;
    })
    .await;
    let mut ann = relay.operator(1, "Ann").await;
    let mut v = relay.client("V").await;
    ann.drain(QUIET).await;
    for i in 0..8 {
        v.emit(event::CLIENT_TYPING, json!({"isTyping": i % 2 == 0}));
    }
    let got = ann.drain(QUIET).await;
    assert_eq!(
        got.iter()
            .filter(|(n, _)| n == event::CLIENT_TYPING)
            .count(),
        5
    );
    v.expect_silence(QUIET).await; // no rateLimitExceeded, no relayError for typing
    assert_eq!(
        relay
            .metric("relay_rate_limited_total{kind=\"typing\"}")
            .await,
        3.0
    );
    // typing did not use the message budget
    for i in 0..2 {
        let ack = v.emit_with_ack(event::CLIENT_MESSAGE, text(i)).await;
        assert!(ack["messageId"].is_string(), "{ack}");
    }
}

#[tokio::test]
async fn invalid_and_oversized_messages_count_against_the_budget() {
    let relay = TestRelay::start_with(|c| {
        c.rate_limit_per_minute = 2;
        c.max_payload_bytes = 4096;
        c.max_image_bytes = 4096;
    })
    .await;
    let mut v = relay.client("V").await;
    v.emit(event::CLIENT_MESSAGE, json!({"type": "bogus"}));
    assert_eq!(
        v.expect(event::RELAY_ERROR).await["code"],
        "invalid_payload"
    );
    v.emit(
        event::CLIENT_MESSAGE,
        json!({"type": "text", "message": "x".repeat(8192)}),
    );
    assert_eq!(
        v.expect(event::RELAY_ERROR).await["code"],
        "payload_too_large"
    );
    v.emit(event::CLIENT_MESSAGE, text(0));
    v.expect(event::RATE_LIMIT_EXCEEDED).await;
    v.emit(
        event::CLIENT_MESSAGE,
        json!({"type": "text", "message": "x".repeat(8192)}),
    );
    v.expect(event::RATE_LIMIT_EXCEEDED).await;
}
