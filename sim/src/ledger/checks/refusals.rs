//! Refusals: a request the protocol says must succeed (a valid payload within the size and
//! rate budget, to a visitor that joined and is not leaving around the send, from a socket
//! whose join with a valid token was accepted), answered with an ack error or a
//! `relayError`, is `refused`, whatever the code.
//!
//! A message's ack names the message, so its refusal is judged exactly. A `relayError`
//! names only the event. When the backend acks messages, a message's `relayError` is the
//! same refusal again and is not judged twice. When it does not, the `relayError` is paired
//! with the sender's oldest message that reached nobody (a socket's events are answered in
//! order), which is then judged as refused, budget and visitor included, and owed to
//! nobody. A typing indicator's `relayError` is matched with the visitors the socket typed
//! to just before. An ambiguous case (the visitor left around the send) is excused.
//!
//! A refusal waits at least [`REFUSAL_SETTLE`], and past the ping deadline of the visitor
//! it names, before its verdict, so that a visitor whose link broke silently is known to
//! be gone by then.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use relay::bounds;
use relay::protocol::{ErrorCode, event};
use reports::model::Violation;

use super::{Check, Cx};
use crate::ledger::messages::Message;
use crate::ledger::registry::DEADLINE_SLACK;
use crate::record::{AckOutcome, Observed, Record, SentKind, SocketKey};

/// The least a refusal waits for its verdict.
pub const REFUSAL_SETTLE: Duration = Duration::from_secs(60);

/// The most recent typing targets kept per operator socket.
const RECENT: usize = 16;

/// Which visitor a refused request was about.
#[derive(Debug, Clone)]
enum About {
    /// Not one visitor (a join, a visitor's own event, the operators list).
    Nobody,
    /// The visitor its message was sent to at that instant (`None`: a visitor this
    /// process does not know).
    Exactly(Instant, Option<SocketKey>),
    /// One of the visitors the socket typed to just before.
    OneOf(Vec<(Instant, Option<SocketKey>)>),
}

/// A refusal awaiting its verdict.
#[derive(Debug)]
struct Refusal {
    socket: SocketKey,
    /// When the refused request left (or the refusal arrived, when it is not known).
    at: Instant,
    /// When it is judged.
    due: Instant,
    event: String,
    code: String,
    about: About,
    /// It came as an ack (the join's included), not as a `relayError`.
    acked: bool,
}

/// A message's `relayError` from a backend that does not ack, awaiting its message.
#[derive(Debug)]
struct Unpaired {
    at: Instant,
    event: String,
    code: String,
}

/// Valid requests refused.
#[derive(Debug, Default)]
pub struct Refusals {
    waiting: Vec<Refusal>,
    /// Operator sockets' latest typing targets, oldest first.
    recent: HashMap<SocketKey, VecDeque<(Instant, Option<SocketKey>)>>,
    /// Message `relayError`s not yet paired with their message, by sender, oldest first.
    unpaired: HashMap<SocketKey, VecDeque<Unpaired>>,
    /// The backend answers message acks: their `relayError`s repeat the ack's refusal.
    acking: bool,
}

/// True for the events bots send as messages.
fn is_message(event: &str) -> bool {
    event == event::OPERATOR_MESSAGE || event == event::CLIENT_MESSAGE
}

/// The event a message was sent as.
fn message_event(m: &Message) -> &'static str {
    match m.kind {
        SentKind::OperatorToClient { .. } => event::OPERATOR_MESSAGE,
        SentKind::ClientToOperators => event::CLIENT_MESSAGE,
    }
}

impl Refusals {
    fn typed_to(&mut self, socket: SocketKey, at: Instant, to: &str, cx: &Cx<'_>) {
        let list = self.recent.entry(socket).or_default();
        if list.len() == RECENT {
            list.pop_front();
        }
        list.push_back((at, cx.registry.by_sid(to)));
    }

    /// Queues a refusal, due once it has waited long enough for the visitors it names.
    fn wait(&mut self, mut r: Refusal, cx: &Cx<'_>) {
        let visitors: Vec<SocketKey> = match &r.about {
            About::Exactly(_, v) => v.iter().copied().collect(),
            About::OneOf(list) => list.iter().filter_map(|(_, v)| *v).collect(),
            About::Nobody => Vec::new(),
        };
        let deadline = visitors
            .iter()
            .filter_map(|v| cx.registry.get(*v))
            .map(|v| v.ping_deadline + DEADLINE_SLACK + bounds::DELIVERY)
            .fold(REFUSAL_SETTLE, Duration::max);
        r.due = r.at + deadline;
        self.waiting.push(r);
    }

    /// Why the refusal is right or cannot be told wrong; `None` when it is a violation.
    fn excuse(&self, r: &Refusal, cx: &Cx<'_>) -> Option<&'static str> {
        let sender = cx.registry.get(r.socket)?;
        if r.event == event::JOIN {
            // a join's refusal counts once: from its ack when the backend answered one
            return (!r.acked && sender.refused).then_some("counted from its ack");
        }
        if sender.refused {
            return Some("its join was refused (counted there)");
        }
        let named = r.event == event::OPERATOR_MESSAGE || r.event == event::OPERATOR_TYPING;
        if !named || r.code != ErrorCode::UnknownClient.as_str() {
            return None;
        }
        // right, or ambiguous, when the visitor was gone (or going) around the send
        let gone = |&(t, v): &(Instant, Option<SocketKey>)| {
            v.and_then(|k| cx.registry.get(k)).is_none_or(|v| {
                v.refused || v.joining > t || !v.stays(t, cx.evidence.delivery_window(t))
            })
        };
        let excused = match &r.about {
            About::Nobody => false,
            About::Exactly(t, v) => gone(&(*t, *v)),
            About::OneOf(list) => list.is_empty() || list.iter().any(gone),
        };
        excused.then_some("the visitor left around the send")
    }

    fn judge(&self, r: &Refusal, cx: &mut Cx<'_>) {
        if self.excuse(r, cx).is_some() {
            return;
        }
        let how = if r.acked { "ack" } else { "relayError" };
        let about = match &r.about {
            About::Exactly(t, Some(v)) => cx.registry.get(*v).map(|v| {
                let from = t.saturating_duration_since(v.joining).as_secs_f64();
                format!(" to {} (joined {from:.1} s before, still there)", v.sid)
            }),
            _ => None,
        };
        cx.tally.violation(
            Violation::Refused,
            None,
            cx.registry.sid(r.socket),
            r.at,
            || {
                format!(
                    "{}: {} ({how}){}",
                    r.event,
                    r.code,
                    about.unwrap_or_default()
                )
            },
        );
    }

    /// Judges the refusals whose wait is over (all of them when `all`), and, at the end,
    /// message `relayError`s no message explains.
    fn judge_due(&mut self, cx: &mut Cx<'_>, all: bool) {
        let now = cx.now;
        let (due, waiting): (Vec<Refusal>, Vec<Refusal>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|r| all || now >= r.due);
        self.waiting = waiting;
        for r in &due {
            self.judge(r, cx);
        }
        if all && !self.acking {
            for (socket, list) in std::mem::take(&mut self.unpaired) {
                for u in list {
                    let r = Refusal {
                        socket,
                        at: u.at,
                        due: u.at,
                        event: u.event,
                        code: u.code,
                        about: About::Nobody,
                        acked: false,
                    };
                    self.judge(&r, cx);
                }
            }
        }
    }

    /// The refusal of message `m`, from its ack or its paired `relayError`.
    fn refusal_of(&mut self, m: &Message) -> Option<(String, bool)> {
        if let Some((AckOutcome::Refused(code), _)) = &m.ack {
            return Some((code.clone(), true));
        }
        if self.acking || m.ack.is_some() || !m.received.is_empty() {
            return None;
        }
        // no ack and nobody reached: the sender's oldest relayError since it left is its
        let list = self.unpaired.get_mut(&m.sender)?;
        while list.front().is_some_and(|u| u.at < m.sent_at) {
            list.pop_front(); // answered before this message left: not its
        }
        let i = list.iter().position(|u| u.event == message_event(m))?;
        list.remove(i).map(|u| (u.code, false))
    }
}

impl Check for Refusals {
    fn record(&mut self, record: &Record, cx: &mut Cx<'_>) {
        match record {
            Record::Ack { .. } => self.acking = true,
            Record::TypingSent {
                socket,
                to: Some(to),
                at,
            } => self.typed_to(*socket, *at, to, cx),
            Record::JoinRefused { socket, at, code } => self.wait(
                Refusal {
                    socket: *socket,
                    at: *at,
                    due: *at,
                    event: event::JOIN.to_owned(),
                    code: code.clone(),
                    about: About::Nobody,
                    acked: true,
                },
                cx,
            ),
            Record::Received {
                socket,
                at,
                what: Observed::RelayError { event: e, code },
            } => {
                if is_message(e) {
                    if !self.acking {
                        self.unpaired
                            .entry(*socket)
                            .or_default()
                            .push_back(Unpaired {
                                at: *at,
                                event: e.clone(),
                                code: code.clone(),
                            });
                    }
                    return; // judged with its message
                }
                // a typing indicator's refusal comes back within its trip: the visitors
                // typed to in the moment before it
                let trip = (cx.evidence.delivery_window(*at) * 2).max(Duration::from_secs(1));
                let since = at.checked_sub(trip).unwrap_or(*at);
                let about = match self.recent.get(socket) {
                    Some(list) if e == event::OPERATOR_TYPING => About::OneOf(
                        list.iter()
                            .filter(|(t, _)| *t >= since && t <= at)
                            .copied()
                            .collect(),
                    ),
                    _ => About::Nobody,
                };
                let r = Refusal {
                    socket: *socket,
                    at: *at,
                    due: *at,
                    event: e.clone(),
                    code: code.clone(),
                    about,
                    acked: false,
                };
                self.wait(r, cx);
            }
            Record::Leaving { socket, .. } | Record::Closed { socket, .. } => {
                self.recent.remove(socket);
            }
            _ => {}
        }
    }

    fn settled(&mut self, m: &mut Message, cx: &mut Cx<'_>) {
        let Some((code, acked)) = self.refusal_of(m) else {
            return;
        };
        // refused: owed to nobody, whatever the verdict on the refusal
        m.owed = false;
        if !m.within_budget {
            return; // over the rate budget: refusing it is right, whatever the code
        }
        let to = m.to().map(|to| cx.registry.by_sid(to));
        let r = Refusal {
            socket: m.sender,
            at: m.sent_at,
            due: m.sent_at,
            event: message_event(m).to_owned(),
            code,
            about: to.map_or(About::Nobody, |v| About::Exactly(m.sent_at, v)),
            acked,
        };
        self.wait(r, cx);
    }

    fn tick(&mut self, cx: &mut Cx<'_>) {
        self.judge_due(cx, false);
    }

    fn finish(&mut self, cx: &mut Cx<'_>) {
        self.judge_due(cx, true);
    }
}
