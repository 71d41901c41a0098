//! The backend under test: the reference relay started in-process (one node, or a cluster of
//! nodes on a Redis it starts itself), or an external one checked before any bot starts; and
//! whether this process may open the sockets it needs.

use std::net::{Ipv4Addr, SocketAddr};

use rand::RngExt;
use relay::embedded::{Node, RedisServer};
use tokio::sync::oneshot;
use wire::{Connection, Endpoint, Options};

use crate::run::RunError;
use crate::scenario::{Plan, Target};

/// What the simulator started itself.
enum Embedded {
    /// One relay on this runtime: its stop switch and task.
    Single(
        oneshot::Sender<()>,
        tokio::task::JoinHandle<Result<(), relay::ServeError>>,
    ),
    /// Relay nodes on their own threads, and the Redis they share (when this process
    /// started it).
    Cluster(Vec<Node>, Option<RedisServer>),
}

/// A running target: where bots connect, the secret operator tokens are signed with, and
/// the embedded relay's stop switch.
pub struct Running {
    /// Socket.IO endpoints, used in turn.
    pub endpoints: Vec<Endpoint>,
    /// JWT secret.
    pub secret: String,
    embedded: Option<Embedded>,
}

impl Running {
    /// True for the in-process relay.
    pub fn embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// Stops the embedded relays (waiting at most 15 s) and the Redis the simulator
    /// started; nothing for an external target.
    pub async fn stop(self) {
        match self.embedded {
            Some(Embedded::Single(tx, handle)) => {
                let _ = tx.send(());
                let _ = tokio::time::timeout(std::time::Duration::from_secs(15), handle).await;
            }
            Some(Embedded::Cluster(mut nodes, redis)) => {
                let _ = tokio::task::spawn_blocking(move || {
                    for node in &mut nodes {
                        let _ = node.stop();
                    }
                    drop(redis);
                })
                .await;
            }
            None => {}
        }
    }
}

/// Starts the embedded relay with the plan's limits, or checks that every external URL
/// answers a Socket.IO connect.
///
/// # Errors
/// [`RunError::Unreachable`] naming the URL.
pub async fn start(plan: &Plan) -> Result<Running, RunError> {
    match &plan.target {
        Target::Embedded { relays } if *relays > 1 => start_cluster(plan, *relays).await,
        Target::Embedded { .. } => {
            let secret = random_secret();
            let config = relay_config(plan, &secret);
            let unreachable = |e: std::io::Error| RunError::Unreachable {
                url: "embedded relay".into(),
                reason: e.to_string(),
            };
            let listener =
                tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
                    .await
                    .map_err(unreachable)?;
            let addr = listener.local_addr().map_err(unreachable)?;
            let (tx, rx) = oneshot::channel::<()>();
            let handle = tokio::spawn(relay::serve(listener, config, async move {
                let _ = rx.await;
            }));
            Ok(Running {
                endpoints: vec![Endpoint::new(addr, relay::config::DEFAULT_PATH)],
                secret,
                embedded: Some(Embedded::Single(tx, handle)),
            })
        }
        Target::External { urls, jwt_secret } => {
            let mut endpoints = Vec::new();
            for url in urls {
                let unreachable = |reason: String| RunError::Unreachable {
                    url: url.clone(),
                    reason,
                };
                let e = Endpoint::parse(url).map_err(unreachable)?;
                let conn = Connection::connect(&e, Options::default())
                    .await
                    .map_err(|err| unreachable(err.to_string()))?;
                conn.close().await;
                endpoints.push(e);
            }
            Ok(Running {
                endpoints,
                secret: jwt_secret.clone(),
                embedded: None,
            })
        }
    }
}

fn random_secret() -> String {
    (0..32)
        .map(|_| format!("{:x}", rand::rng().random_range(0..16u8)))
        .collect()
}

/// The embedded relay's configuration: the plan's limits, `secret`.
fn relay_config(plan: &Plan, secret: &str) -> relay::Config {
    let mut config = relay::Config::with_secret(secret);
    config.rate_limit_per_minute = plan.limits.rate_limit_per_minute;
    config.typing_rate_limit_per_minute = plan.limits.typing_rate_limit_per_minute;
    config.max_payload_bytes = plan.limits.max_payload_bytes;
    config.max_image_bytes = plan.limits.max_image_bytes;
    config
}

/// `relays` nodes on one Redis: `REDIS_URL` when set, else a `redis-server` started here on
/// a free loopback port (stopped with the run). Each node runs on its own thread.
async fn start_cluster(plan: &Plan, relays: u32) -> Result<Running, RunError> {
    let secret = random_secret();
    let mut config = relay_config(plan, &secret);
    // keys of one run never meet another's, even on a shared Redis
    config.redis_prefix = format!("sim-{:08x}", rand::rng().random::<u32>());
    let started = tokio::task::spawn_blocking(move || -> Result<_, RunError> {
        let failed = |what: &str, e: relay::embedded::EmbeddedError| RunError::Unreachable {
            url: what.to_owned(),
            reason: e.to_string(),
        };
        let redis = match std::env::var("REDIS_URL") {
            Ok(url) if !url.is_empty() => {
                config.redis_url = Some(url);
                None
            }
            _ => {
                let r = RedisServer::start().map_err(|e| failed("embedded Redis", e))?;
                config.redis_url = Some(r.url());
                Some(r)
            }
        };
        let mut nodes = Vec::new();
        for _ in 0..relays {
            let node = Node::start(config.clone(), Ipv4Addr::LOCALHOST.into())
                .map_err(|e| failed("embedded relay", e))?;
            nodes.push(node);
        }
        Ok((nodes, redis))
    })
    .await
    .map_err(|e| RunError::Unreachable {
        url: "embedded cluster".into(),
        reason: e.to_string(),
    })??;
    let (nodes, redis) = started;
    Ok(Running {
        endpoints: nodes
            .iter()
            .map(|n| Endpoint::new(n.addr(), relay::config::DEFAULT_PATH))
            .collect(),
        secret,
        embedded: Some(Embedded::Cluster(nodes, redis)),
    })
}

/// Sockets are file descriptors: raises the soft limit and refuses plans that cannot fit.
///
/// # Errors
/// [`RunError::TooManySockets`] with advice.
pub fn check_open_files(plan: &Plan, shards: u32) -> Result<(), RunError> {
    let embedded = matches!(plan.target, Target::Embedded { .. });
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    // polling connections hold two HTTP connections each
    let per_bot = |g: &crate::scenario::Group| match g.transport {
        wire::Transport::Websocket => 1,
        _ => 2,
    };
    let sockets: u64 = plan
        .groups
        .iter()
        .map(|g| u64::from(g.count) * u64::from(g.tabs) * per_bot(g))
        .sum::<u64>()
        .div_ceil(u64::from(shards));
    let needed = sockets * if embedded { 2 } else { 1 } + 128;
    if needed <= limit {
        return Ok(());
    }
    let why = if embedded {
        format!(
            "scenario {} holds {} sockets; with the embedded relay, bots and relay share this process's \
             open-file limit ({limit}), so it needs {needed}. Run the relay as its own process \
             (cargo run --release -p relay) and pass --target, or use fewer bots",
            plan.file.display(),
            plan.peak_sockets()
        )
    } else {
        format!(
            "scenario {} holds {} sockets but this process may open only {limit} files; \
             split the run with more processes (--shard k/n)",
            plan.file.display(),
            plan.peak_sockets()
        )
    };
    Err(RunError::TooManySockets(why))
}
