//! The verdicts against backends written by others, in Node.js on socket.io 4.8
//! (`sim/tests/js/`): a correct implementation of `docs/PROTOCOL.md` passes smoke with no
//! violation; the frontend guide's own example server fails on what it really gets wrong
//! (it sends every visitor's message to every socket), and its honest broadcasts, which
//! copy the identity the frontend sends, are not accused of misattribution.

mod common;

use reports::model::{RunResult, Violation};
use sim::run::{RunOptions, run};

async fn smoke(script: &str) -> RunResult {
    let (_child, url) = common::node(script, &[("RATE_LIMIT_PER_MINUTE", "60")]).await;
    let dir = common::temp_dir(&format!("node-{script}"));
    let opts = RunOptions::new(common::scenarios_dir().join("smoke.toml"), dir)
        .against(url, common::SECRET);
    run(opts).await.expect("the run happens").result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_node_server_passes_smoke() {
    let r = smoke("chat-server.mjs").await;
    let failed: Vec<_> = r.thresholds.iter().filter(|t| !t.passed).collect();
    assert!(r.passed, "failed: {failed:?}\nexamples: {:?}", r.examples);
    assert!(r.counters["delivered"] > 10_000, "{:?}", r.counters);
    for path in [
        "fanout",
        "client_to_operators",
        "operator_to_client",
        "presence",
        "typing",
    ] {
        assert!(r.paths.contains_key(path), "no samples for {path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_example_server_fails_on_what_it_gets_wrong() {
    let r = smoke("guide-server.mjs").await;
    assert!(!r.passed);
    // io.emit sends every visitor's message to every socket, newChat too
    assert!(r.counters[Violation::Leaked.name()] > 0, "{:?}", r.counters);
    // no sanitizing, no rate limit, no operatorConnected
    assert!(
        r.counters[Violation::Unsanitized.name()] > 0,
        "{:?}",
        r.counters
    );
    assert!(
        r.counters[Violation::RateLimitWronglyDelivered.name()] > 0,
        "{:?}",
        r.counters
    );
    assert!(
        r.counters[Violation::PresenceMissed.name()] > 0,
        "{:?}",
        r.counters
    );
    // the bots send operatorId/operatorName as the frontend does: honest broadcasts carry
    // the right identity, so nothing is misattributed
    assert_eq!(
        r.counters[Violation::Misattributed.name()],
        0,
        "{:?}",
        r.examples.get(Violation::Misattributed.name())
    );
}
