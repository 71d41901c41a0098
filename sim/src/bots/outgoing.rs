//! Every payload a bot sends, built from `relay::protocol`'s types with exactly the fields
//! the frontend's guide sends (`docs/PROTOCOL.md`, "What the frontend sends"): operator
//! messages carry `operatorId`/`operatorName`, joins carry `name`. Operator tokens travel
//! in the handshake's `auth` object, as the protocol's fix allows.

use relay::auth::OperatorIdentity;
use relay::protocol::{
    ClientTypingRequest, JoinRequest, MessageBody, MessageKind, OperatorMessage,
    OperatorTypingRequest, event,
};
use wire::packet;

use crate::record::MsgId;

/// An operator's `join`.
pub fn operator_join(who: &OperatorIdentity) -> JoinRequest {
    JoinRequest {
        role: "operator".into(),
        name: Some(who.name.clone()),
        operator_id: Some(who.operator_id),
        ..JoinRequest::default()
    }
}

/// A visitor's `join`: `name` as the guide's table has it, `username` as its servers read.
pub fn visitor_join(name: &str) -> JoinRequest {
    JoinRequest {
        role: "client".into(),
        name: Some(name.to_owned()),
        username: Some(name.to_owned()),
        ..JoinRequest::default()
    }
}

/// A text message's body.
pub fn text(message: String) -> MessageBody {
    MessageBody {
        kind: MessageKind::Text,
        message: Some(message),
        image: None,
        name: None,
        mime_type: None,
        size: None,
    }
}

/// An image message's body.
pub fn image(data_url: &str, name: String, mime_type: &str, size: usize) -> MessageBody {
    MessageBody {
        kind: MessageKind::Image,
        message: None,
        image: Some(data_url.to_owned()),
        name: Some(name),
        mime_type: Some(mime_type.to_owned()),
        size: Some(size as u64),
    }
}

/// `operatorMessage` to visitor `to`, signed as the frontend does.
pub fn operator_message(to: &str, body: MessageBody, who: &OperatorIdentity) -> OperatorMessage {
    OperatorMessage {
        to: to.to_owned(),
        body,
        operator_id: Some(who.operator_id),
        operator_name: Some(who.name.clone()),
    }
}

/// The packet of `event` with `data`, asking for ack `ack`.
pub fn packet<T: serde::Serialize + ?Sized>(event: &str, data: &T, ack: Option<MsgId>) -> String {
    // the protocol's types serialize to JSON objects without fail
    packet::event(event, data, ack).unwrap_or_default()
}

/// `operatorTyping` to visitor `to`.
pub fn operator_typing(to: &str) -> String {
    let t = OperatorTypingRequest {
        to: to.to_owned(),
        is_typing: true,
    };
    packet(event::OPERATOR_TYPING, &t, None)
}

/// `clientTyping`.
pub fn client_typing() -> String {
    packet(
        event::CLIENT_TYPING,
        &ClientTypingRequest { is_typing: true },
        None,
    )
}

/// `getConnectedOperators`, without an argument as the frontend emits it.
pub fn get_connected_operators() -> String {
    packet::bare_event(event::GET_CONNECTED_OPERATORS, None)
}

#[cfg(test)]
mod tests;
