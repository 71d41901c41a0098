//! The cluster's presence in Redis: one entry per operatorId with its sockets per node, the
//! visitors by node, and each node's heartbeat. Every change is one Lua script, so "first
//! socket" and "last socket" are decided atomically across nodes.
//!
//! Keys (prefix `p`): `p:ops` (hash operatorId → name), `p:op:<id>` (set of `node/sid`),
//! `p:clients` (hash sid → node), `p:node:<node>` (set of `o/<id>/<sid>` and `c/<sid>`: what
//! to remove when that node dies), `p:nodes` (set), `p:alive:<node>` (expires unless renewed),
//! `p:opsockets` (count).

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{Counts, LocalPresence, Pending, Presence, PresenceGauges};
use crate::auth::OperatorIdentity;
use crate::cluster::Link;
use crate::protocol::OperatorInfo;

/// A node whose heartbeat is older than this is dead: survivors remove its sockets.
pub const NODE_TTL: Duration = Duration::from_secs(3);

static ADD_OPERATOR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SADD', KEYS[2], ARGV[3]) == 0 then return 0 end
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('INCR', KEYS[4])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('SCARD', KEYS[2]) == 1 then return 1 end
return 0",
    )
});

static REMOVE_OPERATOR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('SREM', KEYS[3], ARGV[3])
if redis.call('SREM', KEYS[2], ARGV[2]) == 0 then return 0 end
redis.call('DECR', KEYS[4])
if redis.call('SCARD', KEYS[2]) == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0",
    )
});

static ADD_CLIENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], 'c/' .. ARGV[1])
return 1",
    )
});

static REMOVE_CLIENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('SREM', KEYS[2], 'c/' .. ARGV[1])
return redis.call('HDEL', KEYS[1], ARGV[1])",
    )
});

/// Removes a dead node's sockets (unless it came back) and returns what departed with it,
/// as flat triples: `o, operatorId, name` (its last socket) or `c, sid, ""`.
static REAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p, node = ARGV[1], ARGV[2]
if redis.call('EXISTS', p .. ':alive:' .. node) == 1 then return {} end
local out = {}
for _, m in ipairs(redis.call('SMEMBERS', p .. ':node:' .. node)) do
  if string.sub(m, 1, 1) == 'o' then
    local rest = string.sub(m, 3)
    local slash = string.find(rest, '/', 1, true)
    local id, sid = string.sub(rest, 1, slash - 1), string.sub(rest, slash + 1)
    if redis.call('SREM', p .. ':op:' .. id, node .. '/' .. sid) == 1 then
      redis.call('DECR', p .. ':opsockets')
      if redis.call('SCARD', p .. ':op:' .. id) == 0 then
        local name = redis.call('HGET', p .. ':ops', id) or ''
        redis.call('HDEL', p .. ':ops', id)
        table.insert(out, 'o'); table.insert(out, id); table.insert(out, name)
      end
    end
  else
    local sid = string.sub(m, 3)
    if redis.call('HDEL', p .. ':clients', sid) == 1 then
      table.insert(out, 'c'); table.insert(out, sid); table.insert(out, '')
    end
  end
end
redis.call('DEL', p .. ':node:' .. node)
redis.call('SREM', KEYS[1], node)
return out",
    )
});

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
}

impl RedisPresence {
    /// Presence over `link`, this node's maps reporting into `gauges`.
    pub fn new(gauges: PresenceGauges, link: Link) -> Self {
        Self {
            local: LocalPresence::new(gauges),
            link,
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

    /// Puts every socket of this node back into Redis (after Redis lost them), announcing
    /// nothing: the sockets never left.
    ///
    /// # Errors
    /// Redis did not answer.
    pub async fn resync(&self) -> redis::RedisResult<usize> {
        let here = self.local.snapshot();
        let n = here.operators.len() + here.clients.len();
        for (who, sid) in &here.operators {
            self.redis_add_operator(who, sid).await?;
        }
        for (sid, _) in &here.clients {
            self.redis_add_client(sid).await?;
        }
        Ok(n)
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
    fn add_operator<'a>(&'a self, who: &'a OperatorIdentity, sid: &'a str) -> Pending<'a, bool> {
        Box::pin(async move {
            let first_here = self.local.add_operator(who, sid);
            if !self.up() {
                return first_here;
            }
            match self.redis_add_operator(who, sid).await {
                Ok(first) => first,
                Err(e) => {
                    self.failed(&e);
                    first_here
                }
            }
        })
    }

    fn remove_operator<'a>(&'a self, who: &'a OperatorIdentity, sid: &'a str) -> Pending<'a, bool> {
        Box::pin(async move {
            let last_here = self.local.remove_operator(who.operator_id, sid);
            if !self.up() {
                return last_here;
            }
            let id = who.operator_id.to_string();
            let result = REMOVE_OPERATOR
                .key(self.link.key("ops"))
                .key(self.link.key(&format!("op:{id}")))
                .key(self.node_key())
                .key(self.link.key("opsockets"))
                .arg(&id)
                .arg(format!("{}/{sid}", self.link.node))
                .arg(format!("o/{id}/{sid}"))
                .invoke_async::<bool>(&mut self.link.conn.clone())
                .await;
            result.unwrap_or_else(|e| {
                self.failed(&e);
                last_here
            })
        })
    }

    fn add_client<'a>(&'a self, sid: &'a str, username: &'a str) -> Pending<'a, ()> {
        Box::pin(async move {
            self.local.add_client(sid, username);
            if self.up()
                && let Err(e) = self.redis_add_client(sid).await
            {
                self.failed(&e);
            }
        })
    }

    fn remove_client<'a>(&'a self, sid: &'a str) -> Pending<'a, bool> {
        Box::pin(async move {
            let was_here = self.local.remove_client(sid);
            if !self.up() {
                return was_here;
            }
            let result = REMOVE_CLIENT
                .key(self.link.key("clients"))
                .key(self.node_key())
                .arg(sid)
                .invoke_async::<bool>(&mut self.link.conn.clone())
                .await;
            // a visitor of this node is announced by this node, even if Redis lost it
            result.map(|was| was || was_here).unwrap_or_else(|e| {
                self.failed(&e);
                was_here
            })
        })
    }

    fn has_client<'a>(&'a self, sid: &'a str) -> Pending<'a, bool> {
        Box::pin(async move {
            if self.local.has_client(sid) {
                return true;
            }
            if !self.up() {
                return false;
            }
            let result = redis::cmd("HEXISTS")
                .arg(self.link.key("clients"))
                .arg(sid)
                .query_async::<bool>(&mut self.link.conn.clone())
                .await;
            result.unwrap_or_else(|e| {
                self.failed(&e);
                false
            })
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
