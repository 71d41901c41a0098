//! Every shipped scenario is valid, `sim validate` and `sim list` work, bad input exits 2.

mod common;

use std::process::Command;

fn sim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(args)
        .output()
        .expect("sim runs")
}

#[test]
fn every_scenario_in_the_folder_is_valid() {
    let dir = common::scenarios_dir();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("scenarios/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            sim::scenario::load(&path, &Default::default()).unwrap_or_else(|e| panic!("{e}"));
            let out = sim(&["validate", &path.display().to_string()]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            n += 1;
        }
    }
    assert!(
        n >= 4,
        "expected at least smoke, rate-limit, images and soak-10k, found {n}"
    );
}

#[test]
fn list_shows_names_and_descriptions() {
    let out = sim(&["list", &common::scenarios_dir().display().to_string()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("smoke") && text.contains("CI smoke"),
        "{text}"
    );
}

#[test]
fn a_bad_scenario_names_file_line_column_and_field_and_exits_2() {
    let dir = common::temp_dir("bad-scenario");
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[scenario]\nname = \"b\"\nduration = \"5s\"\n\n[[bots]]\nrole = \"client\"\ncount = -3\n",
    )
    .expect("write");
    for cmd in ["validate", "run"] {
        let out = sim(&[cmd, &path.display().to_string()]);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bad.toml:7:"), "{cmd}: {err}");
    }
    std::fs::write(
        &path,
        "[scenario]\nname = \"b\"\nduration = \"5s\"\n\n[[bots]]\nrole = \"robot\"\ncount = 3\n",
    )
    .expect("write");
    let err = String::from_utf8_lossy(&sim(&["validate", &path.display().to_string()]).stderr)
        .into_owned();
    assert!(err.contains("bad.toml:6:8: `bots[0].role`"), "{err}");
}

#[test]
fn an_unreachable_target_exits_2_with_a_clear_message() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port(); // closed again when the listener drops
    let smoke = common::scenarios_dir().join("smoke.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(["run", &smoke.display().to_string(), "--no-progress"])
        .args(["--target", &format!("http://127.0.0.1:{port}/chat")])
        .env("RELAY_JWT_SECRET", common::SECRET)
        .output()
        .expect("sim runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unreachable"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[test]
fn bad_arguments_exit_2() {
    let smoke = common::scenarios_dir().join("smoke.toml");
    let out = sim(&["run", &smoke.display().to_string(), "--target", "ftp://x"]);
    assert_eq!(out.status.code(), Some(2));
    let out = sim(&["run", "/no/such/file.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/file.toml"));
}

#[test]
fn an_embedded_run_over_the_open_file_limit_is_refused_with_advice() {
    let dir = common::temp_dir("too-many");
    let path = dir.join("big.toml");
    std::fs::write(
        &path,
        "[scenario]\nname = \"big\"\nduration = \"5s\"\n\n[[bots]]\nrole = \"client\"\ncount = 1000000\n",
    )
    .expect("write");
    let out = sim(&["run", &path.display().to_string(), "--no-progress"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1000000 sockets") && err.contains("--target"),
        "{err}"
    );
}

#[test]
fn validate_prints_the_effective_thresholds_with_the_default_gate() {
    let dir = common::temp_dir("gate");
    let path = dir.join("bare.toml");
    std::fs::write(
        &path,
        "[scenario]\nname = \"bare\"\nduration = \"5s\"\n\n[[bots]]\nrole = \"client\"\ncount = 3\n\n[thresholds]\nlost = 2\n",
    )
    .expect("write");
    let out = sim(&["validate", &path.display().to_string()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |metric: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(metric))
            .unwrap_or_else(|| panic!("no {metric} in\n{text}"))
            .to_owned()
    };
    assert!(line("lost").contains("<= 2") && !line("lost").contains("default"));
    for v in reports::model::Violation::ALL {
        if v.name() != "lost" {
            let l = line(v.name());
            assert!(l.contains("<= 0") && l.contains("(default gate)"), "{l}");
        }
    }
    assert!(line("connect.failed").contains("(default gate)"));
}
