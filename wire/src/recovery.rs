//! Connection state recovery (Socket.IO 4.6+) as socket.io-client does it: the session's
//! private id (`pid`) from the namespace connect answer, the offset a recoverable server
//! appends to each broadcast event as its last argument, and both in the next connect's
//! `auth`, so the server replays what the client missed.

use serde_json::{Map, Value};

/// What a reconnection presents to recover its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// The session's private id, from the connect answer.
    pub pid: String,
    /// The offset of the last event received, if any came.
    pub offset: Option<String>,
}

/// The connect `auth` of a reconnection: `auth` (a JSON object, or nothing) with `pid` and
/// `offset` added, as socket.io-client sends them.
pub(crate) fn resume_auth(auth: Option<&str>, resume: &Resume) -> String {
    let mut object = auth
        .and_then(|a| serde_json::from_str::<Map<String, Value>>(a).ok())
        .unwrap_or_default();
    object.insert("pid".into(), Value::String(resume.pid.clone()));
    if let Some(offset) = &resume.offset {
        object.insert("offset".into(), Value::String(offset.clone()));
    }
    Value::Object(object).to_string()
}

/// An event packet (`42…[…]`) whose last argument is a string past its data, split into the
/// packet without it and that string (the offset). The chat protocol's events carry one data
/// argument, so a string after it is the server's offset. `None` for packets without one.
pub(crate) fn take_offset(packet: &str) -> Option<(String, String)> {
    if !packet.starts_with("42") {
        return None;
    }
    let body = packet.strip_suffix("\"]")?;
    // the opening quote of the last string: the first unescaped quote walking back
    let mut open = body.len();
    loop {
        open = body[..open].rfind('"')?;
        if !escaped(body, open) {
            break;
        }
    }
    let before = body[..open].strip_suffix(',')?;
    // the event name, then at least one data argument before the offset
    let name = before.find('[')? + 1;
    let name_end = closing_quote(before, name)?;
    if before.len() <= name_end + 2 {
        return None;
    }
    let offset: String = serde_json::from_str(&packet[open..packet.len() - 1]).ok()?;
    Some((format!("{before}]"), offset))
}

/// The quote at `at` is escaped (an odd run of backslashes before it).
fn escaped(s: &str, at: usize) -> bool {
    s.as_bytes()[..at]
        .iter()
        .rev()
        .take_while(|b| **b == b'\\')
        .count()
        % 2
        == 1
}

/// The index of the quote closing the string that opens at `open`.
fn closing_quote(s: &str, open: usize) -> Option<usize> {
    if s.as_bytes().get(open) != Some(&b'"') {
        return None;
    }
    let mut at = open + 1;
    loop {
        at += s[at..].find('"')?;
        if !escaped(s, at) {
            return Some(at);
        }
        at += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_is_taken_off_an_event_that_carries_one() {
        assert_eq!(
            take_offset(r#"42["newChat",{"clientId":"a"},"1701-0"]"#),
            Some((r#"42["newChat",{"clientId":"a"}]"#.into(), "1701-0".into()))
        );
        assert_eq!(
            take_offset(r#"42["x",{"t":"a \" b"},"o\"1"]"#),
            Some((r#"42["x",{"t":"a \" b"}]"#.into(), "o\"1".into()))
        );
        assert_eq!(
            take_offset(r#"4217["x",[1,"a"],"k"]"#),
            Some((r#"4217["x",[1,"a"]]"#.into(), "k".into()))
        );
        // no data argument before the string: it is the data
        assert_eq!(take_offset(r#"42["x","hello"]"#), None);
        assert_eq!(take_offset(r#"42["x",{"a":"b"}]"#), None);
        assert_eq!(take_offset(r#"42["x",["a","b"]]"#), None);
        assert_eq!(take_offset(r#"43[{"a":1},"x"]"#), None, "acks carry none");
    }

    #[test]
    fn a_reconnection_presents_its_session() {
        let resume = Resume {
            pid: "p1".into(),
            offset: Some("o9".into()),
        };
        let auth: Value =
            serde_json::from_str(&resume_auth(Some(r#"{"token":"t"}"#), &resume)).expect("json");
        assert_eq!(
            auth,
            serde_json::json!({"token": "t", "pid": "p1", "offset": "o9"})
        );
        let first = Resume {
            offset: None,
            ..resume
        };
        assert_eq!(resume_auth(None, &first), r#"{"pid":"p1"}"#);
    }
}
