//! Shards of one run (`sim run --shard k/n`) merged into one result: counters and series
//! summed, histograms added exactly, thresholds judged again.

use std::collections::BTreeMap;

use crate::hdr;
use crate::model::{PathLatency, RunResult, SecondLatency, SecondSample, SteadyState};

/// Why results could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Nothing given.
    #[error("nothing to merge")]
    Empty,
    /// Results of different scenarios.
    #[error("results are of different scenarios ({0} and {1})")]
    Mismatch(String, String),
    /// Not the shards of one run: each must be `k/n` with one n, distinct k, one seed and duration.
    #[error("not the shards of one run: {0}")]
    NotShards(String),
    /// A histogram would not decode or add.
    #[error(transparent)]
    Histogram(#[from] hdr::HdrError),
}

/// Merges shard results of one scenario.
///
/// Per-second latency cannot be merged exactly (only whole-run histograms are stored); a
/// merged second shows the highest p50/p99 of its shards, an upper bound.
///
/// # Errors
/// [`MergeError`].
pub fn merge(results: &[RunResult]) -> Result<RunResult, MergeError> {
    let first = results.first().ok_or(MergeError::Empty)?;
    for r in results {
        if r.scenario.name != first.scenario.name {
            return Err(MergeError::Mismatch(
                first.scenario.name.clone(),
                r.scenario.name.clone(),
            ));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for r in results {
        let label = r.scenario.shard.as_deref().ok_or_else(|| {
            MergeError::NotShards(format!(
                "{} has no shard label (run with --shard k/n)",
                r.scenario.name
            ))
        })?;
        let (k, n) = label
            .split_once('/')
            .ok_or_else(|| MergeError::NotShards(format!("shard label {label:?}")))?;
        let first_n = first
            .scenario
            .shard
            .as_deref()
            .and_then(|l| l.split_once('/'))
            .map(|(_, n)| n);
        if Some(n) != first_n
            || r.scenario.seed != first.scenario.seed
            || r.scenario.duration_s != first.scenario.duration_s
        {
            return Err(MergeError::NotShards(
                "different shard counts, seeds or durations".into(),
            ));
        }
        if !seen.insert(k.to_owned()) {
            return Err(MergeError::NotShards(format!("shard {label} given twice")));
        }
    }
    let mut merged = first.clone();
    merged.counters = BTreeMap::new();
    for r in results {
        for (k, v) in &r.counters {
            *merged.counters.entry(k.clone()).or_default() += v;
        }
    }
    // the adversary runs in the first shard only
    merged.attacks = results
        .iter()
        .find(|r| !r.attacks.is_empty())
        .map(|r| r.attacks.clone())
        .unwrap_or_default();
    merged.paths = merge_paths(results.iter().map(|r| &r.paths))?;
    let lags: Vec<_> = results.iter().filter_map(|r| r.send_lag.as_ref()).collect();
    merged.send_lag = if lags.is_empty() {
        None
    } else {
        Some(hdr::merge(&lags)?)
    };
    let mut seconds: BTreeMap<u32, SecondSample> = BTreeMap::new();
    for r in results {
        for s in &r.timeseries {
            let m = seconds.entry(s.t).or_insert_with(|| SecondSample {
                t: s.t,
                sent: 0,
                delivered: 0,
                connected: 0,
                violations: 0,
                late: 0,
                latency: BTreeMap::new(),
            });
            m.sent += s.sent;
            m.late += s.late;
            m.delivered += s.delivered;
            m.connected += s.connected;
            m.violations += s.violations;
            for (path, l) in &s.latency {
                let e = m.latency.entry(path.clone()).or_insert(SecondLatency {
                    p50_ms: 0.0,
                    p99_ms: 0.0,
                });
                e.p50_ms = e.p50_ms.max(l.p50_ms);
                e.p99_ms = e.p99_ms.max(l.p99_ms);
            }
        }
    }
    merged.timeseries = seconds.into_values().collect();
    let steady: Vec<&SteadyState> = results.iter().filter_map(|r| r.steady.as_ref()).collect();
    merged.steady = match steady.first() {
        Some(first) if steady.len() == results.len() => {
            let lags: Vec<_> = steady.iter().filter_map(|s| s.send_lag.as_ref()).collect();
            Some(SteadyState {
                from_s: first.from_s,
                to_s: first.to_s,
                paths: merge_paths(steady.iter().map(|s| &s.paths))?,
                send_lag: if lags.is_empty() {
                    None
                } else {
                    Some(hdr::merge(&lags)?)
                },
            })
        }
        _ => None,
    };
    merged.examples = BTreeMap::new();
    for r in results {
        for (class, list) in &r.examples {
            let e = merged.examples.entry(class.clone()).or_default();
            e.extend(list.iter().take(20usize.saturating_sub(e.len())).cloned());
        }
    }
    merged.scenario.shard = Some(format!("merged from {} shards", results.len()));
    merged.interrupted = results.iter().any(|r| r.interrupted);
    merged.environment.wall_s = results
        .iter()
        .map(|r| r.environment.wall_s)
        .fold(0.0, f64::max);
    merged.environment.sim_cpu_s = results.iter().map(|r| r.environment.sim_cpu_s).sum();
    merged.environment.sim_peak_rss_kib =
        results.iter().map(|r| r.environment.sim_peak_rss_kib).sum();
    merged.judge();
    Ok(merged)
}

/// Every path of `parts`, each merged exactly from its histograms.
fn merge_paths<'a>(
    parts: impl Iterator<Item = &'a BTreeMap<String, PathLatency>> + Clone,
) -> Result<BTreeMap<String, PathLatency>, MergeError> {
    let names: std::collections::BTreeSet<&String> = parts.clone().flat_map(|p| p.keys()).collect();
    let mut out = BTreeMap::new();
    for name in names {
        let each: Vec<&PathLatency> = parts.clone().filter_map(|p| p.get(name)).collect();
        let intended: Vec<_> = each.iter().map(|p| &p.intended).collect();
        let service: Vec<_> = each.iter().map(|p| &p.service).collect();
        out.insert(
            name.clone(),
            PathLatency {
                intended: hdr::merge(&intended)?,
                service: hdr::merge(&service)?,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::*;
    use hdrhistogram::Histogram;

    /// A result whose fan-out histogram holds `samples_us` and whose `lost` is `lost`.
    pub(crate) fn sample(samples_us: impl IntoIterator<Item = u64>, lost: u64) -> RunResult {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("bounds");
        for s in samples_us {
            h.record(s).expect("in range");
        }
        let summary = hdr::summarize(&h);
        let mut counters = BTreeMap::new();
        counters.insert(Violation::Lost.name().to_owned(), lost);
        counters.insert(Counter::Delivered.name().to_owned(), h.len());
        counters.insert(Counter::Violations.name().to_owned(), lost);
        let mut paths = BTreeMap::new();
        paths.insert(
            "fanout".to_owned(),
            PathLatency {
                intended: summary.clone(),
                service: summary,
            },
        );
        RunResult {
            schema_version: SCHEMA_VERSION,
            passed: true,
            interrupted: false,
            scenario: ScenarioInfo {
                name: "s".into(),
                description: String::new(),
                file: "s.toml".into(),
                duration_s: 10.0,
                drain_s: 1.0,
                seed: 1,
                shard: None,
                groups: Vec::new(),
            },
            target: TargetInfo {
                kind: "embedded".into(),
                urls: Vec::new(),
                relay_version: None,
                insecure_tls: false,
            },
            environment: Environment {
                sim_version: "0".into(),
                cores: 2,
                os: "linux".into(),
                started_at: "now".into(),
                wall_s: 11.0,
                sim_cpu_s: Some(1.0),
                sim_peak_rss_kib: Some(100),
                pacer: None,
            },
            counters,
            send_lag: Some(hdr::summarize(&h)),
            paths,
            thresholds: vec![ThresholdVerdict {
                metric: Violation::Lost.name().into(),
                limit: 0.0,
                bound: "max".into(),
                value: Some(lost as f64),
                passed: lost == 0,
                implicit: false,
            }],
            timeseries: vec![SecondSample {
                t: 1,
                sent: 5,
                delivered: 7,
                connected: 3,
                violations: lost,
                late: 0,
                latency: BTreeMap::new(),
            }],
            examples: BTreeMap::new(),
            judging: None,
            target_watch: None,
            attacks: Vec::new(),
            steady: None,
        }
    }

    fn shard(mut r: RunResult, label: &str) -> RunResult {
        r.scenario.shard = Some(label.into());
        r
    }

    #[test]
    fn shards_merge_exactly() {
        let a = shard(sample(1..=1000, 0), "1/2");
        let b = shard(sample((1..=4000).map(|x| x * 7), 2), "2/2");
        let merged = merge(&[a.clone(), b.clone()]).expect("merges");
        assert_eq!(merged.counters["delivered"], 5000);
        assert_eq!(merged.counters["lost"], 2);
        assert_eq!(merged.timeseries[0].sent, 10);
        assert_eq!(merged.timeseries[0].connected, 6);
        // the histogram of all samples, recorded directly
        let mut all = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("bounds");
        for s in (1..=1000).chain((1..=4000).map(|x| x * 7)) {
            all.record(s).expect("in range");
        }
        let p99 = all.value_at_quantile(0.99) as f64 / 1000.0;
        assert_eq!(merged.paths["fanout"].intended.p99_ms, p99);
        assert_eq!(merged.send_lag.as_ref().map(|l| l.p99_ms), Some(p99));
        assert_eq!(merged.paths["fanout"].intended.count, 5000);
        // thresholds judged again on the merged figures
        assert!(!merged.passed);
        assert_eq!(merged.thresholds[0].value, Some(2.0));
    }

    #[test]
    fn only_distinct_shards_of_one_run_merge() {
        let a = shard(sample(1..=10, 0), "1/2");
        let mut b = shard(sample(1..=10, 0), "2/2");
        b.scenario.name = "other".into();
        assert!(matches!(
            merge(&[a.clone(), b]),
            Err(MergeError::Mismatch(..))
        ));
        assert!(matches!(merge(&[]), Err(MergeError::Empty)));
        assert!(
            matches!(
                merge(&[a.clone(), a.clone()]),
                Err(MergeError::NotShards(_))
            ),
            "same shard twice"
        );
        let unlabelled = sample(1..=10, 0);
        assert!(matches!(
            merge(&[unlabelled]),
            Err(MergeError::NotShards(_))
        ));
        let other_n = shard(sample(1..=10, 0), "2/3");
        assert!(matches!(
            merge(&[a, other_n]),
            Err(MergeError::NotShards(_))
        ));
    }
}
