//! Where the next load step goes: exponential range finding from the start load (doubling
//! while steps hold, halving while they fail), then binary search between the highest load
//! that held and the lowest that failed, until they are within the precision.

/// The search's state: what held and what failed so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    start: f64,
    min: f64,
    max: f64,
    precision: f64,
    /// Highest load that held.
    held: Option<f64>,
    /// Lowest load that failed.
    failed: Option<f64>,
}

impl Search {
    /// A search from `start`, never below `min` nor above `max`, done when the failing
    /// load is within `precision` (a fraction) above the holding one.
    pub fn new(start: f64, min: f64, max: f64, precision: f64) -> Self {
        Self {
            start: start.clamp(min, max),
            min,
            max,
            precision,
            held: None,
            failed: None,
        }
    }

    /// The load to try next; `None` when the search is done.
    pub fn next(&self) -> Option<f64> {
        match (self.held, self.failed) {
            (None, None) => Some(self.start),
            (Some(h), None) => (h < self.max).then(|| (h * 2.0).min(self.max)),
            (None, Some(f)) => (f > self.min).then(|| (f / 2.0).max(self.min)),
            (Some(h), Some(f)) => (f - h > self.precision * h).then(|| (h + f) / 2.0),
        }
    }

    /// Takes a step's verdict into account. A result that contradicts an earlier one (a
    /// hold above a failure, a failure below a hold) replaces it: the later, nearer
    /// trial wins.
    pub fn record(&mut self, load: f64, held: bool) {
        if held {
            self.held = Some(self.held.map_or(load, |h| h.max(load)));
            if self.failed.is_some_and(|f| f <= load) {
                self.failed = None;
            }
        } else {
            self.failed = Some(self.failed.map_or(load, |f| f.min(load)));
            if self.held.is_some_and(|h| h >= load) {
                self.held = None;
            }
        }
    }

    /// The highest load that held.
    pub fn held(&self) -> Option<f64> {
        self.held
    }

    /// The lowest load that failed.
    pub fn failed(&self) -> Option<f64> {
        self.failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against a target that holds up to `knee`; the loads it tried.
    fn against(knee: f64, search: &mut Search) -> Vec<f64> {
        let mut tried = Vec::new();
        while let Some(load) = search.next() {
            tried.push(load);
            search.record(load, load <= knee);
            assert!(tried.len() < 100, "the search does not end: {tried:?}");
        }
        tried
    }

    #[test]
    fn ranges_up_by_doubling_then_bisects_to_the_precision() {
        let mut s = Search::new(1.0, 1.0 / 64.0, 64.0, 0.05);
        let tried = against(3.3, &mut s);
        assert_eq!(&tried[..3], &[1.0, 2.0, 4.0], "exponential range finding");
        assert_eq!(tried[3], 3.0, "then the middle of 2 and 4");
        let (held, failed) = (s.held().expect("held"), s.failed().expect("failed"));
        assert!(held <= 3.3 && failed > 3.3, "{held} {failed}");
        assert!((failed - held) / held <= 0.05, "{held} {failed}");
        assert!(tried.len() <= 9, "{tried:?}");
    }

    #[test]
    fn ranges_down_by_halving_when_the_start_fails() {
        let mut s = Search::new(1.0, 1.0 / 64.0, 64.0, 0.05);
        let tried = against(0.3, &mut s);
        assert_eq!(&tried[..3], &[1.0, 0.5, 0.25]);
        assert!(s.held().is_some_and(|h| h <= 0.3 && h > 0.28), "{s:?}");
    }

    #[test]
    fn stops_at_the_bounds() {
        let mut s = Search::new(1.0, 0.5, 4.0, 0.05);
        assert_eq!(against(100.0, &mut s), vec![1.0, 2.0, 4.0]);
        assert_eq!((s.held(), s.failed()), (Some(4.0), None));
        let mut s = Search::new(1.0, 0.5, 4.0, 0.05);
        assert_eq!(against(0.1, &mut s), vec![1.0, 0.5]);
        assert_eq!((s.held(), s.failed()), (None, Some(0.5)));
    }

    #[test]
    fn a_later_contradiction_replaces_the_earlier_verdict() {
        let mut s = Search::new(1.0, 0.1, 10.0, 0.05);
        s.record(2.0, true);
        s.record(3.0, false);
        // a confirmation at full length fails where a short trial held
        s.record(2.0, false);
        assert_eq!((s.held(), s.failed()), (None, Some(2.0)));
        assert_eq!(s.next(), Some(1.0));
    }
}
