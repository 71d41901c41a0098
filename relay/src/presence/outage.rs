//! Presence changes made while Redis is away: kept in order, applied once every node has
//! put its sockets back, so "first" and "last" are still decided once for the cluster.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use crate::auth::OperatorIdentity;

/// One change that could not reach Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An operator socket joined.
    Joined(OperatorIdentity, String),
    /// An operator socket left.
    Left(OperatorIdentity, String),
    /// A visitor left.
    ClientLeft(String),
}

/// The changes waiting, oldest first.
#[derive(Debug, Default)]
pub struct Outage {
    changes: Mutex<Vec<Change>>,
}

impl Outage {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Change>> {
        self.changes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps a change for later.
    pub fn push(&self, c: Change) {
        self.lock().push(c);
    }

    /// True while changes wait.
    pub fn any(&self) -> bool {
        !self.lock().is_empty()
    }

    /// Socket ids whose joining waits.
    pub fn joining(&self) -> HashSet<String> {
        self.lock()
            .iter()
            .filter_map(|c| match c {
                Change::Joined(_, sid) => Some(sid.clone()),
                _ => None,
            })
            .collect()
    }

    /// Operator sockets that were there before the outage and left during it: Redis must
    /// see them before their departure is applied.
    pub fn left_since(&self) -> Vec<(OperatorIdentity, String)> {
        let joining = self.joining();
        self.lock()
            .iter()
            .filter_map(|c| match c {
                Change::Left(who, sid) if !joining.contains(sid) => {
                    Some((who.clone(), sid.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// Every waiting change, oldest first.
    pub fn take(&self) -> Vec<Change> {
        std::mem::take(&mut *self.lock())
    }

    /// Puts back changes not applied, before any made since.
    pub fn put_back(&self, changes: impl Iterator<Item = Change>) {
        let mut held = self.lock();
        let later = std::mem::take(&mut *held);
        held.extend(changes);
        held.extend(later);
    }
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
    fn changes_keep_their_order_when_put_back() {
        let o = Outage::default();
        o.push(Change::Joined(op(1), "a".into()));
        o.push(Change::Left(op(1), "a".into()));
        assert_eq!(o.joining(), HashSet::from(["a".to_owned()]));
        assert!(
            o.left_since().is_empty(),
            "joined and left within the outage"
        );
        let mut taken = o.take().into_iter();
        let first = taken.next().expect("first");
        o.push(Change::ClientLeft("v".into()));
        o.put_back(std::iter::once(first).chain(taken));
        let order: Vec<Change> = o.take();
        assert_eq!(
            order,
            [
                Change::Joined(op(1), "a".into()),
                Change::Left(op(1), "a".into()),
                Change::ClientLeft("v".into()),
            ]
        );
        assert!(!o.any());
    }
}
