//! The cluster's presence in Redis: one entry per operatorId with its sockets per node, the
//! visitors by node, and each node's heartbeat. Every change is one Lua script, so "first
//! socket" and "last socket" are decided atomically across nodes.
//!
//! Keys (prefix `p`): `p:ops` (hash operatorId → name), `p:op:<id>` (set of `node/sid`),
//! `p:clients` (hash sid → node), `p:node:<node>` (set of `o/<id>/<sid>` and `c/<sid>`: what
//! to remove when that node dies), `p:nodes` (set), `p:alive:<node>` (expires unless renewed),
//! `p:opsockets` (count).

use std::time::Duration;

use super::outage::{Change, Outage};
use super::scripts::{ADD_CLIENT, ADD_OPERATOR, REAP, REMOVE_CLIENT, REMOVE_OPERATOR};
use super::{Counts, LocalPresence, Pending, Presence, PresenceGauges};
use crate::auth::OperatorIdentity;
use crate::cluster::Link;
use crate::protocol::OperatorInfo;

/// A node whose heartbeat is older than this is dead: survivors remove its sockets.
pub const NODE_TTL: Duration = Duration::from_secs(3);

/// How long a node's "my sockets are back in Redis" mark lasts after an outage.
const SYNCED_TTL: Duration = Duration::from_secs(10);

fn info(who: &OperatorIdentity) -> OperatorInfo {
    OperatorInfo {
        operator_id: who.operator_id,
        name: who.name.clone(),
    }
}

/// Someone who left with a dead node, to announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Departure {
    /// An operator whose last socket was on the dead node.
    Operator(OperatorInfo),
    /// A visitor that was on the dead node.
    Client(String),
}

/// The cluster's presence, with this node's own maps beside it.
///
/// While Redis is unreachable, answers come from this node's maps: local chat goes on, and
/// [`RedisPresence::resync`] puts this node's sockets back when Redis returns.
pub struct RedisPresence {
    local: LocalPresence,
    link: Link,
    outage: Outage,
}

impl RedisPresence {
    /// Presence over `link`, this node's maps reporting into `gauges`.
    pub fn new(gauges: PresenceGauges, link: Link) -> Self {
        Self {
            local: LocalPresence::new(gauges),
            link,
            outage: Outage::default(),
        }
    }

    fn up(&self) -> bool {
        self.link.health.is_up()
    }

    fn failed(&self, e: &redis::RedisError) {
        self.link.health.degrade(format!("Redis: {e}"));
    }

    fn node_key(&self) -> String {
        self.link.key(&format!("node:{}", self.link.node))
    }

    async fn redis_add_operator(
        &self,
        who: &OperatorIdentity,
        sid: &str,
    ) -> redis::RedisResult<bool> {
        let id = who.operator_id.to_string();
        ADD_OPERATOR
            .key(self.link.key("ops"))
            .key(self.link.key(&format!("op:{id}")))
            .key(self.node_key())
            .key(self.link.key("opsockets"))
            .arg(&id)
            .arg(&who.name)
            .arg(format!("{}/{sid}", self.link.node))
            .arg(format!("o/{id}/{sid}"))
            .invoke_async(&mut self.link.conn.clone())
            .await
    }

    async fn redis_remove_operator(
        &self,
        who: &OperatorIdentity,
        sid: &str,
    ) -> redis::RedisResult<bool> {
        let id = who.operator_id.to_string();
        REMOVE_OPERATOR
            .key(self.link.key("ops"))
            .key(self.link.key(&format!("op:{id}")))
            .key(self.node_key())
            .key(self.link.key("opsockets"))
            .arg(&id)
            .arg(format!("{}/{sid}", self.link.node))
            .arg(format!("o/{id}/{sid}"))
            .invoke_async(&mut self.link.conn.clone())
            .await
    }

    async fn redis_remove_client(&self, sid: &str) -> redis::RedisResult<bool> {
        REMOVE_CLIENT
            .key(self.link.key("clients"))
            .key(self.node_key())
            .arg(sid)
            .invoke_async(&mut self.link.conn.clone())
            .await
    }

    async fn redis_add_client(&self, sid: &str) -> redis::RedisResult<()> {
        ADD_CLIENT
            .key(self.link.key("clients"))
            .key(self.node_key())
            .arg(sid)
            .arg(&self.link.node)
            .invoke_async::<()>(&mut self.link.conn.clone())
            .await
    }

    /// Renews this node's heartbeat. True when Redis had lost it (Redis restarted or
    /// flushed, or this node was silent past [`NODE_TTL`]): call [`Self::resync`].
    ///
    /// # Errors
    /// Redis did not answer.
    pub async fn heartbeat(&self) -> redis::RedisResult<bool> {
        let ttl = u64::try_from(NODE_TTL.as_millis()).unwrap_or(u64::MAX);
        let (previous,): (Option<String>,) = redis::pipe()
            .cmd("SET")
            .arg(self.link.key(&format!("alive:{}", self.link.node)))
            .arg("1")
            .arg("PX")
            .arg(ttl)
            .arg("GET")
            .cmd("SADD")
            .arg(self.link.key("nodes"))
            .arg(&self.link.node)
            .ignore()
            .query_async(&mut self.link.conn.clone())
            .await?;
        Ok(previous.is_none())
    }

    /// Puts this node's sockets as they were when Redis went away back into Redis (after
    /// Redis lost them, or missed changes), announcing nothing: the changes since wait for
    /// [`Self::settle`]. Then marks this node synced.
    ///
    /// # Errors
    /// Redis did not answer.
    pub async fn resync(&self) -> redis::RedisResult<usize> {
        let here = self.local.snapshot();
        let joining = self.outage.joining();
        let mut n = 0;
        let before = here
            .operators
            .into_iter()
            .filter(|(_, s)| !joining.contains(s))
            .chain(self.outage.left_since());
        for (who, sid) in before {
            self.redis_add_operator(&who, &sid).await?;
            n += 1;
        }
        for (sid, _) in &here.clients {
            self.redis_add_client(sid).await?;
            n += 1;
        }
        let ttl = u64::try_from(SYNCED_TTL.as_millis()).unwrap_or(u64::MAX);
        redis::cmd("SET")
            .arg(self.link.key(&format!("synced:{}", self.link.node)))
            .arg("1")
            .arg("PX")
            .arg(ttl)
            .query_async::<()>(&mut self.link.conn.clone())
            .await?;
        Ok(n)
    }

    /// True when presence changes wait for the cluster.
    pub fn unsettled(&self) -> bool {
        self.outage.any()
    }

    /// True when every node alive has put its sockets back (after an outage).
    ///
    /// # Errors
    /// Redis did not answer.
    pub async fn cluster_synced(&self) -> redis::RedisResult<bool> {
        let mut conn = self.link.conn.clone();
        let nodes: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.link.key("nodes"))
            .query_async(&mut conn)
            .await?;
        let mut pipe = redis::pipe();
        for n in &nodes {
            pipe.exists(self.link.key(&format!("synced:{n}")));
        }
        let synced: Vec<bool> = pipe.query_async(&mut conn).await?;
        Ok(synced.into_iter().all(|s| s))
    }

    /// Applies the changes made while Redis was away, in order, now that the cluster's
    /// presence is whole again; the operators whose arrival (`true`) or departure (`false`)
    /// must be announced.
    ///
    /// # Errors
    /// Redis did not answer (what was not applied stays for the next try).
    pub async fn settle(&self) -> redis::RedisResult<Vec<(OperatorInfo, bool)>> {
        let mut announce = Vec::new();
        let mut changes = self.outage.take().into_iter();
        while let Some(change) = changes.next() {
            let result = match &change {
                Change::Joined(who, sid) => self
                    .redis_add_operator(who, sid)
                    .await
                    .map(|first| first.then(|| (info(who), true))),
                Change::Left(who, sid) => self
                    .redis_remove_operator(who, sid)
                    .await
                    .map(|last| last.then(|| (info(who), false))),
                Change::ClientLeft(sid) => self.redis_remove_client(sid).await.map(|_| None),
            };
            match result {
                Ok(a) => announce.extend(a),
                Err(e) => {
                    self.outage.put_back(std::iter::once(change).chain(changes));
                    return Err(e);
                }
            }
        }
        Ok(announce)
    }

    /// Removes the sockets of every node whose heartbeat expired; what departed with them.
    /// Two survivors reaping at once remove (and so announce) each socket once.
    ///
    /// # Errors
    /// Redis did not answer.
    pub async fn reap(&self) -> redis::RedisResult<Vec<Departure>> {
        let mut conn = self.link.conn.clone();
        let nodes: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.link.key("nodes"))
            .query_async(&mut conn)
            .await?;
        let mut departed = Vec::new();
        for node in nodes.iter().filter(|n| **n != self.link.node) {
            let flat: Vec<String> = REAP
                .key(self.link.key("nodes"))
                .arg(&self.link.prefix)
                .arg(node)
                .invoke_async(&mut conn)
                .await?;
            for triple in flat.chunks_exact(3) {
                match triple[0].as_str() {
                    "o" => {
                        if let Ok(operator_id) = triple[1].parse() {
                            departed.push(Departure::Operator(OperatorInfo {
                                operator_id,
                                name: triple[2].clone(),
                            }));
                        }
                    }
                    _ => departed.push(Departure::Client(triple[1].clone())),
                }
            }
        }
        Ok(departed)
    }

    /// (nodes alive, counts) across the cluster.
    ///
    /// # Errors
    /// Redis did not answer.
    pub async fn cluster(&self) -> redis::RedisResult<(usize, Counts)> {
        let (nodes, operators, sockets, clients): (usize, usize, Option<i64>, usize) =
            redis::pipe()
                .scard(self.link.key("nodes"))
                .hlen(self.link.key("ops"))
                .get(self.link.key("opsockets"))
                .hlen(self.link.key("clients"))
                .query_async(&mut self.link.conn.clone())
                .await?;
        let counts = Counts {
            operators,
            operator_sockets: usize::try_from(sockets.unwrap_or(0)).unwrap_or(0),
            clients,
        };
        Ok((nodes, counts))
    }

    /// Takes this node out of the cluster at shutdown (its sockets have already left).
    ///
    /// # Errors
    /// Redis did not answer.
    pub async fn leave(&self) -> redis::RedisResult<()> {
        redis::pipe()
            .del(self.link.key(&format!("alive:{}", self.link.node)))
            .ignore()
            .srem(self.link.key("nodes"), &self.link.node)
            .ignore()
            .query_async::<()>(&mut self.link.conn.clone())
            .await
    }
}

impl Presence for RedisPresence {
    /// While Redis is away the change waits (and nothing is announced): "first" can only
    /// be decided once the cluster's presence is whole again.
    fn add_operator<'a>(&'a self, who: &'a OperatorIdentity, sid: &'a str) -> Pending<'a, bool> {
        Box::pin(async move {
            self.local.add_operator(who, sid);
            if self.up() {
                match self.redis_add_operator(who, sid).await {
                    Ok(first) => return first,
                    Err(e) => self.failed(&e),
                }
            }
            self.outage
                .push(Change::Joined(who.clone(), sid.to_owned()));
            false
        })
    }

    fn remove_operator<'a>(&'a self, who: &'a OperatorIdentity, sid: &'a str) -> Pending<'a, bool> {
        Box::pin(async move {
            self.local.remove_operator(who.operator_id, sid);
            if self.up() {
                match self.redis_remove_operator(who, sid).await {
                    Ok(last) => return last,
                    Err(e) => self.failed(&e),
                }
            }
            self.outage.push(Change::Left(who.clone(), sid.to_owned()));
            false
        })
    }

    fn add_client<'a>(&'a self, sid: &'a str, username: &'a str) -> Pending<'a, ()> {
        Box::pin(async move {
            // while Redis is away, resync puts it there
            self.local.add_client(sid, username);
            if self.up()
                && let Err(e) = self.redis_add_client(sid).await
            {
                self.failed(&e);
            }
        })
    }

    /// A visitor of this node is announced gone by this node, Redis or not.
    fn remove_client<'a>(&'a self, sid: &'a str) -> Pending<'a, bool> {
        Box::pin(async move {
            let was_here = self.local.remove_client(sid);
            if self.up() {
                match self.redis_remove_client(sid).await {
                    Ok(was) => return was || was_here,
                    Err(e) => self.failed(&e),
                }
            }
            self.outage.push(Change::ClientLeft(sid.to_owned()));
            was_here
        })
    }

    /// A miss is only an answer once the cluster's presence is whole: not while Redis is
    /// away, nor until every node had time to put its sockets back after it returned.
    fn has_client<'a>(&'a self, sid: &'a str) -> Pending<'a, Option<bool>> {
        Box::pin(async move {
            if self.local.has_client(sid) {
                return Some(true);
            }
            if !self.link.health.up_for(SYNCED_TTL) {
                return None;
            }
            // this node's heartbeat read with it: a Redis that restarted empty since the last
            // beat has forgotten every node's visitors, and its "no" means nothing
            let result = redis::pipe()
                .hexists(self.link.key("clients"), sid)
                .exists(self.link.key(&format!("alive:{}", self.link.node)))
                .query_async::<(bool, bool)>(&mut self.link.conn.clone())
                .await;
            match result {
                Ok((true, _)) => Some(true),
                Ok((false, remembered)) => {
                    (remembered && self.link.health.up_for(SYNCED_TTL)).then_some(false)
                }
                Err(e) => {
                    self.failed(&e);
                    None
                }
            }
        })
    }

    fn operators(&self) -> Pending<'_, Vec<OperatorInfo>> {
        Box::pin(async move {
            if !self.up() {
                return self.local.operators();
            }
            let result = redis::cmd("HGETALL")
                .arg(self.link.key("ops"))
                .query_async::<Vec<(String, String)>>(&mut self.link.conn.clone())
                .await;
            match result {
                Ok(pairs) => {
                    let mut list: Vec<OperatorInfo> = pairs
                        .into_iter()
                        .filter_map(|(id, name)| {
                            Some(OperatorInfo {
                                operator_id: id.parse().ok()?,
                                name,
                            })
                        })
                        .collect();
                    list.sort_unstable();
                    list
                }
                Err(e) => {
                    self.failed(&e);
                    self.local.operators()
                }
            }
        })
    }

    fn local(&self) -> &LocalPresence {
        &self.local
    }

    fn cluster_counts(&self) -> Pending<'_, Option<Counts>> {
        Box::pin(async move {
            if !self.up() {
                return None;
            }
            self.cluster().await.ok().map(|(_, counts)| counts)
        })
    }
}
