//! Reading what the backend sends: each event reduced to the fields the checks need.

use std::borrow::Cow;

use relay::protocol::{MessageAck, event};
use serde::Deserialize;

use crate::record::{AckOutcome, Observed, find_msg_id};
use wire::packet::{ack_data, split_event};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Addressed<'a> {
    #[serde(borrow, default)]
    from: Cow<'a, str>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Broadcast<'a> {
    #[serde(borrow, default)]
    client_id: Cow<'a, str>,
    #[serde(default)]
    operator_id: u64,
    #[serde(borrow, default)]
    operator_name: Cow<'a, str>,
    #[serde(borrow, default)]
    message: Option<BroadcastBody<'a>>,
}

#[derive(Deserialize)]
struct BroadcastBody<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Presence<'a> {
    #[serde(borrow, default)]
    client_id: Cow<'a, str>,
    #[serde(default)]
    operator_id: u64,
    #[serde(borrow, default)]
    from: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListEntry {
    #[serde(default)]
    operator_id: u64,
}

#[derive(Deserialize)]
struct ErrorBody<'a> {
    #[serde(borrow, default)]
    event: Cow<'a, str>,
    #[serde(borrow, default)]
    code: Cow<'a, str>,
}

fn id_and_markup(text: Option<&str>, name: Option<&str>) -> (Option<u64>, bool) {
    let id = text
        .and_then(find_msg_id)
        .or_else(|| name.and_then(find_msg_id));
    let markup = [text, name]
        .iter()
        .flatten()
        .any(|s| s.contains(['<', '>']));
    (id, markup)
}

/// The observation an event frame carries; `None` for frames that are not events.
pub fn parse_event(frame: &str) -> Option<Observed> {
    let (name, data) = split_event(frame)?;
    Some(
        parse_known(name, data).unwrap_or_else(|| Observed::Malformed {
            event: name.to_owned(),
        }),
    )
}

fn parse_known(name: &str, data: &str) -> Option<Observed> {
    Some(match name {
        event::INCOMING_OPERATOR_MESSAGE => {
            let m: Addressed = serde_json::from_str(data).ok()?;
            let (msg, unsanitized) = id_and_markup(m.message.as_deref(), m.name.as_deref());
            Observed::ToClient {
                msg,
                from: m.from.into_owned(),
                unsanitized,
            }
        }
        event::INCOMING_MESSAGE => {
            let m: Addressed = serde_json::from_str(data).ok()?;
            let (msg, unsanitized) = id_and_markup(m.message.as_deref(), m.name.as_deref());
            Observed::FromClient {
                msg,
                from: m.from.into_owned(),
                unsanitized,
            }
        }
        event::OPERATOR_MESSAGE_BROADCAST => {
            let b: Broadcast = serde_json::from_str(data).ok()?;
            let body = b.message.as_ref();
            let (msg, unsanitized) = id_and_markup(
                body.and_then(|m| m.text.as_deref()),
                body.and_then(|m| m.name.as_deref()),
            );
            Observed::Broadcast {
                msg,
                client: b.client_id.into_owned(),
                operator_id: b.operator_id,
                operator_name: b.operator_name.into_owned(),
                unsanitized,
            }
        }
        event::NEW_CHAT
        | event::CHAT_ENDED
        | event::OPERATOR_CONNECTED
        | event::OPERATOR_DISCONNECTED
        | event::CLIENT_TYPING => {
            let p: Presence = serde_json::from_str(data).ok()?;
            match name {
                event::NEW_CHAT => Observed::NewChat {
                    client: p.client_id.into_owned(),
                },
                event::CHAT_ENDED => Observed::ChatEnded {
                    client: p.client_id.into_owned(),
                },
                event::OPERATOR_CONNECTED => Observed::OperatorConnected {
                    operator_id: p.operator_id,
                },
                event::OPERATOR_DISCONNECTED => Observed::OperatorDisconnected {
                    operator_id: p.operator_id,
                },
                _ => Observed::ClientTyping {
                    from: p.from.into_owned(),
                },
            }
        }
        event::OPERATOR_TYPING => Observed::OperatorTyping,
        event::CONNECTED_OPERATORS_LIST => {
            let list: Vec<ListEntry> = serde_json::from_str(data).ok()?;
            Observed::OperatorsList(list.into_iter().map(|e| e.operator_id).collect())
        }
        event::RATE_LIMIT_EXCEEDED => Observed::RateLimited,
        event::RELAY_ERROR => {
            let e: ErrorBody = serde_json::from_str(data).ok()?;
            Observed::RelayError {
                event: e.event.into_owned(),
                code: e.code.into_owned(),
            }
        }
        other => Observed::Other(other.to_owned()),
    })
}

/// What a message's ack says (the reference relay's [`MessageAck`]); `None` for other shapes.
pub fn parse_ack(frame: &str) -> Option<AckOutcome> {
    let ack: MessageAck = serde_json::from_str(ack_data(frame)?).ok()?;
    Some(if ack.retry_after_ms.is_some() {
        AckOutcome::RateLimited
    } else if let Some(code) = ack.error {
        AckOutcome::Refused(code.to_string())
    } else {
        AckOutcome::Accepted
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_event() {
        let f = r##"42["operatorMessageBroadcast",{"clientId":"c","operatorId":3,"operatorName":"Ann","message":{"from":"operator","text":"#sim9# hi","timestamp":"t","operatorId":3,"operatorName":"Ann","messageId":"m"}}]"##;
        assert_eq!(
            parse_event(f),
            Some(Observed::Broadcast {
                msg: Some(9),
                client: "c".into(),
                operator_id: 3,
                operator_name: "Ann".into(),
                unsanitized: false
            })
        );
        let f = r##"42["incomingMessage",{"from":"v","type":"image","image":"data:...","name":"sim-4.png"}]"##;
        assert_eq!(
            parse_event(f),
            Some(Observed::FromClient {
                msg: Some(4),
                from: "v".into(),
                unsanitized: false
            })
        );
        let f = r##"42["incomingOperatorMessage",{"from":"o","type":"text","message":"#sim5# <b>x</b>"}]"##;
        assert!(matches!(
            parse_event(f),
            Some(Observed::ToClient {
                unsanitized: true,
                ..
            })
        ));
        let f = r#"42["connectedOperatorsList",[{"operatorId":1,"name":"a"},{"operatorId":2,"name":"b"}]]"#;
        assert_eq!(parse_event(f), Some(Observed::OperatorsList(vec![1, 2])));
        let f = r#"42["rateLimitExceeded",{"message":"Too many messages","retryAfterMs":5}]"#;
        assert_eq!(parse_event(f), Some(Observed::RateLimited));
    }

    #[test]
    fn reads_acks() {
        assert_eq!(
            parse_ack(r#"437[{"messageId":"x"}]"#),
            Some(AckOutcome::Accepted)
        );
        assert_eq!(
            parse_ack(r#"437[{"retryAfterMs":10}]"#),
            Some(AckOutcome::RateLimited)
        );
        assert_eq!(
            parse_ack(r#"437[{"error":"unknown_client"}]"#),
            Some(AckOutcome::Refused("unknown_client".into()))
        );
    }
}
