//! A deliberately broken chat backend on socketioxide, to prove the checks can fail: it
//! drops, duplicates, delays (reorders), misattributes and echoes operator messages, sends
//! visitors' messages to everyone (leak), keeps markup, and has no rate limit.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use relay::protocol::{OperatorInfo, event};
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{Data, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;

#[derive(Default)]
struct State {
    operators: HashMap<String, (u64, String)>,
    sent: u64,
}

type Shared = Arc<Mutex<State>>;

/// Serves the faulty backend on 127.0.0.1 until the task is dropped; returns its address.
pub async fn start() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let (layer, io) = SocketIo::builder().req_path("/chat").build_layer();
    let state: Shared = Arc::default();
    let wire = move |s: SocketRef, TryData(auth): TryData<Value>| {
        let state = state.clone();
        async move {
            let token = auth
                .ok()
                .and_then(|a| a["token"].as_str().map(str::to_owned));
            register(&s, state, token);
            Ok::<(), Infallible>(())
        }
    };
    io.ns("/", (async || {}).with(wire));
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, handle)
}

fn register(s: &SocketRef, state: Shared, handshake_token: Option<String>) {
    s.join(s.id.to_string());
    let st = state.clone();
    s.on(
        event::JOIN,
        async move |s: SocketRef, Data(join): Data<Value>| {
            if join["role"] == "operator" {
                let token = join["token"]
                    .as_str()
                    .map(str::to_owned)
                    .or(handshake_token);
                let who = token.and_then(|t| relay::auth::claims_unverified(&t).ok());
                let who = who
                    .map(|w| (w.operator_id, w.name))
                    .unwrap_or((0, "?".into()));
                st.lock()
                    .expect("state")
                    .operators
                    .insert(s.id.to_string(), who);
                s.join("operators");
            } else {
                let chat = json!({"clientId": s.id.to_string(), "username": join["username"]});
                let _ = s.to("operators").emit(event::NEW_CHAT, &chat).await;
            }
        },
    );
    let st = state.clone();
    s.on(event::GET_CONNECTED_OPERATORS, async move |s: SocketRef| {
        let list: Vec<OperatorInfo> = st
            .lock()
            .expect("state")
            .operators
            .values()
            .map(|(id, name)| OperatorInfo {
                operator_id: *id,
                name: name.clone(),
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let _ = s.emit(event::CONNECTED_OPERATORS_LIST, &list);
    });
    let st = state.clone();
    s.on(event::OPERATOR_MESSAGE, async move |s: SocketRef, io: SocketIo, Data(m): Data<Value>| {
        let (n, who) = {
            let mut st = st.lock().expect("state");
            st.sent += 1;
            (st.sent, st.operators.get(&s.id.to_string()).cloned().unwrap_or_default())
        };
        if n % 10 == 3 {
            return; // lost
        }
        if n % 6 == 4 {
            tokio::time::sleep(Duration::from_millis(300)).await; // overtaken: reordered
        }
        let to = m["to"].as_str().unwrap_or_default().to_owned();
        let to_client = json!({"from": s.id.to_string(), "type": m["type"], "message": m["message"],
                               "image": m["image"], "name": m["name"], "mimeType": m["mimeType"]});
        let _ = io.to(to.clone()).emit(event::INCOMING_OPERATOR_MESSAGE, &to_client).await;
        if n % 7 == 2 {
            let _ = io.to(to.clone()).emit(event::INCOMING_OPERATOR_MESSAGE, &to_client).await; // duplicated
        }
        let (id, name) = if n % 5 == 1 { (999, "Mallory".to_owned()) } else { who }; // misattributed
        let broadcast = json!({"clientId": to, "operatorId": id, "operatorName": name,
            "message": {"from": "operator", "text": m["message"], "name": m["name"], "image": m["image"],
                        "mimeType": m["mimeType"], "timestamp": "now", "operatorId": id, "operatorName": name}});
        let _ = s.to("operators").emit(event::OPERATOR_MESSAGE_BROADCAST, &broadcast).await;
        if n % 11 == 5 {
            let _ = s.emit(event::OPERATOR_MESSAGE_BROADCAST, &broadcast); // echoed
        }
    });
    s.on(event::CLIENT_MESSAGE, async move |s: SocketRef, io: SocketIo, Data(m): Data<Value>| {
        let incoming = json!({"from": s.id.to_string(), "type": m["type"], "message": m["message"],
                              "image": m["image"], "name": m["name"], "mimeType": m["mimeType"]});
        let _ = io.emit(event::INCOMING_MESSAGE, &incoming).await; // to everyone: leaked
    });
    s.on(
        event::CLIENT_TYPING,
        async move |s: SocketRef, Data(m): Data<Value>| {
            let t = json!({"from": s.id.to_string(), "isTyping": m["isTyping"]});
            let _ = s.to("operators").emit(event::CLIENT_TYPING, &t).await;
        },
    );
    s.on(
        event::OPERATOR_TYPING,
        async move |io: SocketIo, Data(m): Data<Value>| {
            let to = m["to"].as_str().unwrap_or_default().to_owned();
            let _ = io
                .to(to)
                .emit(event::OPERATOR_TYPING, &json!({"isTyping": m["isTyping"]}))
                .await;
        },
    );
    s.on_disconnect(async move |s: SocketRef| {
        let was_operator = state
            .lock()
            .expect("state")
            .operators
            .remove(&s.id.to_string());
        match was_operator {
            Some((id, name)) => {
                let _ = s
                    .to("operators")
                    .emit(
                        event::OPERATOR_DISCONNECTED,
                        &json!({"operatorId": id, "name": name}),
                    )
                    .await;
            }
            None => {
                let _ = s
                    .to("operators")
                    .emit(event::CHAT_ENDED, &json!({"clientId": s.id.to_string()}))
                    .await;
            }
        }
    });
}
