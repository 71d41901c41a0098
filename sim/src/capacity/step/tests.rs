//! Naming the limit, and judging a step on its steady window: the ramp's storm fails
//! nothing, lag blames the generator only when sustained, and on a full machine the
//! machine.

use std::collections::BTreeMap;

use reports::model::{
    Environment, LatencySummary, PathLatency, RunResult, ScenarioInfo, SecondSample, SteadyState,
    TargetInfo, TargetSample, TargetWatch,
};

use super::*;

fn failing(failures: &[&str], saturated: Option<&str>) -> CapacityStep {
    CapacityStep {
        stage: "bisect".into(),
        load: 2.0,
        bots: 10,
        offered_msgs_per_s: 100.0,
        achieved_msgs_per_s: 90.0,
        deliveries_per_s: 1800.0,
        duration_s: 10.0,
        ramp_s: 1.0,
        wall_s: 15.0,
        latency: BTreeMap::new(),
        send_lag_p99_ms: Some(0.1),
        sim_cpu_cores: Some(0.5),
        target_cpu_cores: Some(0.7),
        machine_cpu: Some(0.6),
        violations: 0,
        connect_failed: 0,
        passed: false,
        failures: failures.iter().map(|f| (*f).to_owned()).collect(),
        saturated: saturated.map(str::to_owned),
        result: "step/result.json".into(),
    }
}

#[test]
fn the_limit_names_the_generator_and_suggests_shards() {
    let (text, generator) = limit(&failing(
        &["the generator saturated: this step measures the simulator"],
        Some("generator (its bot thread at 95 % of a core)"),
    ));
    assert!(generator);
    assert!(
        text.contains("not the target") && text.contains("--shard"),
        "{text}"
    );
}

#[test]
fn the_limit_names_the_resource_or_what_broke() {
    let (text, generator) = limit(&failing(
        &["fanout.p99_ms = 60 (needs <= 50)"],
        Some("machine CPU (95 % of 2 cores)"),
    ));
    assert!(!generator);
    assert!(
        text.starts_with("machine CPU") && text.contains("fanout.p99_ms"),
        "{text}"
    );
    let (text, _) = limit(&failing(&["lost = 3 (needs <= 0)"], None));
    assert!(text.starts_with("correctness under load"), "{text}");
    let (text, _) = limit(&failing(&["fanout.p99_ms = 60 (needs <= 50)"], None));
    assert!(
        text.starts_with("latency, with CPU to spare") && text.contains("machine 60 %"),
        "{text}"
    );
    let mut gone = failing(&["target http://x is unreachable"], None);
    gone.result.clear();
    assert!(limit(&gone).0.starts_with("the step could not run"));
}

/// 30 messages/s against an external target, a 2 s ramp, `secs` of sending: the steady
/// window is 3 s to its end.
fn plan_of(secs: u32) -> Plan {
    let text = format!(
        "[scenario]\nname = \"t\"\nduration = \"{secs}s\"\n\
        [target]\nurl = \"http://127.0.0.1:9/chat\"\njwt_secret = \"s\"\n\
        [[bots]]\nname = \"v\"\nrole = \"client\"\ncount = 60\nramp_up = \"2s\"\n\
        messages_per_minute = 30\n\
        [thresholds]\nfanout.p99_ms = 50\n"
    );
    crate::scenario::parse(std::path::Path::new("t.toml"), &text, &Default::default())
        .expect("valid")
}

fn latency(p99_ms: f64) -> LatencySummary {
    LatencySummary {
        count: 1000,
        min_ms: 0.1,
        mean_ms: p99_ms / 4.0,
        p50_ms: p99_ms / 4.0,
        p90_ms: p99_ms / 2.0,
        p99_ms,
        p999_ms: p99_ms,
        max_ms: p99_ms,
        hdr_v2_base64: String::new(),
    }
}

fn paths(p99_ms: f64) -> BTreeMap<String, PathLatency> {
    let l = latency(p99_ms);
    BTreeMap::from([(
        "fanout".to_owned(),
        PathLatency {
            intended: l.clone(),
            service: l,
        },
    )])
}

/// A run of [`plan`] whose seconds 1 to 10 sent 30 messages each, `late(t)` of them late;
/// fan-out p99 `whole` over the run and `steady` over its steady window; the bot thread at
/// `sim` cores and the machine `machine` busy (of 2 cores).
fn run(late: impl Fn(u32) -> u64, whole: f64, steady: f64, sim: f64, machine: f64) -> RunResult {
    run_of(10, late, whole, steady, sim, machine)
}

/// The same with `secs` of sending.
fn run_of(
    secs: u32,
    late: impl Fn(u32) -> u64,
    whole: f64,
    steady: f64,
    sim: f64,
    machine: f64,
) -> RunResult {
    let plan = plan_of(secs);
    let thresholds = plan
        .thresholds
        .iter()
        .map(|t| reports::model::ThresholdVerdict {
            metric: t.metric.clone(),
            limit: t.limit,
            bound: "max".into(),
            value: None,
            passed: false,
            implicit: t.implicit,
        })
        .collect();
    let mut r = RunResult {
        schema_version: reports::model::SCHEMA_VERSION,
        passed: false,
        interrupted: false,
        scenario: ScenarioInfo {
            name: "t".into(),
            description: String::new(),
            file: "t.toml".into(),
            duration_s: f64::from(secs),
            drain_s: 1.0,
            seed: 1,
            shard: None,
            groups: Vec::new(),
        },
        target: TargetInfo {
            kind: "external".into(),
            urls: Vec::new(),
            relay_version: None,
            insecure_tls: false,
        },
        environment: Environment {
            sim_version: "0".into(),
            cores: 2,
            os: "linux".into(),
            started_at: String::new(),
            wall_s: 12.0,
            sim_cpu_s: None,
            sim_peak_rss_kib: None,
            pacer: None,
        },
        counters: Violation::ALL
            .iter()
            .map(|v| (v.name().to_owned(), 0))
            .chain([
                ("connect.failed".to_owned(), 0),
                ("faults.failed".to_owned(), 0),
            ])
            .collect(),
        paths: paths(whole),
        send_lag: Some(latency(25.0)),
        thresholds,
        timeseries: (1..=secs)
            .map(|t| SecondSample {
                t,
                sent: 30,
                delivered: 600,
                connected: 60,
                violations: 0,
                late: late(t),
                latency: BTreeMap::new(),
            })
            .collect(),
        examples: BTreeMap::new(),
        judging: None,
        target_watch: Some(TargetWatch {
            samples: (0..=secs + 1)
                .map(|t| TargetSample {
                    t_s: f64::from(t),
                    rss_mib: None,
                    presence: None,
                    emit_dropped: None,
                    cpu_s: Some(0.3 * f64::from(t)),
                    sim_cpu_s: Some(sim * f64::from(t)),
                    machine_busy_s: Some(2.0 * machine * f64::from(t)),
                    hottest_thread: Some(0.3),
                    hottest_thread_wanted: Some(0.3),
                })
                .collect(),
            rss_slope_kib_per_min: None,
            presence_after: None,
        }),
        attacks: Vec::new(),
        steady: Some(SteadyState {
            from_s: 3.0,
            to_s: f64::from(secs),
            paths: paths(steady),
            send_lag: Some(latency(0.1)),
        }),
    };
    r.judge();
    r
}

fn step(r: &RunResult) -> CapacityStep {
    let plan = plan_of(r.scenario.duration_s as u32);
    let trial = Trial {
        stage: "range",
        load: 1.0,
        plan: &plan,
        wall: Duration::from_secs(12),
        bot_thread: true,
    };
    judge(&trial, r, "r.json".into())
}

#[test]
fn the_ramps_storm_fails_nothing() {
    // the whole run's p99 is the connect storm's (and so is its lag): the steady window holds
    let r = run(|t| if t <= 3 { 10 } else { 0 }, 400.0, 12.0, 0.3, 0.4);
    assert!(!r.passed, "judged over the whole run, the SLO fails");
    let s = step(&r);
    assert!(s.passed, "{s:?}");
    assert_eq!(s.saturated, None);
    assert_eq!(
        s.latency["fanout"].p99_ms, 12.0,
        "the steady window's latency"
    );
    // the same latency in steady state fails the SLO
    let s = step(&run(|_| 0, 400.0, 400.0, 0.3, 0.4));
    assert_eq!(s.failures, ["fanout.p99_ms = 400 (needs <= 50)"]);
}

#[test]
fn only_sustained_lag_blames_the_generator() {
    // a few late sends in one steady second: not evidence
    let s = step(&run(|t| u64::from(t == 6) * 5, 12.0, 12.0, 0.3, 0.4));
    assert!(s.passed, "{s:?}");
    // late sends in every steady second, on a machine with CPU to spare: the generator
    let s = step(&run(|t| if t > 3 { 3 } else { 0 }, 12.0, 12.0, 0.3, 0.4));
    assert!(!s.passed);
    let why = s.saturated.as_deref().unwrap_or_default();
    assert!(
        why.starts_with("generator") && why.contains("late"),
        "{why}"
    );
    // its thread using a core is evidence on its own
    let s = step(&run(|_| 0, 12.0, 12.0, 0.95, 0.6));
    assert!(
        s.saturated
            .as_deref()
            .is_some_and(|w| w.starts_with("generator")),
        "{s:?}"
    );
}

#[test]
fn lag_on_a_full_machine_is_the_machines() {
    let s = step(&run(|t| if t > 3 { 3 } else { 0 }, 12.0, 12.0, 0.6, 0.95));
    assert!(!s.passed);
    assert!(
        s.saturated
            .as_deref()
            .is_some_and(|w| w.starts_with("machine CPU")),
        "{s:?}"
    );
    assert!(
        s.failures
            .iter()
            .any(|f| f.starts_with("the machine saturated")),
        "{s:?}"
    );
}

#[test]
fn a_short_window_cannot_show_sustained_lag() {
    // late in two of the window's seconds only: fewer than it takes to call it sustained
    let s = step(&run(
        |t| u64::from(t == 5 || t == 6) * 10,
        12.0,
        12.0,
        0.3,
        0.4,
    ));
    assert!(s.passed, "{s:?}");
}

/// `r` with the target's busiest thread running `cpu` and wanting `wanted` of a core.
fn thread(mut r: RunResult, cpu: f64, wanted: f64) -> RunResult {
    for s in &mut r.target_watch.as_mut().expect("watch").samples {
        s.hottest_thread = Some(cpu);
        s.hottest_thread_wanted = Some(wanted);
    }
    r
}

#[test]
fn a_target_thread_is_its_limit_by_running_or_by_never_idling() {
    // running 76 % of a core on a busy machine but runnable all the time: used up
    let s = step(&thread(run(|_| 0, 12.0, 12.0, 0.5, 0.85), 0.76, 0.97));
    assert!(
        s.saturated
            .as_deref()
            .is_some_and(|w| w.starts_with("target CPU")),
        "{s:?}"
    );
    // running 45 %, runnable 84 % of the time: a thread of a busy machine, not the limit
    let s = step(&thread(run(|_| 0, 12.0, 12.0, 0.5, 0.85), 0.45, 0.84));
    assert_eq!(s.saturated, None, "{s:?}");
}

#[test]
fn lag_without_a_busy_generator_on_a_busy_machine_is_the_machines() {
    // the bot thread at 85 % of a core, the machine 85 % busy, sends late throughout
    let s = step(&run(|t| if t > 3 { 3 } else { 0 }, 12.0, 12.0, 0.85, 0.85));
    assert!(!s.passed);
    assert!(
        s.saturated
            .as_deref()
            .is_some_and(|w| w.starts_with("machine CPU")),
        "{s:?}"
    );
}
