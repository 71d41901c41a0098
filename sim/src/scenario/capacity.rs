//! `[capacity]`: how `sim capacity` steps a scenario's load (message rate, bots or both),
//! its search bounds, trial lengths and service-level objectives; and a plan scaled to one
//! load step.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::raw::HumanDuration;
use super::resolve::Resolver;
use super::{Plan, ScenarioError, Threshold};
use crate::metrics::is_known_metric;

/// What one load step multiplies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Vary {
    /// Every group's `messages_per_minute` (and burst frequency); bots stay as written.
    #[default]
    Rate,
    /// Every group's bot count; each bot's rate stays as written.
    Bots,
    /// Both, by the same factor.
    Both,
}

impl Vary {
    /// As written in the file.
    pub fn name(self) -> &'static str {
        match self {
            Vary::Rate => "rate",
            Vary::Bots => "bots",
            Vary::Both => "both",
        }
    }
}

/// How a capacity search runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Capacity {
    /// What a step scales.
    pub vary: Vary,
    /// The first load tried, as a multiple of the scenario as written.
    pub start: f64,
    /// The lowest load worth trying when even `start` fails.
    pub min: f64,
    /// The highest load tried.
    pub max: f64,
    /// Steady sending of a search trial, after its ramp.
    pub trial: Duration,
    /// The longest ramp-up of any group in a search trial (the confirmation keeps the
    /// scenario's); `None`: as written.
    pub trial_ramp_up: Option<Duration>,
    /// Sending phase of the confirmation trial at the knee (the scenario's duration unless
    /// written).
    pub confirm: Duration,
    /// The search stops when the failing load is within this fraction above the holding one.
    pub precision: f64,
    /// Objectives each step must meet, beside the default gate.
    pub slo: Vec<Threshold>,
    /// Wall time the whole search may take.
    pub budget: Duration,
}

/// Search trials when the file names no length.
const DEFAULT_TRIAL: Duration = Duration::from_secs(20);
/// The whole search when neither the file nor `--budget` says.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(15 * 60);

impl Capacity {
    /// The defaults for `plan` when it has no `[capacity]` section.
    pub fn defaults(plan_duration: Duration) -> Self {
        Self {
            vary: Vary::Rate,
            start: 1.0,
            min: 1.0 / 64.0,
            max: 64.0,
            trial: DEFAULT_TRIAL.min(plan_duration),
            trial_ramp_up: None,
            confirm: plan_duration,
            precision: 0.05,
            slo: Vec::new(),
            budget: DEFAULT_BUDGET,
        }
    }
}

/// `[capacity]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawCapacity {
    vary: Option<Vary>,
    start: Option<Spanned<f64>>,
    min: Option<Spanned<f64>>,
    max: Option<Spanned<f64>>,
    trial: Option<Spanned<HumanDuration>>,
    ramp_up: Option<HumanDuration>,
    confirm: Option<Spanned<HumanDuration>>,
    precision: Option<Spanned<f64>>,
    slo: Vec<Spanned<String>>,
    budget: Option<Spanned<HumanDuration>>,
}

/// Parses an objective written `metric<=limit` or `metric>=limit`, e.g. `fanout.p99_ms<=50`.
///
/// # Errors
/// What is wrong with it, in words.
pub fn parse_slo(text: &str) -> Result<Threshold, String> {
    let (metric, limit, at_least) = if let Some((m, l)) = text.split_once("<=") {
        (m, l, false)
    } else if let Some((m, l)) = text.split_once(">=") {
        (m, l, true)
    } else {
        return Err(format!(
            "{text:?} is not an objective like fanout.p99_ms<=50 (use <= or >=)"
        ));
    };
    let metric = metric.trim();
    if !is_known_metric(metric) {
        return Err(format!(
            "{text:?}: unknown metric `{metric}` (see docs/simulator.md for the list of metrics)"
        ));
    }
    let limit: f64 = limit
        .trim()
        .parse()
        .ok()
        .filter(|l: &f64| l.is_finite())
        .ok_or_else(|| format!("{text:?}: `{}` is not a number", limit.trim()))?;
    Ok(Threshold {
        metric: metric.to_owned(),
        limit,
        at_least,
        implicit: false,
    })
}

impl Resolver<'_> {
    pub(super) fn capacity(
        &self,
        raw: Option<Spanned<RawCapacity>>,
        duration: Duration,
    ) -> Result<Option<Capacity>, ScenarioError> {
        let Some(raw) = raw.map(Spanned::into_inner) else {
            return Ok(None);
        };
        let mut c = Capacity::defaults(duration);
        c.vary = raw.vary.unwrap_or_default();
        let factor = |v: &Option<Spanned<f64>>, field: &str, default: f64| match v {
            Some(x)
                if !(x.get_ref().is_finite() && *x.get_ref() > 0.0 && *x.get_ref() <= 1000.0) =>
            {
                Err(self.err(
                    x.span(),
                    format!("capacity.{field}"),
                    "must be more than 0 and at most 1000",
                ))
            }
            Some(x) => Ok(*x.get_ref()),
            None => Ok(default),
        };
        c.start = factor(&raw.start, "start", c.start)?;
        c.max = factor(&raw.max, "max", c.max.max(c.start))?;
        c.min = factor(&raw.min, "min", (c.start / 64.0).min(c.min))?;
        if c.min > c.start || c.start > c.max {
            let span = raw
                .start
                .as_ref()
                .or(raw.max.as_ref())
                .or(raw.min.as_ref())
                .map_or(0..0, Spanned::span);
            return Err(self.err(span, "capacity", "needs min <= start <= max"));
        }
        if let Some(p) = &raw.precision {
            if !(0.001..=0.5).contains(p.get_ref()) {
                return Err(self.err(p.span(), "capacity.precision", "must be 0.001 to 0.5"));
            }
            c.precision = *p.get_ref();
        }
        for (field, value, slot) in [
            ("trial", &raw.trial, &mut c.trial),
            ("confirm", &raw.confirm, &mut c.confirm),
            ("budget", &raw.budget, &mut c.budget),
        ] {
            if let Some(v) = value {
                if v.get_ref().0 < Duration::from_secs(1) {
                    return Err(self.err(
                        v.span(),
                        format!("capacity.{field}"),
                        "must be at least 1s",
                    ));
                }
                *slot = v.get_ref().0;
            }
        }
        c.trial_ramp_up = raw.ramp_up.map(|r| r.0);
        for (i, s) in raw.slo.iter().enumerate() {
            let t = parse_slo(s.get_ref())
                .map_err(|m| self.err(s.span(), format!("capacity.slo[{i}]"), m))?;
            c.slo.push(t);
        }
        Ok(Some(c))
    }
}

/// A metric of the default gate (a violation class, their sum, failed connections, attacks
/// that got through): a scenario's own bound on it stays in force at every load step.
fn is_correctness(metric: &str) -> bool {
    use reports::model::{Counter, Violation};
    Violation::ALL.iter().any(|v| v.name() == metric)
        || [
            Counter::Violations.name(),
            Counter::ConnectFailed.name(),
            super::ATTACKS_SUCCEEDED,
        ]
        .contains(&metric)
}

impl Plan {
    /// Messages per second the scenario offers once every bot is in (open model): each
    /// bot's regular rate and bursts, tabs counted, supervisors sending none.
    pub fn offered_msgs_per_s(&self) -> f64 {
        self.groups
            .iter()
            .map(|g| {
                let per_bot = g.messages_per_minute / 60.0
                    + g.burst
                        .map_or(0.0, |b| f64::from(b.size) / b.every.as_secs_f64());
                per_bot * f64::from(g.count) * f64::from(g.tabs)
            })
            .sum()
    }

    /// The highest message rate of one bot, per minute (bursts counted as their average).
    pub fn busiest_bot_per_minute(&self) -> f64 {
        self.groups
            .iter()
            .map(|g| {
                g.messages_per_minute
                    + g.burst
                        .map_or(0.0, |b| 60.0 * f64::from(b.size) / b.every.as_secs_f64())
            })
            .fold(0.0, f64::max)
    }

    /// Multiplies every group's message rate by `factor`; bursts come `factor` times as
    /// often.
    pub fn scale_rate(&mut self, factor: f64) {
        for g in &mut self.groups {
            g.messages_per_minute *= factor;
            if let Some(b) = &mut g.burst {
                b.every = b.every.div_f64(factor).max(Duration::from_millis(10));
            }
        }
    }

    /// This plan at `load` times its load: rates, bot counts or both multiplied (counts
    /// rounded, at least one bot per group), sending for `duration`, judged by the default
    /// gate and `slo` instead of the scenario's own thresholds.
    pub fn at_load(&self, vary: Vary, load: f64, duration: Duration, slo: &[Threshold]) -> Plan {
        let mut p = self.clone();
        p.duration = duration;
        if matches!(vary, Vary::Rate | Vary::Both) {
            p.scale_rate(load);
        }
        if matches!(vary, Vary::Bots | Vary::Both) {
            for g in &mut p.groups {
                g.count = ((f64::from(g.count) * load).round() as u32).max(1);
            }
        }
        p.thresholds.retain(|t| {
            (t.implicit || is_correctness(&t.metric))
                && !slo
                    .iter()
                    .any(|s| s.metric == t.metric && s.at_least == t.at_least)
        });
        p.thresholds.extend(slo.iter().cloned());
        p.faults.retain(|f| f.at < duration);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Plan {
        super::super::parse(std::path::Path::new("t.toml"), text, &Default::default())
            .expect("valid")
    }

    const S: &str = "[scenario]\nname = \"t\"\nduration = \"10s\"\n\
        [[bots]]\nname = \"o\"\nrole = \"operator\"\ncount = 3\nmessages_per_minute = 6\n\
        burst = { size = 2, every = \"6s\" }\n\
        [[bots]]\nname = \"v\"\nrole = \"client\"\ncount = 10\nmessages_per_minute = 3\n\
        [thresholds]\nlost = 0\nfanout.p99_ms = 5\n";

    #[test]
    fn a_step_scales_rates_or_bots_and_keeps_the_correctness_gate() {
        let p = plan(S);
        // 3 × (0.1 + 2/6) + 10 × 0.05
        assert!(
            (p.offered_msgs_per_s() - 1.8).abs() < 1e-9,
            "{}",
            p.offered_msgs_per_s()
        );
        let slo = [parse_slo("fanout.p99_ms<=50").expect("slo")];
        let r = p.at_load(Vary::Rate, 2.0, Duration::from_secs(3), &slo);
        assert!((r.offered_msgs_per_s() - 3.6).abs() < 1e-9);
        assert_eq!(r.peak_sockets(), 13);
        assert_eq!(r.duration, Duration::from_secs(3));
        assert!(
            r.thresholds.iter().any(|t| t.metric == "lost"),
            "the file's own gate bound stays"
        );
        let fanout: Vec<_> = r
            .thresholds
            .iter()
            .filter(|t| t.metric == "fanout.p99_ms")
            .collect();
        assert_eq!(fanout.len(), 1);
        assert_eq!(
            fanout[0].limit, 50.0,
            "the SLO replaces the file's latency bound"
        );
        let b = p.at_load(Vary::Bots, 2.0, Duration::from_secs(3), &slo);
        assert_eq!(b.peak_sockets(), 26);
        assert!((b.offered_msgs_per_s() - 3.6).abs() < 1e-9);
        let both = p.at_load(Vary::Both, 0.1, Duration::from_secs(3), &slo);
        assert_eq!(both.peak_sockets(), 2, "at least one bot per group");
    }

    #[test]
    fn objectives_parse_both_ways() {
        let t = parse_slo(" fanout.p99_ms <= 50 ").expect("valid");
        assert_eq!(
            (t.metric.as_str(), t.limit, t.at_least),
            ("fanout.p99_ms", 50.0, false)
        );
        assert!(parse_slo("delivered>=100").expect("valid").at_least);
        assert!(parse_slo("fanout.p99_ms<=inf").is_err());
        assert!(parse_slo("fanout.p99_ms=5").is_err());
    }
}
