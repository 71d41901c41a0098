//! Shape attacks: payloads of the wrong types or shape, extra fields meant to replace what
//! the target stamps, deep nesting, huge arrays, lone surrogates, packets that are not JSON,
//! unknown and reserved event names, binary placeholder tricks, attachment bombs, bogus
//! long-polling bodies and `join` without a payload.

use reports::attacks::Attack;
use serde_json::json;

use super::arena::{Arena, field};
use super::{Outcome, hijack, judged};

pub(super) async fn attempt(arena: &Arena, attack: Attack, n: u32) -> Result<Outcome, String> {
    if attack == Attack::PollingBogusLength {
        return hijack::bogus_polling_bodies(arena, n).await;
    }
    let conn = if attack == Attack::JoinNull {
        arena.connect(wire::Options::default()).await
    } else {
        arena.visitor_socket("shapeshifter").await
    }
    .map_err(|e| e.to_string())?;
    let sender = conn.sender();
    let marker = arena.marker();
    let m = &marker;
    let packets: Vec<String> = match attack {
        Attack::WrongTypes => vec![
            json!(["clientMessage", {"type": "text", "message": [m]}]).to_string(),
            json!(["clientMessage", {"type": ["text"], "message": m}]).to_string(),
            json!(["clientMessage", {"type": "text", "message": {"text": m}}]).to_string(),
            json!(["clientMessage", {"type": 7, "message": m}]).to_string(),
            json!(["clientMessage", m]).to_string(),
            json!(["clientTyping", {"isTyping": m}]).to_string(),
        ],
        Attack::MissingFields => vec![
            json!(["clientMessage", {"message": m}]).to_string(),
            json!(["clientMessage", {"type": "image", "name": format!("{m}.png")}]).to_string(),
            json!(["clientMessage"]).to_string(),
            json!(["clientMessage", null]).to_string(),
            json!(["clientTyping"]).to_string(),
        ],
        Attack::ExtraFields => vec![
            json!(["clientMessage", {"type": "text", "message": m, "from": arena.visitor,
                                     "clientId": arena.visitor, "messageId": "forged",
                                     "timestamp": "1970-01-01T00:00:00.000Z"}])
            .to_string(),
        ],
        Attack::DeepNesting => {
            let depth = (arena.limits.max_payload_bytes / 2).min(200_000);
            let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            vec![
                format!(r#"["clientMessage",{{"type":"text","message":{nested}}}]"#),
                format!(r#"["clientMessage",{nested}]"#),
            ]
        }
        Attack::HugeArray => {
            let len = arena.limits.max_payload_bytes / 3;
            let array = format!("[{}0]", "0,".repeat(len));
            vec![format!(
                r#"["clientMessage",{{"type":"text","message":{array},"name":"{m}"}}]"#
            )]
        }
        Attack::LoneSurrogates => vec![
            format!(r#"["clientMessage",{{"type":"text","message":"{m} \ud800 x \udfff"}}]"#),
            format!(r#"["clientMessage",{{"type":"text","message":"{m} \udbff\ud800"}}]"#),
        ],
        Attack::NonJson => vec![
            "garbage".into(),
            "[".into(),
            r#"["clientMessage",{"type":"text","message":"#.into(),
            "{}".into(),
            "\"clientMessage\"".into(),
        ],
        Attack::UnknownEvent => vec![
            json!(["adminBroadcast", {"message": m}]).to_string(),
            json!(["__proto__", {"message": m}]).to_string(),
            json!(["constructor", {"message": m}]).to_string(),
            json!(["newChat", {"clientId": arena.visitor, "username": m}]).to_string(),
            json!(["incomingMessage", {"from": arena.visitor, "type": "text", "message": m}])
                .to_string(),
        ],
        Attack::ErrorEventName => [
            "error",
            "connect",
            "disconnect",
            "disconnecting",
            "newListener",
        ]
        .iter()
        .map(|e| json!([e, {"type": "text", "message": m}]).to_string())
        .collect(),
        Attack::NonStringEventName => vec![
            json!([1, {"message": m}]).to_string(),
            json!([null]).to_string(),
            json!([{"event": "clientMessage"}, {"message": m}]).to_string(),
            json!([["clientMessage"], {"type": "text", "message": m}]).to_string(),
            "[]".into(),
        ],
        Attack::JoinNull => vec![
            json!(["join", null]).to_string(),
            json!(["join"]).to_string(),
            json!(["join", "operator"]).to_string(),
            json!(["join", {"role": null}]).to_string(),
        ],
        _ => Vec::new(),
    };
    let mut texts: Vec<String> = packets.iter().map(|p| format!("42{p}")).collect();
    if attack == Attack::NonJson {
        texts.extend(["4", "42", "4x", "99", "2probe"].map(str::to_owned));
    }
    for t in &texts {
        let _ = sender.send(t);
    }
    if matches!(attack, Attack::BinaryPlaceholder | Attack::AttachmentBomb) {
        binary(&sender, m, attack);
    }
    arena.settle().await;
    conn.close().await;
    let seen = arena.with_marker(m);
    let evidence = match attack {
        Attack::ExtraFields => seen
            .iter()
            .find(|s| {
                s.json()
                    .is_some_and(|v| field(&v, "from") == Some(&arena.visitor))
            })
            .map(|s| format!("sender replaced: {}", s.describe())),
        Attack::LoneSurrogates => seen.iter().find(|s| s.json().is_none()).map(|s| {
            format!(
                "came back as a payload that does not parse: {}",
                s.describe()
            )
        }),
        // the chat's own events carry the visitor's text: only a payload forged as a whole
        // event or an unresolved placeholder counts
        Attack::BinaryPlaceholder => seen
            .iter()
            .find(|s| s.data.contains("_placeholder"))
            .map(|s| format!("placeholder delivered: {}", s.describe())),
        _ => seen.first().map(|s| format!("delivered: {}", s.describe())),
    };
    judged(evidence)
}

/// Binary packets with placeholder tricks, or declaring far more attachments than follow.
fn binary(sender: &wire::Sender, m: &str, attack: Attack) {
    if attack == Attack::BinaryPlaceholder {
        for num in [
            json!("splice"),
            json!(-1),
            json!(99),
            json!("__proto__"),
            json!("toString"),
        ] {
            let p = json!(["clientMessage", {"type": "image", "mimeType": "image/png",
                           "name": format!("{m}.png"),
                           "image": {"_placeholder": true, "num": num}}]);
            let _ = sender.send(&format!("451-{p}"));
            let _ = sender.send_binary(b"\x89PNG\r\n\x1a\n");
        }
        return;
    }
    let p = json!(["clientMessage", {"type": "image", "mimeType": "image/png",
                   "name": format!("{m}.png"), "image": {"_placeholder": true, "num": 0}}]);
    for count in ["4294967295", "99999999999999999999", "1000000"] {
        let _ = sender.send(&format!("45{count}-{p}"));
    }
    for _ in 0..100 {
        let _ = sender.send_binary(&[0u8; 1024]);
    }
}
