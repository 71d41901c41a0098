//! One run: the plan resolved, the target up, the pacer and the bots started, one
//! aggregator filling the ledger, the phases driven to an orderly close, the result written.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use relay::auth::OperatorIdentity;
use reports::model::RunResult;
use tokio::sync::{mpsc, watch};

use crate::adversary;
use crate::bots::content::ImageCache;
use crate::bots::{self, BotSpec, Phase, Shared};
use crate::ledger::{ID_SPACE, Ledger};
use crate::network;
use crate::pacer::Pacer;
use crate::phases::{self, Closing};
use crate::progress::Progress;
use crate::record::Record;
use crate::result;
use crate::scenario::{self, Fault, Overrides, Plan};
use crate::target::{self, Breaker};
use crate::watch::Watcher;

/// What `sim run` was asked.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Scenario file.
    pub scenario: PathBuf,
    /// What the command line says over the file.
    pub overrides: Overrides,
    /// Output folder (default `out/<scenario name>`).
    pub out: Option<PathBuf>,
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
            overrides: Overrides::default(),
            out: Some(out.into()),
            progress: false,
            shard: None,
        }
    }

    /// The same run against `url` instead of the scenario's target, signing operator
    /// tokens with `jwt_secret`.
    pub fn against(self, url: impl Into<String>, jwt_secret: &str) -> Self {
        self.against_each(vec![url.into()], jwt_secret)
    }

    /// The same run against several nodes of one backend, bots spread over them in turn.
    pub fn against_each(mut self, urls: Vec<String>, jwt_secret: &str) -> Self {
        self.overrides.targets = urls;
        self.overrides.jwt_secret = Some(jwt_secret.to_owned());
        self
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
    /// The target does not answer.
    #[error("target {url} is unreachable: {reason}")]
    Unreachable {
        /// URL tried.
        url: String,
        /// Why.
        reason: String,
    },
    /// The target answered, but one operator and one visitor could not join and leave.
    #[error("preflight against {url} failed: {reason}")]
    Preflight {
        /// URL tried.
        url: String,
        /// Why, naming the setting to fix.
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

/// Runs a scenario end to end and writes `result.json` and `report.html`.
///
/// # Errors
/// [`RunError`] when the run cannot start or its result cannot be written; a failed
/// threshold is not an error (see `RunOutcome::result.passed`).
pub async fn run(opts: RunOptions) -> Result<RunOutcome, RunError> {
    let plan = scenario::load(&opts.scenario, &opts.overrides)?;
    run_plan(plan, opts).await
}

/// Runs an already resolved `plan` (the binary resolves it once, to choose its runtime).
///
/// # Errors
/// As [`run`].
pub async fn run_plan(plan: Plan, opts: RunOptions) -> Result<RunOutcome, RunError> {
    let shard = opts.shard.unwrap_or(Shard { index: 0, count: 1 });
    target::check_open_files(&plan, shard.count)?;
    let started_wall = std::time::SystemTime::now();
    let running = target::start(&plan).await?;
    let adversary_identities = running
        .tokens
        .spare(plan.operator_identities(), plan.adversary.is_some())
        .map_err(|reason| RunError::Preflight {
            url: running
                .endpoints
                .first()
                .map(|e| e.addr.to_string())
                .unwrap_or_default(),
            reason,
        })?
        .map(<[_]>::to_vec);

    let (records_tx, records_rx) = mpsc::unbounded_channel::<Record>();
    let (phase_tx, phase_rx) = watch::channel(Phase::Sending);
    let pacer = Pacer::start(records_tx.clone())
        .map_err(|e| RunError::Internal(format!("cannot start the pacing thread: {e}")))?;
    let first_id = u64::from(shard.index) * ID_SPACE + 1;
    // with network toxics the bots connect through the fault proxy
    let proxy = if plan.proxied() {
        Some(
            network::Proxy::start(
                &running.endpoints,
                &plan.network,
                records_tx.clone(),
                plan.seed,
            )
            .await
            .map_err(|e| RunError::Internal(format!("cannot start the fault proxy: {e}")))?,
        )
    } else {
        None
    };
    let bot_endpoints = proxy
        .as_ref()
        .map_or_else(|| running.endpoints.clone(), |p| p.endpoints.clone());
    let mut shared = Shared::new(
        records_tx,
        bot_endpoints,
        running.tokens.clone(),
        plan.limits,
        phase_rx,
        pacer.handle(),
        first_id,
        (shard.index, shard.count),
    );
    shared.reconnect = plan.reconnect;
    shared.access = running.access.clone();
    let shared = Arc::new(shared);
    let start = Instant::now();
    let progress = Progress::new(opts.progress, plan.peak_sockets(), shared.live.clone());
    let mut ledger = Ledger::new(
        start,
        first_id,
        plan.limits.rate_limit_per_minute,
        shard.count > 1,
    );
    if let Some((from, to)) = phases::steady_window(&plan) {
        ledger.measure_steady(start + from, start + to);
    }
    let closing = Arc::new(Closing::default());
    let aggregator = tokio::spawn(phases::aggregate(
        records_rx,
        ledger,
        progress.snapshot(),
        closing.clone(),
    ));
    let mut tasks = Vec::new();
    let issued = running.tokens.identities();
    for spec in bot_specs(&plan, tokio::time::Instant::from_std(start), shard, issued) {
        tasks.push(tokio::spawn(bots::run(shared.clone(), spec)));
    }
    // one adversary per run: a sharded run's first shard carries it
    let adversary = plan
        .adversary
        .clone()
        .filter(|_| shard.index == 0)
        .map(|plan| {
            tokio::spawn(adversary::run(adversary::Setup {
                plan,
                endpoint: running.endpoints[0].clone(),
                nodes: running.endpoints.iter().map(|e| e.addr).collect(),
                limits: shared.limits,
                tokens: running.tokens.clone(),
                identities: adversary_identities.clone(),
                access: running.access.clone(),
                phase: shared.phase.clone(),
            }))
        });
    let watcher = Watcher::start(running.endpoints.iter().map(|e| e.addr).collect(), start);
    let mut breaker = running.breaker();
    if let Some(p) = &proxy {
        breaker = breaker.with_network(p.control.clone());
    }
    let faults = tokio::spawn(inject_faults(
        plan.faults.clone(),
        breaker,
        shared.clone(),
        tokio::time::Instant::from_std(start),
    ));

    let interrupted = phases::drive(&plan, &phase_tx, &progress, &shared, &closing).await;
    let attacks = match adversary {
        Some(task) => task
            .await
            .map_err(|e| RunError::Internal(format!("the adversary failed: {e}")))?,
        None => Vec::new(),
    };
    faults.abort();
    let _ = faults.await;
    // bots close promptly; one that does not is cut off, not waited for
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    for t in tasks {
        let abort = t.abort_handle();
        if tokio::time::timeout_at(deadline, t).await.is_err() {
            abort.abort();
        }
    }
    // memory is judged over the second half of sending, after the ramp
    let warm_until = (plan.ramp() + plan.duration / 2).as_secs_f64();
    let watch = watcher.finish(warm_until).await;
    let pacer_info = pacer.describe();
    pacer.stop();
    if let Some(p) = proxy {
        p.stop();
    }
    drop(shared);
    let (ledger, series) = aggregator
        .await
        .map_err(|e| RunError::Internal(format!("the ledger task failed: {e}")))?;
    progress.finish();
    let embedded = running.embedded();
    running.stop().await;

    let mut result = result::build(
        &plan,
        &ledger,
        series,
        result::Context {
            started: started_wall,
            wall: start.elapsed(),
            embedded,
            interrupted,
            pacer: pacer_info,
            watch,
            attacks,
        },
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

/// Carries out each fault at its offset from `start`, noting it for the ledger and the bots
/// first (the sockets a killed node drops close after the note, and bots connect elsewhere).
/// A fault that fails (a command exiting non-zero) is noted as failed: its node is not dead,
/// bots may use it again, and the run's verdict shows it.
async fn inject_faults(
    faults: Vec<Fault>,
    breaker: Breaker,
    shared: Arc<Shared>,
    start: tokio::time::Instant,
) {
    for fault in faults {
        tokio::time::sleep_until(start + fault.at).await;
        let killed = fault.action.kills();
        if let Some(n) = killed {
            shared.node_killed(n);
        }
        let _ = shared.records.send(Record::Fault {
            killed,
            at: std::time::Instant::now(),
        });
        match breaker.inject(&fault.action).await {
            Ok(()) => {
                if let Some(node) = killed {
                    let at = std::time::Instant::now();
                    let _ = shared.records.send(Record::FaultDone { node, at });
                }
                if let Some(n) = fault.action.revives() {
                    shared.node_revived(n);
                }
                tracing::info!(at = ?fault.at, action = ?fault.action, "fault injected");
            }
            Err(e) => {
                tracing::warn!(at = ?fault.at, error = %e, "fault could not be injected");
                if let Some(n) = killed {
                    shared.node_revived(n);
                }
                let _ = shared.records.send(Record::FaultFailed {
                    why: format!("the fault at {:?} failed: {e}", fault.at),
                    node: killed,
                    at: std::time::Instant::now(),
                });
            }
        }
    }
}

/// Every bot of the plan with its arrival time: groups start together, each spreads its
/// bots evenly over its ramp-up; operator tabs are bots sharing one identity (a tokens
/// file's, in its order, when there is one).
fn bot_specs(
    plan: &Plan,
    start: tokio::time::Instant,
    shard: Shard,
    issued: Option<&[OperatorIdentity]>,
) -> Vec<BotSpec> {
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
                let made = bots::identity(operators - 1, &mut rng);
                issued
                    .and_then(|w| w.get(operators as usize - 1).cloned())
                    .unwrap_or(made)
            });
            let mine = i % shard.count == shard.index;
            for _tab in 0..group.tabs {
                if !mine {
                    global += 1;
                    continue;
                }
                // the list is asked by an operator that never churns, so it is there to ask
                let checks_list =
                    group.role.is_operator() && group.lifetime.is_none() && !checker_chosen;
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

/// `name` with everything but letters, digits, `-` and `_` replaced, for a folder name.
pub fn sanitize_file_name(name: &str) -> String {
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
