//! The verdicts against backends written by others, in Node.js on socket.io 4.8
//! (`sim/tests/js/`): a correct implementation of `docs/PROTOCOL.md` passes smoke with no
//! violation; the frontend guide's own example server fails on what it really gets wrong
//! (it sends every visitor's message to every socket), and its honest broadcasts, which
//! copy the identity the frontend sends, are not accused of misattribution. A correct
//! cluster of three Node processes on Redis passes with a node killed mid-run, and the
//! same cluster with one fault fails on exactly its class: replies refused across nodes
//! are `refused`, a dead node's departures announced 20 s late are `presence.late`.

mod common;

use reports::model::{RunResult, Violation};
use sim::run::{RunOptions, run};

/// A chat spread over three nodes (bots take them in turn, so most deliveries and
/// presence events cross nodes), with operator tabs and visitors that come and go; node 3
/// is killed (`kill -9 {pid}`) at 3 s and its bots reconnect to the survivors. Sending
/// lasts 24 s, so that announcements 20 s after the death still find the operators there.
const CLUSTER_CHAT: &str = r#"[scenario]
name = "node-cluster"
description = "3 Node processes on Redis, node 3 killed at 3 s"
duration = "24s"
drain = "2s"
seed = 23

[limits]
rate_limit_per_minute = 60

[reconnect]
delay = "500ms"
max_delay = "2s"

[[faults]]
at = "3s"
command = "kill -9 {pid}"
node = 3

[[bots]]
name = "operators"
role = "operator"
count = 8
ramp_up = "1s"
messages_per_minute = 12
typing_probability = 0.3

[[bots]]
name = "multi-tab operators"
role = "operator"
count = 2
tabs = 3
messages_per_minute = 6
lifetime = "5s"
offline = "1s"
reconnects = 2

[[bots]]
name = "supervisor"
role = "supervisor"
count = 1

[[bots]]
name = "visitors"
role = "client"
count = 60
ramp_up = "2s"
messages_per_minute = 6
typing_probability = 0.3

[[bots]]
name = "passing visitors"
role = "client"
count = 9
ramp_up = "2s"
messages_per_minute = 6
lifetime = "4s"
offline = "1s"
reconnects = 3

[[bots]]
name = "polling visitors"
role = "client"
count = 6
ramp_up = "2s"
transport = "polling"
messages_per_minute = 6
"#;

/// [`CLUSTER_CHAT`] against three nodes with `faults` (`CLUSTER_FAULTS`).
async fn cluster_chat(faults: &'static str) -> RunResult {
    let label = if faults.is_empty() { "correct" } else { faults };
    let env = [
        ("RATE_LIMIT_PER_MINUTE", "60"),
        ("CLUSTER_FAULTS", faults),
        ("REDIS_PREFIX", label),
    ];
    let cluster = common::node_cluster(3, &env).await;
    let pid = cluster.nodes[2].id().expect("node 3 runs");
    let dir = common::temp_dir(&format!("node-cluster-{label}"));
    let scenario = dir.join("node-cluster.toml");
    std::fs::write(&scenario, CLUSTER_CHAT.replace("{pid}", &pid.to_string())).expect("write");
    let opts = RunOptions::new(scenario, dir.join("out"))
        .against_each(cluster.urls.clone(), common::SECRET);
    let r = run(opts).await.expect("the run happens").result;
    drop(cluster);
    r
}

async fn smoke(script: &str) -> RunResult {
    smoke_with(script, &[]).await
}

async fn smoke_with(script: &str, env: &[(&str, &str)]) -> RunResult {
    let switches: Vec<&str> = env.iter().map(|(k, _)| *k).collect();
    let dir = common::temp_dir(&format!("node-{script}-{}", switches.join("-")));
    let mut env = env.to_vec();
    env.push(("RATE_LIMIT_PER_MINUTE", "60"));
    let (_child, url) = common::node(script, &env).await;
    let opts = RunOptions::new(common::scenarios_dir().join("smoke.toml"), dir)
        .against(url, common::SECRET);
    run(opts).await.expect("the run happens").result
}

/// With connection state recovery on, the server appends an offset to every broadcast event;
/// the client takes it off, so the verdict is the same (it was 55,025 `malformed` before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_node_server_with_recovery_passes_smoke() {
    let r = smoke_with("chat-server.mjs", &[("RECOVERY_MS", "60000")]).await;
    let failed: Vec<_> = r.thresholds.iter().filter(|t| !t.passed).collect();
    assert!(r.passed, "failed: {failed:?}\nexamples: {:?}", r.examples);
    assert_eq!(
        r.counters[Violation::Malformed.name()],
        0,
        "{:?}",
        r.counters
    );
    assert!(r.counters["delivered"] > 10_000, "{:?}", r.counters);
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

/// The order rule, disconnection included: a visitor's message and its leave in one write
/// (socket.io decodes both before it runs any handler) reach the operator as the message,
/// then `chatEnded`. A server that handles the departure first drops the message, which
/// the simulator rightly counts as lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_correct_node_server_handles_a_message_sent_just_before_leaving() {
    use relay::auth::{Claims, OperatorIdentity, sign_hs256};
    use wire::{Connection, Endpoint, Incoming, Options};
    let (_child, url) = common::node("chat-server.mjs", &[]).await;
    let endpoint = Endpoint::parse(&url).expect("url");
    let who = OperatorIdentity {
        operator_id: 1,
        name: "Ann".into(),
    };
    let token = sign_hs256(common::SECRET.as_bytes(), &Claims::new(&who, 600));
    let mut ann = Connection::connect(&endpoint, Options::default())
        .await
        .expect("operator connects");
    let join =
        serde_json::json!({"role": "operator", "token": token, "operatorId": 1, "name": "Ann"});
    ann.emit("join", &join, Some(1)).expect("join");
    for round in 0..5 {
        let visitor = Connection::connect(&endpoint, Options::default())
            .await
            .expect("visitor connects");
        let hello = serde_json::json!({"role": "client", "username": format!("V{round}")});
        let message = serde_json::json!({"type": "text", "message": format!("bye {round}")});
        let packets = [
            format!("42{}", serde_json::json!(["join", hello])),
            format!("42{}", serde_json::json!(["clientMessage", message])),
            "41".to_owned(),
        ];
        let refs: Vec<&str> = packets.iter().map(String::as_str).collect();
        visitor.sender().send_all(&refs).expect("one write");
        let mut seen = Vec::new();
        let ended = loop {
            let next = tokio::time::timeout(std::time::Duration::from_secs(5), ann.next())
                .await
                .expect("the operator hears of the visitor")
                .expect("connected");
            let Incoming::Event(text) = next else {
                continue;
            };
            let (name, data) = wire::packet::split_event(text.as_str()).expect("an event");
            if name == "chatEnded" {
                break data.to_owned();
            }
            if name == "incomingMessage" {
                seen.push(data.to_owned());
            }
        };
        assert!(
            seen.iter().any(|m| m.contains(&format!("bye {round}"))),
            "round {round}: chatEnded ({ended}) came without the message sent before leaving: {seen:?}"
        );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cluster_passes_through_a_killed_node_and_each_fault_fails_on_its_class() {
    let correct = tokio::spawn(cluster_chat(""));
    let local_to = tokio::spawn(cluster_chat("local_to"));
    let late_reap = tokio::spawn(cluster_chat("late_reap"));
    let (correct, local_to, late_reap) = (
        correct.await.expect("run"),
        local_to.await.expect("run"),
        late_reap.await.expect("run"),
    );
    let c = |r: &RunResult, k: &str| r.counters.get(k).copied().unwrap_or(0);
    let failed: Vec<_> = correct.thresholds.iter().filter(|t| !t.passed).collect();
    assert!(
        correct.passed,
        "failed: {failed:?}\nexamples: {:?}",
        correct.examples
    );
    // the node really died: its sockets were cut by the fault, its bots came back, and
    // deliveries crossed nodes all along
    assert!(
        c(&correct, "disconnected.fault") > 0,
        "{:?}",
        correct.counters
    );
    assert!(correct.paths["reconnect"].intended.count > 0);
    assert!(correct.paths["cross_node"].intended.count > 500);
    assert_eq!(c(&correct, "faults.failed"), 0);

    common::fails_on_exactly(
        &local_to,
        Violation::Refused,
        &"replies refused across nodes",
    );
    let refused = &local_to.examples[Violation::Refused.name()];
    assert!(
        refused.iter().all(|e| e.detail.contains("unknown_client")),
        "{refused:?}"
    );

    common::fails_on_exactly(&late_reap, Violation::PresenceLate, &"departures 20 s late");
    let late = &late_reap.examples[Violation::PresenceLate.name()];
    assert!(
        late.iter()
            .all(|e| e.detail.contains("past the protocol's 10 s")),
        "{late:?}"
    );
}

/// Connection state recovery with a real socket.io 4.8 server (`connectionStateRecovery`):
/// the client takes the offset off every event (so payloads parse), keeps the session's
/// `pid`, and, its transport cut, reconnects with both; the server restores the socket (same
/// id) and replays the message sent while it was away. A session the server does not know
/// is not recovered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_recovers_its_session_from_a_node_server_with_recovery() {
    use relay::auth::{Claims, OperatorIdentity, sign_hs256};
    use std::time::Duration;
    use wire::{Connection, Endpoint, Incoming, Options, Resume};

    /// The data of the first event named `name` within 5 s.
    async fn hear(conn: &mut Connection, name: &str) -> String {
        loop {
            let next = tokio::time::timeout(Duration::from_secs(5), conn.next())
                .await
                .unwrap_or_else(|_| panic!("no {name} within 5 s"))
                .expect("connected");
            if let Incoming::Event(text) = next {
                let (event, data) = wire::packet::split_event(text.as_str()).expect("an event");
                if event == name {
                    let _: serde_json::Value = serde_json::from_str(data).expect("parses");
                    return data.to_owned();
                }
            }
        }
    }

    let (_child, url) = common::node("chat-server.mjs", &[("RECOVERY_MS", "60000")]).await;
    let endpoint = Endpoint::parse(&url).expect("url");
    let who = OperatorIdentity {
        operator_id: 1,
        name: "Ann".into(),
    };
    let token = sign_hs256(common::SECRET.as_bytes(), &Claims::new(&who, 600));
    let auth = Some(serde_json::json!({ "token": token }).to_string());
    let mut ann = Connection::connect(
        &endpoint,
        Options {
            auth: auth.clone(),
            ..Options::default()
        },
    )
    .await
    .expect("operator connects");
    let join =
        serde_json::json!({"role": "operator", "token": token, "operatorId": 1, "name": "Ann"});
    ann.emit("join", &join, Some(1)).expect("join");
    let visitor = Connection::connect(&endpoint, Options::default())
        .await
        .expect("visitor connects");
    visitor
        .emit(
            "join",
            &serde_json::json!({"role": "client", "username": "Vi"}),
            None,
        )
        .expect("join");
    hear(&mut ann, "newChat").await;
    let resume = ann.resume().expect("the server offers recovery");
    assert!(resume.offset.is_some(), "newChat carried an offset");
    let sid = ann.sid.clone();
    ann.sender().close(); // the transport breaks: no namespace goodbye
    drop(ann);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let missed = serde_json::json!({"type": "text", "message": "sent while you were away"});
    visitor
        .emit("clientMessage", &missed, None)
        .expect("message");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut back = Connection::connect(
        &endpoint,
        Options {
            auth: auth.clone(),
            resume: Some(resume.clone()),
            ..Options::default()
        },
    )
    .await
    .expect("operator reconnects");
    assert!(back.recovered(), "the server restored the session");
    assert_eq!(back.sid, sid, "a recovered socket keeps its id");
    let replayed = hear(&mut back, "incomingMessage").await;
    assert!(replayed.contains("sent while you were away"), "{replayed}");

    let unknown = Connection::connect(
        &endpoint,
        Options {
            auth,
            resume: Some(Resume {
                pid: "no-such-session".into(),
                offset: resume.offset,
            }),
            ..Options::default()
        },
    )
    .await
    .expect("connects anew");
    assert!(!unknown.recovered());
    assert_ne!(unknown.sid, sid);
}
