//! Cross-node messages held while Redis is unreachable, published in order once every node
//! hears the cluster again: a Redis restart delays cross-node delivery, it does not lose it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

/// Bytes a node holds at most; beyond, messages are dropped and counted.
pub const OUTBOX_BYTES: usize = 64 << 20;

#[derive(Default)]
struct Held {
    items: VecDeque<(String, Vec<u8>)>,
    bytes: usize,
}

/// Messages waiting for the cluster, oldest first.
pub struct Outbox {
    holding: AtomicBool,
    held: Mutex<Held>,
    max_bytes: usize,
    dropped: Counter,
    gauge: Gauge,
}

impl Outbox {
    /// Empty, dropping (and counting in `dropped`) beyond `max_bytes`; `gauge` shows how many
    /// messages wait.
    pub fn new(max_bytes: usize, dropped: Counter, gauge: Gauge) -> Self {
        Self {
            holding: AtomicBool::new(false),
            held: Mutex::default(),
            max_bytes,
            dropped,
            gauge,
        }
    }

    /// True while messages wait: later ones must queue behind them, in order.
    pub fn is_holding(&self) -> bool {
        self.holding.load(Ordering::Acquire)
    }

    /// Keeps a message for later.
    pub fn hold(&self, chan: String, body: Vec<u8>) {
        let mut held = self.lock();
        if held.bytes + body.len() > self.max_bytes {
            self.dropped.inc();
            return;
        }
        held.bytes += body.len();
        held.items.push_back((chan, body));
        self.holding.store(true, Ordering::Release);
        self.gauge
            .set(i64::try_from(held.items.len()).unwrap_or(i64::MAX));
    }

    /// The oldest waiting message, if any; when none is left, later messages go straight out.
    pub fn next(&self) -> Option<(String, Vec<u8>)> {
        let mut held = self.lock();
        let item = held.items.pop_front();
        match &item {
            Some((_, body)) => held.bytes -= body.len(),
            None => self.holding.store(false, Ordering::Release),
        }
        self.gauge
            .set(i64::try_from(held.items.len()).unwrap_or(i64::MAX));
        item
    }

    /// Puts back a message whose publish failed, still first in line.
    pub fn put_back(&self, chan: String, body: Vec<u8>) {
        let mut held = self.lock();
        held.bytes += body.len();
        held.items.push_front((chan, body));
        self.holding.store(true, Ordering::Release);
        self.gauge
            .set(i64::try_from(held.items.len()).unwrap_or(i64::MAX));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_in_order_and_releases_when_empty() {
        let o = Outbox::new(1024, Counter::default(), Gauge::default());
        assert!(!o.is_holding());
        o.hold("c".into(), b"1".to_vec());
        o.hold("c".into(), b"2".to_vec());
        assert!(o.is_holding());
        let first = o.next().expect("first");
        o.put_back(first.0, first.1);
        assert_eq!(o.next().expect("again first").1, b"1");
        assert_eq!(o.next().expect("second").1, b"2");
        assert!(o.is_holding(), "still holding until seen empty");
        assert!(o.next().is_none());
        assert!(!o.is_holding());
    }

    #[test]
    fn over_the_limit_is_dropped_and_counted() {
        let dropped = Counter::default();
        let o = Outbox::new(3, dropped.clone(), Gauge::default());
        o.hold("c".into(), b"12".to_vec());
        o.hold("c".into(), b"34".to_vec());
        assert_eq!(dropped.get(), 1);
        assert_eq!(o.next().expect("kept").1, b"12");
    }
}
