//! The verdicts against backends with exactly one fault: `smoke.toml` against the reference
//! relay behind a fault proxy (or with a budget 5 % off what it promises) fails on exactly
//! the class of that fault; against the same relay with no fault, or delaying everything
//! by 300 ms, it reports no violation at all. (The late classes are proven against the
//! Node cluster, `node_cluster.rs`, and the ledger's own tests.)

mod common;

use std::process::Command;
use std::time::Duration;

use common::fault_proxy::{self, Fault};
use reports::model::{RunResult, Violation};
use sim::run::{RunOptions, run};

/// The budget smoke.toml promises (its `[limits]`).
const BUDGET: u32 = 60;

/// Runs smoke against the relay (with budget `budget`) behind `fault`.
async fn smoke(fault: Fault, budget: u32, tag: &str) -> RunResult {
    let (relay, _stop) = common::relay(budget).await;
    let proxy = fault_proxy::start(relay, fault).await;
    let dir = common::temp_dir(&format!("fault-{tag}"));
    let opts = RunOptions::new(common::scenarios_dir().join("smoke.toml"), dir)
        .against(format!("http://{}/chat", proxy.addr), common::SECRET);
    run(opts).await.expect("the run happens").result
}

/// Runs every case at once (each is light) and checks each.
async fn check(cases: &[(Fault, Violation)]) {
    let runs = cases.iter().enumerate().map(|(i, (fault, _))| {
        let fault = *fault;
        tokio::spawn(async move { smoke(fault, BUDGET, &format!("{i}-{fault:?}")).await })
    });
    let results = futures_join(runs).await;
    for ((fault, class), r) in cases.iter().zip(results) {
        common::fails_on_exactly(&r, *class, fault);
    }
}

async fn futures_join<T>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for t in tasks.collect::<Vec<_>>() {
        out.push(t.await.expect("run task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_faults_are_named() {
    check(&[
        (Fault::DropRecipient, Violation::Lost),
        (Fault::Duplicate, Violation::Duplicated),
        (Fault::ReorderHold, Violation::Reordered),
        (Fault::Misattribute, Violation::Misattributed),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_and_content_faults_are_named() {
    check(&[
        (Fault::LeakToVisitor, Violation::Leaked),
        (Fault::EchoToSender, Violation::Echoed),
        (Fault::SkipSanitizing, Violation::Unsanitized),
        (Fault::Malformed, Violation::Malformed),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_connection_faults_are_named() {
    check(&[
        (Fault::SkipPresence, Violation::PresenceMissed),
        (Fault::DuplicatePresence, Violation::PresenceDuplicated),
        (Fault::WrongList, Violation::PresenceListMismatch),
        (Fault::CloseConnection, Violation::DisconnectedUnexpected),
    ])
    .await;
}

/// A chat where every socket stays to the end (so a delivery held 13 s still finds its
/// recipient), sending for 20 s.
const STEADY_CHAT: &str = r#"[scenario]
name = "steady"
duration = "20s"
drain = "2s"

[limits]
rate_limit_per_minute = 60

[[bots]]
name = "operators"
role = "operator"
count = 8
ramp_up = "500ms"
messages_per_minute = 20

[[bots]]
name = "visitors"
role = "client"
count = 40
ramp_up = "1s"
messages_per_minute = 10
"#;

/// Deliveries held past the protocol's 10 s bound (and within twice it) are
/// `delivery.late`, and nothing else: not lost, not reordered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_deliveries_are_named() {
    let (relay, _stop) = common::relay(BUDGET).await;
    let proxy = fault_proxy::start(relay, Fault::LateDelivery).await;
    let dir = common::temp_dir("fault-late");
    let scenario = dir.join("steady.toml");
    std::fs::write(&scenario, STEADY_CHAT).expect("write");
    let opts = RunOptions::new(scenario, dir.join("out"))
        .against(format!("http://{}/chat", proxy.addr), common::SECRET);
    let r = run(opts).await.expect("the run happens").result;
    common::fails_on_exactly(&r, Violation::DeliveryLate, &Fault::LateDelivery);
    let late = &r.examples[Violation::DeliveryLate.name()];
    assert!(
        late.iter()
            .all(|e| e.detail.starts_with("owed, and came after")),
        "{late:?}"
    );
}

/// Valid replies refused through their ack (the visitor online) fail as `refused`, and
/// nothing else: a refused message is owed to nobody, so nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_replies_are_named() {
    check(&[(Fault::RefuseReply, Violation::Refused)]).await;
}

/// A budget 5 % looser than promised delivers what it should refuse; 5 % tighter refuses
/// what it should deliver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_faults_are_named() {
    let loose = tokio::spawn(smoke(Fault::None, BUDGET * 105 / 100, "loose"));
    let tight = tokio::spawn(smoke(Fault::None, BUDGET * 95 / 100, "tight"));
    let (loose, tight) = (loose.await.expect("run"), tight.await.expect("run"));
    common::fails_on_exactly(
        &loose,
        Violation::RateLimitWronglyDelivered,
        &"a looser budget",
    );
    common::fails_on_exactly(
        &tight,
        Violation::RateLimitWronglyRejected,
        &"a tighter budget",
    );
}

/// The proxy itself is invisible, and a backend that takes 300 ms for everything is slow,
/// not wrong: no violation of any class, only latency thresholds fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_backends_pass_even_slow_ones() {
    let plain = tokio::spawn(smoke(Fault::None, BUDGET, "none"));
    let slow = tokio::spawn(smoke(
        Fault::Slow(Duration::from_millis(300)),
        BUDGET,
        "slow",
    ));
    let (plain, slow) = (plain.await.expect("run"), slow.await.expect("run"));
    let failed: Vec<_> = plain.thresholds.iter().filter(|t| !t.passed).collect();
    assert!(plain.passed, "failed: {failed:?}\n{:?}", plain.examples);
    for v in Violation::ALL {
        assert_eq!(
            slow.counters[v.name()],
            0,
            "slow backend: {v}: {:?}",
            slow.examples.get(v.name())
        );
    }
    let latency_only = slow
        .thresholds
        .iter()
        .filter(|t| !t.passed)
        .all(|t| t.metric.ends_with("_ms"));
    assert!(latency_only, "{:?}", slow.thresholds);
    let j = slow.judging.as_ref().expect("tolerances");
    assert!(
        j.slowest_message_ms >= 300.0 && j.delivery_window.p50_ms >= 650.0,
        "{j:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exits_1_naming_the_class() {
    let (relay, _stop) = common::relay(BUDGET).await;
    let proxy = fault_proxy::start(relay, Fault::Duplicate).await;
    let dir = common::temp_dir("fault-bin");
    let smoke = common::scenarios_dir().join("smoke.toml");
    let url = format!("http://{}/chat", proxy.addr);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_sim"))
            .args(["run", &smoke.display().to_string(), "--no-progress"])
            .args(["--target", &url, "--out"])
            .arg(dir.join("out"))
            .env("RELAY_JWT_SECRET", common::SECRET)
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
    assert!(stdout.contains("FAIL  smoke"), "{stdout}");
    assert!(stdout.contains("FAIL duplicated"), "{stdout}");
    assert!(stdout.contains("e.g. duplicated:"), "{stdout}");
}
