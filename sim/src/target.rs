//! The backend under test: the reference relay started in-process (one node, or a cluster of
//! nodes on a Redis it starts itself), or an external one checked before any bot starts; and
//! whether this process may open the sockets it needs.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use rand::RngExt;
use relay::embedded::{Node, RedisServer};
use tokio::sync::oneshot;
use wire::Endpoint;

use crate::access::Access;
use crate::tokens::Tokens;

use crate::run::RunError;
use crate::scenario::{FaultAction, Plan, Target};

/// How often issued tokens are checked for expiry, and how long before it they are renewed.
const TOKEN_CHECK: std::time::Duration = std::time::Duration::from_secs(30);
const TOKEN_MARGIN: std::time::Duration = std::time::Duration::from_secs(120);

/// What the simulator started itself.
enum Embedded {
    /// One relay on this runtime: its stop switch and task.
    Single(
        oneshot::Sender<()>,
        tokio::task::JoinHandle<Result<(), relay::ServeError>>,
    ),
    /// The relay as a child process.
    Process(Box<crate::relay_process::RelayProcess>),
    /// Relay nodes on their own threads, and the Redis they share (when this process
    /// started it); faults reach them through the same handle.
    Cluster(Arc<Mutex<ClusterParts>>),
}

/// An embedded cluster's parts, and what a node needs to start again.
struct ClusterParts {
    nodes: Vec<Node>,
    redis: Option<RedisServer>,
    config: relay::Config,
}

/// Where a run's faults are carried out: the embedded cluster, the fault proxy, or the shell.
#[derive(Clone)]
pub struct Breaker {
    cluster: Option<Arc<Mutex<ClusterParts>>>,
    network: Option<Arc<crate::network::Control>>,
    /// The target's URLs, by node, for fault commands.
    urls: Vec<String>,
}

impl Breaker {
    /// The same, with the run's fault proxy to act on.
    pub fn with_network(mut self, control: Arc<crate::network::Control>) -> Self {
        self.network = Some(control);
        self
    }

    fn network(&self) -> Result<&crate::network::Control, String> {
        self.network
            .as_deref()
            .ok_or_else(|| "this fault needs the fault proxy".to_owned())
    }

    /// Carries out `action`.
    ///
    /// # Errors
    /// What went wrong, in words (the run goes on).
    pub async fn inject(&self, action: &FaultAction) -> Result<(), String> {
        match action {
            FaultAction::NetworkOutage(lasting) => {
                self.network()?.outage(*lasting);
                Ok(())
            }
            FaultAction::Toxic { toxic, lasting } => {
                self.network()?.add(*toxic, *lasting);
                Ok(())
            }
            FaultAction::Command { run, node, .. } => {
                let mut command = tokio::process::Command::new("sh");
                command
                    .arg("-c")
                    .arg(run)
                    .stdin(std::process::Stdio::null());
                if let Some(n) = node {
                    command.env("SIM_NODE", (n + 1).to_string());
                    if let Some(url) = self.urls.get(*n as usize) {
                        command.env("SIM_NODE_URL", url);
                    }
                }
                let status = command
                    .status()
                    .await
                    .map_err(|e| format!("cannot run {run:?}: {e}"))?;
                if status.success() {
                    Ok(())
                } else {
                    Err(format!("{run:?} exited with {status}"))
                }
            }
            FaultAction::KillRelay(_)
            | FaultAction::RestartRelay(_)
            | FaultAction::RestartRedis => {
                let cluster = self
                    .cluster
                    .clone()
                    .ok_or("this fault needs the embedded cluster")?;
                let action = action.clone();
                tokio::task::spawn_blocking(move || {
                    let mut parts = cluster.lock().unwrap_or_else(PoisonError::into_inner);
                    match action {
                        FaultAction::KillRelay(n) => {
                            let node = parts
                                .nodes
                                .get_mut(n as usize)
                                .ok_or_else(|| format!("no relay {}", n + 1))?;
                            node.kill();
                            Ok(())
                        }
                        FaultAction::RestartRelay(n) => {
                            let config = parts.config.clone();
                            let node = parts
                                .nodes
                                .get_mut(n as usize)
                                .ok_or_else(|| format!("no relay {}", n + 1))?;
                            node.kill(); // nothing if it is already dead
                            *node = Node::start_on(config, node.addr())
                                .map_err(|e| format!("relay {} did not start again: {e}", n + 1))?;
                            Ok(())
                        }
                        _ => parts
                            .redis
                            .as_mut()
                            .ok_or_else(|| {
                                "REDIS_URL is set: the simulator restarts only its own Redis"
                                    .to_owned()
                            })?
                            .restart()
                            .map_err(|e| e.to_string()),
                    }
                })
                .await
                .map_err(|e| e.to_string())?
            }
        }
    }
}

/// A running target: where bots connect, where operator tokens come from, and
/// the embedded relay's stop switch.
pub struct Running {
    /// Socket.IO endpoints, used in turn.
    pub endpoints: Vec<Endpoint>,
    /// Where operator tokens come from.
    pub tokens: Arc<Tokens>,
    /// TLS trust and headers for the bots.
    pub access: Access,
    embedded: Option<Embedded>,
}

impl Running {
    /// True for the in-process relay.
    pub fn embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// What carries out the run's faults.
    pub fn breaker(&self) -> Breaker {
        Breaker {
            cluster: match &self.embedded {
                Some(Embedded::Cluster(parts)) => Some(parts.clone()),
                _ => None,
            },
            network: None,
            urls: self.endpoints.iter().map(Endpoint::url).collect(),
        }
    }

    /// Stops the embedded relays (waiting at most 15 s) and the Redis the simulator
    /// started; nothing for an external target.
    pub async fn stop(self) {
        match self.embedded {
            Some(Embedded::Single(tx, handle)) => {
                let _ = tx.send(());
                let _ = tokio::time::timeout(std::time::Duration::from_secs(15), handle).await;
            }
            Some(Embedded::Cluster(parts)) => {
                let _ = tokio::task::spawn_blocking(move || {
                    let mut parts = parts.lock().unwrap_or_else(PoisonError::into_inner);
                    for node in &mut parts.nodes {
                        let _ = node.stop();
                    }
                    parts.redis = None;
                })
                .await;
            }
            Some(Embedded::Process(p)) => p.stop().await,
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
                tokens: Arc::new(Tokens::hs256(&secret)),
                access: Access::default(),
                embedded: Some(Embedded::Single(tx, handle)),
            })
        }
        Target::Process => {
            let secret = random_secret();
            let config = relay_config(plan, &secret);
            let process = crate::relay_process::RelayProcess::start(&config)
                .await
                .map_err(|reason| RunError::Unreachable {
                    url: "relay process".into(),
                    reason,
                })?;
            Ok(Running {
                endpoints: vec![Endpoint::new(process.addr, relay::config::DEFAULT_PATH)],
                tokens: Arc::new(Tokens::hs256(&secret)),
                access: Access::default(),
                embedded: Some(Embedded::Process(Box::new(process))),
            })
        }
        Target::External {
            urls,
            credentials,
            reach,
        } => {
            // the adversary's witness and insiders come after the operators
            let wanted = plan.operator_identities() + 2 * usize::from(plan.adversary.is_some());
            let tokens =
                Tokens::load(credentials, wanted)
                    .await
                    .map_err(|reason| RunError::Preflight {
                        url: urls.join(", "),
                        reason,
                    })?;
            let tokens = Arc::new(tokens);
            tokens.keep_fresh(TOKEN_CHECK, TOKEN_MARGIN);
            let mut endpoints = Vec::new();
            for url in urls {
                let mut e = Endpoint::parse(url).map_err(|reason| RunError::Unreachable {
                    url: url.clone(),
                    reason,
                })?;
                if !reach.namespace.is_empty() {
                    e.namespace.clone_from(&reach.namespace);
                }
                endpoints.push(e);
            }
            let access = Access::new(reach, &endpoints).map_err(|e| RunError::Preflight {
                url: urls.join(", "),
                reason: e.to_string(),
            })?;
            for (url, e) in urls.iter().zip(&endpoints) {
                crate::preflight::check(e, &tokens, &access)
                    .await
                    .map_err(|reason| RunError::Preflight {
                        url: url.clone(),
                        reason,
                    })?;
            }
            Ok(Running {
                endpoints,
                tokens,
                access,
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
    config.cors_origin.clone_from(&plan.cors_origin);
    config
}

/// `relays` nodes on one Redis: `REDIS_URL` when set, else a `redis-server` started here on
/// a free loopback port (stopped with the run). Each node runs on its own thread.
async fn start_cluster(plan: &Plan, relays: u32) -> Result<Running, RunError> {
    let secret = random_secret();
    let mut config = relay_config(plan, &secret);
    // keys of one run never meet another's, even on a shared Redis
    config.redis_prefix = format!("sim-{:08x}", rand::rng().random::<u32>());
    let restarts_redis = plan
        .faults
        .iter()
        .any(|f| f.action == FaultAction::RestartRedis);
    let started = tokio::task::spawn_blocking(move || -> Result<_, RunError> {
        let failed = |what: &str, e: relay::embedded::EmbeddedError| RunError::Unreachable {
            url: what.to_owned(),
            reason: e.to_string(),
        };
        let redis = match std::env::var("REDIS_URL") {
            Ok(url) if !url.is_empty() => {
                if restarts_redis {
                    return Err(RunError::Unreachable {
                        url: "embedded Redis".into(),
                        reason: "the scenario restarts Redis ([[faults]] restart_redis), which \
                                 the simulator does only to a Redis it started: unset REDIS_URL"
                            .into(),
                    });
                }
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
        Ok((nodes, redis, config))
    })
    .await
    .map_err(|e| RunError::Unreachable {
        url: "embedded cluster".into(),
        reason: e.to_string(),
    })??;
    let (nodes, redis, config) = started;
    Ok(Running {
        endpoints: nodes
            .iter()
            .map(|n| Endpoint::new(n.addr(), relay::config::DEFAULT_PATH))
            .collect(),
        tokens: Arc::new(Tokens::hs256(&secret)),
        access: Access::default(),
        embedded: Some(Embedded::Cluster(Arc::new(Mutex::new(ClusterParts {
            nodes,
            redis,
            config,
        })))),
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
