//! What the checks found: counters by class, examples, and the current second's figures.

use std::collections::BTreeMap;
use std::time::Instant;

use reports::model::{Counter, Violation, ViolationExample};

use crate::record::MsgId;

/// Examples kept per violation class.
pub const MAX_EXAMPLES: usize = 20;

/// Counts of the current second.
#[derive(Debug, Default, Clone, Copy)]
pub struct SecondTally {
    /// Messages sent.
    pub sent: u64,
    /// Deliveries matched.
    pub delivered: u64,
    /// Violations found.
    pub violations: u64,
    /// Sends that left late.
    pub late: u64,
}

/// Counters, violations and examples of one run.
#[derive(Debug)]
pub struct Tally {
    start: Instant,
    violations: [u64; Violation::ALL.len()],
    counters: [u64; Counter::ALL.len()],
    examples: BTreeMap<&'static str, Vec<ViolationExample>>,
    second: SecondTally,
}

impl Tally {
    /// Nothing counted yet, for a run that started at `start`.
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            violations: [0; Violation::ALL.len()],
            counters: [0; Counter::ALL.len()],
            examples: BTreeMap::new(),
            second: SecondTally::default(),
        }
    }

    /// Adds `n` to a counter.
    pub fn count(&mut self, c: Counter, n: u64) {
        self.counters[c as usize] += n;
        match c {
            Counter::Sent => self.second.sent += n,
            Counter::Delivered => self.second.delivered += n,
            Counter::GeneratorLate => self.second.late += n,
            _ => {}
        }
    }

    /// Counts one violation seen by socket `sid` at `at`; `detail` is only built while
    /// examples of the class are still wanted.
    pub fn violation(
        &mut self,
        v: Violation,
        msg: Option<MsgId>,
        sid: &str,
        at: Instant,
        detail: impl FnOnce() -> String,
    ) {
        self.violations_n(v, 1);
        self.example(v.name(), msg, sid, at, detail);
    }

    /// Counts `n` violations of one class without an example.
    pub fn violations_n(&mut self, v: Violation, n: u64) {
        self.violations[v as usize] += n;
        self.second.violations += n;
    }

    /// Keeps an example under `class` (a violation class or `relay_errors`) while fewer than
    /// [`MAX_EXAMPLES`] are kept.
    pub fn example(
        &mut self,
        class: &'static str,
        msg: Option<MsgId>,
        sid: &str,
        at: Instant,
        detail: impl FnOnce() -> String,
    ) {
        let list = self.examples.entry(class).or_default();
        if list.len() < MAX_EXAMPLES {
            list.push(ViolationExample {
                message_id: msg,
                socket: sid.to_owned(),
                at_s: at.saturating_duration_since(self.start).as_secs_f64(),
                detail: detail(),
            });
        }
    }

    /// One violation class's count.
    pub fn of(&self, v: Violation) -> u64 {
        self.violations[v as usize]
    }

    /// One counter's value.
    pub fn counter(&self, c: Counter) -> u64 {
        if c == Counter::Violations {
            return self.violations.iter().sum();
        }
        self.counters[c as usize]
    }

    /// The current second's tally, and a fresh one.
    pub fn take_second(&mut self) -> SecondTally {
        std::mem::take(&mut self.second)
    }

    /// Every counter and class by name, `violations` being their sum.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = Counter::ALL
            .iter()
            .map(|&c| (c.name().to_owned(), self.counter(c)))
            .collect();
        for v in Violation::ALL {
            out.insert(v.name().to_owned(), self.of(v));
        }
        out
    }

    /// Examples by class.
    pub fn examples(&self) -> BTreeMap<String, Vec<ViolationExample>> {
        self.examples
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sum_and_examples_are_capped() {
        let t0 = Instant::now();
        let mut t = Tally::new(t0);
        let mut built = 0;
        for _ in 0..30 {
            t.violation(Violation::Lost, Some(1), "s", t0, || {
                built += 1;
                "x".into()
            });
        }
        t.violation(Violation::Echoed, None, "s", t0, String::new);
        t.count(Counter::Sent, 3);
        let c = t.counters();
        assert_eq!(c["lost"], 30);
        assert_eq!(c["violations"], 31);
        assert_eq!(c["sent"], 3);
        assert_eq!(built, MAX_EXAMPLES, "details past the cap are never built");
        assert_eq!(t.examples()["lost"].len(), MAX_EXAMPLES);
        assert_eq!(t.take_second().violations, 31);
        assert_eq!(t.take_second().violations, 0);
    }
}
