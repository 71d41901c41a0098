//! What a run counts, named once: the violation classes and the other counters.
//!
//! `result.json` keys its counters and examples by these names; the simulator, the report,
//! `compare` and `merge` all go through these enums, so a typo does not compile.

use std::fmt;

/// A way a backend breaks the protocol. Every class is a counter of its own; their sum is
/// the `violations` counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Violation {
    /// An owed delivery never came.
    Lost,
    /// Delivered twice to one socket.
    Duplicated,
    /// Reached a socket that must not see it.
    Leaked,
    /// Wrong sender, wrong operator identity or wrong event.
    Misattributed,
    /// Sent back to the socket that sent it.
    Echoed,
    /// An owed delivery that arrived after the protocol's delivery bound.
    DeliveryLate,
    /// A request the protocol says must succeed was refused (an ack error or `relayError`).
    Refused,
    /// Overtaken by a later message of the same sender.
    Reordered,
    /// Delivered with markup.
    Unsanitized,
    /// Delivered although over the rate limit.
    RateLimitWronglyDelivered,
    /// Refused as over the rate limit although within budget.
    RateLimitWronglyRejected,
    /// A presence event (`newChat`, `chatEnded`, `operatorConnected`,
    /// `operatorDisconnected`) owed to a socket never came.
    PresenceMissed,
    /// A presence event came twice.
    PresenceDuplicated,
    /// A presence event came later than the protocol's bound after its cause.
    PresenceLate,
    /// The operators list differs from who is online.
    PresenceListMismatch,
    /// An event's payload did not parse as the protocol says.
    Malformed,
    /// The backend closed a connection the bot did not close.
    DisconnectedUnexpected,
}

impl Violation {
    /// Every class, in report order.
    pub const ALL: [Violation; 17] = [
        Violation::Lost,
        Violation::Duplicated,
        Violation::Leaked,
        Violation::Misattributed,
        Violation::Echoed,
        Violation::DeliveryLate,
        Violation::Refused,
        Violation::Reordered,
        Violation::Unsanitized,
        Violation::RateLimitWronglyDelivered,
        Violation::RateLimitWronglyRejected,
        Violation::PresenceMissed,
        Violation::PresenceDuplicated,
        Violation::PresenceLate,
        Violation::PresenceListMismatch,
        Violation::Malformed,
        Violation::DisconnectedUnexpected,
    ];

    /// The counter's name in results and thresholds.
    pub const fn name(self) -> &'static str {
        match self {
            Violation::Lost => "lost",
            Violation::Duplicated => "duplicated",
            Violation::Leaked => "leaked",
            Violation::Misattributed => "misattributed",
            Violation::Echoed => "echoed",
            Violation::DeliveryLate => "delivery.late",
            Violation::Refused => "refused",
            Violation::Reordered => "reordered",
            Violation::Unsanitized => "unsanitized",
            Violation::RateLimitWronglyDelivered => "rate_limit.wrongly_delivered",
            Violation::RateLimitWronglyRejected => "rate_limit.wrongly_rejected",
            Violation::PresenceMissed => "presence.missed",
            Violation::PresenceDuplicated => "presence.duplicated",
            Violation::PresenceLate => "presence.late",
            Violation::PresenceListMismatch => "presence.list_mismatch",
            Violation::Malformed => "malformed",
            Violation::DisconnectedUnexpected => "disconnected.unexpected",
        }
    }

    /// What it means, in a few words.
    pub const fn meaning(self) -> &'static str {
        match self {
            Violation::Lost => "owed but never delivered",
            Violation::Duplicated => "delivered twice",
            Violation::Leaked => "reached a socket that must not see it",
            Violation::Misattributed => "wrong sender, identity or event",
            Violation::Echoed => "sent back to its sender",
            Violation::DeliveryLate => "arrived after the protocol's delivery bound",
            Violation::Refused => "a valid request refused (ack error or relayError)",
            Violation::Reordered => "overtaken by a later message of its sender",
            Violation::Unsanitized => "markup delivered",
            Violation::RateLimitWronglyDelivered => "delivered over the rate limit",
            Violation::RateLimitWronglyRejected => "refused within budget",
            Violation::PresenceMissed => {
                "newChat, chatEnded, operatorConnected or operatorDisconnected missing"
            }
            Violation::PresenceDuplicated => "presence announced twice",
            Violation::PresenceLate => "presence announced after the protocol's bound",
            Violation::PresenceListMismatch => "operators list differs from who is online",
            Violation::Malformed => "payload did not parse",
            Violation::DisconnectedUnexpected => "the backend closed a connection",
        }
    }

    /// The class named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A counter that is not a violation class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Counter {
    /// Messages sent.
    Sent,
    /// Deliveries matched to a sent message (owed or not).
    Delivered,
    /// Deliveries owed.
    ExpectedDeliveries,
    /// The sum of every violation class.
    Violations,
    /// `rateLimitExceeded` received.
    RateLimitRejected,
    /// `relayError` received.
    RelayErrors,
    /// Connections that failed.
    ConnectFailed,
    /// Connections still being made when sending stopped.
    ConnectUnfinished,
    /// Sends that left more than 10 ms after their intended instant.
    GeneratorLate,
    /// Sends that could not be written (the connection was gone).
    SendFailed,
    /// Typing events sent.
    TypingSent,
    /// Deliveries of another shard's messages (not judged here).
    Foreign,
    /// Owed deliveries that never came because the sender or the recipient lost its
    /// connection around the message (reported; loss on healthy sockets is `lost`).
    LostDisconnected,
    /// Connections closed by a scheduled fault (a killed relay node, or the simulator's
    /// fault proxy), not by the backend's own doing.
    DisconnectedByFault,
    /// Connections the simulator's fault proxy cut (reset, cut mid-frame, held half-open,
    /// outages).
    NetworkCuts,
    /// Scheduled faults that could not be injected (a `command` that failed): the run did
    /// not break what its scenario asked for.
    FaultsFailed,
    /// Long-polling requests a node answered with HTTP 400 "Session ID unknown": a load
    /// balancer sent them to a node that did not open the session (no stickiness).
    SessionsUnknown,
}

/// What `n` "Session ID unknown" answers mean, in a sentence naming the fix.
pub fn sessions_unknown_words(n: u64) -> String {
    format!(
        "{n} long-polling request(s) reached a node that did not know their session (HTTP 400 \
         \"Session ID unknown\"): the load balancer does not keep a session on one node; turn \
         on stickiness (a cookie, or source-address hashing). The connections it broke are \
         counted as connect.failed or disconnected.unexpected."
    )
}

impl Counter {
    /// Every counter, in report order.
    pub const ALL: [Counter; 17] = [
        Counter::Sent,
        Counter::Delivered,
        Counter::ExpectedDeliveries,
        Counter::Violations,
        Counter::RateLimitRejected,
        Counter::RelayErrors,
        Counter::ConnectFailed,
        Counter::ConnectUnfinished,
        Counter::GeneratorLate,
        Counter::SendFailed,
        Counter::TypingSent,
        Counter::Foreign,
        Counter::LostDisconnected,
        Counter::DisconnectedByFault,
        Counter::NetworkCuts,
        Counter::FaultsFailed,
        Counter::SessionsUnknown,
    ];

    /// The counter's name in results and thresholds.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::Sent => "sent",
            Counter::Delivered => "delivered",
            Counter::ExpectedDeliveries => "expected_deliveries",
            Counter::Violations => "violations",
            Counter::RateLimitRejected => "rate_limit.rejected",
            Counter::RelayErrors => "relay_errors",
            Counter::ConnectFailed => "connect.failed",
            Counter::ConnectUnfinished => "connect.unfinished",
            Counter::GeneratorLate => "generator.late",
            Counter::SendFailed => "send.failed",
            Counter::TypingSent => "typing.sent",
            Counter::Foreign => "foreign",
            Counter::LostDisconnected => "lost.disconnected",
            Counter::DisconnectedByFault => "disconnected.fault",
            Counter::NetworkCuts => "network.cuts",
            Counter::FaultsFailed => "faults.failed",
            Counter::SessionsUnknown => "sessions.unknown",
        }
    }
}

impl fmt::Display for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// True when `name` is a counter or a violation class.
pub fn is_counter(name: &str) -> bool {
    Violation::from_name(name).is_some() || Counter::ALL.iter().any(|c| c.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        let mut names: Vec<&str> = Violation::ALL.iter().map(|v| v.name()).collect();
        names.extend(Counter::ALL.iter().map(|c| c.name()));
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "a name is used twice");
        for v in Violation::ALL {
            assert_eq!(Violation::from_name(v.name()), Some(v));
            assert!(is_counter(v.name()));
        }
        assert!(is_counter("sent") && !is_counter("lots"));
    }
}
