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

/// How long after the fault proxy cut a connection a broken connection may be put down to
/// the cut: a half-open one only fails at the client's ping deadline (45 s by default).
pub const NETWORK_WINDOW: Duration = Duration::from_secs(60);

/// Unparseable payloads and connections the backend closed.
#[derive(Debug, Default)]
pub struct Connections {
    /// Nodes killed by faults, and when.
    kills: Vec<(u32, Instant)>,
    /// Cuts of the fault proxy not yet matched with a broken connection, oldest first.
    cuts: std::collections::VecDeque<Instant>,
}

impl Connections {
    fn killed(&self, node: u32, at: Instant) -> bool {
        self.kills
            .iter()
            .any(|&(n, k)| n == node && k <= at && at <= k + FAULT_WINDOW)
    }

    /// Takes the oldest cut of the proxy that can explain a connection found broken at
    /// `at`: each cut explains one broken connection within [`NETWORK_WINDOW`] (either side,
    /// for a cut noted a little after the bot saw it).
    fn cut_explains(&mut self, at: Instant) -> bool {
        while self.cuts.front().is_some_and(|c| *c + NETWORK_WINDOW < at) {
            self.cuts.pop_front();
        }
        match self.cuts.front() {
            Some(c) if at + NETWORK_WINDOW >= *c => {
                self.cuts.pop_front();
                true
            }
            _ => false,
        }
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
            Record::NetworkCut { at } => {
                cx.tally.count(Counter::NetworkCuts, 1);
                self.cuts.push_back(*at);
            }
            Record::Closed {
                socket, at, broken, ..
            } => {
                if let Some(s) = cx.registry.get(*socket)
                    && s.closed_by_server
                {
                    if self.killed(s.node, *at) || (broken.is_some() && self.cut_explains(*at)) {
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
