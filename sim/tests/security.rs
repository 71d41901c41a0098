//! The adversary against three backends: the reference relay blocks every attack of the
//! catalogue while its chat stays correct; a deliberately weak Node backend
//! (`tests/js/chat-server.mjs` with `WEAKNESSES=all`) is caught on its seven weaknesses
//! and nothing else but lone surrogates (which Node writes as escapes strict parsers
//! refuse); the frontend
//! guide's example server lets in whoever claims to be an operator and dies of `join(null)`.

mod common;

use std::collections::BTreeSet;

use reports::attacks::Attack;
use reports::model::RunResult;
use sim::run::{RunOptions, run};

/// `scenarios/security.toml` with `attacks` (catalogue names) and `duration` instead of its own.
fn security_variant(name: &str, attacks: &[Attack], duration: &str) -> std::path::PathBuf {
    variant_with(name, attacks, duration, 256)
}

/// The same, with a memory bound of `memory_bound_mib`.
fn variant_with(
    name: &str,
    attacks: &[Attack],
    duration: &str,
    memory_bound_mib: u32,
) -> std::path::PathBuf {
    let source = std::fs::read_to_string(common::scenarios_dir().join("security.toml"))
        .expect("security.toml");
    let list: Vec<String> = attacks.iter().map(|a| format!("{:?}", a.name())).collect();
    let text = source
        .replace(
            r#"attacks = ["all"]"#,
            &format!("attacks = [{}]", list.join(", ")),
        )
        .replace(r#"duration = "55s""#, &format!("duration = {duration:?}"))
        .replace(
            "memory_bound_mib = 256",
            &format!("memory_bound_mib = {memory_bound_mib}"),
        );
    assert_ne!(text, source, "security.toml changed shape");
    let dir = common::temp_dir(&format!("security-{name}"));
    let path = dir.join("security.toml");
    std::fs::write(&path, text).expect("write");
    path
}

async fn against_node(script: &str, weaknesses: &str, scenario: std::path::PathBuf) -> RunResult {
    against_node_with(script, weaknesses, scenario, &[]).await
}

/// The same, with more of the server's environment.
async fn against_node_with(
    script: &str,
    weaknesses: &str,
    scenario: std::path::PathBuf,
    extra: &[(&str, &str)],
) -> RunResult {
    let mut env = vec![
        ("RATE_LIMIT_PER_MINUTE", "60"),
        ("TYPING_RATE_LIMIT_PER_MINUTE", "120"),
        ("MAX_IMAGE_BYTES", "200000"),
        ("WEAKNESSES", weaknesses),
    ];
    env.extend_from_slice(extra);
    let (_child, url) = common::node(script, &env).await;
    let out = scenario.parent().expect("dir").join("out");
    run(RunOptions::new(scenario, out).against(url, common::SECRET))
        .await
        .expect("the run happens")
        .result
}

fn succeeded(r: &RunResult) -> BTreeSet<String> {
    r.attacks
        .iter()
        .filter(|a| a.succeeded > 0)
        .map(|a| a.name.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_relay_blocks_every_attack_and_keeps_chatting() {
    let dir = common::temp_dir("security-relay");
    let r = run(RunOptions::new(
        common::scenarios_dir().join("security.toml"),
        dir,
    ))
    .await
    .expect("the run happens")
    .result;
    let report: Vec<String> = r
        .attacks
        .iter()
        .map(|a| {
            format!(
                "{} {}/{}/{} {:?}",
                a.name, a.blocked, a.succeeded, a.not_judged, a.examples
            )
        })
        .collect();
    assert_eq!(
        r.attacks.len(),
        Attack::ALL.len(),
        "every attack is carried out"
    );
    for a in &r.attacks {
        assert_eq!((a.attempted, a.blocked), (3, 3), "{report:#?}");
    }
    assert_eq!(r.counters.get("attacks.succeeded"), Some(&0));
    assert_eq!(r.counters.get("violations"), Some(&0), "{:?}", r.examples);
    assert!(
        r.counters.get("delivered").copied().unwrap_or(0) > 0,
        "the chat went on"
    );
    assert!(r.passed, "{report:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weak_backend_is_caught_on_exactly_its_weaknesses() {
    // the half-open attack waits out a 45 s ping deadline: the relay's test judges it
    let attacks: Vec<Attack> = Attack::ALL
        .iter()
        .copied()
        .filter(|a| *a != Attack::HalfOpen)
        .collect();
    let r = against_node(
        "chat-server.mjs",
        "all",
        security_variant("weak", &attacks, "40s"),
    )
    .await;
    let expected: BTreeSet<String> = [
        Attack::AlgNoneToken,           // weakness 1
        Attack::ExpiredToken,           // 2
        Attack::PayloadIdentity,        // 3
        Attack::MarkupVisitorName,      // 4
        Attack::SvgHtmlMime,            // 5
        Attack::NotAnImage,             // 5
        Attack::ForeignOriginWebsocket, // 6
        Attack::ForeignOriginPolling,   // 6
        Attack::TypingFlood,            // 7
        // Node's JSON.stringify writes lone surrogates as `\ud800` escapes, which strict
        // JSON parsers (serde_json among them) refuse
        Attack::LoneSurrogates,
    ]
    .iter()
    .map(|a| a.name().to_owned())
    .collect();
    let examples: Vec<_> = r.attacks.iter().map(|a| (&a.name, &a.examples)).collect();
    assert_eq!(succeeded(&r), expected, "{examples:#?}");
    assert_eq!(
        r.counters.get("attacks.not_judged"),
        Some(&0),
        "{examples:#?}"
    );
    assert!(!r.passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_server_trusts_claims_and_dies_of_join_null() {
    let attacks = [
        Attack::VisitorOperatorEvents,
        Attack::ForgedToken,
        Attack::PayloadIdentity,
        Attack::MarkupText,
        Attack::JoinNull,
    ];
    let r = against_node(
        "guide-server.mjs",
        "",
        security_variant("guide", &attacks, "12s"),
    )
    .await;
    let all: BTreeSet<String> = attacks.iter().map(|a| a.name().to_owned()).collect();
    assert_eq!(succeeded(&r), all, "{:#?}", r.attacks);
    let join_null = r
        .attacks
        .iter()
        .find(|a| a.name == "join_null")
        .expect("reported");
    assert!(
        join_null
            .examples
            .iter()
            .any(|e| e.contains("stopped taking connections")),
        "{join_null:?}"
    );
    assert!(!r.passed);
}

/// The harms every attack is judged by are reachable: a backend that keeps half-open
/// sockets, one whose memory grows under an attack past the bound, and one whose `/health`
/// stops answering 200 under a flood are each caught on that attack; the correct server,
/// with the same short ping deadline and memory bound, blocks all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_sockets_memory_and_health_are_judged_harms() {
    let attacks = [
        Attack::MarkupText,
        Attack::FrameOverLimit,
        Attack::MessageFlood,
        Attack::TypingFlood,
        Attack::HalfOpen,
        Attack::WrongTypes,
    ];
    // a ping deadline of 2 s lets the half-open attack be judged within a short run
    const PING: [(&str, &str); 2] = [("PING_INTERVAL_MS", "1000"), ("PING_TIMEOUT_MS", "1000")];
    let weak = tokio::spawn(against_node_with(
        "chat-server.mjs",
        "keeps_half_open,hoards_memory,health_fails_under_load",
        variant_with("harms-weak", &attacks, "10s", 8),
        &PING,
    ));
    let correct = tokio::spawn(against_node_with(
        "chat-server.mjs",
        "",
        variant_with("harms-correct", &attacks, "10s", 8),
        &PING,
    ));
    let (weak, correct) = (weak.await.expect("run"), correct.await.expect("run"));
    let examples = |r: &RunResult| -> Vec<(String, Vec<String>)> {
        r.attacks
            .iter()
            .map(|a| (a.name.clone(), a.examples.clone()))
            .collect()
    };
    let expected: BTreeSet<String> = [
        Attack::HalfOpen,
        Attack::FrameOverLimit,
        Attack::MessageFlood,
    ]
    .iter()
    .map(|a| a.name().to_owned())
    .collect();
    assert_eq!(succeeded(&weak), expected, "{:#?}", examples(&weak));
    let said = |a: Attack| {
        weak.attacks
            .iter()
            .find(|r| r.name == a.name())
            .map(|r| r.examples.join(" | "))
            .unwrap_or_default()
    };
    assert!(
        said(Attack::FrameOverLimit).contains("resident memory grew"),
        "{}",
        said(Attack::FrameOverLimit)
    );
    assert!(
        said(Attack::MessageFlood).contains("/health"),
        "{}",
        said(Attack::MessageFlood)
    );
    assert_eq!(
        weak.counters.get("attacks.not_judged"),
        Some(&0),
        "{:#?}",
        examples(&weak)
    );
    assert!(succeeded(&correct).is_empty(), "{:#?}", examples(&correct));
    assert_eq!(
        correct.counters.get("attacks.not_judged"),
        Some(&0),
        "{:#?}",
        examples(&correct)
    );
    assert!(correct.passed, "{:?}", correct.examples);
}
