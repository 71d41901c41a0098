//! Connections: every payload parses as the protocol says, and the backend closes no
//! connection the bot still wants, unless a scheduled fault killed the node it was on or
//! the simulator's fault proxy cut it.
//! `relayError`s are counted (with examples) here too.

use std::time::{Duration, Instant};

use reports::model::{Counter, Violation};

use super::{Check, Cx};
use crate::record::{Observed, Record};

/// How long after a node is killed its sockets' closing is put down to the kill.
pub const FAULT_WINDOW: Duration = Duration::from_secs(10);

/// Unparseable payloads and connections the backend closed.
#[derive(Debug, Default)]
pub struct Connections {
    /// Nodes killed by faults, and when.
    kills: Vec<(u32, Instant)>,
}

impl Connections {
    fn killed(&self, node: u32, at: Instant) -> bool {
        self.kills
            .iter()
            .any(|&(n, k)| n == node && k <= at && at <= k + FAULT_WINDOW)
    }
}

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
            Record::Fault {
                killed: Some(node),
                at,
            } => self.kills.push((*node, *at)),
            Record::NetworkCut { .. } => cx.tally.count(Counter::NetworkCuts, 1),
            Record::Closed { socket, at, .. } => {
                if let Some(s) = cx.registry.get(*socket)
                    && s.closed_by_server
                {
                    if self.killed(s.node, *at) || s.silent_since.is_some() {
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
