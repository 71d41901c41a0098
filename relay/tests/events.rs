//! One test per row of PROTOCOL.md's event tables, over real sockets.

mod common;

use common::{QUIET, TestRelay, token};
use relay::protocol::event;
use serde_json::{Value, json};

#[tokio::test]
async fn join_operator_announces_first_socket_to_other_operators() {
    let relay = TestRelay::start().await;
    let mut ann = relay.operator(1, "Ann").await;
    let _bob = relay.operator(2, "Bob").await;
    let got = ann.expect(event::OPERATOR_CONNECTED).await;
    assert_eq!(got, json!({"operatorId": 2, "name": "Bob"}));
}

#[tokio::test]
async fn join_client_announces_new_chat_to_operators_only() {
    let relay = TestRelay::start().await;
    let mut ann = relay.operator(1, "Ann").await;
    let mut first = relay.client("Visitor One").await;
    let second = relay.client("Visitor Two").await;
    let chat1 = ann.expect(event::NEW_CHAT).await;
    assert_eq!(
        chat1,
        json!({"clientId": first.sid, "username": "Visitor One"})
    );
    let chat2 = ann.expect(event::NEW_CHAT).await;
    assert_eq!(chat2["clientId"], second.sid.as_str());
    first.expect_silence(QUIET).await;
}

#[tokio::test]
async fn operator_message_reaches_its_client_and_every_other_operator_socket() {
    let relay = TestRelay::start().await;
    let mut ann = relay.operator(1, "Ann").await;
    let mut bob = relay.operator(2, "Bob").await;
    let mut visitor = relay.client("V").await;
    ann.drain(QUIET).await;
    bob.drain(QUIET).await;

    let ack = ann
        .emit_with_ack(
            event::OPERATOR_MESSAGE,
            json!({"to": visitor.sid, "type": "text", "message": "Hello"}),
        )
        .await;
    let id = ack["messageId"]
        .as_str()
        .expect("ack carries messageId")
        .to_owned();

    let to_client = visitor.expect(event::INCOMING_OPERATOR_MESSAGE).await;
    assert_eq!(to_client["from"], ann.sid.as_str());
    assert_eq!(to_client["type"], "text");
    assert_eq!(to_client["message"], "Hello");
    assert_eq!(to_client["messageId"], id.as_str());
    assert!(
        to_client["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );

    let b = bob.expect(event::OPERATOR_MESSAGE_BROADCAST).await;
    assert_eq!(b["clientId"], visitor.sid.as_str());
    assert_eq!(b["operatorId"], 1);
    assert_eq!(b["operatorName"], "Ann");
    let m = &b["message"];
    assert_eq!(m["from"], "operator");
    assert_eq!(m["text"], "Hello");
    assert_eq!(m["operatorId"], 1);
    assert_eq!(m["operatorName"], "Ann");
    assert_eq!(m["messageId"], id.as_str());
    assert_eq!(m["timestamp"], to_client["timestamp"]);

    ann.expect_silence(QUIET).await; // never echoed to the sender
}

#[tokio::test]
async fn client_message_reaches_every_operator_and_no_visitor() {
    let relay = TestRelay::start().await;
    let mut ann = relay.operator(1, "Ann").await;
    let mut bob = relay.operator(2, "Bob").await;
    let mut v1 = relay.client("V1").await;
    let mut v2 = relay.client("V2").await;
    ann.drain(QUIET).await;
    bob.drain(QUIET).await;

    let ack = v1
        .emit_with_ack(
            event::CLIENT_MESSAGE,
            json!({"type": "text", "message": "Help"}),
        )
        .await;
    for op in [&mut ann, &mut bob] {
        let m = op.expect(event::INCOMING_MESSAGE).await;
        assert_eq!(m["from"], v1.sid.as_str());
        assert_eq!(m["type"], "text");
        assert_eq!(m["message"], "Help");
        assert_eq!(m["messageId"], ack["messageId"]);
    }
    v1.expect_silence(QUIET).await;
    v2.expect_silence(QUIET).await;
}

#[tokio::test]
async fn operator_typing_reaches_only_the_addressed_client() {
    let relay = TestRelay::start().await;
    let mut ann = relay.operator(1, "Ann").await;
    let mut bob = relay.operator(2, "Bob").await;
    let mut v1 = relay.client("V1").await;
    let mut v2 = relay.client("V2").await;
    ann.drain(QUIET).await;
    bob.drain(QUIET).await;

    ann.emit(
        event::OPERATOR_TYPING,
        json!({"to": v1.sid, "isTyping": true}),
    );
    assert_eq!(
        v1.expect(event::OPERATOR_TYPING).await,
        json!({"isTyping": true})
    );
    v2.expect_silence(QUIET).await;
    bob.expect_silence(QUIET).await;
}

#[tokio::test]
async fn client_typing_reaches_operators_only() {
    let relay = TestRelay::start().await;
    let mut ann = relay.operator(1, "Ann").await;
    let mut v1 = relay.client("V1").await;
    let mut v2 = relay.client("V2").await;
    ann.drain(QUIET).await;

    v1.emit(event::CLIENT_TYPING, json!({"isTyping": false}));
    assert_eq!(
        ann.expect(event::CLIENT_TYPING).await,
        json!({"from": v1.sid, "isTyping": false})
    );
    v1.expect_silence(QUIET).await;
    v2.expect_silence(QUIET).await;
}

#[tokio::test]
async fn get_connected_operators_lists_each_operator_once() {
    let relay = TestRelay::start().await;
    let mut ann = relay.operator(1, "Ann").await;
    let _ann_tab = relay.operator(1, "Ann").await;
    let _bob = relay.operator(2, "Bob").await;
    ann.drain(QUIET).await;
    ann.emit_bare(event::GET_CONNECTED_OPERATORS);
    assert_eq!(
        ann.expect(event::CONNECTED_OPERATORS_LIST).await,
        json!([{"operatorId": 1, "name": "Ann"}, {"operatorId": 2, "name": "Bob"}])
    );
}

#[tokio::test]
async fn chat_ended_when_a_visitor_leaves() {
    let relay = TestRelay::start().await;
    let mut ann = relay.operator(1, "Ann").await;
    let v = relay.client("V").await;
    let mut other = relay.client("W").await;
    ann.drain(QUIET).await;
    let sid = v.sid.clone();
    v.close();
    assert_eq!(
        ann.expect(event::CHAT_ENDED).await,
        json!({"clientId": sid})
    );
    other.expect_silence(QUIET).await;
}

#[tokio::test]
async fn operator_disconnected_after_its_last_socket_only() {
    let relay = TestRelay::start().await;
    let mut ann = relay.operator(1, "Ann").await;
    let bob_tab1 = relay.operator(2, "Bob").await;
    let bob_tab2 = relay.operator(2, "Bob").await;
    assert_eq!(ann.expect(event::OPERATOR_CONNECTED).await["operatorId"], 2);
    ann.expect_silence(QUIET).await; // second tab is not announced

    bob_tab1.close();
    ann.expect_silence(QUIET).await;
    bob_tab2.close();
    assert_eq!(
        ann.expect(event::OPERATOR_DISCONNECTED).await,
        json!({"operatorId": 2, "name": "Bob"})
    );
}

#[tokio::test]
async fn rate_limit_exceeded_payload() {
    let relay = TestRelay::start_with(|c| c.rate_limit_per_minute = 1).await;
    let mut v = relay.client("V").await;
    v.emit(
        event::CLIENT_MESSAGE,
        json!({"type": "text", "message": "one"}),
    );
    v.emit(
        event::CLIENT_MESSAGE,
        json!({"type": "text", "message": "two"}),
    );
    let got = v.expect(event::RATE_LIMIT_EXCEEDED).await;
    assert_eq!(got["message"], "Too many messages");
    assert_eq!(got["retryAfterMs"], 60_000);
}

#[tokio::test]
async fn operator_identity_from_handshake_auth() {
    let relay = TestRelay::start().await;
    let mut ann = relay.operator(1, "Ann").await;
    let mut bob = common::Client::connect(relay.addr, Some(json!({"token": token(2, "Bob")})))
        .await
        .expect("connect");
    bob.emit(event::JOIN, json!({"role": "operator"}));
    assert_eq!(ann.expect(event::OPERATOR_CONNECTED).await["name"], "Bob");
    bob.emit_bare(event::GET_CONNECTED_OPERATORS);
    let list = bob.expect(event::CONNECTED_OPERATORS_LIST).await;
    assert_eq!(list.as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn image_message_carries_image_fields_and_decoded_size() {
    let relay = TestRelay::start().await;
    let mut ann = relay.operator(1, "Ann").await;
    let mut bob = relay.operator(2, "Bob").await;
    let mut v = relay.client("V").await;
    ann.drain(QUIET).await;
    bob.drain(QUIET).await;
    let png = relay::images::data_url("image/png", &relay::images::sample_image("image/png", 2048));

    v.emit(
        event::CLIENT_MESSAGE,
        json!({"type": "image", "image": png, "name": "shot.png", "mimeType": "image/png", "size": 1}),
    );
    let m = ann.expect(event::INCOMING_MESSAGE).await;
    assert_eq!(m["type"], "image");
    assert_eq!(m["image"], png.as_str());
    assert_eq!(m["name"], "shot.png");
    assert_eq!(m["mimeType"], "image/png");
    assert_eq!(
        m["size"], 2048,
        "size is the decoded size, not the claimed one"
    );
    assert!(m.get("message").is_none());
    bob.expect(event::INCOMING_MESSAGE).await;

    ann.emit(
        event::OPERATOR_MESSAGE,
        json!({"to": v.sid, "type": "image", "image": png, "name": "a.png", "mimeType": "image/png"}),
    );
    let m = v.expect(event::INCOMING_OPERATOR_MESSAGE).await;
    assert_eq!(m["image"], png.as_str());
    assert_eq!(m["mimeType"], "image/png");
    let b = bob.expect(event::OPERATOR_MESSAGE_BROADCAST).await;
    assert_eq!(b["message"]["image"], png.as_str());
    assert_eq!(b["message"]["name"], "a.png");
    assert_eq!(b["message"].get("text"), None::<&Value>);
}

/// A stress check of the join ordering: two tabs of one operator join in the same instant,
/// repeatedly, on two worker threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tabs_joining_at_once_are_announced_once_and_never_to_themselves() {
    let relay = TestRelay::start().await;
    let mut ann = relay.operator(1, "Ann").await;
    for round in 0..10u64 {
        let id = 100 + round;
        let mut tab1 = relay.socket().await;
        let mut tab2 = relay.socket().await;
        let join = json!({"role": "operator", "token": token(id, "Tabs")});
        tab1.emit(event::JOIN, join.clone());
        tab2.emit(event::JOIN, join);
        assert_eq!(
            ann.expect(event::OPERATOR_CONNECTED).await["operatorId"],
            id
        );
        for tab in [&mut tab1, &mut tab2] {
            let got = tab.drain(QUIET / 3).await;
            assert!(
                got.iter().all(|(_, d)| d["operatorId"] != id),
                "a tab heard about its own operator: {got:?}"
            );
        }
        tab1.close();
        tab2.close();
        assert_eq!(
            ann.expect(event::OPERATOR_DISCONNECTED).await["operatorId"],
            id
        );
    }
    ann.expect_silence(QUIET).await;
}
