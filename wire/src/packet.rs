//! Engine.IO v4 / Socket.IO v5 text packets: framing an event, reading one back.
//!
//! An Engine.IO message packet is `4` followed by a Socket.IO packet, so an event is
//! `42["name",data]`, an event asking for an ack `42<id>["name",data]`, an ack `43<id>[data]`.

use serde::Serialize;

/// Separates packets in one long-polling payload.
pub const SEPARATOR: u8 = 0x1e;

/// `42["event",data]`, or `42<ack>["event",data]` when `ack` is given.
///
/// # Errors
/// When `data` does not serialize.
pub fn event<T: Serialize + ?Sized>(
    event: &str,
    data: &T,
    ack: Option<u64>,
) -> Result<String, serde_json::Error> {
    let json = serde_json::to_string(&(event, data))?;
    let mut out = prefix(ack);
    out.push_str(&json);
    Ok(out)
}

/// `42["event"]`: an event without an argument, as `socket.emit("event")` sends it.
pub fn bare_event(event: &str, ack: Option<u64>) -> String {
    let mut out = prefix(ack);
    // a JSON string cannot fail to serialize
    let name = serde_json::to_string(event).unwrap_or_default();
    out.push('[');
    out.push_str(&name);
    out.push(']');
    out
}

fn prefix(ack: Option<u64>) -> String {
    let mut out = String::with_capacity(128);
    out.push_str("42");
    if let Some(id) = ack {
        out.push_str(&id.to_string());
    }
    out
}

/// Splits `42["name",data]` (or `42<id>["name",data]`) into the event name and the raw JSON
/// of its first argument (`null` when there is none), without parsing the rest.
pub fn split_event(frame: &str) -> Option<(&str, &str)> {
    let body = frame.strip_prefix("42")?;
    let body = body.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = body.strip_prefix("[\"")?;
    let end = rest.find('"')?;
    let name = &rest[..end];
    let after = rest[end + 1..].trim_start();
    let data = match after.strip_prefix(',') {
        Some(d) => d.strip_suffix(']')?.trim(),
        None => "null",
    };
    Some((name, data))
}

/// The ack id of `43<id>[...]` (or of an event `42<id>[...]`).
pub fn ack_id(frame: &str) -> Option<u64> {
    let rest = frame
        .strip_prefix("43")
        .or_else(|| frame.strip_prefix("42"))?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    rest[..digits].parse().ok()
}

/// The first argument of an ack frame `43<id>[data]` (`null` for `43<id>[]`).
pub fn ack_data(frame: &str) -> Option<&str> {
    let rest = frame.strip_prefix("43")?;
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    let inner = rest.strip_prefix('[')?.strip_suffix(']')?.trim();
    Some(if inner.is_empty() { "null" } else { inner })
}

/// The Engine.IO open packet `0{...}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Open {
    /// Engine.IO session id.
    pub sid: String,
    /// Transports the server would upgrade to.
    #[serde(default)]
    pub upgrades: Vec<String>,
    /// Server ping interval, ms.
    #[serde(default)]
    pub ping_interval: u64,
    /// How long the server waits for a pong, ms.
    #[serde(default)]
    pub ping_timeout: u64,
}

impl Open {
    /// Parses `0{...}`.
    ///
    /// # Errors
    /// A description of what the server sent instead.
    pub fn parse(packet: &str) -> Result<Self, String> {
        let body = packet
            .strip_prefix('0')
            .ok_or_else(|| format!("expected an open packet, got {:?}", clip(packet)))?;
        serde_json::from_str(body).map_err(|e| format!("open packet {:?}: {e}", clip(packet)))
    }
}

/// The socket id in a namespace connect answer `40{"sid":...}`, and the session's private id
/// (`pid`) when the server offers connection state recovery.
pub(crate) fn connect_answer(body: &str) -> Result<(String, Option<String>), String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        sid: String,
        #[serde(default)]
        pid: Option<String>,
    }
    serde_json::from_str::<Answer>(body)
        .map(|a| (a.sid, a.pid))
        .map_err(|e| format!("connect answer {:?}: {e}", clip(body)))
}

/// The first 120 characters of `s`, for error messages.
pub(crate) fn clip(s: &str) -> &str {
    s.char_indices().nth(120).map_or(s, |(i, _)| &s[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_events_and_acks() {
        assert_eq!(
            event("join", &serde_json::json!({"role": "client"}), None).expect("json"),
            r#"42["join",{"role":"client"}]"#
        );
        assert_eq!(event("x", &1, Some(17)).expect("json"), r#"4217["x",1]"#);
        assert_eq!(
            bare_event("getConnectedOperators", None),
            r#"42["getConnectedOperators"]"#
        );
        assert_eq!(bare_event("a\"b", Some(3)), r#"423["a\"b"]"#);
    }

    #[test]
    fn reads_events_and_acks() {
        assert_eq!(
            split_event(r#"42["newChat",{"a":1}]"#),
            Some(("newChat", r#"{"a":1}"#))
        );
        assert_eq!(split_event(r#"42["x"]"#), Some(("x", "null")));
        assert_eq!(split_event(r#"4212["x",[1,2]]"#), Some(("x", "[1,2]")));
        assert_eq!(split_event("42"), None);
        assert_eq!(
            ack_data(r#"437[{"messageId":"a"}]"#),
            Some(r#"{"messageId":"a"}"#)
        );
        assert_eq!(ack_data("437[]"), Some("null"));
        assert_eq!(ack_id(r#"437[{"messageId":"a"}]"#), Some(7));
        assert_eq!(ack_id("43[]"), None);
    }

    #[test]
    fn reads_open_and_connect_answers() {
        let o = Open::parse(r#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#)
            .expect("open");
        assert_eq!(o.sid, "abc");
        assert_eq!(o.upgrades, ["websocket"]);
        assert!(Open::parse("40").is_err());
        assert_eq!(
            connect_answer(r#"{"sid":"s1"}"#),
            Ok(("s1".to_owned(), None))
        );
        assert_eq!(
            connect_answer(r#"{"sid":"s1","pid":"p1"}"#),
            Ok(("s1".to_owned(), Some("p1".to_owned())))
        );
        assert!(connect_answer("{}").is_err());
    }
}
