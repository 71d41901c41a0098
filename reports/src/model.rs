//! The run-result schema: what a `sim run` measured and judged, serialized as `result.json`.
//!
//! A committed JSON schema (`reports/result.schema.json`) is generated from these types and
//! checked by a test, so other tools can read results without Rust.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::counters::{Counter, Violation};

/// Version of this schema; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 3;

/// Everything one run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunResult {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// True when every threshold held and the run was not interrupted.
    pub passed: bool,
    /// Stopped early by Ctrl-C: the figures cover less than the scenario asked for.
    #[serde(default)]
    pub interrupted: bool,
    /// What was run.
    pub scenario: ScenarioInfo,
    /// Against what.
    pub target: TargetInfo,
    /// Where and when.
    pub environment: Environment,
    /// Counters by metric name (`sent`, `delivered`, `lost`, `rate_limit.wrongly_delivered`, ...).
    pub counters: BTreeMap<String, u64>,
    /// Latency per path (`operator_to_client`, `fanout`, `client_to_operators`, `typing`,
    /// `presence`, `connect`).
    pub paths: BTreeMap<String, PathLatency>,
    /// How late each send left after its intended instant (the generator's own noise,
    /// included in every latency from the intended time). Absent in schema 1 results.
    #[serde(default)]
    pub send_lag: Option<LatencySummary>,
    /// Every threshold of the scenario with its verdict, failures first.
    pub thresholds: Vec<ThresholdVerdict>,
    /// One entry per second of the run.
    pub timeseries: Vec<SecondSample>,
    /// Up to 20 examples of each violation class.
    pub examples: BTreeMap<String, Vec<ViolationExample>>,
    /// The windows the verdicts were judged with (absent in schema 1 results).
    #[serde(default)]
    pub judging: Option<Judging>,
    /// What the target's `/metrics` said while the run went on (absent when the target
    /// offers none).
    #[serde(default)]
    pub target_watch: Option<TargetWatch>,
    /// What the adversary tried and how each attack went (empty without adversaries).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attacks: Vec<AttackReport>,
    /// Latency and send lag of the sends intended in the steady part of sending only, from
    /// a second after the last bot's arrival to the end of sending (their deliveries
    /// whenever they came): what `sim capacity` judges a load by, the ramp's connection
    /// storm left out. Absent when the run has no such second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steady: Option<SteadyState>,
}

/// The steady part of a run's sending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SteadyState {
    /// Where it starts, seconds since the run started.
    pub from_s: f64,
    /// Where it ends, seconds since the run started.
    pub to_s: f64,
    /// Latency per message path of the messages sent in it.
    pub paths: BTreeMap<String, PathLatency>,
    /// Send lag of the sends intended in it.
    pub send_lag: Option<LatencySummary>,
}

/// One attack of the adversary: its attempts and their verdicts, with examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AttackReport {
    /// Name in the catalogue ([`crate::attacks::Attack`]).
    pub name: String,
    /// What it goes after (`identity`, `routing`, `content`, `shape`, `hijack`, `volume`).
    pub family: String,
    /// What the oracle must see for it to succeed.
    pub succeeds_when: String,
    /// Attempts made.
    pub attempted: u64,
    /// Attempts the target withstood.
    pub blocked: u64,
    /// Attempts that got through.
    pub succeeded: u64,
    /// Attempts that could not be judged (e.g. the target was already down).
    pub not_judged: u64,
    /// Up to 5 examples: what got through, or why an attempt was not judged.
    pub examples: Vec<String>,
}

/// The target's own figures, scraped from its `/metrics` every second and summed over its
/// nodes, with the CPU of the target, the simulator and the machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TargetWatch {
    /// One entry per scrape.
    pub samples: Vec<TargetSample>,
    /// Resident memory growth after warm-up, KiB per minute (least-squares slope over the
    /// sending phase's second half); threshold `target.rss_slope_kib_per_min`.
    pub rss_slope_kib_per_min: Option<f64>,
    /// Operators, operator sockets and visitors the target still counted once every bot had
    /// left; threshold `target.presence_after`.
    pub presence_after: Option<f64>,
}

/// One sample: a scrape of the target, and CPU counters read at the same time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TargetSample {
    /// Seconds since the run started.
    pub t_s: f64,
    /// `process_resident_memory_bytes`, MiB.
    pub rss_mib: Option<f64>,
    /// `relay_connected_operator_sockets` + `relay_connected_clients`.
    pub presence: Option<f64>,
    /// `relay_emit_dropped_total`.
    pub emit_dropped: Option<f64>,
    /// CPU seconds the target has used: `process_cpu_seconds_total`, or `/proc` when it
    /// is a local process that offers no `/metrics`.
    #[serde(default)]
    pub cpu_s: Option<f64>,
    /// CPU seconds the simulator's bot thread has used (its whole process when the relay
    /// runs inside it).
    #[serde(default)]
    pub sim_cpu_s: Option<f64>,
    /// Busy CPU seconds of the whole machine, all cores.
    #[serde(default)]
    pub machine_busy_s: Option<f64>,
    /// CPU of the target's busiest thread since the previous sample, in cores (a local
    /// target process only).
    #[serde(default)]
    pub hottest_thread: Option<f64>,
    /// How much of a core that thread wanted since the previous sample: running, or ready
    /// and waiting for a core (Linux's schedstat). Near 1, it was the limit, however busy
    /// the machine kept it from running.
    #[serde(default)]
    pub hottest_thread_wanted: Option<f64>,
}

/// The windows a run judged with. A window is a span of "either answer is right" (a socket
/// that left within it after a message may or may not get it; a message within it of the
/// rate limit's edge may go either way); each comes from what the run observed around that
/// moment (the messages sent in the same second and its neighbours), never from the run's
/// worst moment, and never exceeds the protocol's bound for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Judging {
    /// Slowest message delivery or ack seen, from the actual send, ms.
    pub slowest_message_ms: f64,
    /// Slowest presence event seen, from the join or departure that caused it, ms.
    pub slowest_presence_ms: f64,
    /// Messages were judged this long after they left (the protocol's delivery bound), s:
    /// a delivery after that is `delivery.late`.
    pub settle_after_s: f64,
    /// How long a socket had to stay after a message left to be owed it.
    pub delivery_window: WindowWidths,
    /// How long an operator socket had to stay after a join or departure to be owed its
    /// presence event.
    pub presence_window: WindowWidths,
    /// How far from the rate limit's window edge a message stayed undecided.
    pub rate_window: WindowWidths,
    /// Each second's windows, by the second the message left or the presence event's cause
    /// happened.
    pub per_second: Vec<WindowSecond>,
}

/// How wide one kind of window was over the run's seconds, and its bound.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WindowWidths {
    /// Median width over the seconds, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// Widest, ms.
    pub max_ms: f64,
    /// The protocol's bound it never exceeds, ms.
    pub bound_ms: f64,
}

/// The windows of one second of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WindowSecond {
    /// Seconds since the run started (the second `[t - 1, t)`).
    pub t: u32,
    /// Delivery window, ms.
    pub delivery_ms: f64,
    /// Presence window, ms.
    pub presence_ms: f64,
    /// Rate-limit edge window, ms.
    pub rate_ms: f64,
}

/// The scenario as it was run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScenarioInfo {
    /// Scenario name.
    pub name: String,
    /// One-line description.
    pub description: String,
    /// File it came from.
    pub file: String,
    /// Sending phase, seconds.
    pub duration_s: f64,
    /// Drain after sending stopped, seconds.
    pub drain_s: f64,
    /// Random seed.
    pub seed: u64,
    /// Shard `k/n` of a sharded run, if any.
    pub shard: Option<String>,
    /// Bot groups.
    pub groups: Vec<GroupInfo>,
}

/// One `[[bots]]` group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GroupInfo {
    /// Group name.
    pub name: String,
    /// `operator`, `client` or `supervisor`.
    pub role: String,
    /// Bots in the group.
    pub count: u32,
    /// Sockets per bot (operator tabs).
    pub tabs: u32,
    /// Messages per minute per bot.
    pub messages_per_minute: f64,
    /// `websocket`, `polling` or `upgrade`.
    #[serde(default = "websocket")]
    pub transport: String,
}

fn websocket() -> String {
    "websocket".to_owned()
}

/// The backend under test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TargetInfo {
    /// `embedded` (the reference relay in-process) or `external`.
    pub kind: String,
    /// Socket.IO URLs, path included.
    pub urls: Vec<String>,
    /// Reference relay version when embedded.
    pub relay_version: Option<String>,
    /// The target's TLS certificates were not checked (`--insecure`): nothing authenticated
    /// the server the run judged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_tls: bool,
}

/// Machine and software of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Environment {
    /// `sim` version.
    pub sim_version: String,
    /// Logical cores.
    pub cores: u32,
    /// Operating system.
    pub os: String,
    /// Start, RFC 3339.
    pub started_at: String,
    /// Wall time of the whole run, seconds.
    pub wall_s: f64,
    /// CPU time the simulator process used (user + system), seconds; embedded runs include the relay.
    pub sim_cpu_s: Option<f64>,
    /// Peak resident memory of the simulator process, KiB; embedded runs include the relay.
    pub sim_peak_rss_kib: Option<u64>,
    /// How the sending thread ran (priority, timer slack), which bounds the send lag.
    #[serde(default)]
    pub pacer: Option<String>,
}

/// Latency of one path, from the intended send time and as raw service time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PathLatency {
    /// From the scheduled send instant (no coordinated omission).
    pub intended: LatencySummary,
    /// From the instant the send actually left.
    pub service: LatencySummary,
}

/// Percentiles of one histogram, in milliseconds, and the histogram itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Smallest, ms.
    pub min_ms: f64,
    /// Mean, ms.
    pub mean_ms: f64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
    /// The histogram (µs, 3 significant digits) in HdrHistogram's V2 compressed format,
    /// base64-encoded, so runs can be merged exactly.
    pub hdr_v2_base64: String,
}

/// A threshold and its verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ThresholdVerdict {
    /// Metric name as written in the scenario.
    pub metric: String,
    /// The bound.
    pub limit: f64,
    /// `"max"`: the value must not exceed the limit; `"min"`: it must reach it.
    pub bound: String,
    /// Measured value (null when the run has no sample for it).
    pub value: Option<f64>,
    /// The bound holds.
    pub passed: bool,
    /// Not written in the scenario: the default gate (every violation class at 0).
    #[serde(default)]
    pub implicit: bool,
}

/// One second of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SecondSample {
    /// Seconds since the run started.
    pub t: u32,
    /// Messages sent in this second.
    pub sent: u64,
    /// Deliveries received in this second.
    pub delivered: u64,
    /// Sockets connected at the end of this second.
    pub connected: u64,
    /// Violations found in this second.
    pub violations: u64,
    /// Sends of this second that left more than 10 ms after their intended instant.
    #[serde(default)]
    pub late: u64,
    /// p50 and p99 (ms, intended time) per path in this second.
    pub latency: BTreeMap<String, SecondLatency>,
}

/// Latency of one path within one second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SecondLatency {
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
}

/// One concrete violation, for people to look at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ViolationExample {
    /// The simulator's message id, when a message is involved.
    pub message_id: Option<u64>,
    /// The socket that observed it (server-assigned id).
    pub socket: String,
    /// Seconds since the run started.
    pub at_s: f64,
    /// What happened.
    pub detail: String,
}

/// Threshold name of [`TargetWatch::rss_slope_kib_per_min`].
pub const TARGET_RSS_SLOPE: &str = "target.rss_slope_kib_per_min";
/// Threshold name of [`TargetWatch::presence_after`].
pub const TARGET_PRESENCE_AFTER: &str = "target.presence_after";

impl RunResult {
    /// Value of a threshold metric: a counter, `<path>.<stat>`, `<path>.service.<stat>` or
    /// `send_lag.<stat>`. `None` for a latency with no sample (it cannot be shown to hold).
    pub fn metric(&self, metric: &str) -> Option<f64> {
        if let Some(v) = self.counters.get(metric) {
            return Some(*v as f64);
        }
        let watch = self.target_watch.as_ref();
        match metric {
            TARGET_RSS_SLOPE => return watch.and_then(|w| w.rss_slope_kib_per_min),
            TARGET_PRESENCE_AFTER => return watch.and_then(|w| w.presence_after),
            _ => {}
        }
        let (path, stat) = metric.split_once('.')?;
        let p = self.paths.get(path);
        let (summary, stat) = match stat.strip_prefix("service.") {
            _ if path == "send_lag" => (self.send_lag.as_ref(), stat),
            Some(s) => (p.map(|p| &p.service), s),
            None => (p.map(|p| &p.intended), stat),
        };
        let Some(s) = summary else {
            return (stat == "count").then_some(0.0);
        };
        Some(match stat {
            "count" => s.count as f64,
            "min_ms" => s.min_ms,
            "mean_ms" => s.mean_ms,
            "p50_ms" => s.p50_ms,
            "p90_ms" => s.p90_ms,
            "p99_ms" => s.p99_ms,
            "p999_ms" => s.p999_ms,
            "max_ms" => s.max_ms,
            _ => return None,
        })
    }

    /// Re-judges every threshold against this result's figures; sets `passed`.
    pub fn judge(&mut self) {
        let values: Vec<Option<f64>> = self
            .thresholds
            .iter()
            .map(|t| self.metric(&t.metric))
            .collect();
        for (t, value) in self.thresholds.iter_mut().zip(values) {
            t.value = value;
            t.passed = value.is_some_and(|v| {
                if t.bound == "min" {
                    v >= t.limit
                } else {
                    v <= t.limit
                }
            });
        }
        self.thresholds.sort_by_key(|t| t.passed);
        self.passed = !self.interrupted && self.thresholds.iter().all(|t| t.passed);
    }

    /// The JSON schema of [`RunResult`].
    pub fn json_schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(RunResult)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed schema is the one these types generate: regenerate it with
    /// `UPDATE_SCHEMA=1 cargo test -p reports` after changing the model.
    #[test]
    fn committed_schema_matches_the_model() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/result.schema.json");
        let generated =
            serde_json::to_string_pretty(&RunResult::json_schema()).expect("json") + "\n";
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(path, &generated).expect("write schema");
        }
        let committed = std::fs::read_to_string(path).expect("reports/result.schema.json exists");
        assert_eq!(
            committed, generated,
            "run with UPDATE_SCHEMA=1 to regenerate"
        );
    }
}
