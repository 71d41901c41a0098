//! Connections: every payload parses as the protocol says, and the backend closes no
//! connection the bot still wants, unless a scheduled fault killed the node it was on or
//! the simulator's fault proxy cut it.
//! `relayError`s and faults that could not be injected are counted (with examples) here too.

use reports::model::{Counter, Violation};

use super::{Check, Cx};
use crate::record::{Observed, Record};

/// Unparseable payloads and connections the backend closed.
#[derive(Debug, Default)]
pub struct Connections;

impl Check for Connections {
    fn record(&mut self, record: &Record, cx: &mut Cx<'_>) {
        match record {
            Record::Received { socket, at, what } => {
                let sid = cx.registry.sid(*socket);
                match what {
                    Observed::Malformed { event, error } => {
                        cx.tally
                            .violation(Violation::Malformed, None, sid, *at, || {
                                format!("{event} payload does not parse: {error}")
                            });
                    }
                    Observed::RelayError { event, code } => {
                        cx.tally.count(Counter::RelayErrors, 1);
                        cx.tally
                            .example(Counter::RelayErrors.name(), None, sid, *at, || {
                                format!("{event}: {code}")
                            });
                    }
                    _ => {}
                }
            }
            Record::NetworkCut { .. } => cx.tally.count(Counter::NetworkCuts, 1),
            Record::SessionUnknown { .. } => cx.tally.count(Counter::SessionsUnknown, 1),
            Record::FaultFailed { why, at, .. } => {
                cx.tally.count(Counter::FaultsFailed, 1);
                cx.tally
                    .example(Counter::FaultsFailed.name(), None, "", *at, || why.clone());
            }
            Record::Closed { socket, at, .. } => {
                if let Some(s) = cx.registry.get(*socket)
                    && s.closed_by_server
                {
                    if cx.registry.killed_before(s.node, *at).is_some() || s.silent_since.is_some()
                    {
                        cx.tally.count(Counter::DisconnectedByFault, 1);
                        return;
                    }
                    cx.tally.violation(
                        Violation::DisconnectedUnexpected,
                        None,
                        &s.sid,
                        *at,
                        || "the backend closed the connection".into(),
                    );
                }
            }
            _ => {}
        }
    }
}
