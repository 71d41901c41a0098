//! Attribution: a message comes as the right event, from its sender (`from`, or the
//! broadcast's `operatorId`/`operatorName` and `clientId`), and never back to the socket
//! that sent it.

use reports::model::Violation;

use super::{Check, Delivery, Flow};
use crate::ledger::tally::Tally;
use crate::metrics::Path;
use crate::record::{Observed, SentKind};

/// Echoes, wrong events, wrong identities.
#[derive(Debug, Default)]
pub struct Attribution;

impl Check for Attribution {
    fn delivery(&mut self, d: &Delivery<'_>, tally: &mut Tally) -> Flow {
        let sid = d.to_info.sid.as_str();
        if d.to == d.message.sender {
            tally.violation(Violation::Echoed, Some(d.id), sid, d.at, || {
                "sent back to its sender".into()
            });
            return Flow::Stop;
        }
        let wrong_event = matches!(
            (&d.message.kind, d.path),
            (
                SentKind::ClientToOperators,
                Path::OperatorToClient | Path::Fanout
            ) | (SentKind::OperatorToClient { .. }, Path::ClientToOperators)
        );
        if wrong_event {
            tally.violation(Violation::Misattributed, Some(d.id), sid, d.at, || {
                "delivered as the wrong event".into()
            });
            return Flow::Stop;
        }
        let Some(sender) = d.sender else {
            return Flow::Continue;
        };
        match d.what {
            Observed::ToClient { from, .. } | Observed::FromClient { from, .. }
                if *from != sender.sid =>
            {
                tally.violation(Violation::Misattributed, Some(d.id), sid, d.at, || {
                    format!("from {from:?}, sender is {}", sender.sid)
                });
            }
            Observed::Broadcast {
                operator_id,
                operator_name,
                client,
                ..
            } => {
                if let Some((id, name)) = &sender.operator
                    && (operator_id != id || operator_name != name)
                {
                    tally.violation(Violation::Misattributed, Some(d.id), sid, d.at, || {
                        format!(
                            "attributed to {operator_id} {operator_name:?}, sender is {id} {name:?}"
                        )
                    });
                }
                if let Some(to) = d.message.to()
                    && client != to
                {
                    tally.violation(Violation::Misattributed, Some(d.id), sid, d.at, || {
                        format!("broadcast names visitor {client}, the message went to {to}")
                    });
                }
            }
            _ => {}
        }
        Flow::Continue
    }
}
