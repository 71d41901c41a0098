//! What a run measures: latency per path in HDR histograms (µs, 3 significant digits),
//! per-second series, and the names thresholds may refer to.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use reports::model::{PathLatency, SecondLatency};

/// A latency path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Path {
    /// Operator → the addressed visitor (`incomingOperatorMessage`).
    OperatorToClient,
    /// Operator → every other operator socket (`operatorMessageBroadcast`).
    Fanout,
    /// Visitor → every operator socket (`incomingMessage`).
    ClientToOperators,
    /// Typing indicators, both ways.
    Typing,
    /// Presence events (`newChat`, `chatEnded`, `operatorConnected`,
    /// `operatorDisconnected`), from the join or departure that caused them.
    Presence,
    /// Connect, from the scheduled arrival to the namespace's connect answer.
    Connect,
    /// The TLS handshake part of a connect (`https://` targets only).
    ConnectTls,
    /// Reconnect, from losing a connection to the new one's connect answer (backoff included).
    Reconnect,
    /// Message deliveries whose sender and recipient sit on the same node of a cluster.
    SameNode,
    /// Message deliveries whose sender and recipient sit on different nodes.
    CrossNode,
}

impl Path {
    /// Every path.
    pub const ALL: [Path; 10] = [
        Path::OperatorToClient,
        Path::Fanout,
        Path::ClientToOperators,
        Path::Typing,
        Path::Presence,
        Path::Connect,
        Path::ConnectTls,
        Path::Reconnect,
        Path::SameNode,
        Path::CrossNode,
    ];

    /// Name in results and thresholds.
    pub fn name(self) -> &'static str {
        match self {
            Path::OperatorToClient => "operator_to_client",
            Path::Fanout => "fanout",
            Path::ClientToOperators => "client_to_operators",
            Path::Typing => "typing",
            Path::Presence => "presence",
            Path::Connect => "connect",
            Path::ConnectTls => "connect_tls",
            Path::Reconnect => "reconnect",
            Path::SameNode => "same_node",
            Path::CrossNode => "cross_node",
        }
    }
}

const LATENCY_STATS: &[&str] = &[
    "count", "min_ms", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms",
];

/// Name of the send-lag histogram in thresholds (`send_lag.p99_ms`).
pub const SEND_LAG: &str = "send_lag";

/// True when `name` is a counter, `<path>.<stat>`, `<path>.service.<stat>`,
/// `send_lag.<stat>`, or one of the target's own figures (`target.rss_slope_kib_per_min`,
/// `target.presence_after`).
pub fn is_known_metric(name: &str) -> bool {
    if reports::counters::is_counter(name)
        || reports::attacks::is_attack_counter(name)
        || [
            reports::model::TARGET_RSS_SLOPE,
            reports::model::TARGET_PRESENCE_AFTER,
        ]
        .contains(&name)
    {
        return true;
    }
    let Some((path, stat)) = name.split_once('.') else {
        return false;
    };
    if path == SEND_LAG {
        return LATENCY_STATS.contains(&stat);
    }
    let stat = stat.strip_prefix("service.").unwrap_or(stat);
    Path::ALL.iter().any(|p| p.name() == path) && LATENCY_STATS.contains(&stat)
}

/// `d` in whole microseconds, as histograms record it.
pub fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Highest latency recorded: one hour, in µs.
const MAX_US: u64 = 3_600_000_000;

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 1 h at 3 significant digits cannot be an invalid configuration.
    Histogram::new_with_bounds(1, MAX_US, 3).unwrap_or_else(|_| unreachable!())
}

/// Intended-time and service-time histograms of one path.
#[derive(Debug, Clone)]
pub struct PathHistogram {
    intended: Histogram<u64>,
    service: Histogram<u64>,
    second: Histogram<u64>,
}

impl Default for PathHistogram {
    fn default() -> Self {
        Self {
            intended: new_histogram(),
            service: new_histogram(),
            second: new_histogram(),
        }
    }
}

/// Every path's histograms, and the send lag's.
#[derive(Debug, Clone)]
pub struct PathHistograms {
    paths: BTreeMap<Path, PathHistogram>,
    lag: Histogram<u64>,
}

impl Default for PathHistograms {
    fn default() -> Self {
        Self {
            paths: BTreeMap::new(),
            lag: new_histogram(),
        }
    }
}

impl PathHistograms {
    /// Records one sample, in µs.
    pub fn record(&mut self, path: Path, intended_us: u64, service_us: u64) {
        let h = self.paths.entry(path).or_default();
        let i = intended_us.clamp(1, MAX_US);
        h.intended.saturating_record(i);
        h.service.saturating_record(service_us.clamp(1, MAX_US));
        h.second.saturating_record(i);
    }

    /// Records how late a send left after its intended instant, in µs.
    pub fn record_lag(&mut self, lag_us: u64) {
        self.lag.saturating_record(lag_us.clamp(1, MAX_US));
    }

    /// The send-lag summary, when anything was sent.
    pub fn lag_summary(&self) -> Option<reports::model::LatencySummary> {
        (!self.lag.is_empty()).then(|| summarize(&self.lag))
    }

    /// p99 of `path` over the whole run so far, ms.
    pub fn p99_ms(&self, path: Path) -> Option<f64> {
        self.paths
            .get(&path)
            .filter(|h| !h.intended.is_empty())
            .map(|h| h.intended.value_at_quantile(0.99) as f64 / 1000.0)
    }

    /// This second's p50/p99 per path, and a fresh second.
    pub fn take_second(&mut self) -> BTreeMap<String, SecondLatency> {
        let mut out = BTreeMap::new();
        for (path, h) in &mut self.paths {
            if !h.second.is_empty() {
                out.insert(
                    path.name().to_owned(),
                    SecondLatency {
                        p50_ms: h.second.value_at_quantile(0.5) as f64 / 1000.0,
                        p99_ms: h.second.value_at_quantile(0.99) as f64 / 1000.0,
                    },
                );
            }
            h.second.reset();
        }
        out
    }

    /// Summaries of every path that has samples.
    pub fn summaries(&self) -> BTreeMap<String, PathLatency> {
        self.paths
            .iter()
            .filter(|(_, h)| !h.intended.is_empty())
            .map(|(p, h)| {
                (
                    p.name().to_owned(),
                    PathLatency {
                        intended: summarize(&h.intended),
                        service: summarize(&h.service),
                    },
                )
            })
            .collect()
    }
}

pub use reports::hdr::summarize;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_metrics() {
        for m in [
            "lost",
            "fanout.p99_ms",
            "connect.service.max_ms",
            "rate_limit.wrongly_delivered",
            "typing.count",
            "target.rss_slope_kib_per_min",
            "target.presence_after",
            "cross_node.p99_ms",
        ] {
            assert!(is_known_metric(m), "{m}");
        }
        assert!(is_known_metric("send_lag.p99_ms") && is_known_metric("presence.p50_ms"));
        for m in [
            "lots",
            "fanout.p98_ms",
            "nowhere.p99_ms",
            "fanout",
            "send_lag.service.p99_ms",
            "target.rss",
        ] {
            assert!(!is_known_metric(m), "{m}");
        }
    }

    #[test]
    fn summary_round_trips_the_histogram() {
        let mut p = PathHistograms::default();
        for us in 1..=1000u64 {
            p.record(Path::Fanout, us * 10, us);
        }
        let s = p.summaries();
        let f = &s["fanout"];
        assert_eq!(f.intended.count, 1000);
        assert!(
            (f.intended.p99_ms - 9.9).abs() < 0.05,
            "{}",
            f.intended.p99_ms
        );
        let h = reports::hdr::decode(&f.intended).expect("V2");
        assert_eq!(h.len(), 1000);
        assert_eq!(
            h.value_at_quantile(0.99),
            p.paths[&Path::Fanout].intended.value_at_quantile(0.99)
        );
    }
}
