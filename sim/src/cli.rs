//! The `sim` command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim_end_matches('%')
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage like 10%"))?;
    if !(0.0..=1000.0).contains(&v) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(v / 100.0)
}

/// Load and correctness simulator for Socket.IO support-chat backends.
#[derive(Debug, Parser)]
#[command(name = "sim", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The flags `run` and `capacity` share.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Backend URL including the Socket.IO path (repeatable); replaces the scenario's target.
    #[arg(long = "target", value_name = "URL")]
    pub targets: Vec<String>,
    /// Random seed (default: the scenario's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// No live progress display.
    #[arg(long)]
    pub no_progress: bool,
    /// Trust the certificates in this PEM file (a private CA) for an https:// target.
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
    /// Trust any certificate (a self-signed staging server); the summary says so.
    #[arg(long)]
    pub insecure: bool,
    /// Sign operator tokens with this PEM private key (RS256 or ES256, as the key says).
    #[arg(long, value_name = "PATH")]
    pub jwt_private_key: Option<PathBuf>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario: exit 0 when every threshold holds, 1 when one fails, 2 when the run
    /// cannot happen (bad scenario or arguments, unreachable target).
    Run {
        /// Scenario file.
        scenario: PathBuf,
        /// Output folder for result.json (default: out/<scenario name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Target, seed and display.
        #[command(flatten)]
        common: Common,
        /// Sending phase length, e.g. 30s or 2m (default: the scenario's).
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// Multiply every group's bot count, e.g. 10 (rounded, at least 1 per group).
        #[arg(long, value_name = "FACTOR")]
        scale: Option<f64>,
        /// Multiply every group's message rate, e.g. 0.5 (bursts come that much more often).
        #[arg(long, value_name = "FACTOR")]
        rate: Option<f64>,
        /// Run shard k of n (e.g. 1/4): a disjoint share of every bot group, its own id space.
        #[arg(long, value_name = "K/N")]
        shard: Option<crate::run::Shard>,
    },
    /// Compare two results: key figures side by side; exit 1 when one regressed beyond the limit.
    Compare {
        /// Baseline result.json.
        base: PathBuf,
        /// New result.json.
        new: PathBuf,
        /// HTML output (default: compare.html beside the new result).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Allowed worsening of latency and throughput, e.g. 10%.
        #[arg(long, default_value = "10%", value_parser = parse_percent)]
        max_regression: f64,
    },
    /// Merge the results of a sharded run into one (histograms added exactly).
    Merge {
        /// Shard results.
        #[arg(required = true)]
        results: Vec<PathBuf>,
        /// Merged result.json to write.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Check scenario files and print their effective thresholds (the default gate
    /// included); errors name file, line, column and field.
    Validate {
        /// Scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
    /// Render a saved result.json as a self-contained HTML page.
    Report {
        /// A result.json written by `sim run` (or `sim merge`).
        result: PathBuf,
        /// Output file (default: report.html beside the result).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Find the knee: the highest load that meets every objective, by range finding and
    /// binary search with short trials, then one full-length trial at the knee.
    Capacity {
        /// Scenario file (its `[capacity]` section says what to vary).
        scenario: PathBuf,
        /// An objective every step must meet, e.g. 'fanout.p99_ms<=50' (repeatable; adds to
        /// the file's `capacity.slo`).
        #[arg(long = "slo", value_name = "METRIC<=LIMIT", value_parser = crate::scenario::parse_slo)]
        slos: Vec<crate::scenario::Threshold>,
        /// Wall time the whole search may take, e.g. 15m (default: the file's, else 15m).
        #[arg(long, value_parser = humantime::parse_duration)]
        budget: Option<Duration>,
        /// Output folder (default: out/<scenario name>/capacity).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Target, seed and display.
        #[command(flatten)]
        common: Common,
    },
    /// Runs the reference relay for `[target] process = true`: prints `listening on ADDR`,
    /// serves until stdin closes.
    #[command(hide = true)]
    Relay {
        /// The relay's settings, as the `relay` binary takes them.
        #[command(flatten)]
        config: relay::Config,
    },
    /// List the adversary's attacks: name, family, and what counts as a success.
    Attacks,
    /// List the scenarios in a folder with their descriptions.
    List {
        /// Folder (default: scenarios).
        #[arg(default_value = "scenarios")]
        dir: PathBuf,
    },
}
