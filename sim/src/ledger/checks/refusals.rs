//! Refusals: a request the protocol says must succeed (a valid payload within the size and
//! rate budget, to a visitor that joined and is not leaving around the send, from a socket
//! whose join with a valid token was accepted), answered with an ack error or a
//! `relayError`, is `refused`, whatever the code.
//!
//! A message's ack names the message, so its refusal is judged exactly. A `relayError`
//! names only the event: when the backend acks messages, their `relayError` is the same
//! refusal again and is not judged twice; otherwise it is matched with the visitors the
//! socket addressed shortly before. An ambiguous case (the visitor left around the send) is
//! excused. Refusals wait [`REFUSAL_SETTLE`] before their verdict, so that a visitor's
//! connection found broken only at its ping deadline can still excuse them.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use relay::bounds;
use relay::protocol::{ErrorCode, event};
use reports::model::Violation;

use super::{Check, Cx};
use crate::ledger::messages::Message;
use crate::record::{AckOutcome, Observed, Record, SentKind, SocketKey};

/// How long a refusal waits for its verdict: past any backend's ping deadline, so that a
/// visitor whose link broke silently is known to be gone by then.
pub const REFUSAL_SETTLE: Duration = Duration::from_secs(60);

/// The most recent addressed visitors kept per operator socket.
const RECENT: usize = 32;

/// Which visitor a refused request was about.
#[derive(Debug, Clone)]
enum About {
    /// Not one visitor (a join, a visitor's own event, the operators list).
    Nobody,
    /// The visitor its ack names (`None`: a visitor this process does not know).
    Exactly(Instant, Option<SocketKey>),
    /// One of the visitors the socket addressed shortly before (when, which).
    OneOf(Vec<(Instant, Option<SocketKey>)>),
}

/// A refusal awaiting its verdict.
#[derive(Debug)]
struct Refusal {
    socket: SocketKey,
    /// When the refused request left (or the refusal arrived, for a `relayError`).
    at: Instant,
    event: String,
    code: String,
    about: About,
    /// It came as an ack (the join's included), not as a `relayError`.
    acked: bool,
}

/// Valid requests refused.
#[derive(Debug, Default)]
pub struct Refusals {
    waiting: VecDeque<Refusal>,
    /// Operator sockets' latest requests naming a visitor, oldest first.
    recent: HashMap<SocketKey, VecDeque<(Instant, Option<SocketKey>)>>,
    /// The backend answers message acks: their `relayError`s repeat the ack's refusal.
    acking: bool,
}

impl Refusals {
    fn addressed(&mut self, socket: SocketKey, at: Instant, to: &str, cx: &Cx<'_>) {
        let list = self.recent.entry(socket).or_default();
        if list.len() == RECENT {
            list.pop_front();
        }
        list.push_back((at, cx.registry.by_sid(to)));
    }

    fn wait(&mut self, r: Refusal) {
        self.waiting.push_back(r);
    }

    /// Why the refusal is right or cannot be told wrong; `None` when it is a violation.
    fn excuse(r: &Refusal, cx: &Cx<'_>) -> Option<&'static str> {
        let sender = cx.registry.get(r.socket)?;
        if r.event == event::JOIN {
            // a join's refusal counts once: from its ack when the backend answered one
            return (!r.acked && sender.refused).then_some("counted from its ack");
        }
        if sender.refused {
            return Some("its join was refused (counted there)");
        }
        let named = [event::OPERATOR_MESSAGE, event::OPERATOR_TYPING].contains(&r.event.as_str());
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

    fn judge(r: &Refusal, cx: &mut Cx<'_>) {
        if Self::excuse(r, cx).is_some() {
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

    /// Judges the refusals whose wait is over (all of them when `all`).
    fn judge_due(&mut self, cx: &mut Cx<'_>, all: bool) {
        while self
            .waiting
            .front()
            .is_some_and(|r| all || cx.now >= r.at + REFUSAL_SETTLE)
        {
            if let Some(r) = self.waiting.pop_front() {
                Self::judge(&r, cx);
            }
        }
    }
}

/// The event a message was sent as.
fn message_event(m: &Message) -> &'static str {
    match m.kind {
        SentKind::OperatorToClient { .. } => event::OPERATOR_MESSAGE,
        SentKind::ClientToOperators => event::CLIENT_MESSAGE,
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
            } => self.addressed(*socket, *at, to, cx),
            Record::Sent {
                socket,
                kind: SentKind::OperatorToClient { to },
                at,
                ..
            } if !self.acking => self.addressed(*socket, *at, to, cx),
            Record::JoinRefused { socket, at, code } => self.wait(Refusal {
                socket: *socket,
                at: *at,
                event: event::JOIN.to_owned(),
                code: code.clone(),
                about: About::Nobody,
                acked: true,
            }),
            Record::Received {
                socket,
                at,
                what: Observed::RelayError { event: e, code },
            } => {
                let message =
                    [event::OPERATOR_MESSAGE, event::CLIENT_MESSAGE].contains(&e.as_str());
                if message && self.acking {
                    return; // judged from the message's own ack
                }
                let since = at.checked_sub(bounds::DELIVERY).unwrap_or(*at);
                let about = match self.recent.get(socket) {
                    Some(list) if e != event::JOIN => About::OneOf(
                        list.iter()
                            .filter(|(t, _)| *t >= since && t <= at)
                            .copied()
                            .collect(),
                    ),
                    _ => About::Nobody,
                };
                self.wait(Refusal {
                    socket: *socket,
                    at: *at,
                    event: e.clone(),
                    code: code.clone(),
                    about,
                    acked: false,
                });
            }
            Record::Leaving { socket, .. } => {
                self.recent.remove(socket);
            }
            _ => {}
        }
    }

    fn settled(&mut self, m: &mut Message, cx: &mut Cx<'_>) {
        let Some((AckOutcome::Refused(code), _)) = &m.ack else {
            return;
        };
        if !m.within_budget {
            return; // over the rate budget: refusing it is right, whatever the code
        }
        let to = m.to().map(|to| cx.registry.by_sid(to));
        self.wait(Refusal {
            socket: m.sender,
            at: m.sent_at,
            event: message_event(m).to_owned(),
            code: code.clone(),
            about: to.map_or(About::Nobody, |v| About::Exactly(m.sent_at, v)),
            acked: true,
        });
    }

    fn tick(&mut self, cx: &mut Cx<'_>) {
        self.judge_due(cx, false);
    }

    fn finish(&mut self, cx: &mut Cx<'_>) {
        self.judge_due(cx, true);
    }
}
