//! The operators list: the answer to `getConnectedOperators` asked at the end of the run
//! names every operator online, once.

use std::collections::BTreeSet;
use std::time::Instant;

use reports::model::Violation;

use super::{Check, Cx};
use crate::record::{Record, SocketKey};

/// The final `connectedOperatorsList`.
#[derive(Debug)]
pub struct OperatorsList {
    sharded: bool,
    requested: Option<(SocketKey, Instant)>,
    answered: bool,
}

impl OperatorsList {
    /// For a run whose other shards' operators may appear in the list (`sharded`).
    pub fn new(sharded: bool) -> Self {
        Self {
            sharded,
            requested: None,
            answered: false,
        }
    }

    fn check_list(&mut self, socket: SocketKey, at: Instant, listed: &[u64], cx: &mut Cx<'_>) {
        let mut online = BTreeSet::new();
        let mut own = BTreeSet::new();
        for (id, tabs) in cx.registry.tabs() {
            own.insert(id);
            if tabs
                .iter()
                .filter_map(|k| cx.registry.get(*k))
                .any(|t| t.online())
            {
                online.insert(id);
            }
        }
        let got: BTreeSet<u64> = listed.iter().copied().collect();
        let judged: BTreeSet<u64> = if self.sharded {
            // other shards' operators are listed too: judge this shard's own
            got.intersection(&own).copied().collect()
        } else {
            got.clone()
        };
        if judged != online || listed.len() != got.len() {
            let sid = cx.registry.sid(socket);
            let n = listed.len();
            cx.tally
                .violation(Violation::PresenceListMismatch, None, sid, at, || {
                    format!("listed {got:?} ({n} entries), online {online:?}")
                });
        }
    }
}

impl Check for OperatorsList {
    fn record(&mut self, record: &Record, cx: &mut Cx<'_>) {
        match record {
            Record::ListRequested { socket, at } => self.requested = Some((*socket, *at)),
            Record::FinalOperatorsList { socket, at, ids } => {
                self.answered = true;
                self.check_list(*socket, *at, ids, cx);
            }
            _ => {}
        }
    }

    fn finish(&mut self, cx: &mut Cx<'_>) {
        if let (Some((socket, at)), false) = (self.requested, self.answered) {
            let sid = cx.registry.sid(socket);
            cx.tally
                .violation(Violation::PresenceListMismatch, None, sid, at, || {
                    "getConnectedOperators got no answer".into()
                });
        }
    }
}
