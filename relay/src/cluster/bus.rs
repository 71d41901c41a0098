//! The cross-node message bus: socketioxide-redis's `Driver` over one redis-rs connection
//! manager that reconnects and resubscribes, with a sized buffer whose drops are counted, an
//! outbox that holds what cannot be published while Redis is away, and a probe that proves
//! this node still hears its own channels.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use prometheus_client::metrics::counter::Counter;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands as _, PushInfo, PushKind, Value};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::mpsc;
use tracing::debug;

use super::health::Health;
use super::outbox::Outbox;

/// Why a bus operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Redis answered with an error or not at all.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

type Handlers = HashMap<String, mpsc::Sender<ChanItem>>;

/// Bytes that open every request this node publishes: socketioxide-redis's msgpack array
/// header, then the node's uid as a 16-character string (its first field).
const OWN_PREFIX: usize = 18;

/// Where pushed messages go: each subscribed channel's stream, or the probe's counter.
/// This node's own requests, which Redis echoes back to it, are dropped here instead of
/// being decoded by the adapter only to be ignored.
#[derive(Clone)]
pub(crate) struct Router {
    handlers: Arc<RwLock<Handlers>>,
    own: Arc<std::sync::OnceLock<[u8; OWN_PREFIX - 1]>>,
    probe_channel: Arc<str>,
    probe_heard: Arc<AtomicU64>,
    health: Arc<Health>,
    dropped: Counter,
}

impl Router {
    pub fn new(probe_channel: String, health: Arc<Health>, dropped: Counter) -> Self {
        Self {
            handlers: Arc::default(),
            own: Arc::default(),
            probe_channel: probe_channel.into(),
            probe_heard: Arc::new(AtomicU64::new(0)),
            health,
            dropped,
        }
    }

    /// Called by redis-rs for every push, on its connection task: never blocks.
    pub fn route(&self, push: PushInfo) {
        if matches!(push.kind, PushKind::Disconnection) {
            // from now on publishes wait in the outbox until the node hears the cluster again
            self.health.degrade("lost the connection to Redis");
            return;
        }
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
            let n = std::str::from_utf8(&body).ok().and_then(|b| b.parse().ok());
            self.probe_heard.fetch_max(n.unwrap_or(0), Ordering::AcqRel);
            return;
        }
        if self.is_own(&body) {
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

    /// Learns this node's request prefix from a request it publishes.
    fn learn_own(&self, chan: &str, body: &[u8]) {
        if self.own.get().is_none()
            && chan.contains("-request#")
            && body.len() >= OWN_PREFIX
            && body[1] == 0xb0
            && let Ok(uid) = <[u8; OWN_PREFIX - 1]>::try_from(&body[1..OWN_PREFIX])
        {
            let _ = self.own.set(uid);
        }
    }

    fn is_own(&self, body: &[u8]) -> bool {
        self.own
            .get()
            .is_some_and(|own| body.len() >= OWN_PREFIX && body[1..OWN_PREFIX] == own[..])
    }

    /// The highest probe number heard back.
    pub fn probe_heard(&self) -> u64 {
        self.probe_heard.load(Ordering::Acquire)
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
    outbox: Arc<Outbox>,
}

impl Bus {
    pub(crate) fn new(
        conn: ConnectionManager,
        router: Router,
        health: Arc<Health>,
        outbox: Arc<Outbox>,
    ) -> Self {
        Self {
            conn,
            router,
            health,
            outbox,
        }
    }

    /// True while messages wait for the cluster.
    pub fn holding(&self) -> bool {
        self.outbox.is_holding()
    }

    /// Publishes what waited, oldest first; stops at the first failure (it stays first).
    ///
    /// # Errors
    /// Redis refused or did not answer.
    pub async fn flush(&self) -> Result<usize, redis::RedisError> {
        let mut n = 0;
        while let Some((chan, body)) = self.outbox.next() {
            if let Err(e) = self.conn.clone().publish::<_, _, ()>(&chan, &body).await {
                self.outbox.put_back(chan, body);
                return Err(e);
            }
            n += 1;
        }
        Ok(n)
    }

    /// Subscribers of the adapter's cluster-wide request channel: how many nodes would hear
    /// a publish now.
    ///
    /// # Errors
    /// Redis refused or did not answer.
    pub async fn listeners(&self) -> Result<u16, BusError> {
        let Some(chan) = self
            .router
            .channels()
            .into_iter()
            .find(|c| c.ends_with("-request#/#"))
        else {
            return Ok(0);
        };
        self.num_serv(&chan).await
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

    /// Publishes probe number `n`, which this node must hear back on its own subscription.
    ///
    /// # Errors
    /// Redis refused or did not answer.
    pub async fn probe(&self, n: u64) -> Result<(), redis::RedisError> {
        let chan = self.router.probe_channel.to_string();
        self.conn.clone().publish::<_, _, ()>(chan, n).await
    }

    /// The highest probe number this node heard back.
    pub fn probe_heard(&self) -> u64 {
        self.router.probe_heard()
    }
}

impl Driver for Bus {
    type Error = BusError;

    /// Never fails for want of Redis: what cannot go out now waits in the outbox (and the
    /// adapter goes on to deliver on this node).
    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), BusError> {
        self.router.learn_own(&chan, &val);
        if self.outbox.is_holding() || !self.health.is_up() {
            self.outbox.hold(chan, val);
            return Ok(());
        }
        if let Err(e) = self.conn.clone().publish::<_, _, ()>(&chan, &val).await {
            self.health.degrade(format!("Redis refused PUBLISH: {e}"));
            self.outbox.hold(chan, val);
        }
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

    fn health() -> Arc<Health> {
        Arc::new(Health::new(
            prometheus_client::metrics::gauge::Gauge::default(),
        ))
    }

    #[test]
    fn a_full_stream_drops_and_counts() {
        let dropped = Counter::default();
        let router = Router::new("probe".into(), health(), dropped.clone());
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
    fn this_nodes_own_requests_are_not_handed_back_to_it() {
        let router = Router::new("probe".into(), health(), Counter::default());
        let (tx, mut rx) = mpsc::channel(4);
        router
            .handlers
            .write()
            .expect("lock")
            .insert("p-request#/#".into(), tx);
        let request = |uid: &[u8; 16]| {
            let mut b = vec![0x96, 0xb0];
            b.extend_from_slice(uid);
            b.extend_from_slice(b"rest");
            b
        };
        let (mine, theirs) = (request(b"AAAAAAAAAAAAAAAA"), request(b"BBBBBBBBBBBBBBBB"));
        router.route(push("p-request#/#", &mine));
        assert!(
            rx.try_recv().is_ok(),
            "nothing is dropped before the node published"
        );
        router.learn_own("p-request#/#", &mine);
        router.route(push("p-request#/#", &mine));
        router.route(push("p-request#/#", &theirs));
        assert_eq!(rx.try_recv().expect("another node's request").1, theirs);
        assert!(rx.try_recv().is_err(), "its own echo is dropped");
    }

    #[test]
    fn the_probe_is_heard_not_routed() {
        let router = Router::new("probe".into(), health(), Counter::default());
        assert_eq!(router.probe_heard(), 0);
        router.route(push("probe", b"7"));
        router.route(push("probe", b"5"));
        assert_eq!(router.probe_heard(), 7, "the highest number heard");
    }

    #[test]
    fn losing_the_connection_degrades_at_once() {
        let h = health();
        let router = Router::new("probe".into(), h.clone(), Counter::default());
        router.route(PushInfo {
            kind: PushKind::Disconnection,
            data: vec![],
        });
        assert!(!h.is_up());
    }
}
