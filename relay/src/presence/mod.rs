//! Who is online, behind one trait: this node's maps alone, or the whole cluster's in Redis.

pub mod local;
mod outage;
pub mod redis;
mod scripts;

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

pub use local::{LocalPresence, PresenceGauges};

use crate::auth::OperatorIdentity;
use crate::protocol::OperatorInfo;

/// A presence answer still on its way (from Redis, for a cluster).
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How many are online.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Distinct operators.
    pub operators: usize,
    /// Operator sockets (tabs).
    pub operator_sockets: usize,
    /// Visitors.
    pub clients: usize,
}

/// Operators and visitors online, as every node of a cluster must see them.
///
/// "First" and "last" are decided where every node agrees (Redis, for a cluster), so an
/// operator's arrival and departure are each announced once, whichever nodes its tabs use.
pub trait Presence: Send + Sync {
    /// Adds an operator socket; true when it is that operator's first.
    fn add_operator<'a>(&'a self, who: &'a OperatorIdentity, sid: &'a str) -> Pending<'a, bool>;
    /// Removes an operator socket; true when it was that operator's last.
    fn remove_operator<'a>(&'a self, who: &'a OperatorIdentity, sid: &'a str) -> Pending<'a, bool>;
    /// Adds a visitor.
    fn add_client<'a>(&'a self, sid: &'a str, username: &'a str) -> Pending<'a, ()>;
    /// Removes a visitor; true when it was there.
    fn remove_client<'a>(&'a self, sid: &'a str) -> Pending<'a, bool>;
    /// Whether `sid` is a connected visitor, on any node; `None` when the cluster cannot
    /// tell now (Redis away, or the cluster's presence not yet whole after it returned):
    /// then the visitor may well be there, and a reply must not be refused.
    fn has_client<'a>(&'a self, sid: &'a str) -> Pending<'a, Option<bool>>;
    /// Online operators, one entry each, by id.
    fn operators(&self) -> Pending<'_, Vec<OperatorInfo>>;
    /// This node's own maps: its counts, and the lock that orders its announcements.
    fn local(&self) -> &LocalPresence;
    /// The whole cluster's counts; `None` on a single node or while Redis is unreachable.
    fn cluster_counts(&self) -> Pending<'_, Option<Counts>>;
}
