//! Rolling-window rate limits: an exact sliding log of accepted events per socket.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// At most `limit` events in any window of `window`, counted exactly.
///
/// Memory is one `Instant` per event accepted in the last window, allocated lazily,
/// so an idle socket costs nothing.
#[derive(Debug)]
pub struct SlidingWindow {
    limit: u32,
    window: Duration,
    accepted: VecDeque<Instant>,
}

impl SlidingWindow {
    /// A limiter for `limit` events per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            accepted: VecDeque::new(),
        }
    }

    /// Counts an event at `now` if the budget allows it.
    ///
    /// # Errors
    /// Over budget: returns how long until the oldest counted event leaves the window.
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), Duration> {
        while let Some(&oldest) = self.accepted.front() {
            if now.saturating_duration_since(oldest) >= self.window {
                self.accepted.pop_front();
            } else {
                break;
            }
        }
        if self.accepted.len() < self.limit as usize {
            self.accepted.push_back(now);
            return Ok(());
        }
        let oldest = self.accepted.front().copied().unwrap_or(now);
        Err((oldest + self.window).saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn hundred_and_first_within_the_minute_is_refused() {
        let t0 = Instant::now();
        let mut w = SlidingWindow::new(100, MINUTE);
        for i in 0..100 {
            assert!(
                w.try_acquire(t0 + Duration::from_millis(i)).is_ok(),
                "message {i}"
            );
        }
        let retry = w
            .try_acquire(t0 + Duration::from_secs(30))
            .expect_err("101st refused");
        assert_eq!(retry, Duration::from_secs(30));
    }

    #[test]
    fn window_rolls_one_event_at_a_time() {
        let t0 = Instant::now();
        let mut w = SlidingWindow::new(2, MINUTE);
        assert!(w.try_acquire(t0).is_ok());
        assert!(w.try_acquire(t0 + Duration::from_secs(10)).is_ok());
        assert!(w.try_acquire(t0 + Duration::from_secs(59)).is_err());
        // the first leaves the window at exactly t0 + 60 s, the second not yet
        assert!(w.try_acquire(t0 + MINUTE).is_ok());
        assert_eq!(
            w.try_acquire(t0 + MINUTE),
            Err(Duration::from_secs(10)),
            "second still counts until t0 + 70 s"
        );
    }

    #[test]
    fn refused_events_do_not_consume_budget() {
        let t0 = Instant::now();
        let mut w = SlidingWindow::new(1, MINUTE);
        assert!(w.try_acquire(t0).is_ok());
        for s in 1..60 {
            assert!(w.try_acquire(t0 + Duration::from_secs(s)).is_err());
        }
        assert!(w.try_acquire(t0 + MINUTE).is_ok());
    }
}
