//! `sim`: runs, validates and lists chat load scenarios.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser as _;
use sim::cli::{Cli, Command};
use sim::run::{RunOptions, run};
use sim::scenario;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("warn,relay=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            scenario,
            targets,
            out,
            seed,
            duration,
            no_progress,
        } => {
            let runtime = match runtime_for(&scenario, &targets) {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::from(2);
                }
            };
            let opts = RunOptions {
                scenario,
                targets,
                out,
                seed,
                duration,
                progress: !no_progress,
            };
            match runtime.block_on(run(opts)) {
                Ok(outcome) => {
                    print!("{}", sim::result::summary(&outcome.result));
                    println!("\nresult: {}", outcome.result_path.display());
                    println!("report: {}", outcome.report_path.display());
                    runtime.shutdown_background();
                    if outcome.result.passed {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Validate { scenarios } => {
            let mut bad = 0;
            for path in &scenarios {
                match scenario::load(path) {
                    Ok(plan) => println!(
                        "ok   {} ({}: {} bot groups, {} sockets)",
                        path.display(),
                        plan.name,
                        plan.groups.len(),
                        plan.peak_sockets()
                    ),
                    Err(e) => {
                        bad += 1;
                        eprintln!("error: {e}");
                    }
                }
            }
            if bad == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Command::List { dir } => list(&dir),
        Command::Report { result, output } => report(&result, output.as_deref()),
    }
}

/// Against an external target the bots and the ledger run on one thread: at these rates
/// cross-thread wake-ups cost more than the work. The embedded relay gets every core.
fn runtime_for(scenario: &Path, targets: &[String]) -> std::io::Result<tokio::runtime::Runtime> {
    let external = !targets.is_empty()
        || scenario::load(scenario).is_ok_and(|p| p.target != scenario::Target::Embedded);
    if external && std::env::var_os("SIM_MULTI_THREAD").is_none() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Runtime::new()
    }
}

fn read_result(path: &Path) -> Result<reports::model::RunResult, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not a sim result: {e}", path.display()))
}

fn report(result: &Path, output: Option<&Path>) -> ExitCode {
    let r = match read_result(result) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let out = output.map_or_else(|| result.with_file_name("report.html"), Path::to_path_buf);
    match std::fs::write(&out, reports::html::render(&r)) {
        Ok(()) => {
            println!("report: {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}: {e}", out.display());
            ExitCode::from(2)
        }
    }
}

fn list(dir: &Path) -> ExitCode {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {}: {e}", dir.display());
            return ExitCode::from(2);
        }
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut code = ExitCode::SUCCESS;
    for f in files {
        match scenario::describe(&f) {
            Ok((name, description)) => println!("{:<32} {:<18} {description}", f.display(), name),
            Err(e) => {
                eprintln!("error: {e}");
                code = ExitCode::from(2);
            }
        }
    }
    code
}
