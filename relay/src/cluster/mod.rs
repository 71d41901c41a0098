//! The cluster link: this node's Redis connection (for fan-out through socketioxide-redis
//! and for presence), its identity in the cluster, and its health.

pub mod bus;
pub mod health;
pub mod outbox;

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use bus::{Bus, BusError};
pub use health::Health;

use crate::metrics::Metrics;

/// Default `REDIS_STREAM_BUFFER`: cross-node messages a node may have waiting. socketioxide-redis
/// defaults to 1,024 and drops beyond it; a fan-out burst of 1,000 operators' messages
/// would overflow that in one go.
pub const DEFAULT_STREAM_BUFFER: usize = 65_536;

/// How long one Redis command may take before the node counts Redis as unreachable.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the node could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `REDIS_URL` does not parse.
    #[error("REDIS_URL {url} is not a Redis URL: {source}")]
    BadUrl {
        /// The URL, password hidden.
        url: String,
        /// What redis-rs said.
        source: redis::RedisError,
    },
    /// Redis did not answer.
    #[error("cannot reach Redis at {url} (REDIS_URL): {source}")]
    Unreachable {
        /// The URL, password hidden.
        url: String,
        /// What redis-rs said.
        source: redis::RedisError,
    },
}

/// One node's link to its cluster.
#[derive(Clone)]
pub struct Link {
    /// Commands (presence, heartbeats); shares its connection with the bus.
    pub conn: ConnectionManager,
    /// socketioxide-redis's driver.
    pub bus: Bus,
    /// This node's id in the cluster (random per start).
    pub node: String,
    /// Prefix of every key and channel.
    pub prefix: String,
    /// Up or degraded.
    pub health: Arc<Health>,
}

impl Link {
    /// Connects to `url` (RESP3 is asked for when the URL does not say), subscribes the probe.
    ///
    /// # Errors
    /// The URL is malformed or Redis does not answer within a few seconds.
    pub async fn connect(url: &str, prefix: &str, metrics: &Metrics) -> Result<Self, ClusterError> {
        let shown = redact(url);
        let resp3 = with_resp3(url);
        let client =
            redis::Client::open(resp3.as_str()).map_err(|source| ClusterError::BadUrl {
                url: shown.clone(),
                source,
            })?;
        let node = format!("{:016x}", rand::random::<u64>());
        let health = Arc::new(Health::new(metrics.cluster_degraded.clone()));
        let router = bus::Router::new(
            format!("{prefix}-probe#{node}"),
            health.clone(),
            metrics.cluster_dropped.clone(),
        );
        let pushes = router.clone();
        let config = ConnectionManagerConfig::new()
            .set_push_sender(move |push| {
                pushes.route(push);
                Ok::<(), std::convert::Infallible>(())
            })
            .set_automatic_resubscription()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|source| ClusterError::Unreachable {
                url: shown.clone(),
                source,
            })?;
        let outbox = Arc::new(outbox::Outbox::new(
            outbox::OUTBOX_BYTES,
            metrics.cluster_dropped.clone(),
            metrics.cluster_held.clone(),
        ));
        let bus = Bus::new(conn.clone(), router, health.clone(), outbox);
        bus.resubscribe()
            .await
            .map_err(|source| ClusterError::Unreachable { url: shown, source })?;
        Ok(Self {
            conn,
            bus,
            node,
            prefix: prefix.to_owned(),
            health,
        })
    }

    /// A key of this cluster.
    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }
}

/// `url` asking for RESP3 (pub/sub pushes on a multiplexed connection need it).
fn with_resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

/// `url` with any password replaced by `***`, for errors and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact("redis://u:secret@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
    }

    #[test]
    fn resp3_is_asked_for_once() {
        assert_eq!(with_resp3("redis://h:1"), "redis://h:1?protocol=resp3");
        assert_eq!(
            with_resp3("redis://h:1/?db=2"),
            "redis://h:1/?db=2&protocol=resp3"
        );
        assert_eq!(
            with_resp3("redis://h?protocol=resp3"),
            "redis://h?protocol=resp3"
        );
    }
}
