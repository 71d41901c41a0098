//! Ctrl-C once: sending stops, the run drains and still writes its result (and fails,
//! since it did not run its course).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn first_ctrl_c_drains_and_still_writes_the_result() {
    let dir = common::temp_dir("interrupt");
    let smoke = common::scenarios_dir().join("smoke.toml");
    let child = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args([
            "run",
            &smoke.display().to_string(),
            "--no-progress",
            "--duration",
            "60s",
        ])
        .arg("--out")
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sim runs");
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let out = child.wait_with_output().expect("sim exits");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "stopped long before its 60 s"
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "an interrupted run is not a pass"
    );
    let text = std::fs::read_to_string(dir.join("result.json")).expect("result written");
    let result: reports::model::RunResult = serde_json::from_str(&text).expect("valid result");
    assert!(result.counters["sent"] > 0);
    assert_eq!(
        result.counters["lost"], 0,
        "draining let in-flight deliveries arrive"
    );
}
