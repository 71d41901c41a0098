//! State shared by every handler of one relay node; nothing in it reaches back to the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::cluster::Health as ClusterHealth;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::presence::Presence;

/// State shared by every handler of one relay.
pub struct Relay {
    /// The configuration it was started with.
    pub config: Config,
    /// JWT secret bytes; `None` only in insecure development mode.
    pub verifier: Option<crate::auth::Verifier>,
    /// Who is online: this node's maps, or the cluster's.
    pub presence: Arc<dyn Presence>,
    /// Exported counters and gauges.
    pub metrics: Arc<Metrics>,
    /// The cluster link's health; `None` on a single node.
    pub cluster: Option<Arc<ClusterHealth>>,
    id_prefix: String,
    next_id: AtomicU64,
    started: Instant,
}

impl Relay {
    /// Shared state for a relay started now, checking tokens with `verifier` (the one
    /// `config` describes, loaded once by `serve`).
    pub fn new(
        config: Config,
        verifier: Option<crate::auth::Verifier>,
        presence: Arc<dyn Presence>,
        metrics: Arc<Metrics>,
        cluster: Option<Arc<ClusterHealth>>,
    ) -> Self {
        Self {
            verifier,
            presence,
            metrics,
            cluster,
            id_prefix: format!("{:08x}", rand::random::<u32>()),
            next_id: AtomicU64::new(1),
            started: Instant::now(),
            config,
        }
    }

    /// A new unique message id: a random per-process prefix and a counter.
    pub fn message_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.id_prefix)
    }

    /// The relay clock as ISO-8601 with milliseconds.
    pub fn timestamp(&self) -> String {
        humantime::format_rfc3339_millis(SystemTime::now()).to_string()
    }

    /// Time since start.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}
