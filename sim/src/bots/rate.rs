//! What the backend's rate limit should do with each message a socket sends.
//!
//! The relay counts accepted messages in a rolling minute, on its own clock, a little after
//! the bot sent them. The prediction keeps two views, one that counts uncertain messages as
//! accepted and one that does not, and widens the window edge by a tolerance; only when both
//! agree is a verdict given.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::record::RatePrediction;

const WINDOW: Duration = Duration::from_secs(60);

/// Slack on the window edge for network and processing delay.
pub const TOLERANCE: Duration = Duration::from_millis(500);

/// Predictor for one socket.
#[derive(Debug)]
pub struct RatePredictor {
    limit: usize,
    /// Sends predicted accepted.
    sure: VecDeque<Instant>,
    /// Sends predicted accepted or ambiguous.
    maybe: VecDeque<Instant>,
}

impl RatePredictor {
    /// For a limit of `limit` messages per minute.
    pub fn new(limit: u32) -> Self {
        Self {
            limit: limit as usize,
            sure: VecDeque::new(),
            maybe: VecDeque::new(),
        }
    }

    /// Predicts the verdict of a message sent at `now` and remembers it.
    pub fn predict(&mut self, now: Instant) -> RatePrediction {
        // counted most: uncertain ones included, window stretched back by the tolerance
        let most = count_since(&mut self.maybe, now, WINDOW + TOLERANCE);
        // counted least: only sure ones, window shortened by the tolerance
        let least = count_since(&mut self.sure, now, WINDOW.saturating_sub(TOLERANCE));
        let verdict = if most < self.limit {
            RatePrediction::Accept
        } else if least >= self.limit {
            RatePrediction::Reject
        } else {
            RatePrediction::Ambiguous
        };
        match verdict {
            RatePrediction::Accept => {
                self.sure.push_back(now);
                self.maybe.push_back(now);
            }
            RatePrediction::Ambiguous => self.maybe.push_back(now),
            RatePrediction::Reject => {}
        }
        verdict
    }
}

fn count_since(q: &mut VecDeque<Instant>, now: Instant, window: Duration) -> usize {
    // drop what is older than the widest window any view uses
    while q
        .front()
        .is_some_and(|&t| now.saturating_duration_since(t) >= WINDOW + TOLERANCE)
    {
        q.pop_front();
    }
    // sends are in time order: binary search for the first one inside the window
    q.len() - q.partition_point(|&t| now.saturating_duration_since(t) >= window)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_then_over_budget() {
        let t0 = Instant::now();
        let mut p = RatePredictor::new(3);
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(p.predict(at(0)), RatePrediction::Accept);
        assert_eq!(p.predict(at(100)), RatePrediction::Accept);
        assert_eq!(p.predict(at(200)), RatePrediction::Accept);
        assert_eq!(p.predict(at(300)), RatePrediction::Reject);
        assert_eq!(p.predict(at(30_000)), RatePrediction::Reject);
    }

    #[test]
    fn window_edge_is_ambiguous_then_clear() {
        let t0 = Instant::now();
        let mut p = RatePredictor::new(1);
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(p.predict(at(0)), RatePrediction::Accept);
        assert_eq!(p.predict(at(59_800)), RatePrediction::Ambiguous);
        // the first leaves even the widest window at 60.5 s; the ambiguous one still may count
        assert_eq!(p.predict(at(61_000)), RatePrediction::Ambiguous);
        assert_eq!(p.predict(at(125_000)), RatePrediction::Accept);
    }
}
