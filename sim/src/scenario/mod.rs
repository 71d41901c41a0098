//! Scenario files: TOML read once into spanned values, resolved with the command line's
//! overrides into one validated [`Plan`].
//!
//! Every error names the file, line, column and field, taken from the parser's spans (an
//! inline table such as `bots = [{…}]` points at the right line too).

mod adversary;
mod capacity;
mod faults;
mod locate;
mod network;
mod raw;
mod resolve;
mod target;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use adversary::{ATTACKS_SUCCEEDED, Adversary};
pub use capacity::{Capacity, DEFAULT_BUDGET, Vary, parse_slo};
pub use network::{Stream, Toxic, ToxicKind};
pub use wire::Transport;

/// A scenario that cannot be run, and where the problem is.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A TOML syntax error.
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// A field with a wrong type, an unknown field, or a value that makes no sense.
    #[error("{file}:{line}:{column}: `{field}`: {message}")]
    Invalid {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Dotted field path, e.g. `bots[2].count`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A command-line override that makes no sense.
    #[error("{0}")]
    Override(String),
}

/// What a bot group's bots are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BotRole {
    /// Answers visitors; joins with a token.
    Operator,
    /// A visitor.
    Client,
    /// An operator who only watches and must see everything.
    Supervisor,
}

impl BotRole {
    /// The role's name in scenarios and results.
    pub fn as_str(self) -> &'static str {
        match self {
            BotRole::Operator => "operator",
            BotRole::Client => "client",
            BotRole::Supervisor => "supervisor",
        }
    }

    /// True for roles that join as `operator` on the wire.
    pub fn is_operator(self) -> bool {
        !matches!(self, BotRole::Client)
    }
}

/// How the wait between two messages of a bot is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThinkTime {
    /// Exponential around the mean: a Poisson process, the open-model default.
    Exponential,
    /// Exactly the mean.
    Constant,
    /// Uniform between 0.5 and 1.5 times the mean.
    Uniform,
}

/// An inclusive range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Smallest.
    pub min: u32,
    /// Largest.
    pub max: u32,
}

/// Back-to-back sends from one bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Burst {
    /// Messages in one burst, all leaving at the same instant.
    pub size: u32,
    /// Time between bursts (the first comes at a random point within it).
    pub every: Duration,
}

/// One validated `[[bots]]` group.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Name (default: role and index).
    pub name: String,
    /// Role.
    pub role: BotRole,
    /// Bots in the group.
    pub count: u32,
    /// Sockets per bot (operators only; visitors have one).
    pub tabs: u32,
    /// How its connections carry packets.
    pub transport: Transport,
    /// Bots arrive evenly over this.
    pub ramp_up: Duration,
    /// Messages per minute per bot, bursts aside (0 for supervisors).
    pub messages_per_minute: f64,
    /// Distribution of waits between messages.
    pub think_time: ThinkTime,
    /// Bursts of back-to-back messages, on top of the steady rate.
    pub burst: Option<Burst>,
    /// Text length in characters.
    pub text_length: Range,
    /// Fraction of texts carrying HTML markup (to check sanitizing).
    pub markup_fraction: f64,
    /// Fraction of messages that are images.
    pub image_fraction: f64,
    /// Image size in bytes.
    pub image_bytes: Range,
    /// Chance that a message is preceded by a typing event.
    pub typing_probability: f64,
    /// Each connection lives about this long (±20 %), then leaves; `None`: the whole run.
    pub lifetime: Option<Duration>,
    /// How long a bot stays away between two connections.
    pub offline: Duration,
    /// How many times a bot comes back after its lifetime ends.
    pub reconnects: u32,
}

/// Where the bots connect.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The reference relay, started in-process: one node, or `relays` nodes sharing a Redis
    /// (`REDIS_URL`, or a `redis-server` the simulator starts on a free port).
    Embedded {
        /// Relay nodes; bots spread over them in turn.
        relays: u32,
    },
    /// The reference relay as a child process of its own (`[target] process = true`): its
    /// own open-file limit, and CPU and memory that are its alone.
    Process,
    /// A running backend.
    External {
        /// Socket.IO URLs including the path, e.g. `http://127.0.0.1:3001/chat`.
        urls: Vec<String>,
        /// How operators come by their tokens.
        credentials: Credentials,
        /// How bots reach it: TLS trust and extra headers.
        reach: Reach,
    },
}

/// How the simulator comes by operator tokens for an external target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Signed HS256 with this secret; empty when none was given (refused before connecting).
    Secret(String),
    /// Signed with the team's private key (PEM; RS256 or ES256, as the key says).
    PrivateKey(PathBuf),
    /// Issued beforehand: one line per operator, `id,name,token`.
    TokensFile(PathBuf),
    /// `sh -c` this; it prints the token of the operator in `SIM_OPERATOR_ID` and
    /// `SIM_OPERATOR_NAME`.
    Command(String),
}

impl Credentials {
    /// The settings to check when the target refuses a token.
    pub fn setting(&self) -> &'static str {
        match self {
            Credentials::Secret(_) => "[target] jwt_secret / jwt_secret_env, or RELAY_JWT_SECRET",
            Credentials::PrivateKey(_) => "--jwt-private-key / [target] jwt_private_key_file",
            Credentials::TokensFile(_) => "[target] tokens_file",
            Credentials::Command(_) => "[target] token_command",
        }
    }
}

/// How bots reach an external target beyond its URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    /// Which server certificates an `https://` target may present.
    pub trust: wire::tls::Trust,
    /// Headers every request carries (`[target.headers]`), e.g. an `Authorization`.
    pub headers: Vec<(String, String)>,
    /// The Socket.IO namespace (`[target] namespace`; empty or `/`: the main one).
    pub namespace: String,
}

/// The backend's limits as the simulator expects them (and configures the embedded relay with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Messages per socket per rolling minute.
    pub rate_limit_per_minute: u32,
    /// Typing events per socket per rolling minute.
    pub typing_rate_limit_per_minute: u32,
    /// Largest event.
    pub max_payload_bytes: usize,
    /// Largest decoded image.
    pub max_image_bytes: usize,
}

/// A threshold: the metric must not exceed the limit (or, written `metric.min`, not fall below it).
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// Metric name, e.g. `fanout.p99_ms` or `lost`.
    pub metric: String,
    /// The bound.
    pub limit: f64,
    /// True for a lower bound (`metric.min = 1`).
    pub at_least: bool,
    /// Not written in the scenario: the default gate.
    pub implicit: bool,
}

/// A scenario ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// File it came from.
    pub file: PathBuf,
    /// What the user should change in the file, though it still works (a deprecated name).
    pub warnings: Vec<String>,
    /// Name.
    pub name: String,
    /// One-line description.
    pub description: String,
    /// Sending phase.
    pub duration: Duration,
    /// Time after sending stops for deliveries to arrive.
    pub drain: Duration,
    /// Random seed.
    pub seed: u64,
    /// Where to connect.
    pub target: Target,
    /// Expected (and, embedded, configured) limits.
    pub limits: Limits,
    /// Browser origins the embedded relay allows (`[limits] cors_origin`; empty: any).
    pub cors_origin: Vec<String>,
    /// Bot groups.
    pub groups: Vec<Group>,
    /// The adversary group, if the scenario has one.
    pub adversary: Option<Adversary>,
    /// Pass/fail rules: the scenario's, then the default gate's.
    pub thresholds: Vec<Threshold>,
    /// How bots come back after losing a connection.
    pub reconnect: Reconnect,
    /// What the run breaks on purpose, in time order.
    pub faults: Vec<Fault>,
    /// Toxics of the fault proxy for the whole run (`[network]`).
    pub network: Vec<Toxic>,
    /// How `sim capacity` steps the load (`[capacity]`).
    pub capacity: Option<Capacity>,
}

impl Plan {
    /// True when bots go through the simulator's fault proxy.
    pub fn proxied(&self) -> bool {
        !self.network.is_empty()
            || self.faults.iter().any(|f| {
                matches!(
                    f.action,
                    FaultAction::NetworkOutage(_) | FaultAction::Toxic { .. }
                )
            })
    }
}

/// How a bot reconnects after losing its connection, as socket.io-client does: the delay
/// doubles from `delay` up to `max_delay`, each one randomized by ± `randomization`, and
/// every attempt goes to the next of the target's nodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reconnect {
    /// Off: a lost connection ends the bot.
    pub enabled: bool,
    /// First delay.
    pub delay: Duration,
    /// Longest delay.
    pub max_delay: Duration,
    /// Spread of each delay, 0 to 1.
    pub randomization: f64,
}

impl Default for Reconnect {
    fn default() -> Self {
        Self {
            enabled: true,
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(5),
            randomization: 0.5,
        }
    }
}

impl Reconnect {
    /// The delay before attempt `n` (0-based), given a uniform draw `u` in [0, 1).
    pub fn delay(&self, n: u32, u: f64) -> Duration {
        let base = self
            .delay
            .saturating_mul(1u32 << n.min(16))
            .min(self.max_delay);
        let spread = 1.0 + self.randomization * (2.0 * u - 1.0);
        base.mul_f64(spread.max(0.0)).min(self.max_delay)
    }
}

/// A fault injected at `at` after sending starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Offset from the start of the sending phase.
    pub at: Duration,
    /// What happens.
    pub action: FaultAction,
}

/// What a fault does.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    /// Kills embedded relay node `n` (0-based) at once: no goodbye to its sockets or Redis.
    KillRelay(u32),
    /// Starts killed embedded relay node `n` (0-based) again on its address: a new node to
    /// the cluster, which bots may connect to again.
    RestartRelay(u32),
    /// Kills the simulator's own Redis and starts a fresh, empty one on the same port.
    RestartRedis,
    /// Runs a shell command (an external target's way to break something, or to mend it),
    /// with `SIM_NODE` (1-based) and `SIM_NODE_URL` of `node` in its environment.
    Command {
        /// `sh -c` this.
        run: String,
        /// The node (0-based) it acts on, if any.
        node: Option<u32>,
        /// It brings `node` back into rotation (`restart = "…"`) instead of killing it.
        restart: bool,
    },
    /// The simulator's fault proxy cuts every connection and refuses new ones for this long.
    NetworkOutage(Duration),
    /// The fault proxy adds a toxic, for `lasting` (zero: the rest of the run).
    Toxic {
        /// The toxic.
        toxic: Toxic,
        /// How long it stays.
        lasting: Duration,
    },
}

impl FaultAction {
    /// The node whose sockets this fault closes.
    pub fn kills(&self) -> Option<u32> {
        match self {
            FaultAction::KillRelay(n) => Some(*n),
            FaultAction::Command {
                node,
                restart: false,
                ..
            } => *node,
            FaultAction::Command { .. }
            | FaultAction::RestartRedis
            | FaultAction::RestartRelay(_)
            | FaultAction::NetworkOutage(_)
            | FaultAction::Toxic { .. } => None,
        }
    }

    /// The node this fault brings back.
    pub fn revives(&self) -> Option<u32> {
        match self {
            FaultAction::RestartRelay(n) => Some(*n),
            FaultAction::Command {
                node,
                restart: true,
                ..
            } => *node,
            _ => None,
        }
    }
}

impl Plan {
    /// Operator identities the plan's bots take (tabs share one).
    pub fn operator_identities(&self) -> usize {
        self.groups
            .iter()
            .filter(|g| g.role.is_operator())
            .map(|g| g.count as usize)
            .sum()
    }

    /// Sockets the plan holds open at its peak.
    pub fn peak_sockets(&self) -> u64 {
        self.groups
            .iter()
            .map(|g| u64::from(g.count) * u64::from(g.tabs))
            .sum()
    }

    /// The longest ramp-up of any group.
    pub fn ramp(&self) -> Duration {
        self.groups
            .iter()
            .map(|g| g.ramp_up)
            .max()
            .unwrap_or_default()
    }
}

/// What the command line (and the environment) says over the file: flag > environment >
/// file > default, resolved once, before the plan exists.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--target` URLs: replace the scenario's target.
    pub targets: Vec<String>,
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--duration`.
    pub duration: Option<Duration>,
    /// `--scale`: multiplies every group's bot count.
    pub scale: Option<f64>,
    /// `--rate`: multiplies every group's message rate (bursts come that much more often).
    pub rate: Option<f64>,
    /// The JWT secret for an external target, over the file's and the environment's
    /// (for embedding the simulator, e.g. in tests; the command line reads the environment).
    pub jwt_secret: Option<String>,
    /// `--jwt-private-key`: sign operator tokens with this key (over the file's credentials).
    pub jwt_private_key: Option<PathBuf>,
    /// `--ca-file`: trust this PEM file's certificates (over `[target] ca_file`).
    pub ca_file: Option<PathBuf>,
    /// `--insecure`: trust any certificate (over `[target] insecure`).
    pub insecure: bool,
}

/// Reads and resolves a scenario file.
///
/// # Errors
/// [`ScenarioError`] naming the file, line, column and field.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Plan, ScenarioError> {
    let source = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
        file: path.to_owned(),
        source,
    })?;
    parse(path, &source, overrides)
}

/// Resolves scenario text read from `path`.
///
/// # Errors
/// [`ScenarioError`] naming the file, line, column and field.
pub fn parse(path: &Path, source: &str, overrides: &Overrides) -> Result<Plan, ScenarioError> {
    let mut plan = resolve::resolve(path, source, overrides)?;
    match overrides.rate {
        Some(r) if !(r.is_finite() && r > 0.0 && r <= 1000.0) => {
            return Err(ScenarioError::Override(format!(
                "--rate {r}: needs 0 < rate <= 1000"
            )));
        }
        Some(r) => plan.scale_rate(r),
        None => {}
    }
    Ok(plan)
}

/// Reads just the name and description of a scenario, for `sim list`.
///
/// # Errors
/// As [`load`].
pub fn describe(path: &Path) -> Result<(String, String), ScenarioError> {
    let plan = load(path, &Overrides::default())?;
    Ok((plan.name, plan.description))
}
