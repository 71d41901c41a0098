//! The relay's monotonic clock: real time in production, a hand-advanced one in tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Source of `Instant`s for rate limiting, so tests control time instead of sleeping.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// `Instant::now()`.
    #[default]
    System,
    /// A clock that only moves when [`ManualClock::advance`] is called.
    Manual(Arc<ManualClock>),
}

impl Clock {
    /// A new manual clock and a handle to advance it.
    pub fn manual() -> (Clock, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock {
            base: Instant::now(),
            offset_us: AtomicU64::new(0),
        });
        (Clock::Manual(clock.clone()), clock)
    }

    /// The current instant.
    pub fn now(&self) -> Instant {
        match self {
            Clock::System => Instant::now(),
            Clock::Manual(m) => m.now(),
        }
    }
}

/// A clock frozen at its creation instant plus what tests added.
#[derive(Debug)]
pub struct ManualClock {
    base: Instant,
    offset_us: AtomicU64,
}

impl ManualClock {
    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let us = u64::try_from(by.as_micros()).unwrap_or(u64::MAX);
        self.offset_us.fetch_add(us, Ordering::SeqCst);
    }

    /// The clock's current instant.
    pub fn now(&self) -> Instant {
        self.base + Duration::from_micros(self.offset_us.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let (clock, handle) = Clock::manual();
        let t0 = clock.now();
        assert_eq!(clock.now(), t0);
        handle.advance(Duration::from_secs(61));
        assert_eq!(clock.now() - t0, Duration::from_secs(61));
    }
}
