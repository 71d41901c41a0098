//! What bots report to the aggregator: one [`Record`] per observation, stamped with its instant.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::scenario::BotRole;

/// Index of one connection (a reconnection gets a new one).
pub type SocketKey = u32;

/// The simulator's run-unique message id, carried in the text (`#sim<id>#`) or image name.
pub type MsgId = u64;

/// How a message travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SentKind {
    /// Operator → one visitor (and a broadcast to the other operators).
    OperatorToClient {
        /// The visitor's server-assigned id.
        to: String,
    },
    /// Visitor → operators.
    ClientToOperators,
}

/// How the backend answered a message's ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckOutcome {
    /// Relayed.
    Accepted,
    /// Over the rate limit.
    RateLimited,
    /// Refused with a `relayError` code.
    Refused(String),
}

/// One event a socket received, reduced to what the checks need.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// `incomingOperatorMessage`.
    ToClient {
        /// Message id found in it.
        msg: Option<MsgId>,
        /// `from`.
        from: String,
        /// Markup survived.
        unsanitized: bool,
    },
    /// `operatorMessageBroadcast`.
    Broadcast {
        /// Message id found in it.
        msg: Option<MsgId>,
        /// `clientId`.
        client: String,
        /// `operatorId`.
        operator_id: u64,
        /// `operatorName`.
        operator_name: String,
        /// Markup survived.
        unsanitized: bool,
    },
    /// `incomingMessage`.
    FromClient {
        /// Message id found in it.
        msg: Option<MsgId>,
        /// `from`.
        from: String,
        /// Markup survived.
        unsanitized: bool,
    },
    /// `newChat`.
    NewChat {
        /// `clientId`.
        client: String,
        /// `username`.
        username: String,
    },
    /// `chatEnded`.
    ChatEnded {
        /// `clientId`.
        client: String,
    },
    /// `operatorConnected`.
    OperatorConnected {
        /// `operatorId`.
        operator_id: u64,
    },
    /// `operatorDisconnected`.
    OperatorDisconnected {
        /// `operatorId`.
        operator_id: u64,
    },
    /// `clientTyping`.
    ClientTyping {
        /// `from`.
        from: String,
    },
    /// `operatorTyping`.
    OperatorTyping,
    /// `connectedOperatorsList`.
    OperatorsList(Vec<u64>),
    /// `rateLimitExceeded`.
    RateLimited,
    /// `relayError`.
    RelayError {
        /// `event`.
        event: String,
        /// `code`.
        code: String,
    },
    /// A known event whose payload did not parse as the protocol says.
    Malformed {
        /// Event name.
        event: String,
        /// What the parser said.
        error: String,
    },
    /// Anything else, by name.
    Other(String),
}

/// A bot's (or the pacer's) report.
#[derive(Debug, Clone)]
pub enum Record {
    /// Connected; `join` is leaving now.
    Joining {
        /// Connection.
        socket: SocketKey,
        /// Role.
        role: BotRole,
        /// Server-assigned id.
        sid: String,
        /// Operator identity, for operator roles.
        operator: Option<(u64, String)>,
        /// Which of the target's endpoints (nodes) it is connected to.
        node: u32,
        /// The backend's ping deadline from its open packet (`pingInterval + pingTimeout`).
        ping_deadline: Duration,
        /// When `join` left.
        at: Instant,
    },
    /// The join is known to be processed (its ack, or an answer to a request sent after it).
    Joined {
        /// Connection.
        socket: SocketKey,
        /// When the answer arrived.
        at: Instant,
    },
    /// The backend refused the join (its ack carried an error).
    JoinRefused {
        /// Connection.
        socket: SocketKey,
        /// When.
        at: Instant,
        /// The error code.
        code: String,
    },
    /// Connecting failed.
    ConnectFailed {
        /// Connection.
        socket: SocketKey,
        /// Why.
        error: String,
        /// When.
        at: Instant,
    },
    /// Still connecting when the sending phase ended.
    ConnectUnfinished {
        /// Connection.
        socket: SocketKey,
    },
    /// The end-of-run operators list was asked for.
    ListRequested {
        /// Asking socket.
        socket: SocketKey,
        /// When.
        at: Instant,
    },
    /// A message left (written by the pacer at `at`).
    Sent {
        /// Sender.
        socket: SocketKey,
        /// Its id.
        msg: MsgId,
        /// Path.
        kind: SentKind,
        /// Scheduled instant.
        intended: Instant,
        /// Actual instant.
        at: Instant,
    },
    /// A message could not be written: the connection was gone.
    SendFailed {
        /// Sender.
        socket: SocketKey,
        /// Its id.
        msg: MsgId,
    },
    /// A typing event left.
    TypingSent {
        /// Sender.
        socket: SocketKey,
        /// The visitor an operator's typing goes to.
        to: Option<String>,
        /// When.
        at: Instant,
    },
    /// Something arrived.
    Received {
        /// Receiver.
        socket: SocketKey,
        /// When.
        at: Instant,
        /// What.
        what: Observed,
    },
    /// A message's ack arrived.
    Ack {
        /// Sender.
        socket: SocketKey,
        /// Which message.
        msg: MsgId,
        /// What it said.
        outcome: AckOutcome,
        /// When.
        at: Instant,
    },
    /// The bot stops reading this connection and closes it: nothing is owed to it from now.
    Leaving {
        /// Connection.
        socket: SocketKey,
        /// When.
        at: Instant,
    },
    /// A latency sample measured by the bot itself (connect).
    Latency {
        /// Path.
        path: crate::metrics::Path,
        /// From the intended instant, µs.
        intended_us: u64,
        /// Service time, µs.
        service_us: u64,
    },
    /// The operators list asked for at the end of the run.
    FinalOperatorsList {
        /// Asking socket.
        socket: SocketKey,
        /// When it arrived.
        at: Instant,
        /// Operator ids listed.
        ids: Vec<u64>,
    },
    /// A barrier from the run's driver: every record sent before it has been applied once
    /// the aggregator sees it.
    Mark(u64),
    /// The connection ended.
    Closed {
        /// Connection.
        socket: SocketKey,
        /// When.
        at: Instant,
        /// The bot did not ask for it.
        unexpected: bool,
        /// The transport failed under Socket.IO (reset, cut mid-stream, silent past the ping
        /// deadline), as opposed to a close the server sent: nothing arrived after this
        /// instant, when the server was last heard from (or what the bot sent after it was
        /// never seen taken: a long-polling `POST` that failed).
        broken: Option<Instant>,
        /// The bot's ends of the TCP connections the socket used (a polling socket has two,
        /// an upgraded one three), for a close it did not ask for: a network cut explains
        /// only a connection of its own.
        local: Vec<SocketAddr>,
    },
    /// The simulator's fault proxy cut a connection (recorded before the cut).
    NetworkCut {
        /// When.
        at: Instant,
        /// The bot's end of the cut TCP connection.
        peer: SocketAddr,
    },
    /// A scheduled fault was injected.
    Fault {
        /// The node it killed, if it killed one (its sockets close as a consequence).
        killed: Option<u32>,
        /// When.
        at: Instant,
    },
    /// A fault that kills a node is done (its command returned): the node died at the
    /// latest now, which may be well after the fault began (a `docker stop` waits).
    FaultDone {
        /// The node it killed.
        node: u32,
        /// When.
        at: Instant,
    },
    /// A node answered a long-polling request of `socket` with "Session ID unknown".
    SessionUnknown {
        /// Connection.
        socket: SocketKey,
        /// When.
        at: Instant,
    },
    /// A scheduled fault could not be injected (its command failed): nothing it would have
    /// done is put down to it.
    FaultFailed {
        /// What it was and why it failed.
        why: String,
        /// The node it was to kill: not dead after all.
        node: Option<u32>,
        /// When.
        at: Instant,
    },
}

impl Record {
    /// The instant the record carries, if any.
    pub fn instant(&self) -> Option<Instant> {
        match self {
            Record::Joining { at, .. }
            | Record::Joined { at, .. }
            | Record::JoinRefused { at, .. }
            | Record::ConnectFailed { at, .. }
            | Record::ListRequested { at, .. }
            | Record::Sent { at, .. }
            | Record::TypingSent { at, .. }
            | Record::Received { at, .. }
            | Record::Ack { at, .. }
            | Record::Leaving { at, .. }
            | Record::FinalOperatorsList { at, .. }
            | Record::Closed { at, .. }
            | Record::Fault { at, .. }
            | Record::FaultDone { at, .. }
            | Record::FaultFailed { at, .. }
            | Record::SessionUnknown { at, .. }
            | Record::NetworkCut { at, .. } => Some(*at),
            Record::ConnectUnfinished { .. }
            | Record::SendFailed { .. }
            | Record::Latency { .. }
            | Record::Mark(_) => None,
        }
    }
}

/// The id inside a text (`#sim<id>#`) or an image name (`sim-<id>.png`).
pub fn find_msg_id(s: &str) -> Option<MsgId> {
    let start = s
        .find("#sim")
        .map(|i| i + 4)
        .or_else(|| s.find("sim-").map(|i| i + 4))?;
    let digits: &str = &s[start..];
    let end = digits.bytes().take_while(u8::is_ascii_digit).count();
    digits[..end].parse().ok()
}

/// Text carrying `id`.
pub fn tag_text(id: MsgId, body: &str) -> String {
    format!("#sim{id}# {body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text_and_names() {
        assert_eq!(find_msg_id(&tag_text(42, "hello <b>x</b>")), Some(42));
        assert_eq!(find_msg_id("sim-7.png"), Some(7));
        assert_eq!(find_msg_id("no id"), None);
    }
}
