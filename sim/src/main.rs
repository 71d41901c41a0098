//! `sim`: runs, validates and lists chat load scenarios; renders, compares and merges results.

use std::process::ExitCode;

use clap::Parser as _;
use sim::cli::{Cli, Command};
use sim::commands;
use sim::run::RunOptions;
use sim::scenario::Overrides;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("warn,relay=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Run {
            scenario,
            out,
            common,
            duration,
            scale,
            rate,
            shard,
        } => commands::run(RunOptions {
            scenario,
            overrides: Overrides {
                targets: common.targets,
                seed: common.seed,
                duration,
                scale,
                rate,
                jwt_secret: None,
                ca_file: common.ca_file,
                insecure: common.insecure,
                jwt_private_key: common.jwt_private_key,
            },
            out,
            progress: !common.no_progress,
            shard,
        }),
        Command::Capacity {
            scenario,
            slos,
            budget,
            out,
            common,
        } => commands::capacity(sim::capacity::CapacityOptions {
            scenario,
            overrides: Overrides {
                targets: common.targets,
                seed: common.seed,
                ca_file: common.ca_file,
                insecure: common.insecure,
                jwt_private_key: common.jwt_private_key,
                ..Overrides::default()
            },
            slos,
            budget,
            out,
            progress: !common.no_progress,
        }),
        Command::Relay { config } => commands::relay(config),
        Command::Validate { scenarios } => commands::validate(&scenarios),
        Command::List { dir } => commands::list(&dir),
        Command::Attacks => commands::attacks(),
        Command::Report { result, output } => commands::report(&result, output.as_deref()),
        Command::Compare {
            base,
            new,
            output,
            max_regression,
        } => commands::compare(&base, &new, output.as_deref(), max_regression),
        Command::Merge { results, output } => commands::merge(&results, &output),
    }
}
