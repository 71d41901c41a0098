//! Identity, scoping and sanitizing: the FIX rows of PROTOCOL.md.

mod common;

use common::{Client, QUIET, SECRET, TestRelay, http_request, token};
use relay::auth::{Claims, OperatorIdentity, sign_hs256};
use relay::protocol::event;
use serde_json::json;

/// Two operators, two visitors, every event each side can send: each visitor sees only
/// what is addressed to it, operators see every operator-bound event.
#[tokio::test]
async fn nothing_crosses_between_visitors() {
    let relay = TestRelay::start().await;
    let mut ann = relay.operator(1, "Ann").await;
    let mut bob = relay.operator(2, "Bob").await;
    let mut v1 = relay.client("V1").await;
    let mut v2 = relay.client("V2").await;
    ann.drain(QUIET).await;
    bob.drain(QUIET).await;

    for v in [&v1, &v2] {
        v.emit(
            event::CLIENT_MESSAGE,
            json!({"type": "text", "message": format!("from {}", v.sid)}),
        );
        v.emit(event::CLIENT_TYPING, json!({"isTyping": true}));
    }
    for op in [&ann, &bob] {
        op.emit(
            event::OPERATOR_MESSAGE,
            json!({"to": v1.sid, "type": "text", "message": "to v1"}),
        );
        op.emit(
            event::OPERATOR_TYPING,
            json!({"to": v1.sid, "isTyping": true}),
        );
        op.emit_bare(event::GET_CONNECTED_OPERATORS);
    }
    let v2_sid = v2.sid.clone();
    v2.expect_silence(QUIET).await; // v1's messages and typing never reach v2
    v2.close();

    let got_v1 = v1.drain(QUIET).await;
    let mut names: Vec<&str> = got_v1.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            event::INCOMING_OPERATOR_MESSAGE,
            event::INCOMING_OPERATOR_MESSAGE,
            event::OPERATOR_TYPING,
            event::OPERATOR_TYPING
        ],
        "v1 got {got_v1:?}"
    );
    for (_, data) in &got_v1 {
        let text = data.to_string();
        assert!(!text.contains(&v2_sid), "v1 learned about v2: {text}");
    }

    for (op, other_sid) in [(&mut ann, 2u64), (&mut bob, 1u64)] {
        let got = op.drain(QUIET).await;
        let count = |name: &str| got.iter().filter(|(n, _)| n == name).count();
        assert_eq!(count(event::INCOMING_MESSAGE), 2, "{got:?}");
        assert_eq!(count(event::CLIENT_TYPING), 2);
        assert_eq!(
            count(event::OPERATOR_MESSAGE_BROADCAST),
            1,
            "only the other operator's"
        );
        assert_eq!(count(event::CONNECTED_OPERATORS_LIST), 1);
        assert_eq!(count(event::CHAT_ENDED), 1);
        assert_eq!(
            count(event::OPERATOR_TYPING),
            0,
            "typing to a visitor stays with the visitor"
        );
        assert_eq!(
            got.len(),
            7,
            "nothing unlisted reached an operator: {got:?}"
        );
        let b = got
            .iter()
            .find(|(n, _)| n == event::OPERATOR_MESSAGE_BROADCAST)
            .map(|(_, d)| d.clone())
            .unwrap_or_default();
        assert_eq!(b["operatorId"], other_sid);
    }
}

#[tokio::test]
async fn spoofed_operator_identity_is_ignored() {
    let relay = TestRelay::start().await;
    let mut ann = relay.operator(1, "Ann").await;
    let mut v = relay.client("V").await;
    ann.drain(QUIET).await;
    // Mallory holds a token for operator 3 but claims to be Ann everywhere it can
    let mallory = relay.socket().await;
    mallory.emit(
        event::JOIN,
        json!({"role": "operator", "token": token(3, "Mallory"), "operatorId": 1, "name": "Ann"}),
    );
    assert_eq!(
        ann.expect(event::OPERATOR_CONNECTED).await,
        json!({"operatorId": 3, "name": "Mallory"})
    );
    mallory.emit(
        event::OPERATOR_MESSAGE,
        json!({"to": v.sid, "type": "text", "message": "hi", "operatorId": 1, "operatorName": "Ann"}),
    );
    let b = ann.expect(event::OPERATOR_MESSAGE_BROADCAST).await;
    assert_eq!(b["operatorId"], 3);
    assert_eq!(b["operatorName"], "Mallory");
    assert_eq!(b["message"]["operatorId"], 3);
    assert_eq!(b["message"]["operatorName"], "Mallory");
    assert_eq!(
        v.expect(event::INCOMING_OPERATOR_MESSAGE).await["from"],
        mallory.sid.as_str()
    );
}

async fn join_refused(relay: &TestRelay, token: Option<String>) {
    let mut s = relay.socket().await;
    let mut join = json!({"role": "operator", "operatorId": 1, "name": "Ann"});
    if let Some(t) = token {
        join["token"] = json!(t);
    }
    s.emit(event::JOIN, join);
    let e = s.expect(event::RELAY_ERROR).await;
    assert_eq!(e["code"], "unauthorized", "{e}");
    assert_eq!(s.recv().await.0, "disconnect");
}

#[tokio::test]
async fn bad_expired_and_missing_tokens_are_refused() {
    let relay = TestRelay::start().await;
    let mut ann = relay.operator(1, "Ann").await;
    ann.drain(QUIET).await;
    let who = OperatorIdentity {
        operator_id: 9,
        name: "Eve".into(),
    };
    let mut expired = Claims::new(&who, 0);
    expired.exp -= 3600;
    let cases = [
        None,
        Some("not-a-jwt".to_owned()),
        Some(sign_hs256(
            b"some-other-secret-entirely",
            &Claims::new(&who, 3600),
        )),
        Some(sign_hs256(SECRET.as_bytes(), &expired)),
        Some(format!("{}x", token(9, "Eve"))),
    ];
    for t in cases {
        join_refused(&relay, t).await;
    }
    ann.expect_silence(QUIET).await; // no operatorConnected for any of them
    assert_eq!(
        relay
            .metric("relay_errors_total{code=\"unauthorized\"}")
            .await,
        5.0
    );
    relay.wait_metric("relay_connected_operators", 1.0).await;
}

#[tokio::test]
async fn bad_handshake_token_is_refused_at_join() {
    let relay = TestRelay::start().await;
    let mut s = Client::connect(relay.addr, Some(json!({"token": "garbage"})))
        .await
        .expect("connect");
    s.emit(event::JOIN, json!({"role": "operator"}));
    assert_eq!(s.expect(event::RELAY_ERROR).await["code"], "unauthorized");
}

#[tokio::test]
async fn multi_tab_operator_gets_broadcasts_on_its_other_tabs() {
    let relay = TestRelay::start().await;
    let mut tab1 = relay.operator(1, "Ann").await;
    let mut tab2 = relay.operator(1, "Ann").await;
    let mut bob = relay.operator(2, "Bob").await;
    let mut v = relay.client("V").await;
    for c in [&mut tab1, &mut tab2, &mut bob] {
        c.drain(QUIET).await;
    }
    tab1.emit(
        event::OPERATOR_MESSAGE,
        json!({"to": v.sid, "type": "text", "message": "m"}),
    );
    v.expect(event::INCOMING_OPERATOR_MESSAGE).await;
    assert_eq!(
        tab2.expect(event::OPERATOR_MESSAGE_BROADCAST).await["operatorId"],
        1
    );
    assert_eq!(
        bob.expect(event::OPERATOR_MESSAGE_BROADCAST).await["operatorId"],
        1
    );
    tab1.expect_silence(QUIET).await;
    // v's messages reach both tabs
    v.emit(
        event::CLIENT_MESSAGE,
        json!({"type": "text", "message": "hi"}),
    );
    tab1.expect(event::INCOMING_MESSAGE).await;
    tab2.expect(event::INCOMING_MESSAGE).await;
}

#[tokio::test]
async fn text_names_and_file_names_are_sanitized() {
    let relay = TestRelay::start().await;
    let mut ann = relay.operator(1, "Ann").await;
    let mut bob = relay.operator(2, "Bob").await;
    ann.drain(QUIET).await;
    let mut v = relay
        .client("<img src=x onerror=alert(1)>Eve<b>!</b>")
        .await;
    assert_eq!(ann.expect(event::NEW_CHAT).await["username"], "Eve!");
    bob.drain(QUIET).await;

    v.emit(
        event::CLIENT_MESSAGE,
        json!({"type": "text", "message": "<b onclick=\"steal()\">hi</b><script>alert(1)</script> 5 < 6"}),
    );
    let m = ann.expect(event::INCOMING_MESSAGE).await;
    assert_eq!(m["message"], "hi 5 &lt; 6");
    bob.expect(event::INCOMING_MESSAGE).await;

    ann.emit(
        event::OPERATOR_MESSAGE,
        json!({"to": v.sid, "type": "text", "message": "<a href=\"javascript:x\">click</a>"}),
    );
    assert_eq!(
        v.expect(event::INCOMING_OPERATOR_MESSAGE).await["message"],
        "click"
    );
    assert_eq!(
        bob.expect(event::OPERATOR_MESSAGE_BROADCAST).await["message"]["text"],
        "click"
    );

    let png = relay::images::data_url("image/png", &relay::images::sample_image("image/png", 64));
    v.emit(
        event::CLIENT_MESSAGE,
        json!({"type": "image", "image": png, "mimeType": "image/png", "name": "<svg onload=x>a.png"}),
    );
    assert_eq!(ann.expect(event::INCOMING_MESSAGE).await["name"], "a.png");
}

#[tokio::test]
async fn disguised_and_unlisted_images_are_refused() {
    let relay = TestRelay::start().await;
    let mut ann = relay.operator(1, "Ann").await;
    let mut v = relay.client("V").await;
    ann.drain(QUIET).await;
    let html_as_png = relay::images::data_url("image/png", b"<html><script>x</script></html>");
    let svg = relay::images::data_url("image/svg+xml", b"<svg onload=alert(1)/>");
    for (image, mime) in [
        (html_as_png.as_str(), "image/png"),
        (svg.as_str(), "image/svg+xml"),
    ] {
        v.emit(
            event::CLIENT_MESSAGE,
            json!({"type": "image", "image": image, "mimeType": mime}),
        );
        assert_eq!(
            v.expect(event::RELAY_ERROR).await["code"],
            "invalid_payload"
        );
    }
    ann.expect_silence(QUIET).await;
}

#[tokio::test]
async fn websocket_upgrade_from_a_foreign_origin_is_refused() {
    let relay =
        TestRelay::start_with(|c| c.cors_origin = vec!["http://localhost:3000".into()]).await;
    let ok = Client::connect_with(relay.addr, "/chat", None, Some("http://localhost:3000")).await;
    assert!(ok.is_ok(), "allowed origin connects");
    let no_origin = Client::connect_with(relay.addr, "/chat", None, None).await;
    assert!(no_origin.is_ok(), "non-browser clients send no Origin");
    let evil = Client::connect_with(relay.addr, "/chat", None, Some("https://evil.example")).await;
    match evil {
        Err(common::ConnectError::Http(e)) => assert!(e.contains("403"), "{e}"),
        Err(e) => panic!("expected HTTP 403, got {e:?}"),
        Ok(_) => panic!("foreign origin connected"),
    }
    // polling handshake from a foreign origin is refused too
    let (status, _) = http_request(
        relay.addr,
        &format!(
            "GET /chat/?EIO=4&transport=polling HTTP/1.1\r\nHost: {}\r\nOrigin: https://evil.example\r\nConnection: close\r\n\r\n",
            relay.addr
        ),
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn cors_preflight_names_only_the_allowed_origin() {
    let relay =
        TestRelay::start_with(|c| c.cors_origin = vec!["http://localhost:3000".into()]).await;
    let req = format!(
        "OPTIONS /chat/?EIO=4&transport=polling HTTP/1.1\r\nHost: {}\r\nOrigin: http://localhost:3000\r\nAccess-Control-Request-Method: POST\r\nConnection: close\r\n\r\n",
        relay.addr
    );
    let mut tcp = tokio::net::TcpStream::connect(relay.addr)
        .await
        .expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).await.expect("read");
    let lower = raw.to_ascii_lowercase();
    assert!(
        lower.contains("access-control-allow-origin: http://localhost:3000"),
        "{raw}"
    );
}
