//! Interoperability with real third-party clients: the JavaScript `socket.io-client` the
//! frontend uses (long-polling and WebSocket upgrade), and `rust_socketio`.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{QUIET, TestRelay, token};
use futures_util::FutureExt;
use relay::protocol::event;
use rust_socketio::asynchronous::ClientBuilder;
use rust_socketio::{Event, Payload};
use serde_json::{Value, json};
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_socket_io_client_interoperates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        dir.join("node_modules/socket.io-client").is_dir(),
        "socket.io-client is not installed: run scripts/test (it runs `npm ci` in {})",
        dir.display()
    );
    let relay = TestRelay::start().await;
    let url = format!("http://{}/chat", relay.addr);
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("node")
            .arg("interop.mjs")
            .arg(&url)
            .arg(token(1, "Ann"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("node finished in time")
    .expect("node runs (is Node.js installed?)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(
        r["operatorTransport"], "websocket",
        "operator upgraded from polling"
    );
    assert_eq!(r["visitorTransport"], "polling");
    assert_eq!(r["operators"], json!([{"operatorId": 1, "name": "Ann"}]));
    assert_eq!(r["newChat"]["clientId"], r["visitorId"]);
    assert_eq!(r["newChat"]["username"], "Visitor JS");
    assert_eq!(r["fromVisitor"]["message"], "hello from polling");
    assert_eq!(r["fromVisitor"]["messageId"], r["visitorAck"]["messageId"]);
    assert_eq!(r["fromOperator"]["message"], "hi there");
    assert!(r["fromOperator"]["messageId"].is_string());
    assert_eq!(r["relayError"]["code"], "forbidden");
    // after the script disconnected both, presence is empty again
    relay.wait_metric("relay_connected_sockets", 0.0).await;
    relay.wait_metric("relay_connected_clients", 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_socketio_client_interoperates() {
    let relay = TestRelay::start().await;
    let mut ann = relay.operator(1, "Ann").await;
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, Value)>();
    let any_tx = tx.clone();
    let client = ClientBuilder::new(format!("http://{}/chat/", relay.addr))
        .on(Event::Connect, move |_, _| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(("connect".to_owned(), Value::Null));
            }
            .boxed()
        })
        .on_any(move |ev, payload, _| {
            let tx = any_tx.clone();
            async move {
                if let Payload::Text(mut values) = payload {
                    let data = if values.is_empty() {
                        Value::Null
                    } else {
                        values.swap_remove(0)
                    };
                    let _ = tx.send((String::from(ev.as_str()), data));
                }
            }
            .boxed()
        })
        .connect()
        .await
        .expect("rust_socketio connects");
    // rust_socketio's connect() returns before the server's connect answer: wait for it
    let (first, _) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("connect event in time")
        .expect("channel open");
    assert_eq!(first, "connect");

    client
        .emit(event::JOIN, json!({"role": "client", "username": "rusty"}))
        .await
        .expect("emit join");
    let chat = ann.expect(event::NEW_CHAT).await;
    assert_eq!(chat["username"], "rusty");
    client
        .emit(
            event::CLIENT_MESSAGE,
            json!({"type": "text", "message": "from rust_socketio"}),
        )
        .await
        .expect("emit message");
    assert_eq!(
        ann.expect(event::INCOMING_MESSAGE).await["message"],
        "from rust_socketio"
    );

    ann.emit(
        event::OPERATOR_MESSAGE,
        json!({"to": chat["clientId"], "type": "text", "message": "answer"}),
    );
    let (name, data) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("answer in time")
        .expect("channel open");
    assert_eq!(name, event::INCOMING_OPERATOR_MESSAGE);
    assert_eq!(data["message"], "answer");
    client.disconnect().await.expect("disconnect");
    assert_eq!(
        ann.expect(event::CHAT_ENDED).await["clientId"],
        chat["clientId"]
    );
    ann.expect_silence(QUIET).await;
}

/// The project's own client (`wire`) over long-polling only and over polling upgraded to
/// WebSocket: every event, ack and ping crosses both transports, and nothing sent while the
/// upgrade is under way is lost or reordered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_client_over_polling_and_upgrade() {
    use wire::Transport;
    let relay = TestRelay::start_with(|c| c.rate_limit_per_minute = 10_000).await;
    let mut ann = common::Client::connect_over(
        relay.addr,
        "/chat",
        Some(json!({"token": token(1, "Ann")})),
        None,
        Transport::Upgrade,
    )
    .await
    .expect("operator connects and upgrades");
    ann.emit(event::JOIN, json!({"role": "operator"}));
    let list = ann
        .emit_with_ack(event::GET_CONNECTED_OPERATORS, Value::Null)
        .await;
    assert!(list.get("error").is_none(), "{list}");
    assert_eq!(
        ann.expect(event::CONNECTED_OPERATORS_LIST).await,
        json!([{"operatorId": 1, "name": "Ann"}])
    );
    let mut v = common::Client::connect_over(relay.addr, "/chat", None, None, Transport::Polling)
        .await
        .expect("visitor connects over polling");
    let ack = v
        .emit_with_ack(event::JOIN, json!({"role": "client", "username": "Polly"}))
        .await;
    assert!(ack.get("error").is_none(), "{ack}");
    assert_eq!(ann.expect(event::NEW_CHAT).await["clientId"], v.sid);
    for i in 0..50 {
        v.emit(
            event::CLIENT_MESSAGE,
            json!({"type": "text", "message": format!("up {i}")}),
        );
        ann.emit(
            event::OPERATOR_MESSAGE,
            json!({"to": v.sid, "type": "text", "message": format!("down {i}")}),
        );
    }
    for i in 0..50 {
        assert_eq!(
            ann.expect(event::INCOMING_MESSAGE).await["message"],
            format!("up {i}")
        );
        assert_eq!(
            v.expect(event::INCOMING_OPERATOR_MESSAGE).await["message"],
            format!("down {i}")
        );
    }
    // messages sent over polling right before the upgrade arrive before later ones
    let options = wire::Options {
        transport: Transport::Upgrade,
        ..wire::Options::default()
    };
    let mut late = wire::Connection::connect(&wire::Endpoint::new(relay.addr, "/chat"), options)
        .await
        .expect("connects over polling");
    assert_eq!(late.transport(), Transport::Polling);
    late.emit(
        event::JOIN,
        &json!({"role": "client", "username": "Up"}),
        None,
    )
    .expect("join");
    for i in 0..5 {
        late.emit(
            event::CLIENT_MESSAGE,
            &json!({"type": "text", "message": format!("m{i}")}),
            None,
        )
        .expect("send");
    }
    late.upgrade().await.expect("upgrades");
    assert_eq!(late.transport(), Transport::Websocket);
    for i in 5..10 {
        late.emit(
            event::CLIENT_MESSAGE,
            &json!({"type": "text", "message": format!("m{i}")}),
            None,
        )
        .expect("send");
    }
    assert_eq!(ann.expect(event::NEW_CHAT).await["clientId"], late.sid);
    for i in 0..10 {
        assert_eq!(
            ann.expect(event::INCOMING_MESSAGE).await["message"],
            format!("m{i}")
        );
    }
    // a long-polling client that just vanishes is only noticed at the ping timeout;
    // Engine.IO's close packet ends it at once
    let gone = v.sid.clone();
    v.close();
    assert_eq!(ann.wait_for(event::CHAT_ENDED).await["clientId"], gone);
    let late_sid = late.sid.clone();
    late.close().await;
    assert_eq!(ann.wait_for(event::CHAT_ENDED).await["clientId"], late_sid);
    ann.expect_silence(QUIET).await;
}
