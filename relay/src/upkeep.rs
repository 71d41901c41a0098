//! A cluster node's upkeep: its heartbeat, the probe that proves it still hears the others,
//! recovery after Redis returns or restarts (presence put back, held messages published), reaping dead nodes' sockets (announcing their
//! departures), and the cluster-wide gauges.

use std::sync::Arc;
use std::time::{Duration, Instant};

use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use tracing::{debug, info, warn};

use crate::cluster::Link;
use crate::handlers::{OPERATORS_ROOM, operator_room};
use crate::metrics::Metrics;
use crate::presence::redis::{Departure, RedisPresence};
use crate::protocol::{ChatEnded, OperatorInfo, event};

/// How often a node heartbeats and probes (so an outage ends within a few ticks of Redis
/// returning); it reaps every [`REAP_EVERY`] ticks.
pub const TICK: Duration = Duration::from_millis(100);

/// Ticks between two looks for dead nodes (0.5 s).
const REAP_EVERY: u64 = 5;

/// A node that has not heard its own probe for this long subscribes again.
const PROBE_SILENCE: Duration = Duration::from_secs(2);

/// After an outage, held messages go out once as many nodes listen as before it, or after
/// this long (a node that did not come back must not hold the others' messages forever).
const FLUSH_WAIT: Duration = Duration::from_secs(3);

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Runs until the task is dropped.
pub(crate) async fn run<A: Adapter>(
    io: SocketIo<A>,
    presence: Arc<RedisPresence>,
    link: Link,
    metrics: Arc<Metrics>,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let silent_beats = u64::try_from(PROBE_SILENCE.as_millis() / TICK.as_millis()).unwrap_or(4);
    let mut beat: u64 = 0;
    // the probe number sent when this loop last saw the node degraded
    let mut down_since: Option<u64> = None;
    // nodes alive when this node last saw the cluster whole
    let mut known_nodes: usize = 1;
    let mut holding_since: Option<Instant> = None;
    let mut settling_since: Option<Instant> = None;
    loop {
        tick.tick().await;
        beat += 1;
        if !link.health.is_up() && down_since.is_none() {
            down_since = Some(beat);
        }
        let lost = match presence.heartbeat().await {
            Ok(lost) => lost,
            Err(e) => {
                link.health.degrade(format!("Redis unreachable: {e}"));
                continue;
            }
        };
        if lost {
            // Redis forgot this node: the others' state may be missing from it for a while
            link.health.rebuilding();
        }
        if lost || down_since.is_some() {
            // Redis forgot this node (it restarted) or the node was cut off: put its sockets
            // back and subscribe again, whatever redis-rs already did by itself
            match presence.resync().await {
                Ok(n) => debug!(sockets = n, "this node's presence is in Redis again"),
                Err(e) => {
                    link.health.degrade(format!("Redis unreachable: {e}"));
                    continue;
                }
            }
            if let Err(e) = link.bus.resubscribe().await {
                link.health.degrade(format!("Redis refused SUBSCRIBE: {e}"));
                continue;
            }
        }
        if let Err(e) = link.bus.probe(beat).await {
            link.health.degrade(format!("Redis refused PUBLISH: {e}"));
            continue;
        }
        let heard = link.bus.probe_heard();
        match down_since {
            Some(since) if heard > since => {
                link.health.recover();
                down_since = None;
            }
            Some(_) => continue,
            None if beat > silent_beats && heard + silent_beats < beat => {
                // Redis answers commands but this node hears nothing: a connection can come
                // back without its subscriptions (redis-rs issues 1190 and 1148)
                warn!(heard, beat, "not hearing the cluster: subscribing again");
                metrics.cluster_resubscribed.inc();
                link.health
                    .degrade("subscription lost: not hearing the cluster");
                down_since = Some(beat);
                if let Err(e) = link.bus.resubscribe().await {
                    warn!(error = %e, "subscribing again failed");
                }
                continue;
            }
            None => {}
        }
        if presence.unsettled() {
            // operators who came or went while Redis was away: decided and announced once
            // every node has put its sockets back
            let since = *settling_since.get_or_insert_with(Instant::now);
            let synced = presence.cluster_synced().await.unwrap_or(false);
            if synced || since.elapsed() >= FLUSH_WAIT {
                match presence.settle().await {
                    Ok(changes) => announce_presence(&io, changes).await,
                    Err(e) => link.health.degrade(format!("Redis unreachable: {e}")),
                }
            }
            if presence.unsettled() {
                continue;
            }
            settling_since = None;
        }
        if link.bus.holding() {
            let since = *holding_since.get_or_insert_with(Instant::now);
            let listening = link.bus.listeners().await.map_or(0, usize::from);
            if listening >= known_nodes || since.elapsed() >= FLUSH_WAIT {
                match link.bus.flush().await {
                    Ok(n) => info!(messages = n, listening, "published what waited for Redis"),
                    Err(e) => link.health.degrade(format!("Redis refused PUBLISH: {e}")),
                }
            }
            if !link.bus.holding() {
                holding_since = None;
            }
        }
        if beat.is_multiple_of(REAP_EVERY) {
            match presence.reap().await {
                Ok(departed) => announce(&io, &metrics, departed).await,
                Err(e) => debug!(error = %e, "reaping failed"),
            }
            if let Ok((nodes, counts)) = presence.cluster().await {
                if !link.bus.holding() {
                    known_nodes = nodes;
                }
                metrics.cluster.nodes.set(to_i64(nodes));
                metrics.cluster.operators.set(to_i64(counts.operators));
                metrics
                    .cluster
                    .operator_sockets
                    .set(to_i64(counts.operator_sockets));
                metrics.cluster.clients.set(to_i64(counts.clients));
            }
        }
    }
}

/// Tells every operator but the operator's own tabs, on every node, who arrived (`true`) or
/// left while Redis was away.
async fn announce_presence<A: Adapter>(io: &SocketIo<A>, changes: Vec<(OperatorInfo, bool)>) {
    for (info, arrived) in changes {
        let name = if arrived {
            event::OPERATOR_CONNECTED
        } else {
            event::OPERATOR_DISCONNECTED
        };
        let result = io
            .to(OPERATORS_ROOM)
            .except(operator_room(info.operator_id))
            .emit(name, &info)
            .await;
        if let Err(e) = result {
            debug!(error = %e, "announcing presence failed");
        }
    }
}

/// Tells every operator, on every node, who left with a dead node.
async fn announce<A: Adapter>(io: &SocketIo<A>, metrics: &Metrics, departed: Vec<Departure>) {
    if departed.is_empty() {
        return;
    }
    info!(
        count = departed.len(),
        "announcing departures of a dead node"
    );
    for d in departed {
        metrics.cluster_reaped.inc();
        let result = match d {
            Departure::Operator(info) => {
                io.to(OPERATORS_ROOM)
                    .emit(event::OPERATOR_DISCONNECTED, &info)
                    .await
            }
            Departure::Client(sid) => {
                let ended = ChatEnded {
                    client_id: sid.as_str().into(),
                };
                io.to(OPERATORS_ROOM).emit(event::CHAT_ENDED, &ended).await
            }
        };
        if let Err(e) = result {
            debug!(error = %e, "announcing a departure failed");
        }
    }
}
