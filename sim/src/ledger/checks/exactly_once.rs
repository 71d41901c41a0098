//! Exactly once: a second delivery of a message to one socket is a duplicate; an owed
//! delivery that never came is lost.
//!
//! Owed: every operator socket but the sender whose join was confirmed before the message
//! left and that stayed open the delivery window after it (twice the slowest delivery of
//! the messages sent around it, at most the protocol's delivery bound), and the addressed
//! visitor under the same condition. A socket that starts to close is owed nothing from
//! then on.
//!
//! A delivery missing because a connection broke is reported apart (`lost.disconnected`):
//! the recipient's connection was lost within the window after the message left, or the
//! sender's was before the backend acknowledged it. Loss on healthy sockets is `lost`.
//!
//! A message is judged the protocol's delivery bound after it left. An owed delivery
//! missing then is awaited one bound more: arriving in that time it is `delivery.late`,
//! not arriving it is `lost`.

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use relay::bounds;
use reports::model::{Counter, Violation};

use super::{Check, Cx, Delivery, Flow};
use crate::ledger::messages::Message;
use crate::ledger::registry::SocketInfo;
use crate::ledger::tally::Tally;
use crate::record::{AckOutcome, MsgId, SocketKey};

/// An owed delivery missing when its message was judged.
#[derive(Debug)]
struct Missing {
    id: MsgId,
    to: SocketKey,
    sender: SocketKey,
    sent_at: Instant,
    what: &'static str,
}

/// Duplicates, losses and late deliveries.
#[derive(Debug, Default)]
pub struct ExactlyOnce {
    /// Owed deliveries missing at judging, oldest first.
    missing: VecDeque<Missing>,
    /// Those still awaited.
    awaited: HashSet<(MsgId, SocketKey)>,
}

impl ExactlyOnce {
    /// A delivery of message `id` to `to` arrived after the message was judged: true when
    /// it was owed and awaited (it is late, and no longer lost).
    pub fn arrived_late(&mut self, id: MsgId, to: SocketKey) -> bool {
        self.awaited.remove(&(id, to))
    }

    /// Counts as lost what is still awaited a delivery bound after its message was judged
    /// (everything, when `all`).
    fn judge_missing(&mut self, cx: &mut Cx<'_>, all: bool) {
        while let Some(m) = self
            .missing
            .pop_front_if(|m| all || cx.now >= m.sent_at + bounds::DELIVERY * 2)
        {
            if self.awaited.remove(&(m.id, m.to)) {
                let from = cx.registry.sid(m.sender);
                cx.tally.violation(
                    Violation::Lost,
                    Some(m.id),
                    cx.registry.sid(m.to),
                    m.sent_at,
                    || format!("{} (sent by {from})", m.what),
                );
            }
        }
    }
}

impl Check for ExactlyOnce {
    fn delivery(&mut self, d: &Delivery<'_>, tally: &mut Tally) -> Flow {
        if d.message.received.contains(&d.to) {
            tally.violation(
                Violation::Duplicated,
                Some(d.id),
                &d.to_info.sid,
                d.at,
                || "received twice".into(),
            );
            return Flow::Reject;
        }
        Flow::Continue
    }

    fn settled(&mut self, m: &mut Message, cx: &mut Cx<'_>) {
        if !m.owed {
            return;
        }
        let moment = cx.evidence.delivery_window(m.sent_at);
        // the moment's window, or a slow link's own when it is wider
        let window = |s: &SocketInfo| moment.max(s.link_window(m.sent_at));
        // the connection that carried the message broke before the backend confirmed it:
        // what it did not pass on went down with the connection
        let sender_cut = !matches!(m.ack, Some((AckOutcome::Accepted, _)))
            && cx.registry.get(m.sender).is_some_and(|s| {
                let grace = window(s);
                cut_within(s, m.sent_at, grace) || silent(s, m.sent_at, grace)
            });
        let mut missing = |tally: &mut Tally, to: SocketKey, what: &'static str| {
            if sender_cut {
                tally.count(Counter::LostDisconnected, 1);
            } else {
                self.awaited.insert((m.id, to));
                self.missing.push_back(Missing {
                    id: m.id,
                    to,
                    sender: m.sender,
                    sent_at: m.sent_at,
                    what,
                });
            }
        };
        let mut owed = 0;
        for (k, s) in cx.registry.operators() {
            if k == m.sender {
                continue;
            }
            let got = m.received.contains(&k);
            let grace = window(s);
            if s.owed_at(m.sent_at, grace) {
                owed += 1;
                if !got {
                    missing(cx.tally, k, "operator socket never got it");
                }
            } else if !got
                && s.joined.is_some_and(|j| j < m.sent_at)
                && (cut_within(s, m.sent_at, grace) || silent(s, m.sent_at, grace))
            {
                cx.tally.count(Counter::LostDisconnected, 1);
            }
        }
        let visitor = m
            .to()
            .and_then(|to| cx.registry.by_sid(to))
            .and_then(|k| cx.registry.get(k).map(|v| (k, v)));
        if let Some((k, v)) = visitor
            && !v.refused
            && v.joining <= m.sent_at
        {
            let grace = window(v);
            if v.stays(m.sent_at, grace) {
                owed += 1;
                if !m.received.contains(&k) {
                    missing(cx.tally, k, "visitor never got it");
                }
            } else if !m.received.contains(&k)
                && (cut_within(v, m.sent_at, grace) || silent(v, m.sent_at, grace))
            {
                cx.tally.count(Counter::LostDisconnected, 1);
            }
        }
        cx.tally.count(Counter::ExpectedDeliveries, owed);
    }

    fn tick(&mut self, cx: &mut Cx<'_>) {
        self.judge_missing(cx, false);
    }

    fn finish(&mut self, cx: &mut Cx<'_>) {
        self.judge_missing(cx, true);
    }
}

/// True when the backend (or a fault) closed `s` after `t`, but no later than `grace` after.
fn cut_within(s: &SocketInfo, t: std::time::Instant, grace: std::time::Duration) -> bool {
    s.closed_by_server && s.leaving.is_some_and(|l| l >= t && l < t + grace)
}

/// True when the fault proxy broke `s`'s transport and nothing reached it after a point
/// before `t + grace`, though the bot found out only after `t`: a connection reset, cut
/// mid-frame or held half-open did not carry what came after it went quiet.
fn silent(s: &SocketInfo, t: std::time::Instant, grace: std::time::Duration) -> bool {
    s.closed_by_server
        && s.silent_since.is_some_and(|q| q < t + grace)
        && s.leaving.is_some_and(|l| l >= t)
}
