//! Turning a finished ledger into the run result: counters, latencies, thresholds, verdict;
//! and the terminal summary of a result.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use reports::model::{
    Environment, GroupInfo, Judging, RunResult, SCHEMA_VERSION, ScenarioInfo, SecondSample,
    TargetInfo, ThresholdVerdict,
};

use crate::ledger::Ledger;
use crate::scenario::{Plan, Target};

/// Where and how a run went, besides what the ledger holds.
#[derive(Debug, Clone)]
pub struct Context {
    /// Wall-clock start.
    pub started: SystemTime,
    /// Wall time of the whole run.
    pub wall: Duration,
    /// The target was the in-process relay.
    pub embedded: bool,
    /// Ctrl-C cut it short.
    pub interrupted: bool,
    /// How the pacer ran.
    pub pacer: String,
    /// What the target's `/metrics` said, if it has one.
    pub watch: Option<reports::model::TargetWatch>,
    /// What the adversary tried, if the scenario has one.
    pub attacks: Vec<reports::model::AttackReport>,
}

/// `attacks.<verdict>` over every attack, and `attacks.<name>.<verdict>` for each.
fn attack_counters(
    counters: &mut std::collections::BTreeMap<String, u64>,
    attacks: &[reports::model::AttackReport],
) {
    if attacks.is_empty() {
        return;
    }
    for a in attacks {
        for (verdict, n) in [
            ("attempted", a.attempted),
            ("blocked", a.blocked),
            ("succeeded", a.succeeded),
            ("not_judged", a.not_judged),
        ] {
            counters.insert(format!("attacks.{}.{verdict}", a.name), n);
            *counters.entry(format!("attacks.{verdict}")).or_default() += n;
        }
    }
}

/// The result of a run of `plan` whose ledger is final.
pub fn build(
    plan: &Plan,
    ledger: &Ledger,
    timeseries: Vec<SecondSample>,
    cx: Context,
) -> RunResult {
    let thresholds: Vec<ThresholdVerdict> = plan
        .thresholds
        .iter()
        .map(|t| ThresholdVerdict {
            metric: t.metric.clone(),
            limit: t.limit,
            bound: if t.at_least { "min" } else { "max" }.to_owned(),
            value: None,
            passed: false,
            implicit: t.implicit,
        })
        .collect();
    let mut result = RunResult {
        schema_version: SCHEMA_VERSION,
        passed: false,
        interrupted: cx.interrupted,
        scenario: ScenarioInfo {
            name: plan.name.clone(),
            description: plan.description.clone(),
            file: plan.file.display().to_string(),
            duration_s: plan.duration.as_secs_f64(),
            drain_s: plan.drain.as_secs_f64(),
            seed: plan.seed,
            shard: None,
            groups: plan
                .groups
                .iter()
                .map(|g| GroupInfo {
                    name: g.name.clone(),
                    role: g.role.as_str().to_owned(),
                    count: g.count,
                    tabs: g.tabs,
                    messages_per_minute: g.messages_per_minute,
                    transport: g.transport.as_str().to_owned(),
                })
                .collect(),
        },
        target: TargetInfo {
            kind: target_kind(&plan.target),
            urls: match &plan.target {
                Target::External { urls, .. } => urls.clone(),
                Target::Embedded { .. } | Target::Process => Vec::new(),
            },
            relay_version: cx.embedded.then(|| env!("CARGO_PKG_VERSION").to_owned()),
            insecure_tls: matches!(&plan.target, Target::External { reach, .. }
                if reach.trust == wire::tls::Trust::Insecure),
        },
        environment: Environment {
            sim_version: env!("CARGO_PKG_VERSION").to_owned(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            os: std::env::consts::OS.to_owned(),
            started_at: rfc3339(cx.started),
            wall_s: cx.wall.as_secs_f64(),
            sim_cpu_s: crate::procfs::own_cpu(),
            sim_peak_rss_kib: own_peak_rss_kib(),
            pacer: Some(cx.pacer.clone()),
        },
        counters: ledger.counters(),
        paths: ledger.histograms().summaries(),
        send_lag: ledger.histograms().lag_summary(),
        thresholds,
        timeseries,
        examples: ledger.examples(),
        judging: Some(judging(ledger)),
        target_watch: cx.watch,
        attacks: Vec::new(),
        steady: ledger.steady().map(|(from, to, h)| {
            let at =
                |t: std::time::Instant| t.saturating_duration_since(ledger.start()).as_secs_f64();
            reports::model::SteadyState {
                from_s: at(from),
                to_s: at(to),
                paths: h.summaries(),
                send_lag: h.lag_summary(),
            }
        }),
    };
    attack_counters(&mut result.counters, &cx.attacks);
    result.attacks = cx.attacks;
    // a run cut short did not run its course: judge() fails it
    result.judge();
    result
}

/// The windows the ledger judged with, second by second and as distributions.
fn judging(ledger: &Ledger) -> Judging {
    use crate::ledger::evidence::{SETTLE_AFTER, widths};
    use relay::bounds;
    let e = ledger.evidence();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let per_second = e.per_second(ledger.now());
    Judging {
        slowest_message_ms: ms(e.slowest_message),
        slowest_presence_ms: ms(e.slowest_presence),
        settle_after_s: SETTLE_AFTER.as_secs_f64(),
        delivery_window: widths(&per_second, |s| s.delivery_ms, bounds::DELIVERY),
        presence_window: widths(&per_second, |s| s.presence_ms, bounds::PRESENCE),
        rate_window: widths(&per_second, |s| s.rate_ms, bounds::DELIVERY),
        per_second,
    }
}

/// How a result names its target's kind.
pub fn target_kind(target: &Target) -> String {
    match target {
        Target::Embedded { relays: 1 } => "embedded".to_owned(),
        Target::Embedded { relays } => format!("embedded cluster of {relays} relays"),
        Target::External { .. } => "external".to_owned(),
        Target::Process => "relay process".to_owned(),
    }
}

/// An instant as RFC 3339, to the second.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Peak RSS of this process, from `/proc/self/status` (Linux; `None` elsewhere).
fn own_peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The table `sim run` prints at the end.
pub fn summary(result: &RunResult) -> String {
    let mut out = String::new();
    let verdict = if result.passed { "PASS" } else { "FAIL" };
    let _ = writeln!(
        out,
        "\n{verdict}  {} ({})",
        result.scenario.name, result.scenario.file
    );
    let unknown = result
        .counters
        .get(reports::model::Counter::SessionsUnknown.name())
        .copied()
        .unwrap_or(0);
    if unknown > 0 {
        let _ = writeln!(
            out,
            "\nBROKEN SESSIONS  {}",
            reports::counters::sessions_unknown_words(unknown)
        );
    }
    if result.target.insecure_tls {
        let _ = writeln!(
            out,
            "\nWARNING  TLS certificates were not checked (--insecure): nothing proved the \
             server judged here is the target"
        );
    }
    let _ = writeln!(
        out,
        "\n  {:<34} {:>12} {:>12}",
        "threshold", "value", "limit"
    );
    for t in &result.thresholds {
        let mark = if t.passed { "ok  " } else { "FAIL" };
        let value = t
            .value
            .map_or_else(|| "no data".to_owned(), |v| format!("{v:.3}"));
        let op = if t.bound == "min" { ">=" } else { "<=" };
        if t.implicit && t.passed {
            continue; // the default gate's passing rows: summarized below
        }
        let _ = writeln!(
            out,
            "{mark} {:<33} {value:>12} {op} {:<12.3}",
            t.metric, t.limit
        );
    }
    let gate = result
        .thresholds
        .iter()
        .filter(|t| t.implicit && t.passed)
        .count();
    if gate > 0 {
        let _ = writeln!(
            out,
            "     (and {gate} more bounds of 0 from the default gate, all held)"
        );
    }
    let _ = writeln!(
        out,
        "\n  {:<22} {:>9} {:>9} {:>9} {:>9} {:>9}   (ms from intended send time)",
        "path", "count", "p50", "p99", "p99.9", "max"
    );
    for (name, p) in &result.paths {
        let i = &p.intended;
        let _ = writeln!(
            out,
            "  {name:<22} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            i.count, i.p50_ms, i.p99_ms, i.p999_ms, i.max_ms
        );
    }
    if let Some(l) = &result.send_lag {
        let _ = writeln!(
            out,
            "  {:<22} {:>9} {:>9.3} {:>9.3} {:>9.3} {:>9.3}   (intended → actual send)",
            "send lag", l.count, l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms
        );
    }
    if let Some(j) = &result.judging {
        let w = |w: &reports::model::WindowWidths| {
            format!(
                "{:.0}/{:.0}/{:.0} ms (bound {:.0} s)",
                w.p50_ms,
                w.p90_ms,
                w.max_ms,
                w.bound_ms / 1000.0
            )
        };
        let _ = writeln!(
            out,
            "\n  windows, p50/p90/max over the run's seconds: delivery {}, presence {}, rate-limit edge {}",
            w(&j.delivery_window),
            w(&j.presence_window),
            w(&j.rate_window),
        );
        let _ = writeln!(
            out,
            "  messages judged {:.0} s after they left; slowest delivery {:.1} ms, slowest presence event {:.1} ms",
            j.settle_after_s, j.slowest_message_ms, j.slowest_presence_ms
        );
    }
    let env = &result.environment;
    let _ = writeln!(
        out,
        "\n  wall {:.1} s, sim CPU {} s, sim peak RSS {} KiB, pacer: {}",
        env.wall_s,
        env.sim_cpu_s.map_or("?".into(), |c| format!("{c:.2}")),
        env.sim_peak_rss_kib.map_or("?".into(), |r| r.to_string()),
        env.pacer.as_deref().unwrap_or("?")
    );
    for (name, value) in &result.counters {
        // each attack has its own table below
        let per_attack = name
            .strip_prefix("attacks.")
            .is_some_and(|r| r.contains('.'));
        if (*value > 0 || name == "violations") && !per_attack {
            let _ = writeln!(out, "  {name:<34} {value:>12}");
        }
    }
    attack_table(&mut out, &result.attacks);
    for (class, examples) in &result.examples {
        if let Some(e) = examples.first() {
            let _ = writeln!(
                out,
                "  e.g. {class}: {} (socket {}, message {:?}, at {:.2}s)",
                e.detail, e.socket, e.message_id, e.at_s
            );
        }
    }
    out
}

/// Each attack's verdicts, and what got through.
fn attack_table(out: &mut String, attacks: &[reports::model::AttackReport]) {
    if attacks.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n  {:<26} {:<9} {:>9} {:>9} {:>9} {:>10}",
        "attack", "family", "attempted", "blocked", "succeeded", "not judged"
    );
    for a in attacks {
        let _ = writeln!(
            out,
            "  {:<26} {:<9} {:>9} {:>9} {:>9} {:>10}",
            a.name, a.family, a.attempted, a.blocked, a.succeeded, a.not_judged
        );
    }
    for a in attacks.iter().filter(|a| a.succeeded + a.not_judged > 0) {
        if let Some(e) = a.examples.first() {
            let _ = writeln!(out, "  e.g. {}: {e}", a.name);
        }
    }
}
