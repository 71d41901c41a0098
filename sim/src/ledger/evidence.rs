//! What the run shows of the target's speed, second by second, and the windows derived from
//! it: how long a socket must stay after a message or a presence cause to be owed it, and
//! how near the rate limit's window edge a message stays undecided.
//!
//! A window is local: it comes from what was observed around its moment (the slowest
//! delivery of the messages sent in the same second and its neighbours), so one slow moment
//! never widens the windows of another. And it is bounded: never wider than the protocol's
//! bound for it (`relay::bounds`), past which being slow is a violation of its own.

use std::time::{Duration, Instant};

use relay::bounds;
use reports::model::{WindowSecond, WindowWidths};

/// Added to every window: scheduling noise on the simulator's side.
pub const FLOOR: Duration = Duration::from_millis(50);

/// How long after it left a message is judged: the protocol's delivery bound.
pub const SETTLE_AFTER: Duration = bounds::DELIVERY;

/// The slowest observations of one second of the run.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Second {
    /// Slowest delivery or ack of a message sent in this second, from its send.
    message: Duration,
    /// Slowest presence event whose cause happened in this second.
    presence: Duration,
    /// Largest send lag of a send intended in this second.
    lag: Duration,
}

impl Second {
    fn max(self, o: Second) -> Second {
        Second {
            message: self.message.max(o.message),
            presence: self.presence.max(o.presence),
            lag: self.lag.max(o.lag),
        }
    }
}

/// The run's observations, by second.
#[derive(Debug, Clone)]
pub struct Evidence {
    start: Instant,
    /// One entry per second since the start (a day's run holds 86,400 of 48 bytes).
    seconds: Vec<Second>,
    /// Slowest message delivery or ack of the whole run (reported, never judged with).
    pub slowest_message: Duration,
    /// Slowest presence event of the whole run (reported, never judged with).
    pub slowest_presence: Duration,
}

impl Evidence {
    /// For a run that started at `start`.
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            seconds: Vec::new(),
            slowest_message: Duration::ZERO,
            slowest_presence: Duration::ZERO,
        }
    }

    fn index(&self, t: Instant) -> usize {
        usize::try_from(t.saturating_duration_since(self.start).as_secs()).unwrap_or(usize::MAX)
    }

    fn slot(&mut self, t: Instant) -> &mut Second {
        let i = self.index(t).min(u32::MAX as usize);
        if self.seconds.len() <= i {
            self.seconds.resize(i + 1, Second::default());
        }
        &mut self.seconds[i]
    }

    /// A message that left at `sent` was delivered (or acked) `d` later.
    pub fn message(&mut self, sent: Instant, d: Duration) {
        self.slowest_message = self.slowest_message.max(d);
        let s = self.slot(sent);
        s.message = s.message.max(d);
    }

    /// A presence event came `d` after its cause at `cause`.
    pub fn presence(&mut self, cause: Instant, d: Duration) {
        self.slowest_presence = self.slowest_presence.max(d);
        let s = self.slot(cause);
        s.presence = s.presence.max(d);
    }

    /// A send intended at `intended` left `d` late.
    pub fn lag(&mut self, intended: Instant, d: Duration) {
        let s = self.slot(intended);
        s.lag = s.lag.max(d);
    }

    /// The slowest of the second holding `t` and its two neighbours.
    fn around(&self, t: Instant) -> Second {
        let i = self.index(t);
        let lo = i.saturating_sub(1);
        let hi = i.saturating_add(2).min(self.seconds.len());
        self.seconds
            .get(lo..hi)
            .unwrap_or(&[])
            .iter()
            .fold(Second::default(), |a, b| a.max(*b))
    }

    /// A socket that stays this long after a message left at `t` is owed it: twice the
    /// slowest delivery around `t`, plus the floor, at most the delivery bound.
    pub fn delivery_window(&self, t: Instant) -> Duration {
        (FLOOR + self.around(t).message * 2).min(bounds::DELIVERY)
    }

    /// The same for presence events caused at `t`, which also wait on the backend noticing
    /// a departure: at most the presence bound.
    pub fn presence_window(&self, t: Instant) -> Duration {
        let a = self.around(t);
        (FLOOR + a.message.max(a.presence) * 2).min(bounds::PRESENCE)
    }

    /// How far the backend's rate-limit window edge may sit from the sender's clock for a
    /// message sent at `t`: the inbound trip around `t` and around the send a window
    /// earlier (bounded by the slowest delivery or ack there), plus the send lag, at most
    /// the delivery bound.
    pub fn rate_window(&self, t: Instant) -> Duration {
        let now = self.around(t);
        let before = t
            .checked_sub(bounds::RATE_WINDOW)
            .filter(|b| *b >= self.start)
            .map_or(Duration::ZERO, |b| self.around(b).message);
        (FLOOR + now.message.max(before) + now.lag).min(bounds::DELIVERY)
    }

    /// Each second's windows, up to `end`, for the report.
    pub fn per_second(&self, end: Instant) -> Vec<WindowSecond> {
        let seconds = self.index(end).max(self.seconds.len());
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        (0..seconds)
            .map(|i| {
                let t = self.start + Duration::from_secs(i as u64);
                WindowSecond {
                    t: u32::try_from(i + 1).unwrap_or(u32::MAX),
                    delivery_ms: ms(self.delivery_window(t)),
                    presence_ms: ms(self.presence_window(t)),
                    rate_ms: ms(self.rate_window(t)),
                }
            })
            .collect()
    }
}

/// The distribution of one kind of window over `seconds`, against its `bound`.
pub fn widths(
    seconds: &[WindowSecond],
    f: fn(&WindowSecond) -> f64,
    bound: Duration,
) -> WindowWidths {
    let mut v: Vec<f64> = seconds.iter().map(f).collect();
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        v.get(((v.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    WindowWidths {
        p50_ms: at(0.5),
        p90_ms: at(0.9),
        max_ms: v.last().copied().unwrap_or_default(),
        bound_ms: bound.as_secs_f64() * 1000.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_moment_widens_only_its_own_windows() {
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let mut e = Evidence::new(t0);
        assert_eq!(e.delivery_window(at(0.0)), FLOOR);
        e.message(at(0.2), Duration::from_millis(100));
        e.message(at(30.5), Duration::from_millis(3000));
        // quick around the start, slow around 30 s, quick again from 32 s
        assert_eq!(e.delivery_window(at(0.9)), Duration::from_millis(250));
        assert_eq!(e.delivery_window(at(29.1)), Duration::from_millis(6050));
        assert_eq!(e.delivery_window(at(31.9)), Duration::from_millis(6050));
        assert_eq!(e.delivery_window(at(32.0)), FLOOR);
        assert_eq!(e.delivery_window(at(10.0)), FLOOR);
        assert_eq!(e.slowest_message, Duration::from_secs(3));
    }

    #[test]
    fn windows_never_exceed_the_protocols_bounds() {
        let t0 = Instant::now();
        let mut e = Evidence::new(t0);
        e.message(t0, Duration::from_secs(40));
        e.presence(t0, Duration::from_secs(45));
        e.lag(t0, Duration::from_secs(5));
        assert_eq!(e.delivery_window(t0), bounds::DELIVERY);
        assert_eq!(e.presence_window(t0), bounds::PRESENCE);
        assert_eq!(e.rate_window(t0), bounds::DELIVERY);
    }

    #[test]
    fn presence_and_the_rate_edge_read_their_own_moments() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut e = Evidence::new(t0);
        e.presence(at(5), Duration::from_secs(2));
        assert_eq!(e.presence_window(at(5)), Duration::from_millis(4050));
        assert_eq!(e.presence_window(at(8)), FLOOR);
        // the edge of a message sent at 70 s depends on the trip of one sent at 10 s too
        e.message(at(10), Duration::from_millis(400));
        e.lag(at(70), Duration::from_millis(20));
        assert_eq!(e.rate_window(at(70)), Duration::from_millis(470));
        assert_eq!(e.rate_window(at(40)), FLOOR);
    }

    #[test]
    fn the_report_gets_every_seconds_windows_and_their_spread() {
        let t0 = Instant::now();
        let mut e = Evidence::new(t0);
        e.message(t0 + Duration::from_secs(5), Duration::from_millis(500));
        let per = e.per_second(t0 + Duration::from_secs(10));
        assert_eq!(per.len(), 10);
        assert_eq!(per[0].t, 1);
        assert!((per[5].delivery_ms - 1050.0).abs() < 1e-6, "{per:?}");
        let w = widths(&per, |s| s.delivery_ms, bounds::DELIVERY);
        assert!((w.p50_ms - 50.0).abs() < 1e-6 && (w.max_ms - 1050.0).abs() < 1e-6);
        assert!((w.bound_ms - 10_000.0).abs() < 1e-6);
    }
}
