//! `sim capacity`: finds the knee of a scenario's load, the highest load that meets every
//! objective. Short trials range and bisect (Nighthawk's search; MLRsearch's short trials
//! with one full-length trial at the end), each a whole run of the scenario at a multiple
//! of its load, within a wall-time budget; Ctrl-C keeps what was found.

mod search;
mod step;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reports::capacity::{CapacityResult, CapacityStep, CapacityVerdict, describe_load};

pub use search::Search;

use crate::run::{RunError, RunOptions, run_plan};
use crate::scenario::{Capacity, Overrides, Plan, Target, Threshold, Vary};
use step::Trial;

/// What `sim capacity` was asked.
#[derive(Debug, Clone)]
pub struct CapacityOptions {
    /// Scenario file.
    pub scenario: PathBuf,
    /// What the command line says over the file.
    pub overrides: Overrides,
    /// Objectives from the command line, beside the file's.
    pub slos: Vec<Threshold>,
    /// Wall-time budget over the file's.
    pub budget: Option<Duration>,
    /// Output folder (default `out/<scenario name>/capacity`).
    pub out: Option<PathBuf>,
    /// Show each trial's live progress.
    pub progress: bool,
}

/// A finished search.
#[derive(Debug)]
pub struct CapacityOutcome {
    /// What it found.
    pub result: CapacityResult,
    /// `capacity.json`.
    pub result_path: PathBuf,
    /// `capacity.html`.
    pub report_path: PathBuf,
}

/// Time a trial spends outside its sending phase (connecting, draining, closing) before
/// one has been measured.
const FIRST_OVERHEAD: Duration = Duration::from_secs(20);

/// Confirmation trials at most: the knee, then lower if it does not hold at full length.
const CONFIRMATIONS: usize = 3;

/// What the search needs while it runs.
struct Searcher {
    started_wall: std::time::SystemTime,
    plan: Plan,
    cap: Capacity,
    opts: CapacityOptions,
    out: PathBuf,
    steps: Vec<CapacityStep>,
    notes: Vec<String>,
    started: Instant,
    /// Measured time outside sending, per trial.
    overhead: Duration,
    stop: Arc<AtomicBool>,
    /// A step could not run for a reason of the tool's own: the search ends there.
    halted: bool,
}

/// Runs the search and writes `capacity.json` and `capacity.html`.
///
/// # Errors
/// [`RunError`] when the first trial cannot run (bad target, too many sockets) or the
/// results cannot be written.
pub async fn capacity(plan: Plan, opts: CapacityOptions) -> Result<CapacityOutcome, RunError> {
    let mut cap = plan
        .capacity
        .clone()
        .unwrap_or_else(|| Capacity::defaults(plan.duration));
    cap.slo.extend(opts.slos.iter().cloned());
    if let Some(b) = opts.budget {
        cap.budget = b;
    }
    let out = opts.out.clone().unwrap_or_else(|| {
        PathBuf::from("out")
            .join(crate::run::sanitize_file_name(&plan.name))
            .join("capacity")
    });
    let stop = Arc::new(AtomicBool::new(false));
    let listener = {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::Release);
            }
        })
    };
    let mut s = Searcher {
        started_wall: std::time::SystemTime::now(),
        notes: Vec::new(),
        cap,
        opts,
        out,
        steps: Vec::new(),
        started: Instant::now(),
        overhead: FIRST_OVERHEAD + plan.drain + plan.ramp(),
        stop,
        halted: false,
        plan,
    };
    s.bound();
    let confirmed = s.search().await?;
    listener.abort();
    let result = s.result(confirmed, true);
    let (result_path, report_path) = s.save(&result)?;
    Ok(CapacityOutcome {
        result,
        result_path,
        report_path,
    })
}

fn slo_text(t: &Threshold) -> String {
    format!(
        "{}{}{}",
        t.metric,
        if t.at_least { ">=" } else { "<=" },
        t.limit
    )
}

impl Searcher {
    /// What the search found so far; `last` adds the closing notes.
    fn result(&self, confirmed: bool, last: bool) -> CapacityResult {
        CapacityResult {
            scenario: self.plan.name.clone(),
            description: self.plan.description.clone(),
            file: self.plan.file.display().to_string(),
            target: crate::result::target_kind(&self.plan.target),
            vary: self.cap.vary.name().to_owned(),
            slos: self.cap.slo.iter().map(slo_text).collect(),
            started_at: crate::result::rfc3339(self.started_wall),
            wall_s: self.started.elapsed().as_secs_f64(),
            budget_s: self.cap.budget.as_secs_f64(),
            interrupted: self.stop.load(Ordering::Acquire),
            steps: self.steps.clone(),
            verdict: self.verdict(confirmed, last),
        }
    }

    /// Writes `capacity.json` and `capacity.html`: after every step, so that even a
    /// second Ctrl-C, which quits at once, leaves the steps done.
    fn save(&self, result: &CapacityResult) -> Result<(PathBuf, PathBuf), RunError> {
        let write = |name: &str, text: String| {
            let path = self.out.join(name);
            std::fs::create_dir_all(&self.out)
                .and_then(|()| std::fs::write(&path, text))
                .map_err(|source| RunError::Output {
                    path: path.clone(),
                    source,
                })
                .map(|()| path)
        };
        let json = serde_json::to_string_pretty(result)
            .map_err(|e| RunError::Internal(format!("cannot write the capacity result: {e}")))?;
        Ok((
            write("capacity.json", json + "\n")?,
            write("capacity.html", reports::capacity::render(result))?,
        ))
    }

    /// Narrows the highest load to what the scenario's rate limit and this process's
    /// open files allow, saying why.
    fn bound(&mut self) {
        let varies_rate = matches!(self.cap.vary, Vary::Rate | Vary::Both);
        let busiest = self.plan.busiest_bot_per_minute();
        if varies_rate && busiest > 0.0 {
            let limit = f64::from(self.plan.limits.rate_limit_per_minute);
            let most = limit / busiest;
            if most < self.cap.max {
                self.cap.max = most.max(self.cap.min);
                self.notes.push(format!(
                    "the search stops at {:.2}×: beyond it a bot would send more than the rate \
                     limit of {limit:.0} messages a minute ([limits] rate_limit_per_minute)",
                    self.cap.max
                ));
            }
        }
        if matches!(self.cap.vary, Vary::Bots | Vary::Both) {
            let files = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024) as f64;
            let per_bot = if matches!(self.plan.target, Target::Embedded { .. }) {
                2.0
            } else {
                1.0
            };
            let most = (files - 128.0) / (per_bot * self.plan.peak_sockets().max(1) as f64);
            if most < self.cap.max {
                self.cap.max = most.max(self.cap.min);
                self.notes.push(format!(
                    "the search stops at {:.2}×: beyond it this process cannot open the sockets \
                     (open-file limit {files:.0}); more needs several processes (`sim run --shard`)",
                    self.cap.max
                ));
            }
        }
        self.cap.start = self.cap.start.clamp(self.cap.min, self.cap.max);
    }

    /// Estimated wall time of a trial sending for `d`.
    fn estimate(&self, d: Duration) -> Duration {
        self.overhead + d
    }

    /// The longest ramp of a search trial.
    fn trial_ramp(&self) -> Duration {
        let ramp = self.plan.ramp();
        self.cap.trial_ramp_up.map_or(ramp, |r| r.min(ramp))
    }

    /// Sending phase of a search trial: the ramp, then the trial's steady length.
    fn trial_length(&self) -> Duration {
        self.trial_ramp() + self.cap.trial
    }

    /// Searches, then confirms; whether a full-length trial confirmed the knee.
    async fn search(&mut self) -> Result<bool, RunError> {
        let mut search = Search::new(
            self.cap.start,
            self.cap.min,
            self.cap.max,
            self.cap.precision,
        );
        let confirm = self
            .cap
            .confirm
            .max(self.plan.ramp() + Duration::from_secs(1));
        while let Some(load) = search.next() {
            if self.halted || self.stop.load(Ordering::Acquire) {
                break;
            }
            let needed = self.estimate(self.trial_length()) + self.estimate(confirm);
            if self.started.elapsed() + needed > self.cap.budget && !self.steps.is_empty() {
                self.notes.push(format!(
                    "the search stopped for the budget ({}) before reaching {:.0} % precision",
                    humantime::format_duration(self.cap.budget),
                    self.cap.precision * 100.0
                ));
                break;
            }
            let stage = if search.held().is_some() && search.failed().is_some() {
                "bisect"
            } else {
                "range"
            };
            let Some(held) = self.trial(stage, load, self.trial_length()).await? else {
                break;
            };
            search.record(load, held);
        }
        // one full-length trial at the knee; lower ones if it does not hold
        let mut confirmed = false;
        let mut candidate = search.held();
        for _ in 0..CONFIRMATIONS {
            let Some(load) = candidate else { break };
            if self.halted || self.stop.load(Ordering::Acquire) {
                break;
            }
            if self.started.elapsed() + self.estimate(confirm) > self.cap.budget {
                self.notes.push(format!(
                    "no confirmation at full length: the budget ({}) has no room for one \
                     (about {})",
                    humantime::format_duration(self.cap.budget),
                    humantime::format_duration(Duration::from_secs(
                        self.estimate(confirm).as_secs()
                    ))
                ));
                break;
            }
            match self.trial("confirm", load, confirm).await? {
                Some(true) => {
                    confirmed = true;
                    break;
                }
                Some(false) => {
                    candidate = Some(load * (1.0 - 2.0 * self.cap.precision).max(0.5));
                    candidate = candidate.filter(|c| *c >= self.cap.min);
                }
                None => break,
            }
        }
        Ok(confirmed)
    }

    /// Runs one trial at `load`; whether it held, `None` when interrupted.
    async fn trial(
        &mut self,
        stage: &'static str,
        load: f64,
        duration: Duration,
    ) -> Result<Option<bool>, RunError> {
        let mut plan = self
            .plan
            .at_load(self.cap.vary, load, duration, &self.cap.slo);
        if stage != "confirm" {
            let ramp = self.trial_ramp();
            for g in &mut plan.groups {
                g.ramp_up = g.ramp_up.min(ramp);
            }
        }
        let n = self.steps.len() + 1;
        let dir = self.out.join(format!("step-{n:02}-{stage}-{load:.3}x"));
        println!(
            "step {n:>2}  {stage:<7} {load:>7.3}×  {} bots, {:.0} messages/s offered, {} sending",
            plan.peak_sockets(),
            plan.offered_msgs_per_s(),
            humantime::format_duration(duration)
        );
        let opts = RunOptions {
            scenario: self.opts.scenario.clone(),
            overrides: self.opts.overrides.clone(),
            out: Some(dir),
            progress: self.opts.progress,
            shard: None,
        };
        let began = Instant::now();
        let outcome = run_plan(plan.clone(), opts).await;
        let wall = began.elapsed();
        if outcome.is_ok() {
            self.overhead = wall.saturating_sub(duration);
        }
        let trial = Trial {
            stage,
            load,
            plan: &plan,
            wall,
            bot_thread: tokio::runtime::Handle::current().runtime_flavor()
                == tokio::runtime::RuntimeFlavor::CurrentThread,
        };
        let step = match outcome {
            Ok(o) => {
                if o.result.interrupted {
                    self.stop.store(true, Ordering::Release);
                    println!("         interrupted: this step does not count");
                    return Ok(None);
                }
                step::judge(&trial, &o.result, o.result_path.display().to_string())
            }
            // the first trial shows whether the search can run at all
            Err(e) if self.steps.is_empty() => return Err(e),
            // a target gone or too many sockets is this load's failure; anything else ends
            // the search, keeping what it found
            Err(e @ (RunError::Unreachable { .. } | RunError::TooManySockets(_))) => {
                step::could_not_run(&trial, e.to_string())
            }
            // the tool's own failure says nothing of the load: noted, no step
            Err(e) => {
                self.notes
                    .push(format!("the search stopped: step {n} could not run: {e}"));
                self.halted = true;
                let _ = self.save(&self.result(false, false));
                return Ok(None);
            }
        };
        let verdict = if step.passed {
            "held".to_owned()
        } else {
            format!("FAILED: {}", step.failures.join("; "))
        };
        let fanout = step.latency.get("fanout").map_or(String::new(), |l| {
            format!("fan-out p50 {:.2} p99 {:.2} ms, ", l.p50_ms, l.p99_ms)
        });
        println!(
            "         {fanout}{:.0} msg/s sent, {:.0} deliveries/s, CPU sim {} target {} machine {}: {verdict}",
            step.achieved_msgs_per_s,
            step.deliveries_per_s,
            step.sim_cpu_cores.map_or("?".into(), |c| format!("{c:.2}")),
            step.target_cpu_cores
                .map_or("?".into(), |c| format!("{c:.2}")),
            step.machine_cpu
                .map_or("?".into(), |m| format!("{:.0}%", m * 100.0)),
        );
        let held = step.passed;
        self.steps.push(step);
        self.save(&self.result(false, false))?;
        Ok(Some(held))
    }

    /// The knee, the first failure and the limit from the steps so far.
    fn verdict(&self, confirmed: bool, last: bool) -> CapacityVerdict {
        let mut notes = self.notes.clone();
        let best = |pred: &dyn Fn(&CapacityStep) -> bool, highest: bool| {
            self.steps
                .iter()
                .enumerate()
                .filter(|(_, s)| pred(s))
                .max_by(|a, b| {
                    let o = a.1.load.total_cmp(&b.1.load);
                    if highest { o } else { o.reverse() }
                })
                .map(|(i, _)| i)
        };
        // a load that failed at full length is no knee, whatever its short trial said
        let failed_confirm = self
            .steps
            .iter()
            .filter(|s| s.stage == "confirm" && !s.passed)
            .map(|s| s.load)
            .fold(f64::INFINITY, f64::min);
        let knee = if confirmed {
            best(&|s| s.passed && s.stage == "confirm", true)
        } else {
            best(&|s| s.passed && s.load < failed_confirm, true)
        };
        let knee_load = knee.map(|i| self.steps[i].load);
        // the lowest failure above the knee (a failure below it was overturned); a knee no
        // full-length trial confirmed may have failed its confirmation at its own load
        let first_failure = best(
            &|s| !s.passed && knee_load.is_none_or(|k| s.load > k || (!confirmed && s.load >= k)),
            false,
        );
        let (limit, generator_limited) = match first_failure.map(|i| &self.steps[i]) {
            Some(f) => step::limit(f),
            None => (
                format!(
                    "none found: every load up to {:.2}× held",
                    knee_load.unwrap_or(self.cap.max)
                ),
                false,
            ),
        };
        if let Some(k) = knee.map(|i| &self.steps[i])
            && k.saturated.is_some()
            && last
        {
            notes.push(format!(
                "at the knee, {} was already used up",
                k.saturated.as_deref().unwrap_or_default()
            ));
        }
        if knee.is_some() && !confirmed && last {
            notes.push(
                "the knee held in short trials only: no full-length trial confirmed it".into(),
            );
        }
        CapacityVerdict {
            knee,
            confirmed,
            first_failure,
            limit,
            generator_limited,
            notes,
        }
    }
}

/// The terminal summary of a search.
pub fn summary(c: &CapacityResult) -> String {
    let mut s = String::new();
    let confirmed = if c.verdict.confirmed {
        "confirmed at full length"
    } else {
        "not confirmed at full length"
    };
    match c.knee() {
        Some(k) => s += &format!("\nknee:          {} ({confirmed})\n", describe_load(k)),
        None => s += "\nknee:          no load held\n",
    }
    if let Some(k) = c.knee() {
        for (path, l) in &k.latency {
            s += &format!(
                "               {path} p50 {:.2} ms, p99 {:.2} ms\n",
                l.p50_ms, l.p99_ms
            );
        }
    }
    if let Some(f) = c.first_failure() {
        s += &format!(
            "first failure: {}: {}\n",
            describe_load(f),
            f.failures.join("; ")
        );
    }
    s += &format!("limit:         {}\n", c.verdict.limit);
    for n in &c.verdict.notes {
        s += &format!("note:          {n}\n");
    }
    if c.interrupted {
        s += "interrupted:   what was found so far\n";
    }
    s
}
