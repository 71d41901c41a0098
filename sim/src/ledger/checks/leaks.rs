//! Leaks: nothing reaches a socket that must not see it. Visitors get only their own
//! conversation (`incomingOperatorMessage` addressed to them, `operatorTyping`); operators
//! never get `incomingOperatorMessage` or `operatorTyping`.

use reports::model::Violation;

use super::{Check, Cx, Delivery, Flow};
use crate::ledger::tally::Tally;
use crate::record::{Observed, Record, SentKind};

/// Deliveries to sockets that must not see them.
#[derive(Debug, Default)]
pub struct Leaks {
    /// Visitors some operator sent a typing indicator to.
    typed_to: std::collections::HashSet<crate::record::SocketKey>,
}

impl Check for Leaks {
    fn delivery(&mut self, d: &Delivery<'_>, tally: &mut Tally) -> Flow {
        let operator = d.to_info.role.is_operator();
        let detail = match (d.what, operator) {
            (Observed::ToClient { .. }, true) => {
                "operator received incomingOperatorMessage".to_owned()
            }
            (Observed::ToClient { .. }, false) => match &d.message.kind {
                SentKind::OperatorToClient { to } if *to != d.to_info.sid => {
                    format!("message for {to} reached another visitor")
                }
                SentKind::ClientToOperators => "a visitor's message reached a visitor".to_owned(),
                SentKind::OperatorToClient { .. } => return Flow::Continue,
            },
            (Observed::Broadcast { client, .. }, false) => {
                format!("visitor received the broadcast to {client}")
            }
            (Observed::FromClient { from, .. }, false) => {
                format!("visitor received {from}'s message")
            }
            _ => return Flow::Continue,
        };
        tally.violation(Violation::Leaked, Some(d.id), &d.to_info.sid, d.at, || {
            detail
        });
        Flow::Stop
    }

    fn record(&mut self, record: &Record, cx: &mut Cx<'_>) {
        if let Record::TypingSent { to: Some(to), .. } = record
            && let Some(v) = cx.registry.by_sid(to)
        {
            self.typed_to.insert(v);
        }
        let Record::Received { socket, at, what } = record else {
            return;
        };
        let Some(me) = cx.registry.get(*socket) else {
            return;
        };
        let detail = match (what, me.role.is_operator()) {
            (Observed::NewChat { client, .. }, false) => {
                format!("visitor received newChat for {client}")
            }
            (Observed::ChatEnded { client }, false) => {
                format!("visitor received chatEnded for {client}")
            }
            (Observed::OperatorConnected { operator_id }, false)
            | (Observed::OperatorDisconnected { operator_id }, false) => {
                format!("visitor told about operator {operator_id}")
            }
            (Observed::ClientTyping { from }, false) => format!("visitor received {from}'s typing"),
            (Observed::OperatorTyping, true) => "operator received operatorTyping".to_owned(),
            (Observed::OperatorTyping, false) if !self.typed_to.contains(socket) => {
                "visitor received operatorTyping no operator sent it".to_owned()
            }
            _ => return,
        };
        cx.tally
            .violation(Violation::Leaked, None, &me.sid, *at, || detail);
    }
}
