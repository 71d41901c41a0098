//! The checks: one module per class of rule, each behind [`Check`]. The ledger keeps the
//! shared state (sockets, messages, evidence) and routes records, deliveries and settled
//! messages to every check in a fixed order.

mod attribution;
mod connections;
mod exactly_once;
mod leaks;
mod operator_presence;
mod operators_list;
mod order;
mod presence;
mod rate_limit;
mod refusals;
mod sanitizing;

use std::time::Instant;

pub use attribution::Attribution;
pub use connections::Connections;
pub use exactly_once::ExactlyOnce;
pub use leaks::Leaks;
pub use operator_presence::OperatorPresence;
pub use operators_list::OperatorsList;
pub use order::Order;
pub use presence::Presence;
pub use rate_limit::RateLimit;
pub use refusals::{REFUSAL_SETTLE, Refusals};
pub use sanitizing::Sanitizing;

use reports::model::Violation;

use super::evidence::Evidence;
use super::messages::Message;
use super::registry::{Registry, SocketInfo};
use super::tally::Tally;
use crate::metrics::{Path, PathHistograms};
use crate::record::{MsgId, Observed, Record, SocketKey};

/// A presence event that observer `sid` got at `at`: its latency from `cause` (when that
/// came first), and, when `deadline` says when the backend had to know of its cause and how
/// long it then had, `presence.late` if it came later than that (`first`: the first such
/// announcement since the cause; a repeat is the duplicate check's business).
fn presence_event(
    cx: &mut Cx<'_>,
    sid: &str,
    at: Instant,
    cause: Option<Instant>,
    deadline: Option<(Instant, std::time::Duration)>,
    what: impl FnOnce() -> String,
) {
    if let Some(cause) = cause.filter(|c| *c <= at) {
        let d = at - cause;
        let us = crate::metrics::micros(d);
        cx.histograms.record(Path::Presence, us, us);
        cx.evidence.presence(cause, d);
    }
    if let Some((known, bound)) = deadline.filter(|(k, _)| *k <= at)
        && at - known > bound
    {
        let late = at - known;
        cx.tally
            .violation(Violation::PresenceLate, None, sid, at, || {
                format!(
                    "{} {:.1} s after its cause, past the protocol's {} s",
                    what(),
                    late.as_secs_f64(),
                    bound.as_secs()
                )
            });
    }
}

/// The receiving socket, instant and event of `record` when it is an event an
/// operator-role socket received (what visitors get is the leak check's business).
fn at_operator<'r>(record: &'r Record, cx: &Cx<'_>) -> Option<(SocketKey, Instant, &'r Observed)> {
    let Record::Received { socket, at, what } = record else {
        return None;
    };
    cx.registry
        .get(*socket)
        .is_some_and(|s| s.role.is_operator())
        .then_some((*socket, *at, what))
}

/// What a check lets happen to a delivery after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Judge it further.
    Continue,
    /// It counts as received, but is no correct delivery: judge it no further.
    Stop,
    /// It does not count at all (a duplicate).
    Reject,
}

/// One delivery of a known message, with everything a check needs to judge it.
pub struct Delivery<'a> {
    /// The message's id.
    pub id: MsgId,
    /// The message.
    pub message: &'a Message,
    /// Receiving socket.
    pub to: SocketKey,
    /// Receiving socket's details.
    pub to_info: &'a SocketInfo,
    /// Sending socket's details.
    pub sender: Option<&'a SocketInfo>,
    /// The event as received.
    pub what: &'a Observed,
    /// The event's path (which event carried it).
    pub path: Path,
    /// When it arrived.
    pub at: Instant,
}

/// What a check may read and write besides its own state.
pub struct Cx<'a> {
    /// The sockets.
    pub registry: &'a Registry,
    /// The run's evidence.
    pub evidence: &'a mut Evidence,
    /// Where findings go.
    pub tally: &'a mut Tally,
    /// Latency histograms (presence and typing are measured by the checks that see them).
    pub histograms: &'a mut PathHistograms,
    /// The ledger's clock: the latest instant any record carried.
    pub now: Instant,
}

/// One class of rules.
pub trait Check {
    /// Sees every record, after the registry has taken it into account.
    fn record(&mut self, _record: &Record, _cx: &mut Cx<'_>) {}

    /// Judges one delivery of a known message.
    fn delivery(&mut self, _d: &Delivery<'_>, _tally: &mut Tally) -> Flow {
        Flow::Continue
    }

    /// Judges a message whose deliveries are final.
    fn settled(&mut self, _m: &mut Message, _cx: &mut Cx<'_>) {}

    /// The ledger's clock moved on: judges what has waited long enough.
    fn tick(&mut self, _cx: &mut Cx<'_>) {}

    /// The run ended: judges what remains.
    fn finish(&mut self, _cx: &mut Cx<'_>) {}
}

/// Every check, in the order they judge.
#[derive(Debug)]
pub struct Checks {
    /// Duplicates and losses.
    pub exactly_once: ExactlyOnce,
    /// Markup delivered.
    pub sanitizing: Sanitizing,
    /// Deliveries to sockets that must not see them.
    pub leaks: Leaks,
    /// Echoes, wrong events, wrong identities.
    pub attribution: Attribution,
    /// Per sender → recipient order.
    pub order: Order,
    /// Deliveries over budget and refusals within it.
    pub rate_limit: RateLimit,
    /// Valid requests refused.
    pub refusals: Refusals,
    /// `newChat` and `chatEnded`.
    pub presence: Presence,
    /// `operatorConnected` and `operatorDisconnected`.
    pub operator_presence: OperatorPresence,
    /// The final operators list.
    pub operators_list: OperatorsList,
    /// Unparseable payloads and connections the backend closed.
    pub connections: Connections,
}

impl Checks {
    /// The checks of a run; `sharded`: other processes run the rest of the bots.
    pub fn new(rate_limit_per_minute: u32, sharded: bool) -> Self {
        Self {
            exactly_once: ExactlyOnce::default(),
            sanitizing: Sanitizing,
            leaks: Leaks::default(),
            attribution: Attribution,
            order: Order::default(),
            rate_limit: RateLimit::new(rate_limit_per_minute),
            refusals: Refusals::default(),
            presence: Presence::default(),
            operator_presence: OperatorPresence::default(),
            operators_list: OperatorsList::new(sharded),
            connections: Connections,
        }
    }

    /// Every check, in judging order: the rate limit settles before refusals and losses are
    /// judged, the duplicate check runs before any other looks at a delivery.
    pub fn all(&mut self) -> [&mut dyn Check; 11] {
        [
            &mut self.rate_limit,
            &mut self.refusals,
            &mut self.exactly_once,
            &mut self.sanitizing,
            &mut self.leaks,
            &mut self.attribution,
            &mut self.order,
            &mut self.presence,
            &mut self.operator_presence,
            &mut self.operators_list,
            &mut self.connections,
        ]
    }
}
