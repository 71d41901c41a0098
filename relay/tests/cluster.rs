//! Several relays on one Redis behave as one: every delivery rule of PROTOCOL.md with sender
//! and receivers on different nodes, presence decided once across nodes, a killed node's
//! sockets announced gone, and a node that keeps serving through a Redis outage and rejoins.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, health, metric, start_node, wait_health};
use common::{QUIET, client_at, operator_at};
use relay::protocol::event;
use serde_json::{Value, json};

/// How long a dead node's sockets may linger in presence (docs/PROTOCOL.md: "within 10 s").
const GHOST_BOUND: Duration = Duration::from_secs(10);

/// How long cross-node delivery may take to come back after Redis restarts.
const REDIS_RESTART_BOUND: Duration = Duration::from_secs(10);

fn ids(list: &Value) -> Vec<u64> {
    list.as_array()
        .expect("a list")
        .iter()
        .filter_map(|o| o["operatorId"].as_u64())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_delivery_rule_holds_with_sender_and_receivers_on_different_nodes() {
    let cluster = Cluster::start(2);
    let (a, b) = (cluster.addr(0), cluster.addr(1));
    let mut ann = operator_at(a, 1, "Ann").await;
    let mut bob = operator_at(b, 2, "Bob").await;
    assert_eq!(
        ann.expect(event::OPERATOR_CONNECTED).await,
        json!({"operatorId": 2, "name": "Bob"}),
        "an operator on node B is announced to one on node A"
    );

    let mut vera = client_at(b, "Vera").await;
    let mut walt = client_at(a, "Walt").await;
    for op in [&mut ann, &mut bob] {
        let chat = op.expect(event::NEW_CHAT).await;
        assert_eq!(chat["clientId"], vera.sid.as_str());
        assert_eq!(
            op.expect(event::NEW_CHAT).await["clientId"],
            walt.sid.as_str()
        );
    }

    // visitor on B → every operator, on both nodes; never the other visitor
    let ack = vera
        .emit_with_ack(
            event::CLIENT_MESSAGE,
            json!({"type": "text", "message": "hi"}),
        )
        .await;
    let id = ack["messageId"].as_str().expect("messageId").to_owned();
    for op in [&mut ann, &mut bob] {
        let m = op.expect(event::INCOMING_MESSAGE).await;
        assert_eq!(
            (m["from"].as_str(), m["messageId"].as_str()),
            (Some(vera.sid.as_str()), Some(id.as_str()))
        );
    }

    // operator on A → visitor on B, and every other operator socket; not the sender
    let ack = ann
        .emit_with_ack(
            event::OPERATOR_MESSAGE,
            json!({"to": vera.sid, "type": "text", "message": "Hello"}),
        )
        .await;
    assert!(
        ack["messageId"].is_string(),
        "to is validated cluster-wide: {ack}"
    );
    let got = vera.expect(event::INCOMING_OPERATOR_MESSAGE).await;
    assert_eq!(
        (got["from"].as_str(), got["message"].as_str()),
        (Some(ann.sid.as_str()), Some("Hello"))
    );
    let copy = bob.expect(event::OPERATOR_MESSAGE_BROADCAST).await;
    assert_eq!(
        (copy["clientId"].as_str(), copy["operatorId"].as_u64()),
        (Some(vera.sid.as_str()), Some(1))
    );

    // typing both ways across nodes
    ann.emit(
        event::OPERATOR_TYPING,
        json!({"to": vera.sid, "isTyping": true}),
    );
    assert_eq!(
        vera.expect(event::OPERATOR_TYPING).await,
        json!({"isTyping": true})
    );
    vera.emit(event::CLIENT_TYPING, json!({"isTyping": true}));
    assert_eq!(
        ann.expect(event::CLIENT_TYPING).await["from"],
        vera.sid.as_str()
    );
    assert_eq!(
        bob.expect(event::CLIENT_TYPING).await["from"],
        vera.sid.as_str()
    );

    // an id no node knows is refused
    let ack = bob
        .emit_with_ack(
            event::OPERATOR_MESSAGE,
            json!({"to": "nobody", "type": "text", "message": "x"}),
        )
        .await;
    assert_eq!(ack["error"], "unknown_client");
    assert_eq!(
        bob.expect(event::RELAY_ERROR).await["code"],
        "unknown_client"
    );

    // the list is the cluster's
    bob.emit(event::GET_CONNECTED_OPERATORS, Value::Null);
    assert_eq!(
        ids(&bob.expect(event::CONNECTED_OPERATORS_LIST).await),
        [1, 2]
    );

    ann.expect_silence(QUIET).await;
    walt.expect_silence(QUIET).await;

    // departures cross nodes too
    let vera_sid = vera.sid.clone();
    drop(vera);
    assert_eq!(
        ann.wait_for(event::CHAT_ENDED).await["clientId"],
        vera_sid.as_str()
    );
    bob.close();
    assert_eq!(
        ann.wait_for(event::OPERATOR_DISCONNECTED).await,
        json!({"operatorId": 2, "name": "Bob"})
    );
    let h = health(a).await;
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["cluster"]["operators"], 1, "{h}");
    assert_eq!(h["cluster"]["clients"], 1, "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tabs_joining_and_leaving_at_once_on_two_nodes_are_announced_once() {
    let cluster = Cluster::start(2);
    let (a, b) = (cluster.addr(0), cluster.addr(1));
    let mut watcher = operator_at(a, 1, "Watcher").await;
    for id in 10..20 {
        let (t1, t2) = tokio::join!(operator_at(a, id, "Twin"), operator_at(b, id, "Twin"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        t1.close();
        t2.close();
    }
    let got = watcher.drain(Duration::from_secs(1)).await;
    for id in 10..20 {
        let count = |name: &str| {
            got.iter()
                .filter(|(e, d)| e == name && d["operatorId"] == id)
                .count()
        };
        assert_eq!(
            count(event::OPERATOR_CONNECTED),
            1,
            "operator {id}: {got:?}"
        );
        assert_eq!(
            count(event::OPERATOR_DISCONNECTED),
            1,
            "operator {id}: {got:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_leaves_no_ghosts() {
    let mut cluster = Cluster::start(2);
    let (a, b) = (cluster.addr(0), cluster.addr(1));
    let mut ann = operator_at(a, 1, "Ann").await;
    let _bob = operator_at(b, 2, "Bob").await;
    let vera = client_at(b, "Vera").await;
    ann.drain(QUIET).await;

    let killed = Instant::now();
    tokio::task::block_in_place(|| cluster.nodes[1].kill());
    let mut saw = (false, false);
    while saw != (true, true) {
        let left = GHOST_BOUND.saturating_sub(killed.elapsed());
        let Some((name, data)) = ann.recv_within(left).await else {
            panic!("after {:?}: departures seen {saw:?}", killed.elapsed());
        };
        match name.as_str() {
            event::OPERATOR_DISCONNECTED => {
                assert_eq!(data, json!({"operatorId": 2, "name": "Bob"}));
                saw.0 = true;
            }
            event::CHAT_ENDED => {
                assert_eq!(data["clientId"], vera.sid.as_str());
                saw.1 = true;
            }
            _ => {}
        }
    }
    eprintln!("ghosts removed {:?} after the kill", killed.elapsed());
    ann.emit(event::GET_CONNECTED_OPERATORS, Value::Null);
    assert_eq!(
        ids(&ann.wait_for(event::CONNECTED_OPERATORS_LIST).await),
        [1]
    );
    let h = health(a).await;
    assert_eq!(
        (
            h["cluster"]["operatorSockets"].as_u64(),
            h["cluster"]["clients"].as_u64()
        ),
        (Some(1), Some(0)),
        "{h}"
    );
    assert!(metric(a, "relay_cluster_departures_announced_total").await >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_node_delivery_comes_back_after_redis_restarts() {
    let mut cluster = Cluster::start(2);
    let (a, b) = (cluster.addr(0), cluster.addr(1));
    let mut ann = operator_at(a, 1, "Ann").await;
    let mut vera = client_at(b, "Vera").await;
    ann.drain(QUIET).await;

    let restarted = Instant::now();
    tokio::task::block_in_place(|| cluster.redis.restart()).expect("redis restarts");
    // both ways: a visitor on B reaches the operator on A, and the operator's answer is
    // validated against presence that Redis lost and the nodes put back
    // one try every 250 ms, well inside both sockets' rate limits
    let mut n = 0;
    let back = loop {
        assert!(
            restarted.elapsed() < REDIS_RESTART_BOUND,
            "no cross-node delivery after {:?}",
            restarted.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        ann.drain(Duration::from_millis(1)).await;
        n += 1;
        let text = format!("m{n}");
        vera.emit(
            event::CLIENT_MESSAGE,
            json!({"type": "text", "message": text}),
        );
        let Some((name, got)) = ann.recv_within(Duration::from_millis(250)).await else {
            continue;
        };
        if name != event::INCOMING_MESSAGE || got["message"] != text.as_str() {
            continue;
        }
        let ack = ann
            .emit_with_ack(
                event::OPERATOR_MESSAGE,
                json!({"to": vera.sid, "type": "text", "message": "back"}),
            )
            .await;
        if ack["messageId"].is_string() {
            break restarted.elapsed();
        }
    };
    vera.wait_for(event::INCOMING_OPERATOR_MESSAGE).await;
    eprintln!("cross-node delivery back {back:?} after the Redis restart");
    let h = wait_health(a, REDIS_RESTART_BOUND, |h| h["status"] == "ok").await;
    let cluster_view = health(b).await;
    assert_eq!(
        cluster_view["cluster"]["clients"], 1,
        "presence restored: {cluster_view}"
    );
    let _ = h;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_redis_is_degraded_keeps_serving_its_sockets_and_recovers() {
    let mut cluster = Cluster::start(1);
    let a = cluster.addr(0);
    tokio::task::block_in_place(|| cluster.redis.kill());
    let took = wait_health(a, Duration::from_secs(10), |h| h["status"] == "degraded").await;
    let h = health(a).await;
    assert!(h["reason"].as_str().is_some_and(|r| !r.is_empty()), "{h}");
    assert_eq!(metric(a, "relay_cluster_degraded").await, 1.0);
    eprintln!("degraded {took:?} after Redis died");

    // local chat goes on
    let mut ann = operator_at(a, 1, "Ann").await;
    let mut vera = client_at(a, "Vera").await;
    assert_eq!(
        ann.expect(event::NEW_CHAT).await["clientId"],
        vera.sid.as_str()
    );
    let ack = ann
        .emit_with_ack(
            event::OPERATOR_MESSAGE,
            json!({"to": vera.sid, "type": "text", "message": "still here"}),
        )
        .await;
    assert!(ack["messageId"].is_string(), "{ack}");
    vera.expect(event::INCOMING_OPERATOR_MESSAGE).await;

    tokio::task::block_in_place(|| cluster.redis.restart()).expect("redis returns");
    wait_health(a, REDIS_RESTART_BOUND, |h| h["status"] == "ok").await;
    assert_eq!(metric(a, "relay_cluster_degraded").await, 0.0);
    // what the node served alone is back in Redis
    wait_health(a, REDIS_RESTART_BOUND, |h| h["cluster"]["clients"] == 1).await;
    let b = start_node(&cluster.redis.url());
    let mut bob = operator_at(b.addr(), 2, "Bob").await;
    bob.emit(event::GET_CONNECTED_OPERATORS, Value::Null);
    assert_eq!(
        ids(&bob.wait_for(event::CONNECTED_OPERATORS_LIST).await),
        [1, 2]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_at_start_names_the_url_and_fails() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("redis://user:hunter2@127.0.0.1:{port}");
    let mut config = relay::Config::with_secret(common::SECRET);
    config.redis_url = Some(url);
    let err = tokio::task::block_in_place(|| {
        relay::embedded::Node::start(config, std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
    })
    .err()
    .expect("start fails");
    let text = err.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{port}")) && text.contains("REDIS_URL"),
        "{text}"
    );
    assert!(
        !text.contains("hunter2"),
        "the password is never shown: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stray_subscriber_does_not_slow_delivery() {
    use tokio::io::AsyncWriteExt as _;
    let cluster = Cluster::start(2);
    let (a, b) = (cluster.addr(0), cluster.addr(1));
    // something else listening on the adapter's request channel inflates PUBSUB NUMSUB:
    // a request waiting for every "server" to answer would wait its whole timeout
    let port = cluster
        .redis
        .url()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .expect("port");
    let mut stray = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stray
        .write_all(b"SUBSCRIBE relay-sio-request#/#\r\n")
        .await
        .expect("subscribe");
    let mut ann = operator_at(a, 1, "Ann").await;
    let vera = client_at(b, "Vera").await;
    ann.drain(QUIET).await;
    for i in 0..20 {
        let sent = Instant::now();
        vera.emit(
            event::CLIENT_MESSAGE,
            json!({"type": "text", "message": format!("m{i}")}),
        );
        ann.expect(event::INCOMING_MESSAGE).await;
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "delivery took {:?}",
            sent.elapsed()
        );
        let sent = Instant::now();
        ann.emit(event::GET_CONNECTED_OPERATORS, Value::Null);
        ann.expect(event::CONNECTED_OPERATORS_LIST).await;
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "the list took {:?}",
            sent.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_node_messages_sent_while_redis_restarts_all_arrive_in_order() {
    let mut cluster = Cluster::start(2);
    let (a, b) = (cluster.addr(0), cluster.addr(1));
    let mut ann = operator_at(a, 1, "Ann").await;
    let vera = client_at(b, "Vera").await;
    ann.drain(QUIET).await;
    const N: usize = 60;
    // a message every 20 ms for 1.2 s, with Redis killed and restarted 0.2 s in
    let sender = tokio::spawn(async move {
        for i in 0..N {
            vera.emit(
                event::CLIENT_MESSAGE,
                json!({"type": "text", "message": format!("m{i}")}),
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        vera
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::task::block_in_place(|| cluster.redis.restart()).expect("redis restarts");
    let _vera = sender.await.expect("sender");
    let mut got = Vec::new();
    let deadline = Instant::now() + REDIS_RESTART_BOUND;
    while got.len() < N {
        let left = deadline.saturating_duration_since(Instant::now());
        match ann.recv_within(left).await {
            Some((name, m)) if name == event::INCOMING_MESSAGE => {
                got.push(m["message"].as_str().unwrap_or_default().to_owned());
            }
            Some(_) => {}
            None => break,
        }
    }
    let want: Vec<String> = (0..N).map(|i| format!("m{i}")).collect();
    assert_eq!(
        got, want,
        "held while Redis was away, then published in order"
    );
    let held = metric(b, "relay_cluster_held").await;
    assert_eq!(held, 0.0, "nothing left waiting");
}

/// While Redis is away (or back but not yet whole), a node cannot tell whether a visitor of
/// another node is connected: a reply to one is sent on, never refused as `unknown_client`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_to_a_visitor_of_another_node_are_not_refused_while_redis_restarts() {
    let mut cluster = Cluster::start(2);
    let (a, b) = (cluster.addr(0), cluster.addr(1));
    let ann = operator_at(a, 1, "Ann").await;
    let mut vera = client_at(b, "Vera").await;
    vera.drain(QUIET).await;
    const N: usize = 40;
    let to = vera.sid.clone();
    let sender = tokio::spawn(async move {
        let mut ann = ann;
        let mut acks = Vec::new();
        for i in 0..N {
            let ack = ann
                .emit_with_ack(
                    event::OPERATOR_MESSAGE,
                    json!({"to": to, "type": "text", "message": format!("r{i}")}),
                )
                .await;
            acks.push(ack);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        acks
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::task::block_in_place(|| cluster.redis.restart()).expect("redis restarts");
    let acks = sender.await.expect("sender");
    let refused: Vec<&Value> = acks.iter().filter(|a| a.get("error").is_some()).collect();
    assert!(
        refused.is_empty(),
        "refused while Redis restarted: {refused:?}"
    );
    let mut got = Vec::new();
    let deadline = Instant::now() + REDIS_RESTART_BOUND;
    while got.len() < N {
        let left = deadline.saturating_duration_since(Instant::now());
        match vera.recv_within(left).await {
            Some((name, m)) if name == event::INCOMING_OPERATOR_MESSAGE => {
                got.push(m["message"].as_str().unwrap_or_default().to_owned());
            }
            Some(_) => {}
            None => break,
        }
    }
    let want: Vec<String> = (0..N).map(|i| format!("r{i}")).collect();
    assert_eq!(got, want, "every reply arrives, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_changes_while_redis_is_away_are_announced_once_it_returns() {
    let mut cluster = Cluster::start(2);
    let (a, b) = (cluster.addr(0), cluster.addr(1));
    let mut watcher = operator_at(a, 1, "Watcher").await;
    let seven = operator_at(a, 7, "Seven").await;
    let eight = operator_at(b, 8, "Eight").await;
    let six_a = operator_at(a, 6, "Six").await;
    let _six_b = operator_at(b, 6, "Six").await;
    let _five_b = operator_at(b, 5, "Five").await;
    watcher.drain(QUIET).await;

    tokio::task::block_in_place(|| cluster.redis.kill());
    for addr in [a, b] {
        wait_health(addr, Duration::from_secs(10), |h| h["status"] == "degraded").await;
    }
    // while Redis is away: Six closes its tab on A (its tab on B stays), Five opens a second
    // tab on A, Seven moves its only tab from A to B, Eight leaves, Nine arrives. Node A
    // alone would call Six's departure its last and Five's arrival its first.
    six_a.close();
    let _five_a = operator_at(a, 5, "Five").await;
    seven.close();
    let _seven_again = operator_at(b, 7, "Seven").await;
    eight.close();
    let _nine = operator_at(b, 9, "Nine").await;
    tokio::time::sleep(QUIET).await;

    tokio::task::block_in_place(|| cluster.redis.restart()).expect("redis returns");
    for addr in [a, b] {
        wait_health(addr, REDIS_RESTART_BOUND, |h| h["status"] == "ok").await;
    }
    let got = watcher.drain(Duration::from_secs(5)).await;
    let told = |id: u64| -> Vec<&str> {
        got.iter()
            .filter(|(_, d)| d["operatorId"] == id)
            .map(|(e, _)| e.as_str())
            .collect()
    };
    assert_eq!(told(8), [event::OPERATOR_DISCONNECTED], "{got:?}");
    assert!(told(6).is_empty() && told(5).is_empty(), "{got:?}");
    assert_eq!(told(9), [event::OPERATOR_CONNECTED], "{got:?}");
    // Seven was never offline for the cluster, or briefly: never announced twice the same way
    let seven_told = told(7);
    assert!(
        seven_told.is_empty()
            || seven_told == [event::OPERATOR_DISCONNECTED, event::OPERATOR_CONNECTED],
        "{got:?}"
    );
    watcher.emit(event::GET_CONNECTED_OPERATORS, Value::Null);
    assert_eq!(
        ids(&watcher.wait_for(event::CONNECTED_OPERATORS_LIST).await),
        [1, 5, 6, 7, 9]
    );
}
