//! One run: target up (the embedded relay, or a check that the external one answers), bots
//! spawned on their schedule, one aggregator filling the ledger, phases driven, result built.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use reports::model::{RunResult, SecondSample};
use tokio::sync::{mpsc, oneshot, watch};

use crate::bots::content::ImageCache;
use crate::bots::{self, BotSpec, Phase, Shared};
use crate::checks::Ledger;
use crate::progress::{Progress, Snapshot};
use crate::record::Record;
use crate::result;
use crate::scenario::{self, Plan, Target};
use wire::{Connection, Endpoint, Options};

/// What `sim run` was asked.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Scenario file.
    pub scenario: PathBuf,
    /// Targets that replace the scenario's (`--target`).
    pub targets: Vec<String>,
    /// Output folder (default `out/<scenario name>`).
    pub out: Option<PathBuf>,
    /// Seed override.
    pub seed: Option<u64>,
    /// Duration override.
    pub duration: Option<Duration>,
    /// Show the live progress display.
    pub progress: bool,
    /// Run only shard `index` of `count` (0-based index) of every bot group.
    pub shard: Option<Shard>,
}

impl RunOptions {
    /// Runs `scenario` as written: its target, seed and duration, no progress display,
    /// results in `out`.
    pub fn new(scenario: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        Self {
            scenario: scenario.into(),
            targets: Vec::new(),
            out: Some(out.into()),
            seed: None,
            duration: None,
            progress: false,
            shard: None,
        }
    }
}

/// One of `count` processes running the same scenario, each a disjoint share of every bot
/// group and its own message-id space; `sim merge` combines their results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based.
    pub index: u32,
    /// Processes in all.
    pub count: u32,
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// Parses `k/n` with 1 ≤ k ≤ n.
    fn from_str(s: &str) -> Result<Self, String> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not k/n, like 1/4"))?;
        let (k, n): (u32, u32) = (
            k.trim()
                .parse()
                .map_err(|_| format!("{s:?}: k is not a number"))?,
            n.trim()
                .parse()
                .map_err(|_| format!("{s:?}: n is not a number"))?,
        );
        if n == 0 || k == 0 || k > n || n > 1000 {
            return Err(format!("{s:?}: needs 1 <= k <= n <= 1000"));
        }
        Ok(Shard {
            index: k - 1,
            count: n,
        })
    }
}

/// Why a run could not happen (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scenario is invalid.
    #[error(transparent)]
    Scenario(#[from] scenario::ScenarioError),
    /// Bad arguments.
    #[error("{0}")]
    Arguments(String),
    /// The target does not answer.
    #[error("target {url} is unreachable: {reason}")]
    Unreachable {
        /// URL tried.
        url: String,
        /// Why.
        reason: String,
    },
    /// A bug: the run's own machinery failed.
    #[error("internal error: {0}")]
    Internal(String),
    /// More sockets than this process may open.
    #[error("{0}")]
    TooManySockets(String),
    /// Writing results failed.
    #[error("cannot write {path}: {source}")]
    Output {
        /// File.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A finished run.
#[derive(Debug)]
pub struct RunOutcome {
    /// The result, as written.
    pub result: RunResult,
    /// Where `result.json` is.
    pub result_path: PathBuf,
    /// Where `report.html` is.
    pub report_path: PathBuf,
}

/// Runs a scenario end to end and writes `result.json`.
///
/// # Errors
/// [`RunError`] when the run cannot start or its result cannot be written; a failed
/// threshold is not an error (see `RunOutcome::result.passed`).
pub async fn run(opts: RunOptions) -> Result<RunOutcome, RunError> {
    let mut plan = scenario::load(&opts.scenario)?;
    apply_overrides(&mut plan, &opts)?;
    let embedded = plan.target == Target::Embedded;
    let shards = opts.shard.map_or(1, |s| s.count);
    check_open_files(&plan, embedded, shards)?;

    let started_wall = std::time::SystemTime::now();
    let (endpoints, secret, relay_handle) = start_target(&plan).await?;

    let (records_tx, records_rx) = mpsc::unbounded_channel::<Record>();
    let (phase_tx, phase_rx) = watch::channel(Phase::Sending);
    let shard = opts.shard.unwrap_or(Shard { index: 0, count: 1 });
    let first_id = u64::from(shard.index) * crate::checks::ID_SPACE + 1;
    let mut shared = Shared::new(
        records_tx,
        endpoints,
        secret,
        plan.limits,
        phase_rx,
        first_id,
    );
    shared.set_shard(shard.index, shard.count);
    let shared = Arc::new(shared);
    let start = Instant::now();
    let progress = Progress::new(opts.progress, plan.peak_sockets(), shared.live.clone());
    let mut ledger = Ledger::with_ids(start, first_id);
    if shard.count > 1 {
        ledger.set_sharded();
    }
    let aggregator = tokio::spawn(aggregate(records_rx, ledger, progress.snapshot()));
    let mut bots_tasks = Vec::new();
    for spec in bot_specs(&plan, tokio::time::Instant::from_std(start), shard) {
        bots_tasks.push(tokio::spawn(bots::run(shared.clone(), spec)));
    }

    let interrupted = drive_phases(&plan, &phase_tx, &progress).await;
    // bots close within their send timeout; one that does not is cut off, not waited for
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    for t in bots_tasks {
        let abort = t.abort_handle();
        if tokio::time::timeout_at(deadline, t).await.is_err() {
            abort.abort();
        }
    }
    drop(shared);
    let (ledger, series) = aggregator
        .await
        .map_err(|e| RunError::Internal(format!("the ledger task failed: {e}")))?;
    progress.finish();
    if let Some((tx, handle)) = relay_handle {
        let _ = tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(15), handle).await;
    }

    let mut result = result::build(
        &plan,
        &ledger,
        series,
        started_wall,
        start.elapsed(),
        embedded,
        interrupted,
    );
    if shard.count > 1 {
        result.scenario.shard = Some(format!("{}/{}", shard.index + 1, shard.count));
    }
    let out_dir = opts
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("out").join(sanitize_file_name(&plan.name)));
    let result_path = write_result(&out_dir, &result)?;
    let report_path = out_dir.join("report.html");
    std::fs::write(&report_path, reports::html::render(&result)).map_err(|source| {
        RunError::Output {
            path: report_path.clone(),
            source,
        }
    })?;
    Ok(RunOutcome {
        result,
        result_path,
        report_path,
    })
}

fn apply_overrides(plan: &mut Plan, opts: &RunOptions) -> Result<(), RunError> {
    if let Some(seed) = opts.seed {
        plan.seed = seed;
    }
    if let Some(d) = opts.duration {
        if d.is_zero() {
            return Err(RunError::Arguments(
                "--duration must be more than 0s".into(),
            ));
        }
        plan.duration = d;
    }
    if !opts.targets.is_empty() {
        for t in &opts.targets {
            Endpoint::parse(t).map_err(|e| RunError::Arguments(format!("--target {e}")))?;
        }
        let jwt_secret = match &plan.target {
            Target::External { jwt_secret, .. } => jwt_secret.clone(),
            Target::Embedded => std::env::var("RELAY_JWT_SECRET").unwrap_or_default(),
        };
        plan.target = Target::External {
            urls: opts.targets.clone(),
            jwt_secret,
        };
    }
    Ok(())
}

/// Sockets are file descriptors: raise the soft limit and refuse plans that cannot fit.
fn check_open_files(plan: &Plan, embedded: bool, shards: u32) -> Result<(), RunError> {
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let per_socket = if embedded { 2 } else { 1 };
    let needed = plan.peak_sockets().div_ceil(u64::from(shards)) * per_socket + 128;
    if needed > limit {
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
                 split the run with more processes",
                plan.file.display(),
                plan.peak_sockets()
            )
        };
        return Err(RunError::TooManySockets(why));
    }
    Ok(())
}

type RelayHandle = (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), relay::ServeError>>,
);

async fn start_target(
    plan: &Plan,
) -> Result<(Vec<Endpoint>, String, Option<RelayHandle>), RunError> {
    match &plan.target {
        Target::Embedded => {
            let mut rng = StdRng::seed_from_u64(rand::random());
            let secret: String = (0..32)
                .map(|_| format!("{:x}", rng.random_range(0..16u8)))
                .collect();
            let mut config = relay::Config::with_secret(secret.clone());
            config.rate_limit_per_minute = plan.limits.rate_limit_per_minute;
            config.typing_rate_limit_per_minute = plan.limits.typing_rate_limit_per_minute;
            config.max_payload_bytes = plan.limits.max_payload_bytes;
            config.max_image_bytes = plan.limits.max_image_bytes;
            let listener =
                tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
                    .await
                    .map_err(|e| RunError::Unreachable {
                        url: "embedded relay".into(),
                        reason: e.to_string(),
                    })?;
            let addr = listener.local_addr().map_err(|e| RunError::Unreachable {
                url: "embedded relay".into(),
                reason: e.to_string(),
            })?;
            let (tx, rx) = oneshot::channel::<()>();
            let handle = tokio::spawn(relay::serve(listener, config, async move {
                let _ = rx.await;
            }));
            let endpoint = Endpoint::new(addr, relay::config::DEFAULT_PATH);
            Ok((vec![endpoint], secret, Some((tx, handle))))
        }
        Target::External { urls, jwt_secret } => {
            let mut endpoints = Vec::new();
            for url in urls {
                let e = Endpoint::parse(url).map_err(|reason| RunError::Unreachable {
                    url: url.clone(),
                    reason,
                })?;
                match Connection::connect(&e, Options::default()).await {
                    Ok(conn) => conn.close().await,
                    Err(err) => {
                        return Err(RunError::Unreachable {
                            url: url.clone(),
                            reason: err.to_string(),
                        });
                    }
                }
                endpoints.push(e);
            }
            Ok((endpoints, jwt_secret.clone(), None))
        }
    }
}

/// Every bot of the plan with its arrival time: groups start together, each spreads its
/// bots evenly over its ramp-up; operator tabs are bots sharing one identity.
fn bot_specs(plan: &Plan, start: tokio::time::Instant, shard: Shard) -> Vec<BotSpec> {
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let mut specs = Vec::new();
    let mut operators = 0u32;
    let mut global = 0u32;
    let mut checker_chosen = false;
    for group in &plan.groups {
        let g = Arc::new(group.clone());
        let images = Arc::new(ImageCache::new(group, &mut rng));
        for i in 0..group.count {
            let offset = group.ramp_up.mul_f64(f64::from(i) / f64::from(group.count));
            let identity = group.role.is_operator().then(|| {
                operators += 1;
                bots::identity(operators - 1, &mut rng)
            });
            let mine = i % shard.count == shard.index;
            for _tab in 0..group.tabs {
                if !mine {
                    global += 1;
                    continue;
                }
                let checks_list = group.role.is_operator() && !checker_chosen;
                checker_chosen |= checks_list;
                specs.push(BotSpec {
                    group: g.clone(),
                    images: images.clone(),
                    global,
                    arrival: start + offset,
                    operator: identity.clone(),
                    checks_list,
                    seed: plan
                        .seed
                        .wrapping_mul(1_000_003)
                        .wrapping_add(u64::from(global)),
                });
                global += 1;
            }
        }
    }
    specs
}

/// How long the operators-list answer may take; no answer is a violation.
const CHECKING: Duration = Duration::from_secs(2);

/// Sending for the plan's duration, then draining, the operators-list check and closing.
/// Ctrl-C once skips to draining; twice exits at once. Returns whether it was interrupted.
async fn drive_phases(plan: &Plan, phase: &watch::Sender<Phase>, progress: &Progress) -> bool {
    let ramp = plan
        .groups
        .iter()
        .map(|g| g.ramp_up)
        .max()
        .unwrap_or_default();
    // one listener for the whole run: the first Ctrl-C drains, the second exits
    let (interrupt_tx, mut interrupt_rx) = mpsc::unbounded_channel::<()>();
    let listener = tokio::spawn(async move {
        let mut presses = 0;
        while tokio::signal::ctrl_c().await.is_ok() {
            presses += 1;
            if presses >= 2 {
                std::process::exit(130);
            }
            let _ = interrupt_tx.send(());
        }
    });
    let mut interrupted = false;
    progress.phase("sending");
    tokio::select! {
        () = tokio::time::sleep(plan.duration.max(ramp)) => {}
        _ = interrupt_rx.recv() => {
            interrupted = true;
            progress.note("interrupted: draining and writing results (Ctrl-C again to quit now)");
        }
    }
    let _ = phase.send(Phase::Draining);
    progress.phase("draining");
    tokio::time::sleep(plan.drain).await;
    let _ = phase.send(Phase::Checking);
    progress.phase("checking presence");
    tokio::time::sleep(CHECKING).await;
    drop(listener); // stays alive: a second Ctrl-C while closing still exits
    let _ = phase.send(Phase::Closing);
    progress.phase("closing");
    interrupted
}

/// The one owner of the ledger: applies records, settles due messages and samples each second.
async fn aggregate(
    mut rx: mpsc::UnboundedReceiver<Record>,
    mut ledger: Ledger,
    snapshot: Arc<Snapshot>,
) -> (Ledger, Vec<SecondSample>) {
    let start = ledger.start();
    let mut series = Vec::new();
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::from_std(start) + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Some(record) => ledger.apply(record),
                None => break,
            },
            _ = tick.tick() => {
                ledger.settle_due_now();
                series.push(sample(&mut ledger, series.len()));
                snapshot.publish(&ledger);
            }
        }
    }
    ledger.finish();
    series.push(sample(&mut ledger, series.len()));
    (ledger, series)
}

fn sample(ledger: &mut Ledger, t: usize) -> SecondSample {
    let tally = ledger.take_second();
    SecondSample {
        t: u32::try_from(t + 1).unwrap_or(u32::MAX),
        sent: tally.sent,
        delivered: tally.delivered,
        connected: ledger.connected(),
        violations: tally.violations,
        latency: ledger.histograms.take_second(),
    }
}

fn sanitize_file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn write_result(dir: &FsPath, result: &RunResult) -> Result<PathBuf, RunError> {
    let path = dir.join("result.json");
    let err = |source| RunError::Output {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let json = serde_json::to_string_pretty(result).map_err(|e| err(std::io::Error::other(e)))?;
    std::fs::write(&path, json + "\n").map_err(err)?;
    Ok(path)
}
