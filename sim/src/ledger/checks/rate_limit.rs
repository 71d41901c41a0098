//! The rate limit: at most `limit` messages per socket in any rolling minute. A message over
//! budget must not be delivered; one within budget must not be refused.
//!
//! The backend counts on its own clock, a little after the bot sent; how little is what the
//! run observed around that moment (the evidence's rate window, at most the delivery
//! bound). Each message is judged when it settles, in
//! send order per socket, with two views of the sender's recent messages: one counting
//! every accepted or uncertain message in a window stretched by the tolerance, one counting
//! only certain ones in a window shrunk by it. Only when both agree is there a verdict.
//! Backends that send no acks are judged by count instead: more `rateLimitExceeded` than
//! predicted refusals is a wrong rejection.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use reports::model::{Counter, Violation};

use super::{Check, Cx};
use crate::ledger::messages::Message;
use crate::record::{AckOutcome, Observed, Record, SocketKey};

const WINDOW: Duration = relay::bounds::RATE_WINDOW;

/// How long a sender's verdicts are kept: the window and the widest tolerance.
const KEEP: Duration = Duration::from_secs(WINDOW.as_secs() + relay::bounds::DELIVERY.as_secs());

/// What the budget says of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within budget: must be delivered.
    Accept,
    /// Over budget: must not be delivered.
    Reject,
    /// Too close to a window edge to say.
    Ambiguous,
}

#[derive(Debug, Default)]
struct Sender {
    /// Messages judged accepted or ambiguous, oldest first.
    recent: VecDeque<(Instant, Verdict)>,
    /// `rateLimitExceeded` events received.
    refusals: u64,
    /// Refusals the budget allows: verdicts of reject or ambiguous.
    allowed_refusals: u64,
    /// The backend acks messages: they are judged one by one.
    acks: bool,
}

impl Sender {
    /// The budget's verdict on a message sent at `t`, from the messages before it.
    fn verdict(&mut self, t: Instant, tolerance: Duration, limit: usize) -> Verdict {
        while self
            .recent
            .front()
            .is_some_and(|(s, _)| t.saturating_duration_since(*s) >= KEEP)
        {
            self.recent.pop_front();
        }
        let within = |window: Duration, s: &Instant| t.saturating_duration_since(*s) < window;
        let most = self
            .recent
            .iter()
            .filter(|(s, _)| within(WINDOW + tolerance, s))
            .count();
        let least = self
            .recent
            .iter()
            .filter(|(s, v)| *v == Verdict::Accept && within(WINDOW.saturating_sub(tolerance), s))
            .count();
        let verdict = if most < limit {
            Verdict::Accept
        } else if least >= limit {
            Verdict::Reject
        } else {
            Verdict::Ambiguous
        };
        if verdict != Verdict::Accept {
            self.allowed_refusals += 1;
        }
        verdict
    }

    /// Remembers what the backend did with the message sent at `t`, as far as the run
    /// shows (`taken`: it counts against the budget), so later verdicts follow the
    /// backend's own count: certain when an ack or a delivery says so, uncertain (counted
    /// only in the widest view) when nothing does and the budget did not refuse it.
    fn took(&mut self, t: Instant, taken: Option<bool>, verdict: Verdict) {
        match (taken, verdict) {
            (Some(true), _) => self.recent.push_back((t, Verdict::Accept)),
            (Some(false), _) | (None, Verdict::Reject) => {}
            (None, _) => self.recent.push_back((t, Verdict::Ambiguous)),
        }
    }
}

/// Deliveries over budget and refusals within it.
#[derive(Debug)]
pub struct RateLimit {
    limit: usize,
    senders: HashMap<SocketKey, Sender>,
}

impl RateLimit {
    /// For a budget of `limit` messages per minute.
    pub fn new(limit: u32) -> Self {
        Self {
            limit: limit as usize,
            senders: HashMap::new(),
        }
    }
}

impl Check for RateLimit {
    fn record(&mut self, record: &Record, cx: &mut Cx<'_>) {
        match record {
            Record::Received {
                socket,
                what: Observed::RateLimited,
                ..
            } => {
                cx.tally.count(Counter::RateLimitRejected, 1);
                self.senders.entry(*socket).or_default().refusals += 1;
            }
            Record::Ack {
                socket,
                outcome: AckOutcome::RateLimited,
                ..
            } => self.senders.entry(*socket).or_default().acks = true,
            _ => {}
        }
    }

    fn settled(&mut self, m: &mut Message, cx: &mut Cx<'_>) {
        let tolerance = cx.evidence.rate_window(m.sent_at);
        let sender = self.senders.entry(m.sender).or_default();
        let verdict = sender.verdict(m.sent_at, tolerance, self.limit);
        m.within_budget = verdict == Verdict::Accept;
        let ack = m.ack.as_ref().map(|(a, _)| a);
        let acked_limited = ack == Some(&AckOutcome::RateLimited);
        // every message a joined socket sends counts against its budget, even a refused one
        let taken = match ack {
            Some(AckOutcome::Accepted | AckOutcome::Refused(_)) => Some(true),
            Some(AckOutcome::RateLimited) => Some(false),
            None => (!m.received.is_empty()).then_some(true),
        };
        sender.took(m.sent_at, taken, verdict);
        let sid = cx.registry.sid(m.sender);
        if (verdict == Verdict::Reject || acked_limited) && !m.received.is_empty() {
            for &k in &m.received {
                let why = if acked_limited {
                    "delivered although its ack said rate limited"
                } else {
                    "delivered over the rate limit"
                };
                cx.tally.violation(
                    Violation::RateLimitWronglyDelivered,
                    Some(m.id),
                    cx.registry.sid(k),
                    m.sent_at,
                    || why.into(),
                );
            }
        }
        if verdict == Verdict::Accept && acked_limited {
            cx.tally.violation(
                Violation::RateLimitWronglyRejected,
                Some(m.id),
                sid,
                m.sent_at,
                || {
                    format!(
                        "refused within budget (tolerance {} ms)",
                        tolerance.as_millis()
                    )
                },
            );
        }
        m.owed = match verdict {
            _ if matches!(ack, Some(AckOutcome::Refused(_))) => false,
            _ if acked_limited => false,
            Verdict::Accept => true,
            Verdict::Reject => false,
            Verdict::Ambiguous => ack == Some(&AckOutcome::Accepted) || !m.received.is_empty(),
        };
    }

    fn finish(&mut self, cx: &mut Cx<'_>) {
        for (socket, s) in &self.senders {
            if s.acks || s.refusals <= s.allowed_refusals {
                continue;
            }
            let extra = s.refusals - s.allowed_refusals;
            cx.tally
                .violations_n(Violation::RateLimitWronglyRejected, extra);
            let (got, allowed) = (s.refusals, s.allowed_refusals);
            cx.tally.example(
                Violation::RateLimitWronglyRejected.name(),
                None,
                cx.registry.sid(*socket),
                cx.now,
                || format!("{got} rateLimitExceeded, at most {allowed} expected"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Sender {
        /// Judges a message the backend took as the budget says (or refused, `taken`).
        fn judge(
            &mut self,
            t: Instant,
            tol: Duration,
            limit: usize,
            taken: Option<bool>,
        ) -> Verdict {
            let v = self.verdict(t, tol, limit);
            self.took(t, taken.or(Some(v == Verdict::Accept)), v);
            v
        }
    }

    #[test]
    fn within_then_over_budget() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let tol = Duration::from_millis(500);
        let mut s = Sender::default();
        assert_eq!(s.judge(at(0), tol, 3, None), Verdict::Accept);
        assert_eq!(s.judge(at(100), tol, 3, None), Verdict::Accept);
        assert_eq!(s.judge(at(200), tol, 3, None), Verdict::Accept);
        assert_eq!(s.judge(at(300), tol, 3, None), Verdict::Reject);
        assert_eq!(s.judge(at(30_000), tol, 3, None), Verdict::Reject);
        assert_eq!(s.allowed_refusals, 2);
    }

    #[test]
    fn the_window_edge_is_ambiguous_by_the_tolerance() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut s = Sender::default();
        let tol = Duration::from_millis(500);
        assert_eq!(s.judge(at(0), tol, 1, None), Verdict::Accept);
        assert_eq!(s.judge(at(59_800), tol, 1, Some(false)), Verdict::Ambiguous);
        // the backend refused it, so it does not count: the next minute starts clean
        assert_eq!(s.judge(at(61_000), tol, 1, None), Verdict::Accept);
        // a wider tolerance (a slower backend) makes more of the edge uncertain
        let mut slow = Sender::default();
        let tol = Duration::from_millis(2_000);
        assert_eq!(slow.judge(at(0), tol, 1, None), Verdict::Accept);
        assert_eq!(slow.judge(at(58_500), tol, 1, None), Verdict::Ambiguous);
    }

    #[test]
    fn a_sender_over_its_budget_for_minutes_is_still_judged() {
        // a backend with an exact sliding log of 2 a minute; one message every 7 s for
        // 5 minutes: the verdicts follow what it takes, and only window edges are uncertain
        let t0 = Instant::now();
        let tol = Duration::from_millis(100);
        let mut s = Sender::default();
        let mut backend: Vec<Instant> = Vec::new();
        let mut ambiguous = 0;
        for i in 0..43u64 {
            let t = t0 + Duration::from_millis(i * 7_000);
            let taken = backend.iter().filter(|a| t - **a < WINDOW).count() < 2;
            if taken {
                backend.push(t);
            }
            match s.verdict(t, tol, 2) {
                Verdict::Accept => assert!(taken, "message {i}: accept, but refused"),
                Verdict::Reject => assert!(!taken, "message {i}: reject, but taken"),
                Verdict::Ambiguous => ambiguous += 1,
            }
            s.took(t, Some(taken), Verdict::Ambiguous);
        }
        assert!(ambiguous <= 4, "{ambiguous} of 43 left unjudged");
    }
}
