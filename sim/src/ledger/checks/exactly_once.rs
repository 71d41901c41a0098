//! Exactly once: a second delivery of a message to one socket is a duplicate; an owed
//! delivery that never came is lost.
//!
//! Owed: every operator socket but the sender whose join was confirmed before the message
//! left and that stayed open the leave grace after it, and the addressed visitor under the
//! same condition. A socket that starts to close is owed nothing from then on.

use reports::model::{Counter, Violation};

use super::{Check, Cx, Delivery, Flow};
use crate::ledger::messages::Message;
use crate::ledger::tally::Tally;

/// Duplicates and losses.
#[derive(Debug, Default)]
pub struct ExactlyOnce;

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
        let grace = cx.evidence.leave_grace();
        let mut owed = 0;
        for (k, s) in cx.registry.operators() {
            if k == m.sender || !s.owed_at(m.sent_at, grace) {
                continue;
            }
            owed += 1;
            if !m.received.contains(&k) {
                cx.tally
                    .violation(Violation::Lost, Some(m.id), &s.sid, m.sent_at, || {
                        "operator socket never got it".into()
                    });
            }
        }
        let visitor = m
            .to()
            .and_then(|to| cx.registry.by_sid(to))
            .and_then(|k| cx.registry.get(k).map(|v| (k, v)));
        if let Some((k, v)) = visitor
            && !v.refused
            && v.joining <= m.sent_at
            && v.stays(m.sent_at, grace)
        {
            owed += 1;
            if !m.received.contains(&k) {
                cx.tally
                    .violation(Violation::Lost, Some(m.id), &v.sid, m.sent_at, || {
                        "visitor never got it".into()
                    });
            }
        }
        cx.tally.count(Counter::ExpectedDeliveries, owed);
    }
}
