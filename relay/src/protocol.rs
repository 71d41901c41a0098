//! The chat protocol on the wire: every event name, payload and `relayError` code (serde only, no I/O).
//!
//! Field names follow `docs/PROTOCOL.md` (camelCase, as the existing frontend speaks).
//! The relay ignores the `operatorId`/`operatorName` the frontend puts in every
//! `operatorMessage`: it stamps identity from the token.
//!
//! Server → client payloads borrow their text (`Cow<'a, str>`): the relay builds them from
//! strings it already holds, and the simulator reads them without copying. The additions
//! (`messageId`, `timestamp`) default to empty when a backend without them sends an event,
//! so the same types read the guide's servers too.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// Event names, client → server and server → client.
pub mod event {
    /// Client → server: join as operator or client (once per socket).
    pub const JOIN: &str = "join";
    /// Client → server: an operator writes to a visitor.
    pub const OPERATOR_MESSAGE: &str = "operatorMessage";
    /// Client → server: a visitor writes to the operators.
    pub const CLIENT_MESSAGE: &str = "clientMessage";
    /// Both directions: an operator's typing indicator.
    pub const OPERATOR_TYPING: &str = "operatorTyping";
    /// Both directions: a visitor's typing indicator.
    pub const CLIENT_TYPING: &str = "clientTyping";
    /// Client → server: an operator asks who is online.
    pub const GET_CONNECTED_OPERATORS: &str = "getConnectedOperators";

    /// Server → client: an operator's message, to the addressed visitor.
    pub const INCOMING_OPERATOR_MESSAGE: &str = "incomingOperatorMessage";
    /// Server → client: an operator's message, to every other operator socket.
    pub const OPERATOR_MESSAGE_BROADCAST: &str = "operatorMessageBroadcast";
    /// Server → client: a visitor's message, to the operators.
    pub const INCOMING_MESSAGE: &str = "incomingMessage";
    /// Server → client: a visitor joined, to the operators.
    pub const NEW_CHAT: &str = "newChat";
    /// Server → client: a visitor left, to the operators.
    pub const CHAT_ENDED: &str = "chatEnded";
    /// Server → client: an operator's first socket joined, to the other operators.
    pub const OPERATOR_CONNECTED: &str = "operatorConnected";
    /// Server → client: an operator's last socket left, to the other operators.
    pub const OPERATOR_DISCONNECTED: &str = "operatorDisconnected";
    /// Server → client: answer to `getConnectedOperators`.
    pub const CONNECTED_OPERATORS_LIST: &str = "connectedOperatorsList";
    /// Server → client: the sender went over its message budget.
    pub const RATE_LIMIT_EXCEEDED: &str = "rateLimitExceeded";
    /// Server → client: the sender's last event was refused.
    pub const RELAY_ERROR: &str = "relayError";
}

/// Which side of the chat a socket is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A support agent, authenticated by JWT.
    Operator,
    /// A website visitor, anonymous.
    Client,
}

/// `join` payload. `role` is kept as a string so an unknown role is a clear error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    /// `"operator"` or `"client"`.
    pub role: String,
    /// Operator display name (ignored: the token's `name` claim wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Operator id claimed by the frontend (ignored: the token's `sub` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_id: Option<u64>,
    /// Operator JWT, when it did not come in the handshake `auth` object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Visitor display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// Handshake `auth` object (`io(url, { auth: { token } })`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HandshakeAuth {
    /// Operator JWT.
    #[serde(default)]
    pub token: Option<String>,
}

/// Kind of chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    /// Plain text in `message`.
    Text,
    /// A base64 image in `image`, with `mimeType` and `name`.
    Image,
}

/// Body shared by `operatorMessage` and `clientMessage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageBody {
    /// Text or image.
    #[serde(rename = "type")]
    pub kind: MessageKind,
    /// Text content (`type: "text"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Image as a data URL or bare base64 (`type: "image"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Image file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Image MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Image size claimed by the sender (the relay reports the decoded size instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// `operatorMessage` payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorMessage {
    /// The visitor's socket id (`clientId` from `newChat`).
    pub to: String,
    /// The message itself.
    #[serde(flatten)]
    pub body: MessageBody,
    /// The sender's id as the frontend claims it (ignored: the token's `sub` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_id: Option<u64>,
    /// The sender's name as the frontend claims it (ignored: the token's `name` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_name: Option<String>,
}

/// `operatorTyping` payload sent by an operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorTypingRequest {
    /// The visitor's socket id.
    pub to: String,
    /// Typing or stopped.
    pub is_typing: bool,
}

/// `clientTyping` payload sent by a visitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientTypingRequest {
    /// Typing or stopped.
    pub is_typing: bool,
}

/// `incomingOperatorMessage`, to the addressed visitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncomingOperatorMessage<'a> {
    /// The sending operator socket's id.
    #[serde(borrow)]
    pub from: Cow<'a, str>,
    /// Text or image.
    #[serde(rename = "type")]
    pub kind: MessageKind,
    /// Sanitized text.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub message: Option<Cow<'a, str>>,
    /// Image data.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub image: Option<Cow<'a, str>>,
    /// Image file name.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub name: Option<Cow<'a, str>>,
    /// Image MIME type.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<Cow<'a, str>>,
    /// Relay-assigned unique id (**ADD**).
    #[serde(default, borrow)]
    pub message_id: Cow<'a, str>,
    /// ISO-8601 relay time (**ADD**).
    #[serde(default, borrow)]
    pub timestamp: Cow<'a, str>,
}

/// `operatorMessageBroadcast`, to every other operator socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorMessageBroadcast<'a> {
    /// The visitor the message went to.
    #[serde(borrow)]
    pub client_id: Cow<'a, str>,
    /// Sender, from its token.
    pub operator_id: u64,
    /// Sender's name, from its token.
    #[serde(borrow)]
    pub operator_name: Cow<'a, str>,
    /// The message as the supervising frontend shows it.
    #[serde(borrow)]
    pub message: BroadcastMessage<'a>,
}

/// The `message` object inside `operatorMessageBroadcast`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BroadcastMessage<'a> {
    /// Always `"operator"`.
    #[serde(default, borrow)]
    pub from: Cow<'a, str>,
    /// Sanitized text.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub text: Option<Cow<'a, str>>,
    /// Image data.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub image: Option<Cow<'a, str>>,
    /// Image MIME type.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<Cow<'a, str>>,
    /// Image file name.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub name: Option<Cow<'a, str>>,
    /// ISO-8601 relay time.
    #[serde(default, borrow)]
    pub timestamp: Cow<'a, str>,
    /// Sender, from its token.
    #[serde(default)]
    pub operator_id: u64,
    /// Sender's name, from its token.
    #[serde(default, borrow)]
    pub operator_name: Cow<'a, str>,
    /// Relay-assigned unique id (**ADD**).
    #[serde(default, borrow)]
    pub message_id: Cow<'a, str>,
}

/// `incomingMessage`, a visitor's message to the operators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncomingMessage<'a> {
    /// The visitor's socket id.
    #[serde(borrow)]
    pub from: Cow<'a, str>,
    /// Text or image.
    #[serde(rename = "type")]
    pub kind: MessageKind,
    /// Sanitized text.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub message: Option<Cow<'a, str>>,
    /// Image data.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub image: Option<Cow<'a, str>>,
    /// Image file name.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub name: Option<Cow<'a, str>>,
    /// Image MIME type.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<Cow<'a, str>>,
    /// Decoded image size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Relay-assigned unique id (**ADD**).
    #[serde(default, borrow)]
    pub message_id: Cow<'a, str>,
    /// ISO-8601 relay time (**ADD**).
    #[serde(default, borrow)]
    pub timestamp: Cow<'a, str>,
}

/// `newChat`, a visitor joined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewChat<'a> {
    /// The visitor's socket id, the `to` of later operator messages.
    #[serde(borrow)]
    pub client_id: Cow<'a, str>,
    /// Sanitized visitor name.
    #[serde(borrow)]
    pub username: Cow<'a, str>,
}

/// `chatEnded`, a visitor left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatEnded<'a> {
    /// The visitor's socket id.
    #[serde(borrow)]
    pub client_id: Cow<'a, str>,
}

/// `operatorConnected` / `operatorDisconnected`, and each entry of `connectedOperatorsList`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorInfo {
    /// Operator id, from the token's `sub`.
    pub operator_id: u64,
    /// Operator name, from the token's `name` claim.
    pub name: String,
}

/// `clientTyping` as the operators receive it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientTyping<'a> {
    /// The visitor's socket id.
    #[serde(borrow)]
    pub from: Cow<'a, str>,
    /// Typing or stopped.
    pub is_typing: bool,
}

/// `operatorTyping` as the visitor receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorTyping {
    /// Typing or stopped.
    pub is_typing: bool,
}

/// Text of every `rateLimitExceeded`.
pub const RATE_LIMIT_MESSAGE: &str = "Too many messages";

/// `rateLimitExceeded`, to the sender of a message over budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitExceeded {
    /// Always [`RATE_LIMIT_MESSAGE`].
    pub message: String,
    /// How long until the next message would be accepted (**ADD**: 0 when absent).
    #[serde(default)]
    pub retry_after_ms: u64,
}

/// Why the relay refused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Missing, malformed, badly signed or expired operator token.
    Unauthorized,
    /// The socket's role may not send this event, or it joined twice.
    Forbidden,
    /// Wrong types, missing fields, unknown role or event, bad image.
    InvalidPayload,
    /// `to` names no connected visitor.
    UnknownClient,
    /// The event or image is over the configured size limit.
    PayloadTooLarge,
    /// The socket sent something other than `join` before joining.
    NotJoined,
}

impl ErrorCode {
    /// Every code, for metrics and documentation.
    pub const ALL: [ErrorCode; 6] = [
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::InvalidPayload,
        ErrorCode::UnknownClient,
        ErrorCode::PayloadTooLarge,
        ErrorCode::NotJoined,
    ];

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::InvalidPayload => "invalid_payload",
            ErrorCode::UnknownClient => "unknown_client",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::NotJoined => "not_joined",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `relayError`, to the sender of a refused event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayError {
    /// The refused event's name.
    pub event: String,
    /// Machine-readable reason.
    pub code: ErrorCode,
    /// Human-readable reason.
    pub message: String,
}

/// Acknowledgement the relay sends when a message event carried a Socket.IO ack id.
///
/// An addition to the guide (old frontends never ask for acks): it lets a load generator
/// learn the relay's `messageId` and measure service time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageAck {
    /// Set when the message was relayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Set when it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorCode>,
    /// Set when it was over the rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// Image MIME types the relay accepts.
pub const IMAGE_MIME_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operator_message_accepts_legacy_identity_fields() {
        let raw = json!({"to": "abc", "type": "text", "message": "hi",
                         "operatorId": 9, "operatorName": "Mallory"});
        let msg: OperatorMessage = serde_json::from_value(raw).expect("legacy payload parses");
        assert_eq!(msg.to, "abc");
        assert_eq!(msg.body.kind, MessageKind::Text);
        assert_eq!(msg.body.message.as_deref(), Some("hi"));
    }

    #[test]
    fn broadcast_serializes_with_guide_field_names() {
        let b = OperatorMessageBroadcast {
            client_id: "c".into(),
            operator_id: 7,
            operator_name: "Ann".into(),
            message: BroadcastMessage {
                from: "operator".into(),
                text: Some("x".into()),
                image: None,
                mime_type: None,
                name: None,
                timestamp: "t".into(),
                operator_id: 7,
                operator_name: "Ann".into(),
                message_id: "m".into(),
            },
        };
        let v = serde_json::to_value(&b).expect("serializes");
        assert_eq!(v["clientId"], "c");
        assert_eq!(v["operatorName"], "Ann");
        assert_eq!(v["message"]["messageId"], "m");
        assert!(v["message"].get("image").is_none());
    }

    #[test]
    fn guide_server_payloads_read_without_the_additions() {
        // what the guide's example server sends: no messageId, no timestamp
        let raw = r#"{"clientId":"c","operatorId":3,"operatorName":"Ann","message":{"from":"operator","text":"hi","operatorId":3,"operatorName":"Ann"}}"#;
        let b: OperatorMessageBroadcast = serde_json::from_str(raw).expect("reads");
        assert_eq!(b.message.text.as_deref(), Some("hi"));
        assert!(b.message.message_id.is_empty());
        assert!(
            matches!(b.client_id, Cow::Borrowed("c")),
            "text is borrowed, not copied"
        );
        let raw = r#"{"from":"v","type":"text","message":"yo"}"#;
        let m: IncomingMessage = serde_json::from_str(raw).expect("reads");
        assert_eq!(m.message.as_deref(), Some("yo"));
        // but the guide's required fields stay required
        assert!(serde_json::from_str::<IncomingMessage>(r#"{"type":"text"}"#).is_err());
        assert!(
            serde_json::from_str::<OperatorMessageBroadcast>(
                r#"{"clientId":"c","operatorId":"3","operatorName":"A","message":{}}"#
            )
            .is_err()
        );
    }

    #[test]
    fn error_codes_match_protocol_strings() {
        for code in ErrorCode::ALL {
            let v = serde_json::to_value(code).expect("serializes");
            assert_eq!(v, code.as_str());
        }
    }

    #[test]
    fn unknown_message_kind_is_rejected() {
        let raw = json!({"type": "video", "message": "x"});
        assert!(serde_json::from_value::<MessageBody>(raw).is_err());
    }
}
