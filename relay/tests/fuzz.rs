//! Packet-level fuzzing against a running relay: thousands of generated Socket.IO packets
//! (wrong types, missing and extra fields, deep and wide nesting, markup, unknown and
//! non-string event names, binary placeholders without attachments, garbage) over
//! WebSocket and long-polling, from sockets joined as operators, visitors or nothing.
//! Afterwards no handler has panicked, `/health` answers and a real conversation still
//! works. Cases come from a fixed seed, so a failure replays; inputs that found bugs stay
//! below as regression cases.

mod common;

use common::{Client, QUIET, TestRelay, token};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use relay::protocol::event;
use serde_json::{Value, json};
use wire::Transport;

/// Frames that once broke something, or that name a known attack: always sent first.
const REGRESSIONS: &[&str] = &[
    // CVE-2022-2421: a placeholder whose `num` is not a number, no attachment following
    r#"451-["operatorMessage",{"_placeholder":true,"num":"splice"}]"#,
    r#"451-["clientMessage",{"_placeholder":true,"num":99999999}]"#,
    // an attachment count far beyond what follows
    r#"4599999999-["clientMessage",{"type":"text","message":"x"}]"#,
    // lone surrogates in text and in names
    r#"42["clientMessage",{"type":"text","message":"\ud800"}]"#,
    r#"42["join",{"role":"client","username":"\udfff\ud800"}]"#,
    // `error` as an event name, non-string event names, no event at all
    r#"42["error",{"message":"x"}]"#,
    r#"42[1,{"to":"x"}]"#,
    r#"42[null]"#,
    r#"42[]"#,
    r#"42"#,
    r#"42{"0":"join"}"#,
    // join(null) killed the guide's example server
    r#"42["join",null]"#,
    r#"421["join"]"#,
    // prototype pollution names
    r#"42["__proto__",{"role":"operator"}]"#,
    r#"42["join",{"role":"operator","__proto__":{"operatorId":1}}]"#,
    // another namespace, and a packet type that does not exist
    r#"42/admin,["operatorMessage",{"to":"x"}]"#,
    r#"49["join"]"#,
    r#"7"#,
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "\\PC{0,40}",
        1 => Just("<script>alert(1)</script><img src=x onerror=alert(2)>".to_owned()),
        1 => Just("x".repeat(5_000)),
        1 => Just("data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=".to_owned()),
        1 => Just("iVBORw0KGgo=".to_owned()),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "to", "type", "message", "image", "mimeType", "name", "role", "token",
            "username", "operatorId", "operatorName", "isTyping", "_placeholder", "num",
        ])
        .prop_map(str::to_owned),
        1 => "[a-zA-Z_]{1,8}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e300f64..1e300).prop_map(|n| json!(n)),
        prop::sample::select(vec![
            "operator",
            "client",
            "text",
            "image",
            "image/png",
            "image/svg+xml"
        ])
        .prop_map(|s| json!(s)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 96, 10, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..10).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn event_name() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => prop::sample::select(vec![
            event::JOIN,
            event::OPERATOR_MESSAGE,
            event::CLIENT_MESSAGE,
            event::OPERATOR_TYPING,
            event::CLIENT_TYPING,
            event::GET_CONNECTED_OPERATORS,
            "error",
            "",
            "connect",
            "disconnect",
        ])
        .prop_map(|s| json!(s)),
        1 => "\\PC{0,12}".prop_map(Value::String),
        1 => json_value(),
    ]
}

/// One Engine.IO text packet.
fn frame() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (event_name(), prop::collection::vec(json_value(), 0..3), prop::option::of(0u32..1000))
            .prop_map(|(name, args, ack)| {
                let mut array = vec![name];
                array.extend(args);
                let ack = ack.map(|a| a.to_string()).unwrap_or_default();
                format!("42{ack}{}", Value::Array(array))
            }),
        1 => (1usize..2000).prop_map(|depth| {
            format!("42[\"clientMessage\",{}{}]", "[".repeat(depth), "]".repeat(depth))
        }),
        1 => "[0-9]{0,3}\\PC{0,60}",
    ]
}

fn frames(cases: usize, seed: u8) -> Vec<String> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]),
    );
    let strategy = frame();
    let mut out: Vec<String> = REGRESSIONS.iter().map(|s| (*s).to_owned()).collect();
    for _ in 0..cases {
        out.push(strategy.new_tree(&mut runner).expect("a case").current());
    }
    out
}

/// A socket to send fuzz from: joined as an operator, a visitor, or not at all.
async fn fuzzer(relay: &TestRelay, transport: Transport, n: usize) -> Option<Client> {
    let mut c = Client::connect_over(relay.addr, "/chat", None, None, transport)
        .await
        .ok()?;
    match n % 3 {
        0 => c.emit(
            event::JOIN,
            json!({"role": "operator", "token": token(100 + n as u64, "Fuzz")}),
        ),
        1 => {
            let _ = c
                .emit_with_ack(event::JOIN, json!({"role": "client", "username": "fuzz"}))
                .await;
        }
        _ => {}
    }
    Some(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_generated_packets_never_break_the_relay() {
    let relay = TestRelay::start_with(|c| {
        c.rate_limit_per_minute = 1_000_000;
        c.typing_rate_limit_per_minute = 1_000_000;
    })
    .await;
    let mut ann = relay.operator(1, "Ann").await;
    let mut vera = relay.client("Vera").await;
    let mut sent = 0;
    for (transport, cases, seed) in [
        (Transport::Websocket, 3000, 1),
        (Transport::Polling, 400, 2),
    ] {
        let all = frames(cases, seed);
        for (n, batch) in all.chunks(20).enumerate() {
            // a fresh socket every 20 frames: the relay may close one it finds hostile
            let Some(c) = fuzzer(&relay, transport, n).await else {
                panic!("the relay stopped accepting connections after {sent} frames");
            };
            for f in batch {
                c.emit_raw(f.clone());
                sent += 1;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        relay.metric("relay_handler_panics_total").await,
        0.0,
        "after {sent} frames"
    );
    let (status, _) = common::http_get(relay.addr, "/health").await;
    assert_eq!(status, 200);

    // the canary conversation still works, and the canaries got nothing that breaks the protocol
    ann.drain(QUIET).await;
    vera.drain(QUIET).await;
    let ack = ann
        .emit_with_ack(
            event::OPERATOR_MESSAGE,
            json!({"to": vera.sid, "type": "text", "message": "still here"}),
        )
        .await;
    assert!(ack["messageId"].is_string(), "{ack}");
    assert_eq!(
        vera.wait_for(event::INCOMING_OPERATOR_MESSAGE).await["message"],
        "still here"
    );
    vera.emit(
        event::CLIENT_MESSAGE,
        json!({"type": "text", "message": "me too"}),
    );
    assert_eq!(
        ann.wait_for(event::INCOMING_MESSAGE).await["message"],
        "me too"
    );
}
