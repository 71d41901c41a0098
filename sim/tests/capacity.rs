//! `sim capacity` end to end, through the binary: against the embedded relay every load up
//! to the bound holds and the knee is confirmed; against a slow Node backend (a fixed CPU
//! cost per message on its one thread) the knee lands below that backend's ceiling and the
//! limit named is the target's CPU; bad objectives are refused.

mod common;

use std::path::Path;
use std::process::Command;

use reports::capacity::CapacityResult;

fn capacity(scenario: &Path, out: &Path, args: &[&str]) -> (std::process::Output, CapacityResult) {
    let output = Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg("capacity")
        .arg(scenario)
        .args(["--no-progress", "--out"])
        .arg(out)
        .args(args)
        .output()
        .expect("sim runs");
    let text = std::fs::read_to_string(out.join("capacity.json")).unwrap_or_else(|e| {
        panic!(
            "no capacity.json ({e}); stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let result = serde_json::from_str(&text).expect("a capacity result");
    (output, result)
}

const CHAT: &str = r#"
[limits]
rate_limit_per_minute = 6000

[[bots]]
name = "operators"
role = "operator"
count = 5
ramp_up = "500ms"
messages_per_minute = 30

[[bots]]
name = "visitors"
role = "client"
count = 20
ramp_up = "1s"
messages_per_minute = 30
"#;

#[test]
fn every_load_up_to_the_bound_holds_against_the_relay_and_the_knee_is_confirmed() {
    let dir = common::temp_dir("capacity-relay");
    let scenario = dir.join("s.toml");
    std::fs::write(
        &scenario,
        format!(
            r#"[scenario]
name = "capacity-relay"
duration = "4s"
drain = "1s"
{CHAT}
[capacity]
start = 1.0
max = 4.0
trial = "3s"
ramp_up = "200ms"
budget = "3m"
"#
        ),
    )
    .expect("write");
    let (out, c) = capacity(
        &scenario,
        &dir.join("out"),
        &["--slo", "fanout.p99_ms<=500"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let loads: Vec<(&str, f64)> = c.steps.iter().map(|s| (s.stage.as_str(), s.load)).collect();
    assert_eq!(
        loads,
        vec![
            ("range", 1.0),
            ("range", 2.0),
            ("range", 4.0),
            ("confirm", 4.0)
        ],
        "doubling to the bound, then one full-length trial"
    );
    assert!(c.verdict.confirmed);
    let knee = c.knee().expect("a knee");
    assert_eq!(knee.stage, "confirm");
    assert_eq!(
        knee.duration_s, 4.0,
        "the confirmation runs the scenario's full length"
    );
    assert!(
        c.verdict.limit.starts_with("none found"),
        "{}",
        c.verdict.limit
    );
    assert_eq!(c.slos, vec!["fanout.p99_ms<=500"]);
    // the offered rate doubles with the load, and the bots sent it
    let (one, four) = (&c.steps[0], &c.steps[2]);
    assert!((four.offered_msgs_per_s / one.offered_msgs_per_s - 4.0).abs() < 1e-9);
    assert_eq!(one.bots, four.bots, "vary = rate keeps the bots");
    for s in &c.steps {
        assert!(s.passed, "{s:?}");
        assert!(s.achieved_msgs_per_s > 0.6 * s.offered_msgs_per_s, "{s:?}");
        assert!(
            s.sim_cpu_cores.is_some() && s.machine_cpu.is_some(),
            "{s:?}"
        );
        assert!(s.deliveries_per_s > s.achieved_msgs_per_s, "fan-out: {s:?}");
        assert!(s.latency.contains_key("fanout"), "{s:?}");
        assert!(
            Path::new(&s.result).is_file(),
            "each step keeps its own result"
        );
    }
    assert!(stdout.contains("knee:"), "{stdout}");
    let page = std::fs::read_to_string(dir.join("out/capacity.html")).expect("page");
    for id in [
        "verdict",
        "steps",
        "chart-latency",
        "chart-throughput",
        "chart-cpu",
    ] {
        assert!(page.contains(&format!(r#"id="{id}""#)), "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_knee_of_a_slow_backend_lies_below_its_ceiling_and_its_cpu_is_the_limit() {
    // 8 ms of CPU per chat message on Node's one thread: at most 125 messages/s
    let (_node, url) = common::node(
        "chat-server.mjs",
        &[
            ("WORK_US_PER_MESSAGE", "8000"),
            ("RATE_LIMIT_PER_MINUTE", "6000"),
        ],
    )
    .await;
    let dir = common::temp_dir("capacity-slow");
    let scenario = dir.join("s.toml");
    std::fs::write(
        &scenario,
        format!(
            r#"[scenario]
name = "capacity-slow"
duration = "5s"
drain = "1s"

[target]
url = "{url}"
jwt_secret = "{secret}"
{CHAT}
[capacity]
start = 4.0
max = 32.0
trial = "3s"
precision = 0.1
slo = ["fanout.p99_ms<=100"]
budget = "4m"
"#,
            secret = common::SECRET
        ),
    )
    .expect("write");
    let out_dir = dir.join("out");
    let (out, c) = tokio::task::spawn_blocking(move || capacity(&scenario, &out_dir, &[]))
        .await
        .expect("joins");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let knee = c.knee().expect("a knee");
    let failed = c.first_failure().expect("a failing load");
    // 1× offers 12.5 messages/s; the ceiling is 125
    assert!(
        knee.offered_msgs_per_s >= 50.0 && knee.offered_msgs_per_s < 125.0,
        "knee {knee:?}\n{stdout}"
    );
    assert!(failed.load > knee.load);
    let short = |held: bool| {
        c.steps
            .iter()
            .filter(move |s| s.stage != "confirm" && s.passed == held)
            .map(|s| s.load)
    };
    let highest_held = short(true).fold(0.0, f64::max);
    let lowest_failed = short(false).fold(f64::MAX, f64::min);
    assert!(
        (lowest_failed - highest_held) / highest_held <= 0.1 + 1e-9,
        "bisected to the precision: {stdout}"
    );
    assert!(c.steps.last().is_some_and(|s| s.stage == "confirm"));
    assert!(
        c.verdict.limit.contains("target CPU"),
        "the backend's one thread ran out: {}\n{stdout}",
        c.verdict.limit
    );
    assert!(!c.verdict.generator_limited);
    assert!(
        failed
            .failures
            .iter()
            .any(|f| f.starts_with("fanout.p99_ms")),
        "{failed:?}"
    );
}

#[test]
fn bad_objectives_and_sections_are_refused_with_exit_2() {
    let dir = common::temp_dir("capacity-bad");
    let scenario = dir.join("s.toml");
    let write = |extra: &str| {
        std::fs::write(
            &scenario,
            format!("[scenario]\nname = \"bad\"\nduration = \"2s\"\n{CHAT}\n{extra}"),
        )
        .expect("write");
    };
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sim"))
            .arg("capacity")
            .arg(&scenario)
            .args(args)
            .output()
            .expect("sim runs")
    };
    write("");
    for (slo, says) in [
        ("fanout.p99_ms<50", "use <= or >="),
        ("fanout.p42<=50", "unknown metric"),
        ("fanout.p99_ms<=fast", "not a number"),
    ] {
        let out = run(&["--slo", slo]);
        assert_eq!(out.status.code(), Some(2), "{slo}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{slo}: {err}");
    }
    for (section, field) in [
        ("[capacity]\nvary = \"everything\"\n", "capacity.vary"),
        ("[capacity]\nstart = 4.0\nmax = 2.0\n", "capacity"),
        ("[capacity]\nprecision = 0.9\n", "capacity.precision"),
        ("[capacity]\nslo = [\"lost<=x\"]\n", "capacity.slo[0]"),
        ("[capacity]\ntrial = \"10ms\"\n", "capacity.trial"),
    ] {
        write(section);
        let out = run(&[]);
        assert_eq!(out.status.code(), Some(2), "{section}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("s.toml:") && err.contains(field),
            "{section}: {err}"
        );
    }
}

#[test]
fn ctrl_c_keeps_what_the_search_found_so_far() {
    use std::io::{BufRead as _, BufReader};
    let dir = common::temp_dir("capacity-interrupt");
    let scenario = dir.join("s.toml");
    std::fs::write(
        &scenario,
        format!(
            "[scenario]\nname = \"interrupt\"\nduration = \"30s\"\ndrain = \"1s\"\n{CHAT}\n\
             [capacity]\nmax = 64.0\ntrial = \"3s\"\n"
        ),
    )
    .expect("write");
    let out_dir = dir.join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg("capacity")
        .arg(&scenario)
        .args(["--no-progress", "--out"])
        .arg(&out_dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sim runs");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    // the second step has begun: the first one's verdict is in
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("line");
        let second = line.starts_with("step  2");
        seen.push(line);
        if second {
            break;
        }
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().expect("exits");
    assert_eq!(status.code(), Some(1), "{seen:?}\n{rest:?}");
    let text = std::fs::read_to_string(out_dir.join("capacity.json")).expect("written");
    let c: CapacityResult = serde_json::from_str(&text).expect("valid");
    assert!(c.interrupted);
    assert_eq!(
        c.steps.len(),
        1,
        "the interrupted step does not count: {rest:?}"
    );
    assert_eq!(c.verdict.knee, Some(0), "the first step held and is kept");
    assert!(rest.iter().any(|l| l.starts_with("knee:")), "{rest:?}");
}

#[test]
fn a_relay_process_target_runs_apart_and_its_cpu_is_watched() {
    let dir = common::temp_dir("relay-process");
    let scenario = dir.join("s.toml");
    std::fs::write(
        &scenario,
        format!(
            "[scenario]\nname = \"process\"\nduration = \"3s\"\ndrain = \"1s\"\n\
             [target]\nprocess = true\n{CHAT}"
        ),
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg("run")
        .arg(&scenario)
        .args(["--no-progress", "--out"])
        .arg(dir.join("out"))
        .output()
        .expect("sim runs");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.join("out/result.json")).expect("result");
    let r: reports::model::RunResult = serde_json::from_str(&text).expect("valid");
    assert_eq!(r.target.kind, "relay process");
    let samples = &r.target_watch.as_ref().expect("watched").samples;
    let cpu: Vec<f64> = samples.iter().filter_map(|s| s.cpu_s).collect();
    assert!(
        cpu.len() >= 2,
        "the relay's own CPU, from its /metrics: {samples:?}"
    );
    assert!(cpu.last() > cpu.first(), "{cpu:?}");
    assert!(
        samples.iter().any(|s| s.hottest_thread.is_some()),
        "read from /proc"
    );
    // every sample but the closing scrape reads the simulator's and the machine's CPU too
    let (closing, during) = samples.split_last().expect("samples");
    assert!(
        during
            .iter()
            .all(|s| s.sim_cpu_s.is_some() && s.machine_busy_s.is_some())
    );
    assert!(closing.sim_cpu_s.is_none(), "{closing:?}");

    std::fs::write(
        &scenario,
        format!(
            "[scenario]\nname = \"process\"\nduration = \"3s\"\n\
             [target]\nprocess = true\nurl = \"http://127.0.0.1:9/chat\"\n{CHAT}"
        ),
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg("validate")
        .arg(&scenario)
        .output()
        .expect("sim runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("target.process"));
}
