//! Whether this node can reach its cluster, and why not: read by `/health`, `/metrics` and
//! every cross-node publish.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;
use tracing::{info, warn};

/// The cluster link's state, shared by the bus, the presence store and the upkeep loop.
#[derive(Debug)]
pub struct Health {
    up: AtomicBool,
    reason: Mutex<Option<String>>,
    /// When the node last came back from an outage.
    recovered: Mutex<Option<Instant>>,
    gauge: Gauge,
}

impl Health {
    /// Up, reporting into `gauge` (0 up, 1 degraded).
    pub fn new(gauge: Gauge) -> Self {
        gauge.set(0);
        Self {
            up: AtomicBool::new(true),
            reason: Mutex::new(None),
            recovered: Mutex::new(None),
            gauge,
        }
    }

    /// True while cross-node fan-out and cluster presence work.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// True when up, and for at least `d` since the last outage ended (other nodes may
    /// need that long to put their part of the cluster's state back).
    pub fn up_for(&self, d: Duration) -> bool {
        self.is_up()
            && self
                .recovered
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_none_or(|r| r.elapsed() >= d)
    }

    /// Why the node is degraded, if it is.
    pub fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Marks the node degraded (logged once per outage).
    pub fn degrade(&self, reason: impl Into<String>) {
        let reason = reason.into();
        let mut slot = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
        if self.up.swap(false, Ordering::AcqRel) {
            warn!(%reason, "cluster degraded: serving this node's sockets only");
        }
        *slot = Some(reason);
        self.gauge.set(1);
    }

    /// Notes that the cluster's shared state was lost and is being put back (Redis restarted
    /// empty between two heartbeats, without this node ever failing a command): for a
    /// while, as after an outage, what Redis lacks may still be on its way.
    pub fn rebuilding(&self) {
        *self
            .recovered
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    /// Marks the node back in its cluster.
    pub fn recover(&self) {
        let mut slot = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.up.swap(true, Ordering::AcqRel) {
            info!("cluster recovered");
            *self
                .recovered
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        }
        *slot = None;
        self.gauge.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degrade_and_recover() {
        let gauge = Gauge::default();
        let h = Health::new(gauge.clone());
        assert!(h.is_up());
        h.degrade("redis down");
        assert!(!h.is_up());
        assert_eq!(h.reason().as_deref(), Some("redis down"));
        assert_eq!(gauge.get(), 1);
        assert!(!h.up_for(Duration::ZERO));
        h.recover();
        assert!(h.is_up());
        assert_eq!(h.reason(), None);
        assert_eq!(gauge.get(), 0);
        // just back: not yet long enough for the others to have put their state back
        assert!(h.up_for(Duration::ZERO) && !h.up_for(Duration::from_secs(60)));
        let h = Health::new(Gauge::default());
        assert!(h.up_for(Duration::from_secs(60)));
        h.rebuilding();
        assert!(
            h.is_up() && !h.up_for(Duration::from_secs(60)),
            "Redis lost its state"
        );
    }
}
