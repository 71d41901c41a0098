//! The result of a capacity search (`sim capacity`): every load step tried, what held, the
//! knee and the resource that limited it; written as `capacity.json` and rendered as one
//! self-contained HTML page with latency and throughput against offered load.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::charts::{Series, XAxis, escape, line_chart};

/// Everything one capacity search found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CapacityResult {
    /// Scenario name.
    pub scenario: String,
    /// Its description.
    pub description: String,
    /// The scenario file.
    pub file: String,
    /// Against what (as in a run's `target.kind`).
    pub target: String,
    /// What a load step scales: `rate`, `bots` or `both`.
    pub vary: String,
    /// The service-level objectives each step had to meet, e.g. `fanout.p99_ms<=50`.
    pub slos: Vec<String>,
    /// Start, RFC 3339.
    pub started_at: String,
    /// Wall time of the whole search, seconds.
    pub wall_s: f64,
    /// The time budget it was given, seconds.
    pub budget_s: f64,
    /// Stopped by Ctrl-C: what was found so far.
    pub interrupted: bool,
    /// Every step, in the order tried.
    pub steps: Vec<CapacityStep>,
    /// What the steps add up to.
    pub verdict: CapacityVerdict,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CapacityVerdict {
    /// Index in `steps` of the highest load that held (the knee), if any did.
    pub knee: Option<usize>,
    /// True when the knee held in a full-length confirmation trial.
    pub confirmed: bool,
    /// Index in `steps` of the lowest load that failed, if any did.
    pub first_failure: Option<usize>,
    /// The resource seen to limit the first failing load, in words.
    pub limit: String,
    /// True when the simulator itself ran out of CPU or fell behind its schedule first:
    /// the knee is then the generator's, not the target's.
    pub generator_limited: bool,
    /// Why the search ended where it did, and anything a reader must know.
    pub notes: Vec<String>,
}

/// One load step: one trial run of the scenario at a multiple of its load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CapacityStep {
    /// `range` (exponential range finding), `bisect` (binary search) or `confirm` (full
    /// length at the knee).
    pub stage: String,
    /// Load as a multiple of the scenario as written.
    pub load: f64,
    /// Bots (sockets) at this load.
    pub bots: u64,
    /// Messages per second the scenario offers at this load (open model).
    pub offered_msgs_per_s: f64,
    /// Messages per second the simulator sent once every bot was in.
    pub achieved_msgs_per_s: f64,
    /// Deliveries per second the bots received once every bot was in.
    pub deliveries_per_s: f64,
    /// Sending phase, seconds (the ramp included).
    pub duration_s: f64,
    /// The longest ramp-up of any group, seconds: figures count from a second after it.
    #[serde(default)]
    pub ramp_s: f64,
    /// Wall time of the trial, connecting and closing included, seconds.
    pub wall_s: f64,
    /// p50 and p99 per latency path (from the intended send time), ms.
    pub latency: BTreeMap<String, StepLatency>,
    /// 99th percentile of the generator's send lag, ms.
    pub send_lag_p99_ms: Option<f64>,
    /// CPU the simulator's bot thread used while sending, in cores (the whole process
    /// when the relay is embedded in it).
    pub sim_cpu_cores: Option<f64>,
    /// CPU the target used while sending, in cores (its `/metrics`, or `/proc` when local).
    pub target_cpu_cores: Option<f64>,
    /// Share of the whole machine's CPU busy while sending, 0 to 1.
    pub machine_cpu: Option<f64>,
    /// Correctness violations.
    pub violations: u64,
    /// Connections that failed to open.
    pub connect_failed: u64,
    /// True when every SLO held, nothing broke, the rate was achieved and every bot
    /// connected.
    pub passed: bool,
    /// What failed, in words.
    pub failures: Vec<String>,
    /// What ran out, in words, when something did (`generator`, `target CPU`, `machine CPU`).
    pub saturated: Option<String>,
    /// The trial's own `result.json`.
    pub result: String,
}

/// One latency path at one step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepLatency {
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
}

impl CapacityResult {
    /// The knee's step.
    pub fn knee(&self) -> Option<&CapacityStep> {
        self.verdict.knee.and_then(|i| self.steps.get(i))
    }

    /// The first failing step.
    pub fn first_failure(&self) -> Option<&CapacityStep> {
        self.verdict.first_failure.and_then(|i| self.steps.get(i))
    }
}

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;margin:0;background:#f6f7f9}
main{max-width:1000px;margin:0 auto;padding:16px}
h1{font-size:22px;margin:8px 0}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;width:100%;background:#fff;margin:6px 0}
th,td{padding:4px 8px;border-bottom:1px solid #e4e4e4;text-align:right;font-variant-numeric:tabular-nums}
th:first-child,td:first-child{text-align:left}td.why{text-align:left;font-size:12px}
tr.bad td{background:#fde7e6}.ok{color:#1b7f3b}.no{color:#b3261e;font-weight:700}
.card{background:#fff;padding:8px 12px;border:1px solid #e4e4e4;border-radius:4px}
.chart{width:100%;height:auto;background:#fff;border:1px solid #e4e4e4;margin:6px 0}
.chart .title{font-size:14px;font-weight:600}.chart .tick{font-size:11px;fill:#555}
.chart .axis,.chart .legend{font-size:12px;fill:#333}.note{color:#b3261e;font-weight:600}
"#;

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
}

/// One line describing a step's load.
pub fn describe_load(s: &CapacityStep) -> String {
    format!(
        "{:.2}× ({} bots, {:.0} messages/s offered, {:.0} deliveries/s)",
        s.load, s.bots, s.offered_msgs_per_s, s.deliveries_per_s
    )
}

/// Renders a capacity search as one page.
pub fn render(c: &CapacityResult) -> String {
    let mut h = String::with_capacity(32 * 1024);
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>capacity {n}</title><style>{STYLE}</style></head><body><main><h1>Capacity: {n}</h1><p>{d}</p>"#,
        n = escape(&c.scenario),
        d = escape(&c.description)
    );
    if c.interrupted {
        h.push_str(
            r#"<p id="interrupted" class="note">Interrupted by Ctrl-C: what was found so far.</p>"#,
        );
    }
    h.push_str(r#"<div id="verdict" class="card">"#);
    match c.knee() {
        Some(k) => {
            let _ = write!(
                h,
                "<p><b>Knee</b> (highest load that held{}): {}</p>",
                if c.verdict.confirmed {
                    ", confirmed at full length"
                } else {
                    ", not confirmed at full length"
                },
                escape(&describe_load(k))
            );
        }
        None => h.push_str("<p><b>Knee</b>: no load held</p>"),
    }
    if let Some(f) = c.first_failure() {
        let _ = write!(
            h,
            "<p><b>First failing load</b>: {}: {}</p>",
            escape(&describe_load(f)),
            escape(&f.failures.join("; "))
        );
    }
    let _ = write!(
        h,
        "<p><b>Limit</b>: {}</p><p>Target {}; varying {}; SLOs: {}; {} steps in {:.0} s (budget {:.0} s).</p>",
        escape(&c.verdict.limit),
        escape(&c.target),
        escape(&c.vary),
        escape(&c.slos.join(", ")),
        c.steps.len(),
        c.wall_s,
        c.budget_s
    );
    for n in &c.verdict.notes {
        let _ = write!(h, "<p>{}</p>", escape(n));
    }
    h.push_str("</div>");
    steps_table(&mut h, c);
    charts(&mut h, c);
    h.push_str("</main></body></html>\n");
    h
}

fn steps_table(h: &mut String, c: &CapacityResult) {
    h.push_str(r#"<h2>Steps</h2><div class="card"><table id="steps"><tr><th>#</th><th>stage</th><th>load</th><th>bots</th><th>offered msg/s</th><th>sent msg/s</th><th>deliveries/s</th><th>fan-out p50 / p99 ms</th><th>send lag p99 ms</th><th>sim CPU</th><th>target CPU</th><th>machine</th><th>verdict</th></tr>"#);
    for (i, s) in c.steps.iter().enumerate() {
        let fanout = s.latency.get("fanout").map_or_else(
            || "–".to_owned(),
            |l| format!("{:.2} / {:.2}", l.p50_ms, l.p99_ms),
        );
        let verdict = if s.passed {
            r#"<span class="ok">held</span>"#.to_owned()
        } else {
            format!(
                r#"<span class="no">failed</span>: {}"#,
                escape(&s.failures.join("; "))
            )
        };
        let _ = write!(
            h,
            r#"<tr{}><td>{}</td><td>{}</td><td>{:.2}×</td><td>{}</td><td>{:.0}</td><td>{:.0}</td><td>{:.0}</td><td>{fanout}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="why">{verdict}</td></tr>"#,
            if s.passed { "" } else { r#" class="bad""# },
            i + 1,
            escape(&s.stage),
            s.load,
            s.bots,
            s.offered_msgs_per_s,
            s.achieved_msgs_per_s,
            s.deliveries_per_s,
            opt(s.send_lag_p99_ms, 3),
            opt(s.sim_cpu_cores, 2),
            opt(s.target_cpu_cores, 2),
            s.machine_cpu
                .map_or_else(|| "–".to_owned(), |m| format!("{:.0}%", m * 100.0)),
        );
    }
    h.push_str("</table></div>");
}

fn charts(h: &mut String, c: &CapacityResult) {
    let mut steps: Vec<&CapacityStep> = c.steps.iter().collect();
    steps.sort_by(|a, b| a.offered_msgs_per_s.total_cmp(&b.offered_msgs_per_s));
    let paths: Vec<&String> = {
        let mut p: Vec<&String> = steps.iter().flat_map(|s| s.latency.keys()).collect();
        p.sort();
        p.dedup();
        p
    };
    let mut latency = Vec::new();
    for path in paths {
        for (stat, pick) in [
            (
                "p50",
                (|l: &StepLatency| l.p50_ms) as fn(&StepLatency) -> f64,
            ),
            ("p99", |l: &StepLatency| l.p99_ms),
        ] {
            latency.push(Series {
                name: format!("{path} {stat}"),
                points: steps
                    .iter()
                    .filter_map(|s| Some((s.offered_msgs_per_s, pick(s.latency.get(path)?))))
                    .collect(),
            });
        }
    }
    let throughput = vec![
        Series {
            name: "messages sent/s".into(),
            points: steps
                .iter()
                .map(|s| (s.offered_msgs_per_s, s.achieved_msgs_per_s))
                .collect(),
        },
        Series {
            name: "offered messages/s".into(),
            points: steps
                .iter()
                .map(|s| (s.offered_msgs_per_s, s.offered_msgs_per_s))
                .collect(),
        },
    ];
    let deliveries = vec![Series {
        name: "deliveries/s".into(),
        points: steps
            .iter()
            .map(|s| (s.offered_msgs_per_s, s.deliveries_per_s))
            .collect(),
    }];
    let cpu = [
        (
            "simulator",
            (|s: &CapacityStep| s.sim_cpu_cores) as fn(&CapacityStep) -> Option<f64>,
        ),
        ("target", |s: &CapacityStep| s.target_cpu_cores),
    ]
    .into_iter()
    .map(|(name, pick)| Series {
        name: format!("{name} CPU (cores)"),
        points: steps
            .iter()
            .filter_map(|s| Some((s.offered_msgs_per_s, pick(s)?)))
            .collect(),
    })
    .collect::<Vec<_>>();
    h.push_str("<h2>Against offered load (messages/s)</h2>");
    h.push_str(&line_chart(
        "chart-latency",
        "Latency (p50, p99) against offered load",
        "ms",
        XAxis::Load,
        &latency,
    ));
    h.push_str(&line_chart(
        "chart-throughput",
        "Messages sent against offered",
        "messages/s",
        XAxis::Load,
        &throughput,
    ));
    h.push_str(&line_chart(
        "chart-deliveries",
        "Deliveries received against offered load",
        "deliveries/s",
        XAxis::Load,
        &deliveries,
    ));
    h.push_str(&line_chart(
        "chart-cpu",
        "CPU against offered load",
        "cores",
        XAxis::Load,
        &cpu,
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(load: f64, passed: bool) -> CapacityStep {
        CapacityStep {
            stage: "range".into(),
            load,
            bots: (load * 100.0) as u64,
            offered_msgs_per_s: load * 10.0,
            achieved_msgs_per_s: load * 10.0,
            deliveries_per_s: load * 200.0,
            duration_s: 10.0,
            ramp_s: 1.0,
            wall_s: 20.0,
            latency: BTreeMap::from([(
                "fanout".to_owned(),
                StepLatency {
                    p50_ms: load,
                    p99_ms: load * 3.0,
                },
            )]),
            send_lag_p99_ms: Some(0.05),
            sim_cpu_cores: Some(0.1 * load),
            target_cpu_cores: None,
            machine_cpu: Some(0.5),
            violations: 0,
            connect_failed: 0,
            passed,
            failures: if passed {
                vec![]
            } else {
                vec!["fanout.p99_ms 60 > 50".into()]
            },
            saturated: None,
            result: "step-1/result.json".into(),
        }
    }

    #[test]
    fn the_page_names_the_knee_the_failure_and_the_limit() {
        let c = CapacityResult {
            scenario: "s <1>".into(),
            description: String::new(),
            file: "s.toml".into(),
            target: "embedded".into(),
            vary: "rate".into(),
            slos: vec!["fanout.p99_ms<=50".into()],
            started_at: String::new(),
            wall_s: 100.0,
            budget_s: 900.0,
            interrupted: false,
            steps: vec![step(1.0, true), step(2.0, false)],
            verdict: CapacityVerdict {
                knee: Some(0),
                confirmed: false,
                first_failure: Some(1),
                limit: "latency".into(),
                generator_limited: false,
                notes: vec![],
            },
        };
        let page = render(&c);
        assert!(page.contains("s &lt;1&gt;"), "escaped");
        assert!(page.contains("1.00× (100 bots, 10 messages/s offered, 200 deliveries/s)"));
        assert!(page.contains("fanout.p99_ms 60 &gt; 50"));
        assert!(page.contains("not confirmed"));
        for id in ["chart-latency", "chart-throughput", "chart-cpu", "steps"] {
            assert!(page.contains(&format!(r#"id="{id}""#)), "{id}");
        }
        let json = serde_json::to_string(&c).expect("serializes");
        let back: CapacityResult = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back, c);
    }
}
