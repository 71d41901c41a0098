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
            shard,
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
                shard,
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
        Command::Compare {
            base,
            new,
            output,
            max_regression,
        } => compare(&base, &new, output.as_deref(), max_regression),
        Command::Merge { results, output } => merge(&results, &output),
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

fn compare(base: &Path, new: &Path, output: Option<&Path>, max_regression: f64) -> ExitCode {
    let (b, n) = match (read_result(base), read_result(new)) {
        (Ok(b), Ok(n)) => (b, n),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let c = reports::compare::compare(&b, &n, max_regression);
    println!(
        "{:<34} {:>12} {:>12} {:>9}",
        "figure", "base", "new", "change"
    );
    for r in &c.rows {
        let change = r
            .change
            .map_or_else(|| "-".to_owned(), |x| format!("{:+.1}%", x * 100.0));
        let mark = if r.regressed { "  REGRESSED" } else { "" };
        println!(
            "{:<34} {:>12.3} {:>12.3} {change:>9}{mark}",
            r.figure, r.base, r.new
        );
    }
    let out = output.map_or_else(|| new.with_file_name("compare.html"), Path::to_path_buf);
    if let Err(e) = std::fs::write(&out, reports::compare::render(&b, &n, &c)) {
        eprintln!("error: {}: {e}", out.display());
        return ExitCode::from(2);
    }
    println!("compare: {}", out.display());
    if c.regressed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn merge(results: &[std::path::PathBuf], output: &Path) -> ExitCode {
    let mut all = Vec::new();
    for p in results {
        match read_result(p) {
            Ok(r) => all.push(r),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let merged = match reports::merge::merge(&all) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let json = serde_json::to_string_pretty(&merged).unwrap_or_default();
    if let Err(e) = std::fs::write(output, json + "\n") {
        eprintln!("error: {}: {e}", output.display());
        return ExitCode::from(2);
    }
    println!(
        "merged {} results: {} ({})",
        all.len(),
        output.display(),
        if merged.passed { "PASS" } else { "FAIL" }
    );
    ExitCode::SUCCESS
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
