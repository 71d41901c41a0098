//! This node's presence maps: operators (one entry per operatorId, any number of sockets)
//! and visitors.
//!
//! Reads (`has_client`, `operators`) take a shared lock and never wait on I/O. Changes that
//! must be announced take [`LocalPresence::transition`] first and hold it until their
//! `operatorConnected`/`operatorDisconnected`/`newChat`/`chatEnded` is sent, so every
//! operator sees presence events in the order the maps changed.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{Mutex, MutexGuard};

use super::{Counts, Pending, Presence};
use crate::auth::OperatorIdentity;
use crate::protocol::OperatorInfo;

#[derive(Debug)]
struct OperatorEntry {
    name: String,
    sockets: Vec<String>,
}

#[derive(Debug, Default)]
struct Maps {
    operators: HashMap<u64, OperatorEntry>,
    operator_sockets: usize,
    clients: HashMap<String, String>,
}

/// This node's sockets at one moment, to put back into a cluster's Redis.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Operator sockets: who, and the socket id.
    pub operators: Vec<(OperatorIdentity, String)>,
    /// Visitors: socket id and name.
    pub clients: Vec<(String, String)>,
}

/// Presence gauges kept equal to the maps' sizes.
#[derive(Debug, Clone, Default)]
pub struct PresenceGauges {
    /// Distinct operators.
    pub operators: Gauge,
    /// Operator sockets.
    pub operator_sockets: Gauge,
    /// Visitors.
    pub clients: Gauge,
}

/// The presence maps of one relay node.
#[derive(Debug, Default)]
pub struct LocalPresence {
    maps: RwLock<Maps>,
    transitions: Mutex<()>,
    gauges: PresenceGauges,
}

impl LocalPresence {
    /// Empty maps reporting into `gauges`.
    pub fn new(gauges: PresenceGauges) -> Self {
        Self {
            maps: RwLock::default(),
            transitions: Mutex::new(()),
            gauges,
        }
    }

    /// Serializes presence changes with their announcements.
    pub async fn transition(&self) -> MutexGuard<'_, ()> {
        self.transitions.lock().await
    }

    /// Adds an operator socket; true when it is that operator's first.
    pub fn add_operator(&self, who: &OperatorIdentity, sid: &str) -> bool {
        let mut maps = self.write();
        let entry = maps
            .operators
            .entry(who.operator_id)
            .or_insert_with(|| OperatorEntry {
                name: who.name.clone(),
                sockets: Vec::with_capacity(1),
            });
        let first = entry.sockets.is_empty();
        entry.sockets.push(sid.to_owned());
        maps.operator_sockets += 1;
        self.publish(&maps);
        first
    }

    /// Removes an operator socket; true when it was that operator's last.
    pub fn remove_operator(&self, operator_id: u64, sid: &str) -> bool {
        let mut maps = self.write();
        let Some(entry) = maps.operators.get_mut(&operator_id) else {
            return false;
        };
        let before = entry.sockets.len();
        entry.sockets.retain(|s| s != sid);
        let removed = before - entry.sockets.len();
        let last = entry.sockets.is_empty();
        if last {
            maps.operators.remove(&operator_id);
        }
        maps.operator_sockets -= removed;
        self.publish(&maps);
        last && removed > 0
    }

    /// Adds a visitor.
    pub fn add_client(&self, sid: &str, username: &str) {
        let mut maps = self.write();
        maps.clients.insert(sid.to_owned(), username.to_owned());
        self.publish(&maps);
    }

    /// Removes a visitor; true when it was there.
    pub fn remove_client(&self, sid: &str) -> bool {
        let mut maps = self.write();
        let was = maps.clients.remove(sid).is_some();
        self.publish(&maps);
        was
    }

    /// True when `sid` is a connected visitor.
    pub fn has_client(&self, sid: &str) -> bool {
        self.read().clients.contains_key(sid)
    }

    /// Online operators, one entry each, by id.
    pub fn operators(&self) -> Vec<OperatorInfo> {
        let maps = self.read();
        let mut list: Vec<OperatorInfo> = maps
            .operators
            .iter()
            .map(|(&operator_id, e)| OperatorInfo {
                operator_id,
                name: e.name.clone(),
            })
            .collect();
        list.sort_unstable();
        list
    }

    /// How many are online on this node.
    pub fn counts(&self) -> Counts {
        let maps = self.read();
        Counts {
            operators: maps.operators.len(),
            operator_sockets: maps.operator_sockets,
            clients: maps.clients.len(),
        }
    }

    /// Every operator socket and visitor of this node.
    pub fn snapshot(&self) -> Snapshot {
        let maps = self.read();
        let operators = maps
            .operators
            .iter()
            .flat_map(|(&operator_id, e)| {
                e.sockets.iter().map(move |sid| {
                    let who = OperatorIdentity {
                        operator_id,
                        name: e.name.clone(),
                    };
                    (who, sid.clone())
                })
            })
            .collect();
        let clients = maps
            .clients
            .iter()
            .map(|(sid, name)| (sid.clone(), name.clone()))
            .collect();
        Snapshot { operators, clients }
    }

    fn publish(&self, maps: &Maps) {
        self.gauges.operators.set(to_i64(maps.operators.len()));
        self.gauges
            .operator_sockets
            .set(to_i64(maps.operator_sockets));
        self.gauges.clients.set(to_i64(maps.clients.len()));
    }

    // The maps hold no invariant a panicking writer could break halfway, so a poisoned
    // lock is still safe to use.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        self.maps.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Maps> {
        self.maps.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Presence for LocalPresence {
    fn add_operator<'a>(&'a self, who: &'a OperatorIdentity, sid: &'a str) -> Pending<'a, bool> {
        Box::pin(std::future::ready(LocalPresence::add_operator(
            self, who, sid,
        )))
    }

    fn remove_operator<'a>(&'a self, who: &'a OperatorIdentity, sid: &'a str) -> Pending<'a, bool> {
        let last = LocalPresence::remove_operator(self, who.operator_id, sid);
        Box::pin(std::future::ready(last))
    }

    fn add_client<'a>(&'a self, sid: &'a str, username: &'a str) -> Pending<'a, ()> {
        LocalPresence::add_client(self, sid, username);
        Box::pin(std::future::ready(()))
    }

    fn remove_client<'a>(&'a self, sid: &'a str) -> Pending<'a, bool> {
        Box::pin(std::future::ready(LocalPresence::remove_client(self, sid)))
    }

    fn has_client<'a>(&'a self, sid: &'a str) -> Pending<'a, Option<bool>> {
        Box::pin(std::future::ready(Some(LocalPresence::has_client(
            self, sid,
        ))))
    }

    fn operators(&self) -> Pending<'_, Vec<OperatorInfo>> {
        Box::pin(std::future::ready(LocalPresence::operators(self)))
    }

    fn local(&self) -> &LocalPresence {
        self
    }

    fn cluster_counts(&self) -> Pending<'_, Option<Counts>> {
        Box::pin(std::future::ready(None))
    }
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: u64) -> OperatorIdentity {
        OperatorIdentity {
            operator_id: id,
            name: format!("op{id}"),
        }
    }

    #[test]
    fn first_and_last_socket_of_an_operator() {
        let p = LocalPresence::default();
        assert!(p.add_operator(&op(1), "a"));
        assert!(
            !p.add_operator(&op(1), "b"),
            "second tab is not a new operator"
        );
        assert_eq!((p.counts().operators, p.counts().operator_sockets), (1, 2));
        assert!(!p.remove_operator(1, "a"));
        assert!(p.remove_operator(1, "b"));
        assert!(
            !p.remove_operator(1, "b"),
            "removing twice announces nothing"
        );
        assert_eq!(p.counts(), Counts::default());
    }

    #[test]
    fn operators_list_has_one_entry_per_operator() {
        let p = LocalPresence::default();
        p.add_operator(&op(2), "x");
        p.add_operator(&op(1), "y");
        p.add_operator(&op(2), "z");
        let ids: Vec<u64> = p.operators().iter().map(|o| o.operator_id).collect();
        assert_eq!(ids, [1, 2]);
    }

    #[test]
    fn clients_and_gauges() {
        let gauges = PresenceGauges::default();
        let p = LocalPresence::new(gauges.clone());
        p.add_client("c1", "Ann");
        assert!(p.has_client("c1"));
        assert_eq!(gauges.clients.get(), 1);
        assert!(p.remove_client("c1"));
        assert!(!p.has_client("c1"));
        assert_eq!(gauges.clients.get(), 0);
    }
}
