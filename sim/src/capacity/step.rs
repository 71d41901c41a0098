//! One load step judged on its steady state (from a second after the last bot arrived to
//! the end of sending: the ramp's connection storm is no part of a load's verdict): what
//! the trial achieved against what it offered, its latency there, the resources it used,
//! whether the generator, the target or the machine ran out, by evidence sustained over
//! that window, and which resource limits the first load that failed.

use std::collections::BTreeMap;
use std::time::Duration;

use reports::capacity::{CapacityStep, StepLatency};
use reports::model::{Counter, RunResult, TargetSample, Violation};

use crate::scenario::{Plan, Target};

/// Share of a core (or of the machine) from which a resource counts as used up.
const SATURATED: f64 = 0.9;

/// Share of one core from which a target's busiest thread counts as used up: one event
/// loop queues hard well before it is busy all the time.
const THREAD_SATURATED: f64 = 0.8;

/// Share of the machine from which a generator falling behind without using up its own
/// core is the machine's doing: it waited for a core the target and it share.
const MACHINE_BUSY: f64 = 0.8;

/// Share of a steady window's sends that may leave late (over 10 ms, the ledger's "late")
/// before the generator counts as behind, if it also was late in most of its seconds.
const LATE_SHARE: f64 = 0.01;

/// Seconds with late sends it takes, at the least, for lag to count as sustained.
const SUSTAINED_SECONDS: f64 = 3.0;

/// Share of the offered rate a step must send.
const ACHIEVED: f64 = 0.95;

/// What a step was, before its verdict: the stage, the load and the plan it ran.
pub struct Trial<'a> {
    /// `range`, `bisect` or `confirm`.
    pub stage: &'static str,
    /// Multiple of the scenario's load.
    pub load: f64,
    /// The plan at that load.
    pub plan: &'a Plan,
    /// Wall time of the trial.
    pub wall: Duration,
    /// The bots had a thread to themselves, whose CPU the samples hold.
    pub bot_thread: bool,
}

/// Sent and delivered per second, late sends, and resources in cores, over `[from, to)`
/// seconds.
struct Window {
    /// Seconds counted.
    span: f64,
    sent: f64,
    delivered: f64,
    /// Late sends in all, and the seconds that had any.
    late: f64,
    late_seconds: f64,
    target_cpu: Option<f64>,
    sim_cpu: Option<f64>,
    machine: Option<f64>,
    hottest_thread: Option<f64>,
    hottest_thread_wanted: Option<f64>,
}

fn window(r: &RunResult, from: f64, to: f64) -> Window {
    // second `t` covers [t - 1, t): count the seconds wholly inside the window
    let inside = |s: &&reports::model::SecondSample| {
        f64::from(s.t) - 1.0 >= from.ceil() && f64::from(s.t) <= to
    };
    let span = r.timeseries.iter().filter(inside).count().max(1) as f64;
    let sum = |f: fn(&reports::model::SecondSample) -> u64| {
        r.timeseries.iter().filter(inside).map(f).sum::<u64>() as f64 / span
    };
    let samples: Vec<&TargetSample> = r
        .target_watch
        .iter()
        .flat_map(|w| &w.samples)
        .filter(|s| s.t_s >= from - 0.5 && s.t_s <= to + 0.5)
        .collect();
    let rate = |f: fn(&TargetSample) -> Option<f64>| {
        let points: Vec<(f64, f64)> = samples
            .iter()
            .filter_map(|s| Some((s.t_s, f(s)?)))
            .collect();
        let (first, last) = (points.first()?, points.last()?);
        (last.0 - first.0 >= 1.0).then(|| (last.1 - first.1) / (last.0 - first.0))
    };
    let mean = |f: fn(&TargetSample) -> Option<f64>| {
        let v: Vec<f64> = samples.iter().filter_map(|s| f(s)).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    Window {
        span,
        sent: sum(|s| s.sent),
        delivered: sum(|s| s.delivered),
        late: sum(|s| s.late) * span,
        late_seconds: r
            .timeseries
            .iter()
            .filter(inside)
            .filter(|s| s.late > 0)
            .count() as f64,
        target_cpu: rate(|s| s.cpu_s),
        sim_cpu: rate(|s| s.sim_cpu_s),
        machine: rate(|s| s.machine_busy_s),
        hottest_thread: mean(|s| s.hottest_thread),
        hottest_thread_wanted: mean(|s| s.hottest_thread_wanted),
    }
}

/// The cores this process may use (affinity and quotas counted).
fn usable_cores() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}

/// The result as the steady window shows it: its messages' latency and its send lag in place
/// of the whole run's, every threshold judged again (correctness stays the whole run's).
fn steady_view(r: &RunResult) -> RunResult {
    let mut v = r.clone();
    if let Some(s) = &r.steady {
        // the message paths from the window; the others (presence, connect) stay the run's
        v.paths.extend(s.paths.clone());
        v.send_lag.clone_from(&s.send_lag);
        v.judge();
    }
    v
}

/// Judges one trial on its steady window: every threshold of its plan (the default gate
/// over the whole run, the SLOs over the window), the rate it achieved, its connections,
/// and what ran out, by evidence sustained over the window.
pub fn judge(t: &Trial<'_>, r: &RunResult, result_path: String) -> CapacityStep {
    let bot_thread = t.bot_thread;
    let plan = t.plan;
    let steady = steady_view(r);
    // the window in whole seconds, as the run measured its steady state
    let (from, to) = match crate::phases::steady_window(plan) {
        Some((from, to)) => (from.as_secs_f64(), to.as_secs_f64()),
        None => {
            let to = plan.duration.max(plan.ramp()).as_secs_f64();
            ((plan.ramp().as_secs_f64() + 1.0).min(to - 1.0).max(0.0), to)
        }
    };
    let w = window(r, from, to);
    let offered = plan.offered_msgs_per_s();
    let embedded = matches!(plan.target, Target::Embedded { .. });
    // the machine's busy time is host-wide; a target is bounded by the cores it may use
    let machine_cores = crate::procfs::cores().unwrap_or_else(usable_cores);
    let cores = usable_cores();
    let mut failures: Vec<String> = steady
        .thresholds
        .iter()
        .filter(|v| !v.passed)
        .map(|v| {
            let op = if v.bound == "min" { ">=" } else { "<=" };
            match v.value {
                Some(x) => format!(
                    "{} = {} (needs {op} {})",
                    v.metric,
                    short(x),
                    short(v.limit)
                ),
                None => format!("{} not measured (needs {op} {})", v.metric, short(v.limit)),
            }
        })
        .collect();
    // Poisson noise: a short trial at a low rate may send a little less by chance
    let expected = offered * w.span;
    let floor = ACHIEVED * expected - 3.0 * expected.sqrt();
    if expected > 0.0 && w.sent * w.span < floor {
        failures.push(format!(
            "sent {:.0} messages/s of {:.0} offered ({:.0} %)",
            w.sent,
            offered,
            100.0 * w.sent / offered
        ));
    }
    if r.interrupted {
        failures.push("interrupted".into());
    }
    let lag_p99 = steady.send_lag.as_ref().map(|l| l.p99_ms);
    let sim_cpu = w.sim_cpu;
    let target_cpu = if embedded { None } else { w.target_cpu };
    let machine = w.machine.map(|m| m / machine_cores);
    let generator = !embedded && bot_thread;
    // the generator's own evidence, over the steady window only: its thread using a core,
    // or late sends in most seconds (never a p99 of a few)
    let sim_busy = generator && sim_cpu.is_some_and(|c| c >= SATURATED);
    let sends = w.sent * w.span;
    let lagging = sends > 0.0
        && w.late > LATE_SHARE * sends
        && w.late_seconds >= SUSTAINED_SECONDS
        && w.late_seconds * 2.0 >= w.span;
    let behind = lagging.then(|| {
        format!(
            "{:.1} % of its sends late, in {:.0} of {:.0} seconds",
            100.0 * w.late / sends,
            w.late_seconds,
            w.span
        )
    });
    let mut saturated = None;
    // behind without using up its own core, on a busy machine: it waited for a core the
    // target and it share, the machine's doing, not the generator's
    let machine_busy = machine.is_some_and(|m| m >= MACHINE_BUSY);
    let describe_machine = |m: f64| {
        format!(
            "machine CPU ({:.0} % of {machine_cores:.0} cores; target {}, simulator {})",
            m * 100.0,
            target_cpu.map_or("?".into(), |c| format!("{c:.2} cores")),
            sim_cpu.map_or("?".into(), |c| format!("{c:.2} cores")),
        )
    };
    if sim_busy || (behind.is_some() && !machine_busy) {
        let mut why = Vec::new();
        if let Some(c) = sim_cpu.filter(|_| sim_busy) {
            why.push(format!("its bot thread at {:.0} % of a core", c * 100.0));
        }
        why.extend(behind.clone());
        saturated = Some(format!("generator ({})", why.join(", ")));
        failures.push("the generator saturated: this step measures the simulator".into());
    } else if let (Some(why), Some(m)) = (&behind, machine.filter(|_| machine_busy)) {
        failures.push(format!(
            "the machine saturated: the generator fell behind ({why}) without using up its core, this step measures the machine"
        ));
        saturated = Some(describe_machine(m));
    } else if let Some(c) = target_cpu.filter(|c| *c >= SATURATED * cores) {
        saturated = Some(format!("target CPU ({c:.2} of {cores:.0} cores)"));
    } else if let Some(h) = w.hottest_thread.filter(|h| {
        // running most of a core, or runnable nearly all the time however busy the
        // machine kept it from running (a thread with no work waits for nothing)
        !embedded
            && (*h >= THREAD_SATURATED || w.hottest_thread_wanted.is_some_and(|w| w >= SATURATED))
    }) {
        saturated = Some(format!(
            "target CPU (its busiest thread running {:.0} % of a core{}{})",
            h * 100.0,
            w.hottest_thread_wanted
                .map_or(String::new(), |w| format!(", wanting {:.0} %", w * 100.0)),
            target_cpu.map_or(String::new(), |c| format!(", {c:.2} cores in all"))
        ));
    } else if let Some(m) = machine.filter(|m| *m >= SATURATED) {
        saturated = Some(describe_machine(m));
    }
    let count = |name: &str| r.counters.get(name).copied().unwrap_or(0);
    CapacityStep {
        stage: t.stage.to_owned(),
        load: t.load,
        bots: plan.peak_sockets(),
        offered_msgs_per_s: offered,
        achieved_msgs_per_s: w.sent,
        deliveries_per_s: w.delivered,
        duration_s: plan.duration.as_secs_f64(),
        ramp_s: plan.ramp().as_secs_f64(),
        wall_s: t.wall.as_secs_f64(),
        latency: steady
            .paths
            .iter()
            .filter(|(_, p)| p.intended.count > 0)
            .map(|(name, p)| {
                (
                    name.clone(),
                    StepLatency {
                        p50_ms: p.intended.p50_ms,
                        p99_ms: p.intended.p99_ms,
                    },
                )
            })
            .collect::<BTreeMap<_, _>>(),
        send_lag_p99_ms: lag_p99,
        sim_cpu_cores: sim_cpu,
        target_cpu_cores: target_cpu,
        machine_cpu: machine,
        violations: count(Counter::Violations.name()),
        connect_failed: count(Counter::ConnectFailed.name()),
        passed: failures.is_empty(),
        failures,
        saturated,
        result: result_path,
    }
}

/// A step that could not run at all (e.g. the target stopped answering).
pub fn could_not_run(t: &Trial<'_>, why: String) -> CapacityStep {
    CapacityStep {
        stage: t.stage.to_owned(),
        load: t.load,
        bots: t.plan.peak_sockets(),
        offered_msgs_per_s: t.plan.offered_msgs_per_s(),
        achieved_msgs_per_s: 0.0,
        deliveries_per_s: 0.0,
        duration_s: t.plan.duration.as_secs_f64(),
        ramp_s: t.plan.ramp().as_secs_f64(),
        wall_s: t.wall.as_secs_f64(),
        latency: BTreeMap::new(),
        send_lag_p99_ms: None,
        sim_cpu_cores: None,
        target_cpu_cores: None,
        machine_cpu: None,
        violations: 0,
        connect_failed: 0,
        passed: false,
        failures: vec![why],
        saturated: None,
        result: String::new(),
    }
}

/// In words: the resource that limited the first failing step, and whether it was the
/// generator.
pub fn limit(failing: &CapacityStep) -> (String, bool) {
    if failing.result.is_empty() {
        return (
            format!("the step could not run: {}", failing.failures.join("; ")),
            false,
        );
    }
    if let Some(s) = &failing.saturated {
        if s.starts_with("generator") {
            return (
                format!(
                    "the generator, not the target: {s}. The target may carry more; split the \
                     load over processes or machines with `sim run --shard k/n`"
                ),
                true,
            );
        }
        return (
            format!("{s}, while: {}", failing.failures.join("; ")),
            false,
        );
    }
    let broke = Violation::ALL.iter().any(|v| {
        failing
            .failures
            .iter()
            .any(|f| f.starts_with(&format!("{} ", v.name())))
    });
    let what = if broke {
        "correctness under load"
    } else if failing.connect_failed > 0 {
        "connections"
    } else if failing.failures.iter().any(|f| f.starts_with("sent ")) {
        "throughput"
    } else {
        "latency, with CPU to spare"
    };
    let cpu = match (failing.target_cpu_cores, failing.machine_cpu) {
        (Some(t), Some(m)) => format!(" (target {t:.2} cores, machine {:.0} % busy)", m * 100.0),
        (None, Some(m)) => format!(" (machine {:.0} % busy)", m * 100.0),
        _ => String::new(),
    };
    (
        format!("{what}: {}{cpu}", failing.failures.join("; ")),
        false,
    )
}

fn short(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests;
