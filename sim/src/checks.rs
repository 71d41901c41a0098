//! The ledger: every message and every socket, checked for exactly-once delivery, leaks,
//! attribution, echoes, order, rate limits, sanitizing and presence.
//!
//! Messages stay in the ledger until they settle (`SETTLE` after they were sent, or the end
//! of the run), then their verdicts are counted and they leave: a long soak does not grow.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use reports::model::ViolationExample;

use crate::metrics::{Path, PathHistograms, VIOLATIONS};
use crate::record::{AckOutcome, MsgId, Observed, RatePrediction, Record, SentKind, SocketKey};
use crate::scenario::BotRole;

/// How long after sending a message its deliveries are awaited before it is judged.
pub const SETTLE: Duration = Duration::from_secs(10);

/// A socket that leaves within this of a message's send is not expected to receive it.
pub const LEAVE_GRACE: Duration = Duration::from_secs(1);

/// A send starting this much after its scheduled instant counts as `generator.late`.
pub const LATE: Duration = Duration::from_millis(10);

/// Message ids each shard may use: shard k numbers from `k × ID_SPACE + 1`.
pub const ID_SPACE: MsgId = 1 << 40;

/// Examples kept per violation class.
pub const MAX_EXAMPLES: usize = 20;

#[derive(Debug)]
struct SocketInfo {
    role: BotRole,
    sid: String,
    operator: Option<(u64, String)>,
    joining_at: Instant,
    joined_at: Option<Instant>,
    left_at: Option<Instant>,
    /// Presence: operators this socket was told are online (for duplicate detection).
    told_online: HashSet<u64>,
    /// Presence, for a visitor: operator sockets that got its `newChat` / `chatEnded`.
    announced_to: Vec<SocketKey>,
    ended_to: Vec<SocketKey>,
}

#[derive(Debug)]
struct Entry {
    sender: SocketKey,
    kind: SentKind,
    intended: Instant,
    sent_at: Instant,
    predicted: RatePrediction,
    acked: Option<AckOutcome>,
    received: Vec<SocketKey>,
}

/// The checks' state and tallies.
#[derive(Debug)]
pub struct Ledger {
    start: Instant,
    sockets: Vec<Option<SocketInfo>>,
    /// Operator-role sockets: the only ones a fan-out can owe anything to.
    operator_keys: Vec<SocketKey>,
    by_sid: HashMap<String, SocketKey>,
    pending: HashMap<MsgId, Entry>,
    settled: IdSet,
    first_id: MsgId,
    last_seen: HashMap<(SocketKey, SocketKey), MsgId>,
    last_typing: HashMap<String, Instant>,
    rate_limit_events: HashMap<SocketKey, u64>,
    rate_limit_acks: HashMap<SocketKey, u64>,
    predicted_rejects: HashMap<SocketKey, u64>,
    counters: BTreeMap<&'static str, u64>,
    examples: BTreeMap<&'static str, Vec<ViolationExample>>,
    /// Latency histograms.
    pub histograms: PathHistograms,
    connected: u64,
    second: SecondTally,
    /// Latest instant any record carried: the ledger's clock, so a backlog of records
    /// does not make timely deliveries look late.
    latest: Instant,
    predicted_ambiguous: HashMap<SocketKey, u64>,
    list_requested: Option<SocketKey>,
    list_answered: bool,
    /// Other processes run the rest of the bots: their operators may be listed too.
    sharded: bool,
}

/// Counts of the current second.
#[derive(Debug, Default, Clone, Copy)]
pub struct SecondTally {
    /// Messages sent.
    pub sent: u64,
    /// Deliveries matched.
    pub delivered: u64,
    /// Violations found.
    pub violations: u64,
}

impl Ledger {
    /// An empty ledger for a run that started at `start`.
    pub fn new(start: Instant) -> Self {
        Self::with_ids(start, 1)
    }

    /// A ledger whose bots number messages from `first_id` (a shard's own id space); ids
    /// outside it are other shards' and are not judged here.
    pub fn with_ids(start: Instant, first_id: MsgId) -> Self {
        Self {
            first_id,
            start,
            sockets: Vec::new(),
            operator_keys: Vec::new(),
            by_sid: HashMap::new(),
            pending: HashMap::new(),
            settled: IdSet::default(),
            last_seen: HashMap::new(),
            last_typing: HashMap::new(),
            rate_limit_events: HashMap::new(),
            rate_limit_acks: HashMap::new(),
            predicted_rejects: HashMap::new(),
            counters: BTreeMap::new(),
            examples: BTreeMap::new(),
            histograms: PathHistograms::default(),
            connected: 0,
            second: SecondTally::default(),
            latest: start,
            predicted_ambiguous: HashMap::new(),
            list_requested: None,
            list_answered: false,
            sharded: false,
        }
    }

    /// Takes one record into account.
    pub fn apply(&mut self, record: Record) {
        if let Some(at) = record_instant(&record) {
            self.latest = self.latest.max(at);
        }
        match record {
            Record::ConnectUnfinished { .. } => self.count("connect.unfinished", 1),
            Record::ListRequested { socket } => self.list_requested = Some(socket),
            Record::Joining {
                socket,
                role,
                sid,
                operator,
                at,
            } => {
                let idx = socket as usize;
                if self.sockets.len() <= idx {
                    self.sockets.resize_with(idx + 1, || None);
                }
                self.by_sid.insert(sid.clone(), socket);
                if role.is_operator() {
                    self.operator_keys.push(socket);
                }
                self.sockets[idx] = Some(SocketInfo {
                    role,
                    sid,
                    operator,
                    joining_at: at,
                    joined_at: None,
                    left_at: None,
                    told_online: HashSet::new(),
                    announced_to: Vec::new(),
                    ended_to: Vec::new(),
                });
                self.connected += 1;
            }
            Record::Joined { socket, at } => {
                if let Some(s) = self.socket_mut(socket)
                    && s.joined_at.is_none()
                {
                    s.joined_at = Some(at);
                }
            }
            Record::ConnectFailed { .. } => self.count("connect.failed", 1),
            Record::Sent {
                socket,
                msg,
                kind,
                intended,
                at,
                predicted,
            } => {
                self.count("sent", 1);
                self.second.sent += 1;
                if at.saturating_duration_since(intended) > LATE {
                    self.count("generator.late", 1);
                }
                match predicted {
                    RatePrediction::Reject => {
                        *self.predicted_rejects.entry(socket).or_default() += 1
                    }
                    RatePrediction::Ambiguous => {
                        *self.predicted_ambiguous.entry(socket).or_default() += 1
                    }
                    RatePrediction::Accept => {}
                }
                self.pending.insert(
                    msg,
                    Entry {
                        sender: socket,
                        kind,
                        intended,
                        sent_at: at,
                        predicted,
                        acked: None,
                        received: Vec::new(),
                    },
                );
            }
            Record::TypingSent { socket, at } => {
                self.count("typing.sent", 1);
                if let Some(sid) = self.socket(socket).map(|s| s.sid.clone()) {
                    self.last_typing.insert(sid, at);
                }
            }
            Record::Received { socket, at, what } => self.received(socket, at, what),
            Record::Ack {
                socket,
                msg,
                outcome,
            } => {
                if outcome == AckOutcome::RateLimited {
                    *self.rate_limit_acks.entry(socket).or_default() += 1;
                }
                if let Some(e) = self.pending.get_mut(&msg) {
                    e.acked = Some(outcome);
                }
            }
            Record::Leaving { socket, at } => {
                if let Some(s) = self.socket_mut(socket) {
                    s.left_at.get_or_insert(at);
                }
            }
            Record::Latency {
                path,
                intended_us,
                service_us,
            } => self.histograms.record(path, intended_us, service_us),
            Record::FinalOperatorsList { socket, at, ids } => {
                self.list_answered = true;
                self.check_operators_list(socket, at, &ids);
            }
            Record::Closed {
                socket,
                at,
                unexpected,
            } => {
                let mut was_open = false;
                if let Some(s) = self.socket_mut(socket) {
                    was_open = s.left_at.is_none();
                    s.left_at.get_or_insert(at);
                    self.connected = self.connected.saturating_sub(1);
                }
                if unexpected && was_open {
                    self.violation(
                        "disconnected.unexpected",
                        None,
                        socket,
                        at,
                        "the backend closed the connection".into(),
                    );
                }
            }
        }
    }

    /// Marks this ledger as one shard's: the operators list need only include its own.
    pub fn set_sharded(&mut self) {
        self.sharded = true;
    }

    /// When the run started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Sockets currently connected.
    pub fn connected(&self) -> u64 {
        self.connected
    }

    /// The current second's tally, and a fresh one.
    pub fn take_second(&mut self) -> SecondTally {
        std::mem::take(&mut self.second)
    }

    /// Judges messages sent `SETTLE` before the latest record.
    pub fn settle_due_now(&mut self) {
        self.settle_due(self.latest);
    }

    /// Judges messages sent before `now - SETTLE`.
    pub fn settle_due(&mut self, now: Instant) {
        let due: Vec<MsgId> = self
            .pending
            .iter()
            .filter(|(_, e)| now.saturating_duration_since(e.sent_at) >= SETTLE)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.settle(id);
        }
    }

    /// Judges everything still pending and the presence bookkeeping: the end of a run.
    pub fn finish(&mut self) {
        let ids: Vec<MsgId> = self.pending.keys().copied().collect();
        for id in ids {
            self.settle(id);
        }
        self.check_presence();
        self.check_rate_limit_counts();
        if let (Some(socket), false) = (self.list_requested, self.list_answered) {
            let at = self.latest;
            self.violation(
                "presence.list_mismatch",
                None,
                socket,
                at,
                "getConnectedOperators got no answer".into(),
            );
        }
    }

    /// Every counter, violations summed, all names present.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = crate::metrics::COUNTERS
            .iter()
            .map(|&n| (n.to_owned(), self.counters.get(n).copied().unwrap_or(0)))
            .collect();
        let violations = VIOLATIONS
            .iter()
            .map(|n| self.counters.get(n).copied().unwrap_or(0))
            .sum();
        out.insert("violations".to_owned(), violations);
        out
    }

    /// Violation examples by class.
    pub fn examples(&self) -> BTreeMap<String, Vec<ViolationExample>> {
        self.examples
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    /// Messages awaiting their verdict (bounded by the send rate × `SETTLE`).
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Compares an operators list received at the end with who is online.
    pub fn check_operators_list(&mut self, socket: SocketKey, at: Instant, listed: &[u64]) {
        let online: std::collections::BTreeSet<u64> = self
            .sockets
            .iter()
            .flatten()
            .filter(|s| s.left_at.is_none() && s.joined_at.is_some())
            .filter_map(|s| s.operator.as_ref().map(|o| o.0))
            .collect();
        let got: std::collections::BTreeSet<u64> = listed.iter().copied().collect();
        let wrong = if self.sharded {
            // other shards' operators are listed too: judge the ids of this shard's own
            let own: std::collections::BTreeSet<u64> = self
                .sockets
                .iter()
                .flatten()
                .filter_map(|s| s.operator.as_ref().map(|o| o.0))
                .collect();
            got.intersection(&own)
                .copied()
                .collect::<std::collections::BTreeSet<u64>>()
                != online
        } else {
            got != online
        };
        if wrong || listed.len() != got.len() {
            let detail = format!("listed {got:?}, online {online:?}");
            self.violation("presence.list_mismatch", None, socket, at, detail);
        }
    }

    fn received(&mut self, socket: SocketKey, at: Instant, what: Observed) {
        let Some(role) = self.socket(socket).map(|s| s.role) else {
            return;
        };
        match what {
            Observed::ToClient {
                msg,
                from,
                unsanitized,
            } => {
                self.unsanitized(unsanitized, msg, socket, at);
                if role.is_operator() {
                    self.violation(
                        "leaked",
                        msg,
                        socket,
                        at,
                        "operator received incomingOperatorMessage".into(),
                    );
                    return;
                }
                self.delivery(msg, socket, at, Path::OperatorToClient, Some(&from), None);
            }
            Observed::Broadcast {
                msg,
                client,
                operator_id,
                operator_name,
                unsanitized,
            } => {
                self.unsanitized(unsanitized, msg, socket, at);
                if !role.is_operator() {
                    self.violation(
                        "leaked",
                        msg,
                        socket,
                        at,
                        format!("visitor received the broadcast to {client}"),
                    );
                    return;
                }
                self.delivery(
                    msg,
                    socket,
                    at,
                    Path::Fanout,
                    None,
                    Some((operator_id, &operator_name)),
                );
            }
            Observed::FromClient {
                msg,
                from,
                unsanitized,
            } => {
                self.unsanitized(unsanitized, msg, socket, at);
                if !role.is_operator() {
                    self.violation(
                        "leaked",
                        msg,
                        socket,
                        at,
                        format!("visitor received {from}'s message"),
                    );
                    return;
                }
                self.delivery(msg, socket, at, Path::ClientToOperators, Some(&from), None);
            }
            Observed::NewChat { client } => self.presence_chat(socket, at, role, client, true),
            Observed::ChatEnded { client } => self.presence_chat(socket, at, role, client, false),
            Observed::OperatorConnected { operator_id }
            | Observed::OperatorDisconnected { operator_id }
                if !role.is_operator() =>
            {
                self.violation(
                    "leaked",
                    None,
                    socket,
                    at,
                    format!("visitor told about operator {operator_id}"),
                );
            }
            Observed::OperatorConnected { operator_id } => {
                let fresh = self
                    .socket_mut(socket)
                    .is_some_and(|s| s.told_online.insert(operator_id));
                if !fresh {
                    self.violation(
                        "presence.duplicated",
                        None,
                        socket,
                        at,
                        format!("operatorConnected {operator_id} twice"),
                    );
                }
            }
            Observed::OperatorDisconnected { operator_id } => {
                if let Some(s) = self.socket_mut(socket) {
                    s.told_online.remove(&operator_id);
                }
            }
            Observed::ClientTyping { from } => {
                if !role.is_operator() {
                    self.violation(
                        "leaked",
                        None,
                        socket,
                        at,
                        format!("visitor received {from}'s typing"),
                    );
                } else if let Some(sent) = self.last_typing.get(&from).copied() {
                    let us = micros(at.saturating_duration_since(sent));
                    self.histograms.record(Path::Typing, us, us);
                }
            }
            Observed::OperatorTyping => {
                if role.is_operator() {
                    self.violation(
                        "leaked",
                        None,
                        socket,
                        at,
                        "operator received operatorTyping".into(),
                    );
                }
            }
            Observed::OperatorsList(_) => {}
            Observed::Malformed { event } => {
                self.violation(
                    "malformed",
                    None,
                    socket,
                    at,
                    format!("{event} payload does not parse"),
                );
            }
            Observed::RateLimited => {
                self.count("rate_limit.rejected", 1);
                *self.rate_limit_events.entry(socket).or_default() += 1;
            }
            Observed::RelayError { event, code } => {
                self.count("relay_errors", 1);
                let sid = self
                    .socket(socket)
                    .map(|s| s.sid.clone())
                    .unwrap_or_default();
                self.example("relay_errors", None, sid, at, format!("{event}: {code}"));
            }
            Observed::Other(_) => {}
        }
    }

    fn delivery(
        &mut self,
        msg: Option<MsgId>,
        socket: SocketKey,
        at: Instant,
        path: Path,
        from: Option<&str>,
        operator: Option<(u64, &str)>,
    ) {
        let Some(id) = msg else {
            self.violation(
                "misattributed",
                None,
                socket,
                at,
                "delivery without the simulator's message id".into(),
            );
            return;
        };
        if id < self.first_id || id - self.first_id >= ID_SPACE {
            self.count("foreign", 1);
            return;
        }
        let Some(entry) = self.pending.get(&id) else {
            let detail = if self.settled.contains(id - self.first_id) {
                "delivered again after it settled"
            } else {
                "unknown message id"
            };
            self.violation("duplicated", Some(id), socket, at, detail.into());
            return;
        };
        if entry.received.contains(&socket) {
            self.violation("duplicated", Some(id), socket, at, "received twice".into());
            return;
        }
        let (sender, intended, sent_at, predicted) =
            (entry.sender, entry.intended, entry.sent_at, entry.predicted);
        // judged on borrowed data: nothing is allocated on the path of a correct delivery
        let findings = judge(
            entry,
            self.socket(socket),
            self.socket(sender),
            socket,
            path,
            from,
            operator,
        );
        if let Some(e) = self.pending.get_mut(&id) {
            e.received.push(socket);
        }
        let mut fatal = false;
        for (class, detail, stop) in findings {
            self.violation(class, Some(id), socket, at, detail);
            fatal |= stop;
        }
        if fatal {
            return;
        }
        let acked_limited = self
            .pending
            .get(&id)
            .is_some_and(|e| e.acked == Some(AckOutcome::RateLimited));
        if predicted == RatePrediction::Reject || acked_limited {
            self.violation(
                "rate_limit.wrongly_delivered",
                Some(id),
                socket,
                at,
                "delivered over the rate limit".into(),
            );
            return;
        }
        // per sender→recipient order: ids grow in each sender's send order
        let last = self.last_seen.entry((sender, socket)).or_insert(0);
        let reordered = id < *last;
        *last = (*last).max(id);
        if reordered {
            self.violation(
                "reordered",
                Some(id),
                socket,
                at,
                "arrived after a later message of its sender".into(),
            );
        }
        self.histograms.record(
            path,
            micros(at.saturating_duration_since(intended)),
            micros(at.saturating_duration_since(sent_at)),
        );
        self.second.delivered += 1;
        self.count("delivered", 1);
    }

    fn settle(&mut self, id: MsgId) {
        let Some(entry) = self.pending.remove(&id) else {
            return;
        };
        self.settled.insert(id - self.first_id);
        let wrongly_rejected = entry.predicted == RatePrediction::Accept
            && entry.acked == Some(AckOutcome::RateLimited);
        if wrongly_rejected {
            let sid = self.sid(entry.sender);
            self.count("rate_limit.wrongly_rejected", 1);
            self.example(
                "rate_limit.wrongly_rejected",
                Some(id),
                sid,
                entry.sent_at,
                "rejected within budget".into(),
            );
            return;
        }
        if entry.predicted != RatePrediction::Accept
            || matches!(
                entry.acked,
                Some(AckOutcome::RateLimited | AckOutcome::Refused(_))
            )
        {
            return;
        }
        let expected = self.expected_recipients(&entry);
        self.count("expected_deliveries", expected.len() as u64);
        for socket in expected {
            if !entry.received.contains(&socket) {
                let detail = match &entry.kind {
                    SentKind::OperatorToClient { to } if self.sid(socket) == *to => {
                        "visitor never got it"
                    }
                    _ => "operator socket never got it",
                };
                self.violation("lost", Some(id), socket, entry.sent_at, detail.into());
            }
        }
    }

    /// Who must receive a message: sockets joined before it left and still there a while after.
    fn expected_recipients(&self, e: &Entry) -> Vec<SocketKey> {
        let stays = |s: &SocketInfo| s.left_at.is_none_or(|l| l >= e.sent_at + LEAVE_GRACE);
        let mut out: Vec<SocketKey> = self
            .operator_keys
            .iter()
            .filter_map(|&k| self.socket(k).map(|s| (k, s)))
            .filter(|(k, s)| {
                *k != e.sender
                    && s.role.is_operator()
                    && s.joined_at.is_some_and(|j| j <= e.sent_at)
                    && stays(s)
            })
            .map(|(k, _)| k)
            .collect();
        if let SentKind::OperatorToClient { to } = &e.kind
            && let Some(&k) = self.by_sid.get(to)
            && self
                .socket(k)
                .is_some_and(|s| s.joining_at <= e.sent_at && stays(s))
        {
            out.push(k);
        }
        out
    }

    fn presence_chat(
        &mut self,
        socket: SocketKey,
        at: Instant,
        role: BotRole,
        client: String,
        started: bool,
    ) {
        if !role.is_operator() {
            let event = if started { "newChat" } else { "chatEnded" };
            self.violation(
                "leaked",
                None,
                socket,
                at,
                format!("visitor received {event} for {client}"),
            );
            return;
        }
        let Some(&visitor) = self.by_sid.get(&client) else {
            return; // not one of this run's visitors
        };
        let fresh = self.socket_mut(visitor).is_some_and(|v| {
            let list = if started {
                &mut v.announced_to
            } else {
                &mut v.ended_to
            };
            let fresh = !list.contains(&socket);
            if fresh {
                list.push(socket);
            }
            fresh
        });
        if !fresh {
            self.violation(
                "presence.duplicated",
                None,
                socket,
                at,
                format!("announced twice: {client}"),
            );
        }
    }

    /// Every operator socket joined before a visitor's join must have got its `newChat`, and
    /// its `chatEnded` when the visitor left while the operator stayed.
    fn check_presence(&mut self) {
        let mut missed = Vec::new();
        for v in self
            .sockets
            .iter()
            .flatten()
            .filter(|v| v.role == BotRole::Client)
        {
            let announced: HashSet<SocketKey> = v.announced_to.iter().copied().collect();
            let ended: HashSet<SocketKey> = v.ended_to.iter().copied().collect();
            for &ok in &self.operator_keys {
                let Some(o) = self.socket(ok) else { continue };
                let Some(o_joined) = o.joined_at else {
                    continue;
                };
                let o_there =
                    |t: Instant| o_joined <= t && o.left_at.is_none_or(|l| l >= t + LEAVE_GRACE);
                if o_there(v.joining_at) && !announced.contains(&ok) {
                    missed.push((ok, v.joining_at, format!("no newChat for {}", v.sid)));
                }
                if let Some(left) = v.left_at
                    && o_there(left)
                    && !ended.contains(&ok)
                {
                    missed.push((ok, left, format!("no chatEnded for {}", v.sid)));
                }
            }
        }
        for (socket, at, detail) in missed {
            self.violation("presence.missed", None, socket, at, detail);
        }
    }

    /// Without acks, compare how many `rateLimitExceeded` each sender got with how many it
    /// should have: more is a wrong rejection.
    fn check_rate_limit_counts(&mut self) {
        let events = std::mem::take(&mut self.rate_limit_events);
        for (socket, got) in events {
            if self.rate_limit_acks.contains_key(&socket) {
                continue; // judged per message through acks
            }
            // ambiguous sends may rightly have been refused too
            let predicted = self.predicted_rejects.get(&socket).copied().unwrap_or(0)
                + self.predicted_ambiguous.get(&socket).copied().unwrap_or(0);
            if got > predicted {
                let sid = self.sid(socket);
                self.count("rate_limit.wrongly_rejected", got - predicted);
                self.example(
                    "rate_limit.wrongly_rejected",
                    None,
                    sid,
                    self.start,
                    format!("{got} rateLimitExceeded, {predicted} expected"),
                );
            }
        }
    }

    fn unsanitized(
        &mut self,
        unsanitized: bool,
        msg: Option<MsgId>,
        socket: SocketKey,
        at: Instant,
    ) {
        if unsanitized {
            self.violation("unsanitized", msg, socket, at, "markup delivered".into());
        }
    }

    fn violation(
        &mut self,
        class: &'static str,
        msg: Option<MsgId>,
        socket: SocketKey,
        at: Instant,
        detail: String,
    ) {
        self.count(class, 1);
        self.second.violations += 1;
        let sid = self.sid(socket);
        self.example(class, msg, sid, at, detail);
    }

    fn example(
        &mut self,
        class: &'static str,
        msg: Option<MsgId>,
        socket: String,
        at: Instant,
        detail: String,
    ) {
        let list = self.examples.entry(class).or_default();
        if list.len() < MAX_EXAMPLES {
            list.push(ViolationExample {
                message_id: msg,
                socket,
                at_s: at.saturating_duration_since(self.start).as_secs_f64(),
                detail,
            });
        }
    }

    fn count(&mut self, name: &'static str, n: u64) {
        *self.counters.entry(name).or_default() += n;
    }

    fn socket(&self, k: SocketKey) -> Option<&SocketInfo> {
        self.sockets.get(k as usize).and_then(Option::as_ref)
    }

    fn socket_mut(&mut self, k: SocketKey) -> Option<&mut SocketInfo> {
        self.sockets.get_mut(k as usize).and_then(Option::as_mut)
    }

    fn sid(&self, k: SocketKey) -> String {
        self.socket(k).map(|s| s.sid.clone()).unwrap_or_default()
    }
}

/// Settled message ids, one bit each (ids are dense from 1).
#[derive(Debug, Default)]
struct IdSet {
    words: Vec<u64>,
}

impl IdSet {
    fn insert(&mut self, id: MsgId) {
        let (w, b) = ((id / 64) as usize, id % 64);
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        self.words[w] |= 1 << b;
    }

    fn contains(&self, id: MsgId) -> bool {
        let (w, b) = ((id / 64) as usize, id % 64);
        self.words.get(w).is_some_and(|x| x & (1 << b) != 0)
    }
}

/// What is wrong with a delivery of `entry` to `me` on `path`: (class, detail, stop counting it).
fn judge(
    entry: &Entry,
    me: Option<&SocketInfo>,
    sender: Option<&SocketInfo>,
    me_key: SocketKey,
    path: Path,
    from: Option<&str>,
    operator: Option<(u64, &str)>,
) -> Vec<(&'static str, String, bool)> {
    let mut found = Vec::new();
    if me_key == entry.sender {
        found.push(("echoed", "sent back to its sender".to_owned(), true));
        return found;
    }
    let (Some(me), Some(sender)) = (me, sender) else {
        return found;
    };
    match (&entry.kind, path) {
        (SentKind::OperatorToClient { to }, Path::OperatorToClient) if *to != me.sid => {
            found.push((
                "leaked",
                format!("message for {to} reached another visitor"),
                true,
            ));
            return found;
        }
        (SentKind::ClientToOperators, Path::OperatorToClient | Path::Fanout)
        | (SentKind::OperatorToClient { .. }, Path::ClientToOperators) => {
            found.push((
                "misattributed",
                "delivered as the wrong event".to_owned(),
                true,
            ));
            return found;
        }
        _ => {}
    }
    if let Some(f) = from
        && f != sender.sid
    {
        found.push((
            "misattributed",
            format!("from {f:?}, sender is {}", sender.sid),
            false,
        ));
    }
    if let (Some((oid, oname)), Some((sid, sname))) = (operator, &sender.operator)
        && (oid != *sid || oname != sname)
    {
        found.push((
            "misattributed",
            format!("attributed to {oid} {oname:?}, sender is {sid} {sname:?}"),
            false,
        ));
    }
    found
}

/// The instant a record carries, if any.
fn record_instant(r: &Record) -> Option<Instant> {
    match r {
        Record::Joining { at, .. }
        | Record::Joined { at, .. }
        | Record::ConnectFailed { at, .. }
        | Record::Sent { at, .. }
        | Record::TypingSent { at, .. }
        | Record::Received { at, .. }
        | Record::Leaving { at, .. }
        | Record::FinalOperatorsList { at, .. }
        | Record::Closed { at, .. } => Some(*at),
        _ => None,
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
