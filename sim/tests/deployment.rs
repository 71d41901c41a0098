//! The simulator against a deployment as teams run one: HAProxy (Debian's package)
//! terminating TLS in front of two relay processes on one Redis, long-polling sessions
//! pinned to a node by HAProxy's stickiness cookie. Smoke passes over `https://` on all
//! three transports with the TLS handshake timed on its own; with stickiness off the run
//! stops before any bot starts and says the load balancer breaks sessions.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use relay::embedded::RedisServer;
use sim::run::{RunError, RunOptions, run};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// A certificate for `localhost` and its key, and the two in one PEM file (HAProxy's form).
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("certificate");
    let (cert, both) = (dir.join("cert.pem"), dir.join("haproxy.pem"));
    std::fs::write(&cert, made.cert.pem()).expect("write cert");
    let pem = format!("{}{}", made.cert.pem(), made.signing_key.serialize_pem());
    std::fs::write(&both, pem).expect("write pem");
    (cert, both)
}

/// `sim relay` as a process of its own, a node of the cluster on `redis`.
async fn relay_process(redis: &str, prefix: &str) -> (Child, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(["relay", "--host", "127.0.0.1", "--port", "0"])
        .args(["--rate-limit-per-minute", "60"])
        .env("RELAY_JWT_SECRET", common::SECRET)
        .env("REDIS_URL", redis)
        .env("REDIS_PREFIX", prefix)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sim relay starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the relay says where it listens")
        .expect("read")
        .expect("a line");
    let addr: std::net::SocketAddr = first
        .strip_prefix("listening on ")
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("{first:?}"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr.port())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// HAProxy terminating TLS on a free port, round robin over `nodes`, with
/// `cookie SRV insert` stickiness when `sticky`.
async fn haproxy(dir: &Path, pem: &Path, nodes: &[u16], sticky: bool) -> (Child, u16) {
    let port = free_port();
    let mut servers = String::new();
    for (i, p) in nodes.iter().enumerate() {
        let cookie = if sticky {
            format!(" cookie s{i}")
        } else {
            String::new()
        };
        servers.push_str(&format!("  server s{i} 127.0.0.1:{p} check{cookie}\n"));
    }
    let stickiness = if sticky {
        "  cookie SRV insert indirect nocache\n"
    } else {
        ""
    };
    let config = format!(
        "global\n  maxconn 4096\n\
         defaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  \
         timeout server 60s\n  timeout tunnel 1h\n\
         frontend chat\n  bind 127.0.0.1:{port} ssl crt {} alpn http/1.1\n  \
         default_backend relays\n\
         backend relays\n  balance roundrobin\n{stickiness}{servers}",
        pem.display()
    );
    let file = dir.join(if sticky { "sticky.cfg" } else { "loose.cfg" });
    std::fs::write(&file, config).expect("write haproxy.cfg");
    let haproxy = which("haproxy").expect("haproxy is installed (scripts/test installs it)");
    let child = Command::new(haproxy)
        .arg("-db")
        .arg("-f")
        .arg(&file)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("haproxy starts");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return (child, port);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("haproxy did not listen on {port}");
}

fn which(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_passes_through_haproxy_with_tls_and_stickiness_and_fails_without() {
    let dir = common::temp_dir("deployment");
    let (cert, pem) = certificate(&dir);
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .expect("join")
        .expect("redis-server starts");
    let prefix = format!("deploy-{}", std::process::id());
    let (_a, port_a) = relay_process(&redis.url(), &prefix).await;
    let (_b, port_b) = relay_process(&redis.url(), &prefix).await;

    // the test's CA not given: the system's roots do not know it
    let (sticky, port) = haproxy(&dir, &pem, &[port_a, port_b], true).await;
    let url = format!("https://localhost:{port}/chat");
    let opts = RunOptions::new(
        common::scenarios_dir().join("smoke.toml"),
        dir.join("untrusted"),
    )
    .against(url.clone(), common::SECRET);
    match run(opts).await {
        Err(RunError::Preflight { reason, .. }) => {
            assert!(reason.contains("certificate"), "{reason}");
            assert!(reason.contains("--ca-file"), "{reason}");
        }
        other => panic!("an untrusted certificate was not named: {:?}", other.err()),
    }
    // --insecure: the run goes on, and says that nothing was authenticated
    let mut opts = RunOptions::new(
        common::scenarios_dir().join("smoke.toml"),
        dir.join("insecure"),
    )
    .against(url, common::SECRET);
    opts.overrides.insecure = true;
    opts.overrides.duration = Some(Duration::from_secs(2));
    let r = run(opts).await.expect("the run happens").result;
    assert!(r.target.insecure_tls);
    assert!(sim::result::summary(&r).contains("WARNING  TLS certificates were not checked"));
    drop(sticky);

    let (loose, loose_port) = haproxy(&dir, &pem, &[port_a, port_b], false).await;
    let mut opts = RunOptions::new(
        common::scenarios_dir().join("smoke.toml"),
        dir.join("loose"),
    )
    .against(
        format!("https://localhost:{loose_port}/chat"),
        common::SECRET,
    );
    opts.overrides.ca_file = Some(cert.clone());
    match run(opts).await {
        Err(RunError::Preflight { reason, .. }) => {
            assert!(reason.contains("Session ID unknown"), "{reason}");
            assert!(reason.contains("stickiness"), "{reason}");
        }
        Err(e) => panic!("stopped for another reason: {e}"),
        Ok(r) => panic!(
            "a balancer that breaks sessions passed: {:?}",
            r.result.counters
        ),
    }
    drop(loose);

    let (_sticky, port) = haproxy(&dir, &pem, &[port_a, port_b], true).await;
    let mut opts = RunOptions::new(
        common::scenarios_dir().join("smoke.toml"),
        dir.join("sticky"),
    )
    .against(format!("https://localhost:{port}/chat"), common::SECRET);
    opts.overrides.ca_file = Some(cert);
    let r = run(opts).await.expect("the run happens").result;
    let failed: Vec<_> = r.thresholds.iter().filter(|t| !t.passed).collect();
    assert!(r.passed, "failed: {failed:?}\nexamples: {:?}", r.examples);
    assert!(r.counters["delivered"] > 10_000, "{:?}", r.counters);
    let tls = &r.paths["connect_tls"].service;
    let connect = &r.paths["connect"].service;
    assert!(tls.count > 0, "TLS handshakes were timed");
    assert!(
        tls.p50_ms <= connect.p50_ms,
        "the TLS part ({} ms) lies within connect ({} ms)",
        tls.p50_ms,
        connect.p50_ms
    );
}

/// A credential the target refuses, or none at all, stops the run before any bot starts
/// (exit 2), naming the settings to fix; with no secret nothing is even connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_names_a_refused_or_missing_secret() {
    let (addr, _stop) = common::relay(60).await;
    let dir = common::temp_dir("preflight");
    let smoke = common::scenarios_dir().join("smoke.toml");
    let wrong = RunOptions::new(&smoke, dir.join("wrong")).against(
        format!("http://{addr}/chat"),
        "not-the-secret-of-this-relay",
    );
    match run(wrong).await {
        Err(RunError::Preflight { reason, .. }) => {
            assert!(reason.contains("refused our operator token"), "{reason}");
            assert!(reason.contains("jwt_secret"), "{reason}");
            assert!(reason.contains("RELAY_JWT_SECRET"), "{reason}");
        }
        other => panic!("a wrong secret was not named: {:?}", other.err()),
    }
    // nothing listens on port 1: the missing secret is said before any connection
    let none = RunOptions::new(&smoke, dir.join("none")).against("http://127.0.0.1:1/chat", "");
    match run(none).await {
        Err(RunError::Preflight { reason, .. }) => {
            assert!(
                reason.contains("no secret to sign operator tokens"),
                "{reason}"
            );
        }
        other => panic!("a missing secret was not named: {:?}", other.err()),
    }
}

/// A fault command learns its node (`SIM_NODE`, `SIM_NODE_URL`); `restart` brings a node
/// back into rotation; a command that fails is a failed fault, in the verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_commands_know_their_node_and_a_failing_one_fails_the_run() {
    let (addr, _stop) = common::relay(600).await;
    let dir = common::temp_dir("fault-commands");
    let seen = dir.join("seen");
    // two names of one relay: two nodes to the simulator
    let scenario = format!(
        r#"[scenario]
name = "fault commands"
duration = "3s"
drain = "1s"

[target]
urls = ["http://127.0.0.1:{port}/chat", "http://localhost:{port}/chat"]
jwt_secret = "{secret}"

[[faults]]
at = "1s"
restart = "echo $SIM_NODE $SIM_NODE_URL >> {seen}"
node = 2

[[faults]]
at = "2s"
restart = "echo nothing to restart >&2; exit 3"
node = 1

[[bots]]
role = "operator"
count = 2

[[bots]]
role = "client"
count = 4
messages_per_minute = 30
"#,
        port = addr.port(),
        secret = common::SECRET,
        seen = seen.display()
    );
    let path = dir.join("faults.toml");
    std::fs::write(&path, scenario).expect("write scenario");
    let r = run(RunOptions::new(&path, dir.join("out")))
        .await
        .expect("the run happens")
        .result;
    let said = std::fs::read_to_string(&seen).expect("the first command ran");
    assert_eq!(
        said.trim(),
        format!("2 http://localhost:{}/chat", addr.port())
    );
    assert_eq!(r.counters["faults.failed"], 1, "{:?}", r.counters);
    assert!(!r.passed, "a failed fault fails the run");
    let why = &r.examples["faults.failed"][0].detail;
    assert!(why.contains("exit status: 3"), "{why}");
}

/// A chat on a namespace of its own (`/support` on a Node socket.io server): smoke passes on
/// all three transports with `[target] namespace`; without it the preflight says the target
/// does not serve the namespace the bots asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_on_its_own_namespace_passes_and_a_wrong_namespace_is_named() {
    let (_node, url) = common::node(
        "chat-server.mjs",
        &[
            ("RATE_LIMIT_PER_MINUTE", "60"),
            ("SOCKET_NAMESPACE", "/support"),
        ],
    )
    .await;
    let dir = common::temp_dir("namespace");
    let smoke =
        std::fs::read_to_string(common::scenarios_dir().join("smoke.toml")).expect("smoke.toml");
    let with = |namespace: &str| {
        let path = dir.join(format!("smoke{}.toml", namespace.replace('/', "-")));
        let target = format!(
            "[target]\nurl = {url:?}\njwt_secret = {:?}\n{namespace}\n\n",
            common::SECRET
        );
        std::fs::write(&path, format!("{target}{smoke}")).expect("write scenario");
        path
    };
    match run(RunOptions::new(with(""), dir.join("main"))).await {
        Err(RunError::Preflight { reason, .. }) => {
            assert!(reason.contains("check [target] namespace"), "{reason}");
        }
        other => panic!("a missing namespace was not named: {:?}", other.err()),
    }
    let path = with("namespace = \"/support\"");
    let r = run(RunOptions::new(path, dir.join("support")))
        .await
        .expect("the run happens")
        .result;
    let failed: Vec<_> = r.thresholds.iter().filter(|t| !t.passed).collect();
    assert!(r.passed, "failed: {failed:?}\nexamples: {:?}", r.examples);
    assert!(r.counters["delivered"] > 10_000, "{:?}", r.counters);
}
