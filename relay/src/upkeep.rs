//! A cluster node's upkeep: its heartbeat, the probe that proves it still hears the others,
//! recovery after Redis returns or restarts, reaping dead nodes' sockets (announcing their
//! departures), and the cluster-wide gauges.

use std::sync::Arc;
use std::time::Duration;

use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use tracing::{debug, info, warn};

use crate::cluster::Link;
use crate::handlers::OPERATORS_ROOM;
use crate::metrics::Metrics;
use crate::presence::redis::{Departure, RedisPresence};
use crate::protocol::{ChatEnded, event};

/// How often a node heartbeats, probes and reaps.
pub const TICK: Duration = Duration::from_millis(500);

/// A node that has not heard its own probe for this long resubscribes.
const PROBE_SILENCE: Duration = Duration::from_secs(2);

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
    let silence_limit = u64::try_from(PROBE_SILENCE.as_millis()).unwrap_or(u64::MAX);
    // the probe is first judged once the node has been probing for longer than the limit
    let beats_before_judging = PROBE_SILENCE.as_millis() / TICK.as_millis();
    let mut beats: u128 = 0;
    loop {
        tick.tick().await;
        let lost = match presence.heartbeat().await {
            Ok(lost) => lost,
            Err(e) => {
                link.health.degrade(format!("Redis unreachable: {e}"));
                continue;
            }
        };
        beats += 1;
        if lost || !link.health.is_up() {
            match presence.resync().await {
                Ok(n) => info!(sockets = n, "cluster presence restored in Redis"),
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
        if let Err(e) = link.bus.probe().await {
            link.health.degrade(format!("Redis refused PUBLISH: {e}"));
            continue;
        }
        let silence = link.bus.probe_silence_ms();
        if silence > silence_limit && beats > beats_before_judging {
            // Redis answers commands but this node hears nothing: after a Redis restart a
            // connection can come back without its subscriptions
            warn!(
                silence_ms = silence,
                "not hearing the cluster: subscribing again"
            );
            metrics.cluster_resubscribed.inc();
            link.health
                .degrade("subscription lost: not hearing the cluster");
            if let Err(e) = link.bus.resubscribe().await {
                warn!(error = %e, "resubscribing failed");
            }
            continue;
        }
        if !link.health.is_up() && silence < silence_limit {
            link.health.recover();
        }
        if beats.is_multiple_of(2) {
            match presence.reap().await {
                Ok(departed) => announce(&io, &metrics, departed).await,
                Err(e) => debug!(error = %e, "reaping failed"),
            }
            if let Ok((nodes, counts)) = presence.cluster().await {
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
