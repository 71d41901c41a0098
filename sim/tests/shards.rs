//! A run split into two shards against one relay: each shard checks its own bots' messages
//! (other shards' ids are counted as foreign, not judged), and `sim merge` sums them.

mod common;

use std::process::Command;

use reports::model::RunResult;

const SCENARIO: &str = r#"
[scenario]
name = "sharded"
description = "two shards against one relay"
duration = "4s"
drain = "2s"

[[bots]]
name = "operators"
role = "operator"
count = 4
messages_per_minute = 60

[[bots]]
name = "visitors"
role = "client"
count = 20
ramp_up = "500ms"
messages_per_minute = 30

[thresholds]
violations = 0
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_check_their_own_bots_and_merge_to_the_sum() {
    let secret = "shard-test-secret-0123456789";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(relay::serve(
        listener,
        relay::Config::with_secret(secret),
        async move {
            let _ = stopped.await;
        },
    ));
    let dir = common::temp_dir("shards");
    let scenario = dir.join("sharded.toml");
    std::fs::write(&scenario, SCENARIO).expect("write");
    let mut children = Vec::new();
    for k in 1..=2 {
        let child = Command::new(env!("CARGO_BIN_EXE_sim"))
            .args(["run", &scenario.display().to_string(), "--no-progress"])
            .args([
                "--target",
                &format!("http://{addr}/chat"),
                "--shard",
                &format!("{k}/2"),
            ])
            .arg("--out")
            .arg(dir.join(format!("shard{k}")))
            .env("RELAY_JWT_SECRET", secret)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sim runs");
        children.push(child);
    }
    let outputs: Vec<_> = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|c| c.wait_with_output().expect("exits"))
            .collect::<Vec<_>>()
    })
    .await
    .expect("join");
    let _ = stop.send(());
    let _ = relay.await;
    let mut shards = Vec::new();
    for (k, out) in outputs.iter().enumerate() {
        assert!(
            out.status.success(),
            "shard {}: {}",
            k + 1,
            String::from_utf8_lossy(&out.stdout)
        );
        let path = dir.join(format!("shard{}/result.json", k + 1));
        let r: RunResult =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("result")).expect("model");
        assert_eq!(r.scenario.shard.as_deref(), Some(&*format!("{}/2", k + 1)));
        assert_eq!(r.counters["violations"], 0, "{:?}", r.examples);
        shards.push((path, r));
    }
    // each shard ran half the bots: 2 operators and 10 visitors each, 12 connections
    for (_, r) in &shards {
        assert_eq!(r.paths["connect"].intended.count, 12);
    }
    assert!(
        shards.iter().any(|(_, r)| r.counters["foreign"] > 0),
        "shards saw each other's messages"
    );

    let merged_path = dir.join("merged.json");
    let out = Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg("merge")
        .arg(&shards[0].0)
        .arg(&shards[1].0)
        .arg("-o")
        .arg(&merged_path)
        .output()
        .expect("merge");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let merged: RunResult =
        serde_json::from_str(&std::fs::read_to_string(&merged_path).expect("merged"))
            .expect("model");
    for key in ["sent", "delivered", "expected_deliveries", "foreign"] {
        assert_eq!(
            merged.counters[key],
            shards[0].1.counters[key] + shards[1].1.counters[key],
            "{key}"
        );
    }
    assert_eq!(merged.paths["connect"].intended.count, 24);
    assert!(merged.passed);
    // the merged histogram is the exact sum: its p99 is that of both shards' samples together
    for path in ["fanout", "client_to_operators"] {
        let mut all = reports::hdr::decode(&shards[0].1.paths[path].intended).expect("shard 1");
        all.add(reports::hdr::decode(&shards[1].1.paths[path].intended).expect("shard 2"))
            .expect("add");
        assert_eq!(
            merged.paths[path].intended.p99_ms,
            all.value_at_quantile(0.99) as f64 / 1000.0,
            "{path}"
        );
        assert_eq!(merged.paths[path].intended.count, all.len());
    }
}
