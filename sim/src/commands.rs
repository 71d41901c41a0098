//! What each `sim` subcommand does at the binary's edge: load, act, print, pick the exit
//! code (0 pass, 1 a threshold failed or a comparison regressed, 2 the command could not
//! run).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::run::{RunOptions, run_plan};
use crate::scenario::{self, Overrides, Plan, Target};

/// `sim run`.
pub fn run(opts: RunOptions) -> ExitCode {
    let (plan, runtime) = match prepare(&opts.scenario, &opts.overrides) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let outcome = runtime.block_on(run_plan(plan, opts));
    runtime.shutdown_background();
    match outcome {
        Ok(o) => finish(
            &crate::result::summary(&o.result),
            &o.result_path,
            &o.report_path,
            o.result.passed,
        ),
        Err(e) => fail(&e),
    }
}

/// Prints a command's summary and where its files are; exit 0 when `held`, else 1.
fn finish(summary: &str, result: &Path, report: &Path, held: bool) -> ExitCode {
    print!("{summary}");
    println!("\nresult: {}", result.display());
    println!("report: {}", report.display());
    if held {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The scenario resolved and the runtime it runs on; exit 2 (said) when either fails.
fn prepare(
    scenario: &Path,
    overrides: &Overrides,
) -> Result<(Plan, tokio::runtime::Runtime), ExitCode> {
    let plan = scenario::load(scenario, overrides).map_err(|e| fail(&e))?;
    for w in &plan.warnings {
        eprintln!("warning: {w}");
    }
    let runtime =
        runtime_for(&plan).map_err(|e| fail(&format!("cannot start the async runtime: {e}")))?;
    Ok((plan, runtime))
}

/// Against an external target the bots and the ledger run on one thread (the pacer has its
/// own): at these rates cross-thread wake-ups cost more than the work. The embedded relay
/// gets every core.
fn runtime_for(plan: &Plan) -> std::io::Result<tokio::runtime::Runtime> {
    let external = !matches!(plan.target, Target::Embedded { .. });
    if external && std::env::var_os("SIM_MULTI_THREAD").is_none() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Runtime::new()
    }
}

/// `sim capacity`: exit 0 when some load held, 1 when none did or the search was
/// interrupted, 2 when it could not run.
pub fn capacity(opts: crate::capacity::CapacityOptions) -> ExitCode {
    let (plan, runtime) = match prepare(&opts.scenario, &opts.overrides) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let outcome = runtime.block_on(crate::capacity::capacity(plan, opts));
    runtime.shutdown_background();
    match outcome {
        Ok(o) => finish(
            &crate::capacity::summary(&o.result),
            &o.result_path,
            &o.report_path,
            o.result.verdict.knee.is_some() && !o.result.interrupted,
        ),
        Err(e) => fail(&e),
    }
}

/// `sim relay`: the reference relay as a child process of a run.
pub fn relay(config: relay::Config) -> ExitCode {
    let runtime = match config.runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(crate::relay_process::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("{e:#}")),
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

/// `sim validate`: each file's groups and effective thresholds.
pub fn validate(files: &[PathBuf]) -> ExitCode {
    let mut bad = 0;
    for path in files {
        match scenario::load(path, &Overrides::default()) {
            Ok(plan) => {
                for w in &plan.warnings {
                    eprintln!("warning: {w}");
                }
                println!(
                    "ok   {} ({}: {} bot groups, {} sockets)",
                    path.display(),
                    plan.name,
                    plan.groups.len(),
                    plan.peak_sockets()
                );
                for t in &plan.thresholds {
                    let op = if t.at_least { ">=" } else { "<=" };
                    let source = if t.implicit { "  (default gate)" } else { "" };
                    println!("       {:<32} {op} {}{source}", t.metric, t.limit);
                }
            }
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

fn read_result(path: &Path) -> Result<reports::model::RunResult, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not a sim result: {e}", path.display()))
}

/// `sim report`.
pub fn report(result: &Path, output: Option<&Path>) -> ExitCode {
    let r = match read_result(result) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let out = output.map_or_else(|| result.with_file_name("report.html"), Path::to_path_buf);
    match std::fs::write(&out, reports::html::render(&r)) {
        Ok(()) => {
            println!("report: {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("{}: {e}", out.display())),
    }
}

/// `sim compare`.
pub fn compare(base: &Path, new: &Path, output: Option<&Path>, max_regression: f64) -> ExitCode {
    let (b, n) = match (read_result(base), read_result(new)) {
        (Ok(b), Ok(n)) => (b, n),
        (Err(e), _) | (_, Err(e)) => return fail(&e),
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
        return fail(&format!("{}: {e}", out.display()));
    }
    println!("compare: {}", out.display());
    if c.regressed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `sim merge`.
pub fn merge(results: &[PathBuf], output: &Path) -> ExitCode {
    let mut all = Vec::new();
    for p in results {
        match read_result(p) {
            Ok(r) => all.push(r),
            Err(e) => return fail(&e),
        }
    }
    let merged = match reports::merge::merge(&all) {
        Ok(m) => m,
        Err(e) => return fail(&e),
    };
    let json = serde_json::to_string_pretty(&merged).unwrap_or_default();
    if let Err(e) = std::fs::write(output, json + "\n") {
        return fail(&format!("{}: {e}", output.display()));
    }
    println!(
        "merged {} results: {} ({})",
        all.len(),
        output.display(),
        if merged.passed { "PASS" } else { "FAIL" }
    );
    ExitCode::SUCCESS
}

/// `sim attacks`: the catalogue an adversary group picks from.
pub fn attacks() -> ExitCode {
    for a in reports::attacks::Attack::ALL {
        println!(
            "{:<26} {:<9} succeeds when {}",
            a.name(),
            a.family().name(),
            a.succeeds_when()
        );
    }
    ExitCode::SUCCESS
}

/// `sim list`: the scenarios of `dir` with their descriptions.
pub fn list(dir: &Path) -> ExitCode {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => return fail(&format!("{}: {e}", dir.display())),
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
