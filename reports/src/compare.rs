//! Two runs side by side: key figures with deltas, regressions beyond a limit flagged — a CI
//! gate against a saved baseline.

use std::fmt::Write as _;

use crate::charts::escape;
use crate::model::{Counter, RunResult, Violation};

/// Which way is better for a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Latency, errors.
    Lower,
    /// Throughput.
    Higher,
}

/// One figure of both runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Figure name (a threshold metric name where there is one).
    pub figure: String,
    /// Baseline value.
    pub base: f64,
    /// New value.
    pub new: f64,
    /// Relative change, new vs base (`None` when base is 0).
    pub change: Option<f64>,
    /// Worse than the limit allows.
    pub regressed: bool,
}

/// The comparison of two runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Every key figure.
    pub rows: Vec<Row>,
    /// The allowed worsening, as a fraction (0.1 = 10 %).
    pub max_regression: f64,
}

impl Comparison {
    /// True when any figure regressed.
    pub fn regressed(&self) -> bool {
        self.rows.iter().any(|r| r.regressed)
    }
}

/// Latency changes smaller than this (ms) are noise, whatever their ratio.
const LATENCY_FLOOR_MS: f64 = 0.5;

/// Compares `new` with `base`. Latencies and throughput regress past `max_regression`
/// (relative); a violation class regresses on any increase.
pub fn compare(base: &RunResult, new: &RunResult, max_regression: f64) -> Comparison {
    let mut rows = Vec::new();
    for path in base.paths.keys().filter(|p| !new.paths.contains_key(*p)) {
        rows.push(Row {
            figure: format!("{path} (no samples in the new run)"),
            base: base.paths[path].intended.count as f64,
            new: 0.0,
            change: Some(-1.0),
            regressed: true,
        });
    }
    let mut push = |figure: String, b: f64, n: f64, better: Better, exact: bool| {
        let change = (b != 0.0).then(|| (n - b) / b);
        let worse = match better {
            Better::Lower => n - b,
            Better::Higher => b - n,
        };
        let regressed = if exact {
            worse > 0.0
        } else {
            worse > b.abs() * max_regression
                && (better == Better::Higher || worse > LATENCY_FLOOR_MS)
        };
        rows.push(Row {
            figure,
            base: b,
            new: n,
            change,
            regressed,
        });
    };
    let paths: std::collections::BTreeSet<&String> =
        base.paths.keys().chain(new.paths.keys()).collect();
    for path in paths {
        for stat in ["p50_ms", "p99_ms", "p999_ms", "max_ms"] {
            let name = format!("{path}.{stat}");
            if let (Some(b), Some(n)) = (base.metric(&name), new.metric(&name)) {
                push(name, b, n, Better::Lower, false);
            }
        }
    }
    // a sharded run's deliveries between shards are `foreign`: they count as throughput
    let rate = |r: &RunResult| {
        let got = |k: Counter| r.counters.get(k.name()).copied().unwrap_or(0) as f64;
        (got(Counter::Delivered) + got(Counter::Foreign)) / r.scenario.duration_s.max(1e-9)
    };
    push(
        "deliveries_per_second".into(),
        rate(base),
        rate(new),
        Better::Higher,
        false,
    );
    for stat in ["p99_ms", "max_ms"] {
        let name = format!("send_lag.{stat}");
        if let (Some(b), Some(n)) = (base.metric(&name), new.metric(&name)) {
            push(name, b, n, Better::Lower, false);
        }
    }
    let classes = [
        Counter::Violations,
        Counter::ConnectFailed,
        Counter::GeneratorLate,
    ]
    .into_iter()
    .map(Counter::name)
    .chain(Violation::ALL.iter().map(|v| v.name()));
    for class in classes {
        let get = |r: &RunResult| r.counters.get(class).copied().unwrap_or(0) as f64;
        push(class.into(), get(base), get(new), Better::Lower, true);
    }
    Comparison {
        rows,
        max_regression,
    }
}

/// The comparison as one self-contained page.
pub fn render(base: &RunResult, new: &RunResult, c: &Comparison) -> String {
    let mut h = String::new();
    let verdict = if c.regressed() {
        "REGRESSED"
    } else {
        "NO REGRESSION"
    };
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>{verdict}</title><style>
body{{font:14px/1.45 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#222}}main{{max-width:900px;margin:0 auto;padding:16px}}
table{{border-collapse:collapse;width:100%;background:#fff}}th,td{{padding:4px 8px;border-bottom:1px solid #e4e4e4;text-align:right}}
th:first-child,td:first-child{{text-align:left}}tr.bad td{{background:#fde7e6;font-weight:600}}
.v{{display:inline-block;padding:4px 12px;border-radius:4px;color:#fff;font-weight:700}}.ok{{background:#1b7f3b}}.no{{background:#b3261e}}
</style></head><body><main><h1><span id="verdict" class="v {cls}">{verdict}</span></h1>
<p>base: {} ({}) — new: {} ({}); allowed worsening {:.1}%; any increase of a violation class regresses.</p>
<table id="figures"><tr><th>figure</th><th>base</th><th>new</th><th>change</th></tr>"#,
        escape(&base.scenario.name),
        escape(&base.environment.started_at),
        escape(&new.scenario.name),
        escape(&new.environment.started_at),
        c.max_regression * 100.0,
        cls = if c.regressed() { "no" } else { "ok" },
    );
    for r in &c.rows {
        let change = r
            .change
            .map_or_else(|| "—".to_owned(), |x| format!("{:+.1}%", x * 100.0));
        let _ = write!(
            h,
            r#"<tr class="{}"><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{change}</td></tr>"#,
            if r.regressed { "bad" } else { "" },
            escape(&r.figure),
            r.base,
            r.new
        );
    }
    h.push_str("</table></main></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::tests::sample;

    #[test]
    fn equal_runs_do_not_regress() {
        let a = sample(1..=1000, 0);
        let c = compare(&a, &a.clone(), 0.1);
        assert!(!c.regressed(), "{:?}", c.rows);
    }

    #[test]
    fn slower_latency_regresses_past_the_limit_only() {
        let base = sample((1..=1000).map(|x| x * 10), 0);
        let slower = sample((1..=1000).map(|x| x * 15), 0); // +50 %
        let c = compare(&base, &slower, 0.1);
        assert!(
            c.rows
                .iter()
                .any(|r| r.figure == "fanout.p99_ms" && r.regressed)
        );
        assert!(
            !compare(&base, &slower, 0.6).regressed(),
            "within a 60 % allowance"
        );
    }

    #[test]
    fn any_new_violation_regresses() {
        let base = sample(1..=1000, 0);
        let worse = sample(1..=1000, 1);
        let c = compare(&base, &worse, 10.0);
        assert!(c.rows.iter().any(|r| r.figure == "lost" && r.regressed));
        let html = render(&base, &worse, &c);
        assert!(html.contains("REGRESSED") && html.contains("class=\"bad\""));
    }
}
