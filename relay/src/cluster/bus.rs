//! The cross-node message bus: socketioxide-redis's `Driver` over one redis-rs connection
//! manager that reconnects and resubscribes, with a sized buffer whose drops are counted and
//! a probe that proves this node still hears its own channels.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands as _, PushInfo, PushKind, Value};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::mpsc;
use tracing::debug;

use super::health::Health;

/// Why a bus operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The node knows Redis is unreachable and does not wait for it.
    #[error("the cluster is degraded: {0}")]
    Down(String),
    /// Redis answered with an error or not at all.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

type Handlers = HashMap<String, mpsc::Sender<ChanItem>>;

/// Where pushed messages go: each subscribed channel's stream, or the probe's clock.
#[derive(Clone)]
pub(crate) struct Router {
    handlers: Arc<RwLock<Handlers>>,
    probe_channel: Arc<str>,
    probe_seen_ms: Arc<AtomicU64>,
    started: Instant,
    dropped: Counter,
}

impl Router {
    pub fn new(probe_channel: String, dropped: Counter) -> Self {
        Self {
            handlers: Arc::default(),
            probe_channel: probe_channel.into(),
            probe_seen_ms: Arc::new(AtomicU64::new(0)),
            started: Instant::now(),
            dropped,
        }
    }

    /// Called by redis-rs for every push, on its connection task: never blocks.
    pub fn route(&self, push: PushInfo) {
        if !matches!(push.kind, PushKind::Message) || push.data.len() < 2 {
            return;
        }
        let mut data = push.data.into_iter();
        let (Some(Value::BulkString(chan)), Some(Value::BulkString(body))) =
            (data.next(), data.next())
        else {
            return;
        };
        let Ok(chan) = String::from_utf8(chan) else {
            return;
        };
        if *chan == *self.probe_channel {
            self.probe_seen_ms.store(self.now_ms(), Ordering::Release);
            return;
        }
        let handlers = self.handlers.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = handlers.get(&chan)
            && tx.try_send((chan, body)).is_err()
        {
            // full (or closed while unsubscribing): counted, never waited for
            self.dropped.inc();
        }
    }

    /// Milliseconds since the probe was last heard (`u64::MAX`: never).
    pub fn probe_silence_ms(&self) -> u64 {
        match self.probe_seen_ms.load(Ordering::Acquire) {
            0 => u64::MAX,
            seen => self.now_ms().saturating_sub(seen),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn channels(&self) -> Vec<String> {
        let handlers = self.handlers.read().unwrap_or_else(PoisonError::into_inner);
        handlers.keys().cloned().collect()
    }
}

/// socketioxide-redis's driver for this relay.
#[derive(Clone)]
pub struct Bus {
    conn: ConnectionManager,
    router: Router,
    health: Arc<Health>,
}

impl Bus {
    pub(crate) fn new(conn: ConnectionManager, router: Router, health: Arc<Health>) -> Self {
        Self {
            conn,
            router,
            health,
        }
    }

    /// Subscribes again to every channel this node listens on (and its probe): Redis treats
    /// a repeated SUBSCRIBE as a no-op, so this is safe whether or not the old one survived.
    ///
    /// # Errors
    /// Redis refused or did not answer.
    pub async fn resubscribe(&self) -> Result<(), redis::RedisError> {
        let mut channels = self.router.channels();
        channels.push(self.router.probe_channel.to_string());
        self.conn.clone().subscribe(channels).await
    }

    /// Publishes a probe that this node must hear back on its own subscription.
    ///
    /// # Errors
    /// Redis refused or did not answer.
    pub async fn probe(&self) -> Result<(), redis::RedisError> {
        let chan = self.router.probe_channel.to_string();
        self.conn.clone().publish::<_, _, ()>(chan, "p").await
    }

    /// Milliseconds since this node last heard its probe.
    pub fn probe_silence_ms(&self) -> u64 {
        self.router.probe_silence_ms()
    }
}

impl Driver for Bus {
    type Error = BusError;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), BusError> {
        if !self.health.is_up() {
            return Err(BusError::Down(self.health.reason().unwrap_or_default()));
        }
        self.conn.clone().publish::<_, _, ()>(chan, val).await?;
        Ok(())
    }

    async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, BusError> {
        let (tx, rx) = mpsc::channel(size);
        // the handler exists before the subscription, so nothing pushed in between is lost
        self.router
            .handlers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(chan.clone(), tx);
        debug!(%chan, size, "subscribing");
        self.conn.clone().subscribe(&chan).await?;
        Ok(MessageStream::new(rx))
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), BusError> {
        self.router
            .handlers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&chan);
        self.conn.clone().unsubscribe(chan).await?;
        Ok(())
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, BusError> {
        let (_, count): (String, u16) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(chan)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(chan: &str, body: &[u8]) -> PushInfo {
        PushInfo {
            kind: PushKind::Message,
            data: vec![
                Value::BulkString(chan.as_bytes().to_vec()),
                Value::BulkString(body.to_vec()),
            ],
        }
    }

    #[test]
    fn a_full_stream_drops_and_counts() {
        let dropped = Counter::default();
        let router = Router::new("probe".into(), dropped.clone());
        let (tx, mut rx) = mpsc::channel(1);
        router
            .handlers
            .write()
            .expect("lock")
            .insert("c".into(), tx);
        router.route(push("c", b"1"));
        router.route(push("c", b"2"));
        assert_eq!(dropped.get(), 1);
        assert_eq!(rx.try_recv().expect("first kept").1, b"1");
    }

    #[test]
    fn the_probe_is_heard_not_routed() {
        let router = Router::new("probe".into(), Counter::default());
        assert_eq!(router.probe_silence_ms(), u64::MAX);
        router.route(push("probe", b"p"));
        assert!(router.probe_silence_ms() < 1000);
    }
}
