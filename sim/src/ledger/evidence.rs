//! What the run itself shows about the target's speed, and the tolerances derived from it:
//! how long a socket must stay after an event to be owed it, how wide the rate limit's
//! window edge is, how long a message is awaited before it is judged.
//!
//! A slow but correct backend must not be accused: every tolerance grows with the slowest
//! delivery seen so far, instead of being a constant tuned for a fast one.

use std::time::Duration;

/// Added to every derived tolerance: scheduling noise on the simulator's side.
const FLOOR: Duration = Duration::from_millis(50);

/// The shortest wait before a message is judged.
pub const MIN_SETTLE: Duration = Duration::from_secs(10);

/// The longest any tolerance grows.
const CAP: Duration = Duration::from_secs(60);

/// The slowest observations of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Evidence {
    /// Slowest message delivery or ack, from the actual send.
    pub message: Duration,
    /// Slowest presence event, from the join or departure that caused it.
    pub presence: Duration,
    /// Largest send lag.
    pub lag: Duration,
}

impl Evidence {
    /// A message delivered (or acked) `d` after it left.
    pub fn message(&mut self, d: Duration) {
        self.message = self.message.max(d);
    }

    /// A presence event `d` after its cause.
    pub fn presence(&mut self, d: Duration) {
        self.presence = self.presence.max(d);
    }

    /// A send that left `d` after its intended instant.
    pub fn lag(&mut self, d: Duration) {
        self.lag = self.lag.max(d);
    }

    /// A socket that stays this long after a message left is owed it: twice the slowest
    /// delivery seen, plus the floor.
    pub fn leave_grace(&self) -> Duration {
        (FLOOR + self.message * 2).min(CAP)
    }

    /// The same for presence events, which also wait on the backend noticing a departure.
    pub fn presence_grace(&self) -> Duration {
        (FLOOR + self.message.max(self.presence) * 2).min(CAP)
    }

    /// How far the backend's rate-limit window edge may sit from the sender's clock: the
    /// slowest inbound trip (bounded by the slowest delivery or ack) plus the send lag.
    pub fn rate_tolerance(&self) -> Duration {
        (FLOOR + self.message + self.lag).min(CAP)
    }

    /// How long after it left a message is judged.
    pub fn settle_after(&self) -> Duration {
        MIN_SETTLE.max((self.message * 3).min(CAP))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerances_grow_with_the_slowest_observation() {
        let mut e = Evidence::default();
        assert_eq!(e.leave_grace(), FLOOR);
        assert_eq!(e.settle_after(), MIN_SETTLE);
        e.message(Duration::from_millis(300));
        e.message(Duration::from_millis(100));
        e.lag(Duration::from_micros(80));
        assert_eq!(e.leave_grace(), Duration::from_millis(650));
        assert_eq!(e.rate_tolerance(), Duration::from_micros(350_080));
        e.presence(Duration::from_secs(2));
        assert_eq!(e.presence_grace(), Duration::from_millis(4050));
        e.message(Duration::from_secs(20));
        assert_eq!(e.settle_after(), CAP);
        assert_eq!(e.leave_grace(), Duration::from_millis(40_050));
        e.message(Duration::from_secs(45));
        assert_eq!(e.leave_grace(), CAP);
    }
}
