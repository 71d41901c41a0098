//! The ledger: every record of a run comes here. It keeps the sockets ([`registry`]), the
//! messages in flight ([`messages`]) and what the run shows of the target's speed
//! ([`evidence`]), measures latency, and hands each record, delivery and settled message
//! to the [`checks`], which count what they find in the [`tally`].
//!
//! Messages stay until they settle (the protocol's delivery bound after they left, or the
//! end of the run), then they are judged and leave: a long soak does not grow.

mod bits;
pub mod checks;
pub mod evidence;
pub mod messages;
pub mod registry;
pub mod tally;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use reports::model::{Counter, Violation, ViolationExample};

use crate::metrics::{Path, PathHistograms, micros};
use crate::record::{MsgId, Observed, Record, SocketKey};
use checks::{Checks, Cx, Delivery, Flow};
use evidence::{Evidence, SETTLE_AFTER};
use messages::{Message, MessageBook};
use registry::Registry;
use tally::{SecondTally, Tally};

pub use messages::ID_SPACE;

/// A send leaving this much after its intended instant counts as `generator.late`.
pub const LATE: Duration = Duration::from_millis(10);

/// The checks' shared state and findings.
#[derive(Debug)]
pub struct Ledger {
    start: Instant,
    /// The latest instant any record carried: the ledger's clock, so a backlog of records
    /// cannot make timely deliveries look late.
    latest: Instant,
    registry: Registry,
    book: MessageBook,
    evidence: Evidence,
    tally: Tally,
    histograms: PathHistograms,
    checks: Checks,
    /// When each visitor last typed, and when an operator last typed to each visitor.
    typing_from: HashMap<SocketKey, Instant>,
    typing_to: HashMap<SocketKey, Instant>,
    /// The steady part of sending, measured apart.
    steady: Option<Box<Steady>>,
}

/// The steady part of sending: the sends intended from `from` to `to` (the ramp left out),
/// the lag of those sends and the latency of their deliveries, whenever they arrive.
#[derive(Debug)]
struct Steady {
    from: Instant,
    to: Instant,
    histograms: PathHistograms,
}

impl Steady {
    fn holds(&self, intended: Instant) -> bool {
        self.from <= intended && intended < self.to
    }
}

impl Ledger {
    /// A ledger for a run that started at `start`, whose bots number messages from
    /// `first_id`, against a budget of `rate_limit` messages per minute; `sharded` when
    /// other processes run the rest of the bots.
    pub fn new(start: Instant, first_id: MsgId, rate_limit: u32, sharded: bool) -> Self {
        Self {
            start,
            latest: start,
            registry: Registry::default(),
            book: MessageBook::new(first_id),
            evidence: Evidence::new(start),
            tally: Tally::new(start),
            histograms: PathHistograms::default(),
            checks: Checks::new(rate_limit, sharded),
            typing_from: HashMap::new(),
            typing_to: HashMap::new(),
            steady: None,
        }
    }

    /// Measures the sends intended from `from` to `to` apart too: the steady part of
    /// sending.
    pub fn measure_steady(&mut self, from: Instant, to: Instant) {
        self.steady = Some(Box::new(Steady {
            from,
            to,
            histograms: PathHistograms::default(),
        }));
    }

    /// The steady part of sending: from, to, and its histograms.
    pub fn steady(&self) -> Option<(Instant, Instant, &PathHistograms)> {
        self.steady.as_ref().map(|s| (s.from, s.to, &s.histograms))
    }

    /// Takes one record into account.
    pub fn apply(&mut self, record: Record) {
        if let Some(at) = record.instant() {
            self.latest = self.latest.max(at);
        }
        self.registry.apply(&record, &mut self.tally);
        match &record {
            Record::Sent {
                socket,
                msg,
                kind,
                intended,
                at,
            } => {
                self.tally.count(Counter::Sent, 1);
                let lag = at.saturating_duration_since(*intended);
                if lag > LATE {
                    self.tally.count(Counter::GeneratorLate, 1);
                }
                self.histograms.record_lag(micros(lag));
                if let Some(s) = self.steady.as_mut().filter(|s| s.holds(*intended)) {
                    s.histograms.record_lag(micros(lag));
                }
                self.evidence.lag(*intended, lag);
                self.book
                    .insert(Message::new(*msg, *socket, kind.clone(), *intended, *at));
            }
            Record::SendFailed { msg, .. } => {
                self.tally.count(Counter::SendFailed, 1);
                self.book.take(*msg);
            }
            Record::TypingSent { socket, to, at } => {
                self.tally.count(Counter::TypingSent, 1);
                match to.as_deref().and_then(|to| self.registry.by_sid(to)) {
                    Some(visitor) => self.typing_to.insert(visitor, *at),
                    None => self.typing_from.insert(*socket, *at),
                };
            }
            Record::Ack {
                msg, outcome, at, ..
            } => {
                if let Some(m) = self.book.get_mut(*msg) {
                    self.evidence
                        .message(m.sent_at, at.saturating_duration_since(m.sent_at));
                    m.ack = Some((outcome.clone(), *at));
                }
            }
            Record::Received { socket, at, what } => self.received(*socket, *at, what),
            Record::Latency {
                path,
                intended_us,
                service_us,
            } => self.histograms.record(*path, *intended_us, *service_us),
            _ => {}
        }
        self.each_check(|check, cx| check.record(&record, cx));
    }

    /// Calls `f` with every check, in judging order, and what checks may see.
    fn each_check(&mut self, mut f: impl FnMut(&mut dyn checks::Check, &mut Cx<'_>)) {
        let Self {
            registry,
            evidence,
            tally,
            histograms,
            checks,
            latest,
            ..
        } = self;
        let mut cx = Cx {
            registry,
            evidence,
            tally,
            histograms,
            now: *latest,
        };
        for check in checks.all() {
            f(check, &mut cx);
        }
    }

    fn received(&mut self, socket: SocketKey, at: Instant, what: &Observed) {
        let path = match what {
            Observed::ToClient { msg, .. } => (Path::OperatorToClient, *msg),
            Observed::Broadcast { msg, .. } => (Path::Fanout, *msg),
            Observed::FromClient { msg, .. } => (Path::ClientToOperators, *msg),
            Observed::ClientTyping { from } => {
                let sent = self
                    .registry
                    .by_sid(from)
                    .and_then(|v| self.typing_from.get(&v));
                self.typing_latency(sent.copied(), at);
                return;
            }
            Observed::OperatorTyping => {
                self.typing_latency(self.typing_to.get(&socket).copied(), at);
                return;
            }
            _ => return,
        };
        self.delivery(socket, at, what, path);
    }

    fn typing_latency(&mut self, sent: Option<Instant>, at: Instant) {
        if let Some(sent) = sent.filter(|s| *s <= at) {
            let us = micros(at - sent);
            self.histograms.record(Path::Typing, us, us);
        }
    }

    fn delivery(
        &mut self,
        to: SocketKey,
        at: Instant,
        what: &Observed,
        (path, msg): (Path, Option<MsgId>),
    ) {
        let Some(to_info) = self.registry.get(to) else {
            return;
        };
        let Some(id) = msg else {
            self.tally
                .violation(Violation::Misattributed, None, &to_info.sid, at, || {
                    "a delivery without the simulator's message id".into()
                });
            return;
        };
        if !self.book.is_own(id) {
            self.tally.count(Counter::Foreign, 1);
            return;
        }
        let Some(message) = self.book.get(id) else {
            if self.book.is_settled(id) {
                let awaited = self.checks.exactly_once.arrived_late(id, to);
                self.tally
                    .violation(Violation::DeliveryLate, Some(id), &to_info.sid, at, || {
                        if awaited {
                            format!(
                                "owed, and came after the protocol's delivery bound ({} s)",
                                SETTLE_AFTER.as_secs()
                            )
                        } else {
                            "came after its message was judged: a repeat, or an owed one \
                             more than twice the delivery bound late (then counted lost too)"
                                .into()
                        }
                    });
            } else {
                self.tally
                    .violation(Violation::Duplicated, Some(id), &to_info.sid, at, || {
                        "a message id that was never sent".into()
                    });
            }
            return;
        };
        let d = Delivery {
            id,
            message,
            to,
            to_info,
            sender: self.registry.get(message.sender),
            what,
            path,
            at,
        };
        let c = &mut self.checks;
        let judges: [&mut dyn checks::Check; 5] = [
            &mut c.exactly_once,
            &mut c.sanitizing,
            &mut c.leaks,
            &mut c.attribution,
            &mut c.order,
        ];
        let mut flow = Flow::Continue;
        for judge in judges {
            flow = judge.delivery(&d, &mut self.tally);
            if flow != Flow::Continue {
                break;
            }
        }
        let (intended, sent_at) = (message.intended, message.sent_at);
        let (sender_node, to_node) = (d.sender.map(|s| s.node), to_info.node);
        if flow == Flow::Reject {
            return;
        }
        if let Some(m) = self.book.get_mut(id) {
            m.received.push(to);
        }
        if flow == Flow::Continue {
            let service = at.saturating_duration_since(sent_at);
            let (intended_us, service_us) = (
                micros(at.saturating_duration_since(intended)),
                micros(service),
            );
            self.histograms.record(path, intended_us, service_us);
            if let Some(s) = self.steady.as_mut().filter(|s| s.holds(intended)) {
                s.histograms.record(path, intended_us, service_us);
            }
            if self.registry.spans_nodes()
                && let Some(from) = sender_node
            {
                let across = if from == to_node {
                    Path::SameNode
                } else {
                    Path::CrossNode
                };
                self.histograms.record(across, intended_us, service_us);
            }
            self.evidence.message(sent_at, service);
            self.registry.delivered(to, at, service);
            self.tally.count(Counter::Delivered, 1);
        }
    }

    fn settle(&mut self, id: MsgId) {
        let Some(mut m) = self.book.take(id) else {
            return;
        };
        self.each_check(|check, cx| check.settled(&mut m, cx));
    }

    /// Judges the messages that left the protocol's delivery bound before the latest
    /// record, and what else has waited long enough.
    pub fn settle_due_now(&mut self) {
        for id in self.book.due(self.latest, SETTLE_AFTER) {
            self.settle(id);
        }
        let book = &self.book;
        self.checks.order.prune(|id| book.is_pending(id));
        self.each_check(|check, cx| check.tick(cx));
    }

    /// Judges everything still pending, then what only the whole run shows: the end of a run.
    pub fn finish(&mut self) {
        for id in self.book.all() {
            self.settle(id);
        }
        self.each_check(|check, cx| check.finish(cx));
    }

    /// `chatEnded`s still owed to open operator sockets for visitors that began to leave
    /// at or after `since`.
    pub fn outstanding_chat_ended(&self, since: Instant) -> u64 {
        self.checks
            .presence
            .outstanding_chat_ended(&self.registry, since)
    }

    /// When the run started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// The latest instant any record carried.
    pub fn now(&self) -> Instant {
        self.latest
    }

    /// Sockets connected now.
    pub fn connected(&self) -> u64 {
        self.registry.connected()
    }

    /// What the run showed of the target's speed.
    pub fn evidence(&self) -> &Evidence {
        &self.evidence
    }

    /// Latency histograms.
    pub fn histograms(&self) -> &PathHistograms {
        &self.histograms
    }

    /// This second's figures, and a fresh second.
    pub fn take_second(
        &mut self,
    ) -> (SecondTally, BTreeMap<String, reports::model::SecondLatency>) {
        (self.tally.take_second(), self.histograms.take_second())
    }

    /// Every counter by name, `violations` their sum.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.tally.counters()
    }

    /// One counter.
    pub fn counter(&self, c: Counter) -> u64 {
        self.tally.counter(c)
    }

    /// Violation examples by class.
    pub fn examples(&self) -> BTreeMap<String, Vec<ViolationExample>> {
        self.tally.examples()
    }

    /// Messages awaiting their verdict (bounded by the send rate × the settle time).
    pub fn pending_len(&self) -> usize {
        self.book.count()
    }
}

#[cfg(test)]
mod tests;
