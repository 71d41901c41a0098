//! The checker is proven able to fail: against a backend that breaks every rule, each
//! violation class is counted above zero and the run fails (exit 1).

mod common;

use std::process::Command;

use sim::run::{RunOptions, run};

const SCENARIO: &str = r#"
[scenario]
name = "faulty"
description = "every check against a broken backend"
duration = "5s"
drain = "2s"
seed = 3

[relay]
rate_limit_per_minute = 20

[[bots]]
name = "operators"
role = "operator"
count = 3
messages_per_minute = 90
markup_fraction = 0.5

[[bots]]
name = "spammer"
role = "operator"
count = 1
messages_per_minute = 600
think_time = "constant"

[[bots]]
name = "visitors"
role = "client"
count = 8
ramp_up = "500ms"
messages_per_minute = 30

[thresholds]
violations = 0
"#;

fn write_scenario(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("faulty.toml");
    std::fs::write(&path, SCENARIO).expect("write scenario");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_violation_class_is_counted_against_a_broken_backend() {
    let (addr, _server) = common::faulty::start().await;
    let dir = common::temp_dir("faulty");
    let outcome = run(RunOptions::new(write_scenario(&dir), dir.join("out"))
        .against(format!("http://{addr}/chat")))
    .await
    .expect("run happens");
    let c = &outcome.result.counters;
    for class in [
        "lost",
        "duplicated",
        "leaked",
        "misattributed",
        "echoed",
        "reordered",
        "unsanitized",
        "rate_limit.wrongly_delivered",
    ] {
        assert!(c[class] > 0, "{class} not detected: {c:?}");
        assert!(
            outcome
                .result
                .examples
                .get(class)
                .is_some_and(|e| !e.is_empty()),
            "no example for {class}"
        );
    }
    assert!(!outcome.result.passed);
    assert!(outcome.result_path.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exits_1_when_a_threshold_fails() {
    let (addr, _server) = common::faulty::start().await;
    let dir = common::temp_dir("faulty-bin");
    let scenario = write_scenario(&dir);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_sim"))
            .args([
                "run",
                &scenario.display().to_string(),
                "--no-progress",
                "--duration",
                "2s",
            ])
            .args(["--target", &format!("http://{addr}/chat")])
            .arg("--out")
            .arg(dir.join("out"))
            .output()
            .expect("sim runs")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("FAIL  faulty"), "{stdout}");
}
