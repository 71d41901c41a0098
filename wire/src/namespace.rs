//! A Socket.IO namespace other than `/`: the `/name,` its packets carry after their type,
//! added on the way out and taken off on the way in, so the rest of the client speaks as if
//! on `/`.

use std::borrow::Cow;
use std::sync::Arc;

/// A namespace other than `/`, e.g. `/support`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Namespace(Arc<str>);

/// What an incoming packet is to a connection on a namespace.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Seen<'a> {
    /// Not a Socket.IO packet (an Engine.IO ping, close, …): as it came.
    Engine,
    /// A packet of this namespace, without its `/name,`.
    Ours(Cow<'a, str>),
    /// A packet of another namespace: not for this connection.
    Other,
}

impl Namespace {
    /// `name` as packets carry it; `None` for the main namespace `/` (or nothing).
    pub(crate) fn new(name: &str) -> Option<Self> {
        let name = name.trim_end_matches('/');
        if name.is_empty() {
            return None;
        }
        let name = if name.starts_with('/') {
            name.to_owned()
        } else {
            format!("/{name}")
        };
        Some(Self(Arc::from(name)))
    }

    /// `packet` with the namespace after its Socket.IO type (`42[…]` → `42/ns,[…]`); Engine.IO
    /// packets, and packets that name a namespace already, as they are.
    pub(crate) fn outgoing<'a>(&self, packet: &'a str) -> Cow<'a, str> {
        match packet.as_bytes() {
            [b'4', t, rest @ ..] if t.is_ascii_digit() && rest.first() != Some(&b'/') => {
                Cow::Owned(format!("{}{},{}", &packet[..2], self.0, &packet[2..]))
            }
            _ => Cow::Borrowed(packet),
        }
    }

    /// What `packet` is to a connection on this namespace.
    pub(crate) fn incoming<'a>(&self, packet: &'a str) -> Seen<'a> {
        let [b'4', t, ..] = packet.as_bytes() else {
            return Seen::Engine;
        };
        if !t.is_ascii_digit() {
            return Seen::Engine;
        }
        match packet[2..].strip_prefix(&*self.0) {
            Some("") => Seen::Ours(Cow::Borrowed(&packet[..2])),
            Some(rest) if rest.starts_with(',') => {
                Seen::Ours(Cow::Owned(format!("{}{}", &packet[..2], &rest[1..])))
            }
            _ => Seen::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_carry_the_namespace_out_and_lose_it_in() {
        assert_eq!(Namespace::new("/"), None);
        assert_eq!(Namespace::new(""), None);
        let ns = Namespace::new("support").expect("a namespace");
        assert_eq!(ns, Namespace::new("/support/").expect("the same"));
        assert_eq!(ns.outgoing(r#"42["x",1]"#), r#"42/support,["x",1]"#);
        assert_eq!(
            ns.outgoing(r#"40{"token":"t"}"#),
            r#"40/support,{"token":"t"}"#
        );
        assert_eq!(ns.outgoing("41"), "41/support,");
        assert_eq!(ns.outgoing("4217[\"x\"]"), "42/support,17[\"x\"]");
        assert_eq!(ns.outgoing("40/admin,"), "40/admin,", "already named");
        assert_eq!(ns.outgoing("3"), "3");
        assert_eq!(
            ns.incoming(r#"42/support,["x",1]"#),
            Seen::Ours(Cow::Borrowed(r#"42["x",1]"#))
        );
        assert_eq!(
            ns.incoming(r#"40/support,{"sid":"a"}"#),
            Seen::Ours(Cow::Borrowed(r#"40{"sid":"a"}"#))
        );
        assert_eq!(ns.incoming("41/support,"), Seen::Ours(Cow::Borrowed("41")));
        assert_eq!(ns.incoming("41/support"), Seen::Ours(Cow::Borrowed("41")));
        assert_eq!(
            ns.incoming(r#"42["x",1]"#),
            Seen::Other,
            "the main namespace"
        );
        assert_eq!(ns.incoming(r#"42/supporters,["x"]"#), Seen::Other);
        assert_eq!(ns.incoming("2"), Seen::Engine);
        assert_eq!(ns.incoming("1"), Seen::Engine);
    }
}
