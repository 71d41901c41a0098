//! One test per `relayError` code, and bad input of every kind: an answer, never a crash,
//! never a partial delivery.

mod common;

use common::{Client, QUIET, TestRelay};
use relay::protocol::event;
use serde_json::{Value, json};

async fn expect_error(c: &mut Client, event_name: &str, code: &str) -> Value {
    let e = c.expect(event::RELAY_ERROR).await;
    assert_eq!(e["event"], event_name, "{e}");
    assert_eq!(e["code"], code, "{e}");
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
    e
}

#[tokio::test]
async fn unauthorized_without_token_then_disconnected() {
    let relay = TestRelay::start().await;
    let mut s = relay.socket().await;
    s.emit(
        event::JOIN,
        json!({"role": "operator", "operatorId": 1, "name": "Ann"}),
    );
    expect_error(&mut s, event::JOIN, "unauthorized").await;
    assert_eq!(s.recv().await.0, "disconnect");
}

#[tokio::test]
async fn forbidden_for_wrong_role_and_second_join() {
    let relay = TestRelay::start().await;
    let mut v = relay.client("V").await;
    let mut ann = relay.operator(1, "Ann").await;
    ann.drain(QUIET).await;
    v.emit(
        event::OPERATOR_MESSAGE,
        json!({"to": v.sid, "type": "text", "message": "x"}),
    );
    expect_error(&mut v, event::OPERATOR_MESSAGE, "forbidden").await;
    v.emit_bare(event::GET_CONNECTED_OPERATORS);
    expect_error(&mut v, event::GET_CONNECTED_OPERATORS, "forbidden").await;
    v.emit(
        event::OPERATOR_TYPING,
        json!({"to": v.sid, "isTyping": true}),
    );
    expect_error(&mut v, event::OPERATOR_TYPING, "forbidden").await;
    ann.emit(
        event::CLIENT_MESSAGE,
        json!({"type": "text", "message": "x"}),
    );
    expect_error(&mut ann, event::CLIENT_MESSAGE, "forbidden").await;
    ann.emit(event::CLIENT_TYPING, json!({"isTyping": true}));
    expect_error(&mut ann, event::CLIENT_TYPING, "forbidden").await;
    v.emit(event::JOIN, json!({"role": "client", "username": "again"}));
    expect_error(&mut v, event::JOIN, "forbidden").await;
    ann.expect_silence(QUIET).await; // second join announced nothing
}

#[tokio::test]
async fn invalid_payload_for_every_kind_of_bad_input() {
    let relay = TestRelay::start().await;
    let mut ann = relay.operator(1, "Ann").await;
    let mut v = relay.client("V").await;
    ann.drain(QUIET).await;
    let bad_client_messages = [
        json!("just a string"),
        json!(42),
        json!(null),
        json!({}),
        json!({"type": "video", "message": "x"}),
        json!({"type": "text"}),
        json!({"type": "text", "message": 5}),
        json!({"type": "text", "message": "<script>alert(1)</script>"}),
        json!({"type": "image", "mimeType": "image/png"}),
        json!({"type": "image", "image": "AAAA", "mimeType": "text/html"}),
        json!({"type": "image", "image": "not base64!", "mimeType": "image/png"}),
    ];
    for payload in &bad_client_messages {
        v.emit(event::CLIENT_MESSAGE, payload.clone());
        expect_error(&mut v, event::CLIENT_MESSAGE, "invalid_payload").await;
    }
    ann.emit(
        event::OPERATOR_MESSAGE,
        json!({"type": "text", "message": "no to"}),
    );
    expect_error(&mut ann, event::OPERATOR_MESSAGE, "invalid_payload").await;
    ann.emit(
        event::OPERATOR_TYPING,
        json!({"to": v.sid, "isTyping": "yes"}),
    );
    expect_error(&mut ann, event::OPERATOR_TYPING, "invalid_payload").await;
    ann.emit(event::JOIN, json!({"role": "admin"}));
    expect_error(&mut ann, event::JOIN, "forbidden").await; // already joined
    let mut fresh = relay.socket().await;
    fresh.emit(event::JOIN, json!({"role": "admin"}));
    expect_error(&mut fresh, event::JOIN, "invalid_payload").await;
    fresh.emit(event::JOIN, json!({"role": "client"}));
    expect_error(&mut fresh, event::JOIN, "invalid_payload").await;
    fresh.emit("noSuchEvent", json!({}));
    expect_error(&mut fresh, "noSuchEvent", "invalid_payload").await;
    // nothing of the above reached anyone
    ann.expect_silence(QUIET).await;
    v.expect_silence(QUIET).await;
    assert_eq!(
        relay
            .metric("relay_errors_total{code=\"invalid_payload\"}")
            .await,
        16.0
    );
}

/// Each malformed frame on its own socket: either a `relayError` or the connection closed
/// by the protocol layer; never a crash, never a delivery.
#[tokio::test]
async fn garbage_frames_get_an_error_or_a_close_and_the_relay_keeps_serving() {
    let relay = TestRelay::start().await;
    let mut ann = relay.operator(1, "Ann").await;
    ann.drain(QUIET).await;
    let answered_by_relay = [
        r#"42["join",{"role":{}}]"#,
        r#"42["join",[1,2,3]]"#,
        r#"42["join"]"#,
        r#"42["join",null]"#,
        r#"42["clientMessage",{"type":"text","message":"x"},"extra"]"#,
    ];
    for frame in answered_by_relay {
        let mut junk = relay.socket().await;
        junk.emit_raw(frame.to_owned());
        let e = junk.expect(event::RELAY_ERROR).await;
        assert!(
            matches!(e["code"].as_str(), Some("invalid_payload" | "not_joined")),
            "{frame}: {e}"
        );
    }
    let closed_by_protocol = ["42", "42[", "42{}", "42[1,2]", "4", "9999", "\u{0}\u{1}"];
    for frame in closed_by_protocol {
        let mut junk = relay.socket().await;
        junk.emit_raw(frame.to_owned());
        let (name, _) = junk.recv().await;
        assert!(
            name == "closed" || name == "disconnect",
            "{frame:?} answered {name}"
        );
    }
    // still serving, nothing leaked to the operator, sockets all cleaned up
    ann.expect_silence(QUIET).await;
    let v = relay.client("after garbage").await;
    assert_eq!(
        ann.expect(event::NEW_CHAT).await["clientId"],
        v.sid.as_str()
    );
    relay.wait_metric("relay_connected_sockets", 2.0).await;
}

#[tokio::test]
async fn unknown_client_for_message_and_typing() {
    let relay = TestRelay::start().await;
    let mut ann = relay.operator(1, "Ann").await;
    let mut bob = relay.operator(2, "Bob").await;
    ann.drain(QUIET).await;
    ann.emit(
        event::OPERATOR_MESSAGE,
        json!({"to": "nobody", "type": "text", "message": "x"}),
    );
    expect_error(&mut ann, event::OPERATOR_MESSAGE, "unknown_client").await;
    // another operator's socket id is not a client either
    ann.emit(
        event::OPERATOR_MESSAGE,
        json!({"to": bob.sid, "type": "text", "message": "x"}),
    );
    expect_error(&mut ann, event::OPERATOR_MESSAGE, "unknown_client").await;
    ann.emit(
        event::OPERATOR_TYPING,
        json!({"to": "nobody", "isTyping": true}),
    );
    expect_error(&mut ann, event::OPERATOR_TYPING, "unknown_client").await;
    bob.expect_silence(QUIET).await; // no partial delivery to supervisors
}

#[tokio::test]
async fn payload_too_large_over_websocket_and_for_images() {
    let relay = TestRelay::start_with(|c| {
        c.max_payload_bytes = 64 * 1024;
        c.max_image_bytes = 4 * 1024;
    })
    .await;
    let mut ann = relay.operator(1, "Ann").await;
    let mut v = relay.client("V").await;
    ann.drain(QUIET).await;

    let huge_text = "a".repeat(100 * 1024);
    v.emit(
        event::CLIENT_MESSAGE,
        json!({"type": "text", "message": huge_text}),
    );
    expect_error(&mut v, event::CLIENT_MESSAGE, "payload_too_large").await;

    let big = relay::images::data_url(
        "image/png",
        &relay::images::sample_image("image/png", 5 * 1024),
    );
    v.emit(
        event::CLIENT_MESSAGE,
        json!({"type": "image", "image": big, "mimeType": "image/png"}),
    );
    expect_error(&mut v, event::CLIENT_MESSAGE, "payload_too_large").await;

    ann.expect_silence(QUIET).await;
    // the socket still works afterwards
    v.emit(
        event::CLIENT_MESSAGE,
        json!({"type": "text", "message": "small"}),
    );
    assert_eq!(
        ann.expect(event::INCOMING_MESSAGE).await["message"],
        "small"
    );
    assert_eq!(relay.metric("relay_oversized_events_total").await, 1.0);
}

#[tokio::test]
async fn not_joined_for_every_event_before_join() {
    let relay = TestRelay::start().await;
    let mut s = relay.socket().await;
    for ev in [
        event::OPERATOR_MESSAGE,
        event::CLIENT_MESSAGE,
        event::OPERATOR_TYPING,
        event::CLIENT_TYPING,
        event::GET_CONNECTED_OPERATORS,
    ] {
        s.emit(
            ev,
            json!({"to": "x", "type": "text", "message": "x", "isTyping": true}),
        );
        expect_error(&mut s, ev, "not_joined").await;
    }
}

#[tokio::test]
async fn refused_messages_are_acked_with_the_code() {
    let relay = TestRelay::start().await;
    let mut s = relay.socket().await;
    let ack = s
        .emit_with_ack(
            event::CLIENT_MESSAGE,
            json!({"type": "text", "message": "x"}),
        )
        .await;
    assert_eq!(ack, json!({"error": "not_joined"}));
}
