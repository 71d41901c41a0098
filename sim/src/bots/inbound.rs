//! Reading what the backend sends with the protocol's own types, reduced to what the
//! checks need. A known event whose payload does not parse as the protocol says is
//! [`Observed::Malformed`], never a guess.

use relay::protocol::{
    ChatEnded, ClientTyping, IncomingMessage, IncomingOperatorMessage, MessageAck, NewChat,
    OperatorInfo, OperatorMessageBroadcast, RelayError, event,
};
use serde::Deserialize;
use wire::packet::{ack_data, split_event};

use crate::record::{AckOutcome, Observed, find_msg_id};

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

/// The observation an event packet carries; `None` for packets that are not events.
pub fn parse_event(frame: &str) -> Option<Observed> {
    let (name, data) = split_event(frame)?;
    Some(
        parse_known(name, data).unwrap_or_else(|error| Observed::Malformed {
            event: name.to_owned(),
            error: error.to_string(),
        }),
    )
}

fn read<'a, T: Deserialize<'a>>(data: &'a str) -> Result<T, serde_json::Error> {
    serde_json::from_str(data)
}

fn parse_known(name: &str, data: &str) -> Result<Observed, serde_json::Error> {
    Ok(match name {
        event::INCOMING_OPERATOR_MESSAGE => {
            let m: IncomingOperatorMessage = read(data)?;
            let (msg, unsanitized) = id_and_markup(m.message.as_deref(), m.name.as_deref());
            Observed::ToClient {
                msg,
                from: m.from.into_owned(),
                unsanitized,
            }
        }
        event::INCOMING_MESSAGE => {
            let m: IncomingMessage = read(data)?;
            let (msg, unsanitized) = id_and_markup(m.message.as_deref(), m.name.as_deref());
            Observed::FromClient {
                msg,
                from: m.from.into_owned(),
                unsanitized,
            }
        }
        event::OPERATOR_MESSAGE_BROADCAST => {
            let b: OperatorMessageBroadcast = read(data)?;
            let (msg, unsanitized) =
                id_and_markup(b.message.text.as_deref(), b.message.name.as_deref());
            Observed::Broadcast {
                msg,
                client: b.client_id.into_owned(),
                operator_id: b.operator_id,
                operator_name: b.operator_name.into_owned(),
                unsanitized,
            }
        }
        event::NEW_CHAT => {
            let c: NewChat = read(data)?;
            Observed::NewChat {
                client: c.client_id.into_owned(),
                username: c.username.into_owned(),
            }
        }
        event::CHAT_ENDED => Observed::ChatEnded {
            client: read::<ChatEnded>(data)?.client_id.into_owned(),
        },
        event::OPERATOR_CONNECTED => Observed::OperatorConnected {
            operator_id: read::<OperatorInfo>(data)?.operator_id,
        },
        event::OPERATOR_DISCONNECTED => Observed::OperatorDisconnected {
            operator_id: read::<OperatorInfo>(data)?.operator_id,
        },
        event::CLIENT_TYPING => Observed::ClientTyping {
            from: read::<ClientTyping>(data)?.from.into_owned(),
        },
        event::OPERATOR_TYPING => {
            read::<relay::protocol::OperatorTyping>(data)?;
            Observed::OperatorTyping
        }
        event::CONNECTED_OPERATORS_LIST => {
            let list: Vec<OperatorInfo> = read(data)?;
            Observed::OperatorsList(list.into_iter().map(|e| e.operator_id).collect())
        }
        event::RATE_LIMIT_EXCEEDED => {
            read::<relay::protocol::RateLimitExceeded>(data)?;
            Observed::RateLimited
        }
        event::RELAY_ERROR => {
            let e: RelayError = read(data)?;
            Observed::RelayError {
                event: e.event,
                code: e.code.to_string(),
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
        let f = r#"42["rateLimitExceeded",{"message":"Too many messages"}]"#;
        assert_eq!(
            parse_event(f),
            Some(Observed::RateLimited),
            "the guide's shape"
        );
        let f = r#"42["newChat",{"clientId":"c1","username":"Ann"}]"#;
        assert_eq!(
            parse_event(f),
            Some(Observed::NewChat {
                client: "c1".into(),
                username: "Ann".into()
            })
        );
    }

    #[test]
    fn payloads_that_break_the_protocol_are_malformed() {
        for f in [
            r#"42["operatorMessageBroadcast",{"clientId":"c","operatorId":"3","operatorName":"A","message":{}}]"#,
            r#"42["incomingMessage",{"type":"text","message":"no from"}]"#,
            r#"42["newChat",{"clientId":7}]"#,
            r#"42["connectedOperatorsList",{"operatorId":1}]"#,
            r#"42["chatEnded",null]"#,
        ] {
            assert!(
                matches!(parse_event(f), Some(Observed::Malformed { .. })),
                "{f}"
            );
        }
        assert_eq!(
            parse_event(r#"42["somethingElse",1]"#),
            Some(Observed::Other("somethingElse".into()))
        );
    }

    #[test]
    fn reads_acks() {
        assert_eq!(
            parse_ack(r#"437[{"messageId":"x"}]"#),
            Some(AckOutcome::Accepted)
        );
        assert_eq!(parse_ack("430[{}]"), Some(AckOutcome::Accepted));
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
