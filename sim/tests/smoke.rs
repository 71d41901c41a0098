//! `sim run scenarios/smoke.toml` in-process against the embedded relay: passes with zero
//! violations, and writes a result.json that reads back as the model.

mod common;

use reports::model::RunResult;
use sim::run::{RunOptions, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_passes_with_zero_violations() {
    let dir = common::temp_dir("smoke");
    let outcome = run(RunOptions::new(
        common::scenarios_dir().join("smoke.toml"),
        &dir,
    ))
    .await
    .expect("run happens");
    let r = &outcome.result;
    let failed: Vec<_> = r.thresholds.iter().filter(|t| !t.passed).collect();
    assert!(
        r.passed,
        "failed thresholds: {failed:?}\nexamples: {:?}",
        r.examples
    );
    assert_eq!(r.counters["violations"], 0);
    assert!(r.counters["delivered"] > 1000, "{:?}", r.counters);
    // every owed delivery arrived; sockets that joined while a message was in flight may
    // also get it, so deliveries can exceed what was owed
    assert_eq!(r.counters["lost"], 0);
    assert!(
        r.counters["delivered"] >= r.counters["expected_deliveries"],
        "{:?}",
        r.counters
    );
    assert!(
        r.counters["rate_limit.rejected"] > 0,
        "the spammer was limited"
    );
    // the embedded relay's /metrics was watched: memory sampled, nobody counted once all left
    let w = r
        .target_watch
        .as_ref()
        .expect("the relay's /metrics was scraped");
    assert!(w.samples.len() >= 5, "{} samples", w.samples.len());
    assert!(w.samples.iter().all(|s| s.rss_mib.is_some_and(|m| m > 1.0)));
    assert!(
        w.samples
            .iter()
            .any(|s| s.presence.is_some_and(|p| p > 200.0))
    );
    assert_eq!(w.presence_after, Some(0.0), "presence gauges back to 0");
    assert_eq!(r.metric("target.presence_after"), Some(0.0));
    for path in [
        "fanout",
        "client_to_operators",
        "operator_to_client",
        "typing",
        "connect",
    ] {
        assert!(
            r.paths.get(path).is_some_and(|p| p.intended.count > 0),
            "no samples for {path}"
        );
    }
    assert!(r.timeseries.len() >= 15);
    let text = std::fs::read_to_string(&outcome.result_path).expect("result.json");
    let html = std::fs::read_to_string(&outcome.report_path).expect("report.html");
    report_matches_the_result(&html, r);
    report_compare_and_merge_commands(&outcome.result_path, r);
    common::browser::page_renders_every_chart(&outcome.report_path, &html);
    let back: RunResult = serde_json::from_str(&text).expect("reads back as the model");
    assert_eq!(back.counters, r.counters);
    assert_eq!(back.thresholds.len(), r.thresholds.len());
    assert_eq!(
        back.paths.keys().collect::<Vec<_>>(),
        r.paths.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        back.paths["fanout"].intended.hdr_v2_base64,
        r.paths["fanout"].intended.hdr_v2_base64
    );
}

/// Golden structure: every section and chart present, figures equal to the JSON's, nothing
/// loaded from the network.
fn report_matches_the_result(html: &str, r: &RunResult) {
    for id in [
        "id=\"verdict\"",
        "id=\"thresholds\"",
        "id=\"scenario\"",
        "id=\"groups\"",
        "id=\"latency\"",
        "id=\"chart-distribution\"",
        "id=\"chart-send-lag\"",
        "id=\"send-lag\"",
        "id=\"chart-sent\"",
        "id=\"chart-p99-time\"",
        "id=\"chart-p50-time\"",
        "id=\"chart-throughput\"",
        "id=\"chart-connected\"",
        "id=\"chart-violations\"",
        "id=\"chart-target-memory\"",
        "id=\"chart-target-presence\"",
        "id=\"correctness\"",
        "id=\"rate-limit\"",
    ] {
        assert!(html.contains(id), "missing {id}");
    }
    assert!(html.contains(">PASS<"));
    for (name, p) in &r.paths {
        // each row of the latency table, cell by cell
        for (label, x) in [("intended send", &p.intended), ("actual send", &p.service)] {
            let row = format!(
                "<td>{label}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td>",
                x.count, x.min_ms, x.p50_ms, x.p90_ms, x.p99_ms, x.p999_ms, x.max_ms
            );
            assert!(html.contains(&row), "{name} {label}: {row} not in the page");
        }
    }
    let lag = r.send_lag.as_ref().expect("the send lag is measured");
    let row = format!(
        "<td>intended → actual send</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td>",
        lag.count, lag.min_ms, lag.p50_ms, lag.p90_ms, lag.p99_ms, lag.p999_ms, lag.max_ms
    );
    assert!(html.contains(&row), "send lag row {row}");
    let j = r.judging.as_ref().expect("the windows are reported");
    let row = format!(
        r#"<tr data-window="delivery"><td>delivery</td><td>{:.0}</td><td>{:.0}</td><td>{:.0}</td><td>{:.0}</td></tr>"#,
        j.delivery_window.p50_ms,
        j.delivery_window.p90_ms,
        j.delivery_window.max_ms,
        j.delivery_window.bound_ms
    );
    assert!(
        html.contains(&row),
        "the delivery window in the page: {row}"
    );
    assert!(html.contains(r#"id="chart-windows""#), "the windows' chart");
    assert!(
        j.delivery_window.max_ms <= 10_000.0 && j.presence_window.max_ms <= 10_000.0,
        "{j:?}"
    );
    assert!(
        j.per_second.len() + 2 >= r.timeseries.len(),
        "a window for every second"
    );
    for t in &r.thresholds {
        let value = t
            .value
            .map_or_else(|| "no data".to_owned(), |v| v.to_string());
        let op = if t.bound == "min" { "≥" } else { "≤" };
        let default = if t.implicit {
            r#" <span class="note-default">(default)</span>"#
        } else {
            ""
        };
        let row = format!(
            "<td>{}{default}</td><td>{value}</td><td>{op} {}</td>",
            t.metric, t.limit
        );
        assert!(html.contains(&row), "threshold row {row}");
    }
    for class in reports::model::Violation::ALL.map(|v| v.name()) {
        let start = html
            .find(&format!("data-class=\"{class}\""))
            .unwrap_or_else(|| panic!("no row for {class}"));
        let row = &html[start..start + html[start..].find("</tr>").expect("row end")];
        assert!(
            row.ends_with(&format!("<td>{}</td>", r.counters[class])),
            "{class}: {row}"
        );
    }
    let sentence = format!(
        "<p>{} messages sent, {} deliveries owed, {} received; <b>{}</b> violations.</p>",
        r.counters["sent"],
        r.counters["expected_deliveries"],
        r.counters["delivered"],
        r.counters["violations"]
    );
    assert!(html.contains(&sentence), "{sentence}");
    for g in &r.scenario.groups {
        assert!(html.contains(&g.name));
    }
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page loads nothing"
    );
    assert!(!html.contains("<script"), "no script needed");
}

fn sim(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(args)
        .output()
        .expect("sim runs")
}

/// `sim report`, `sim compare` (equal pair: exit 0; regressed copy: exit 1) and `sim merge`
/// on the result of a real run.
fn report_compare_and_merge_commands(result: &std::path::Path, r: &RunResult) {
    let dir = result.parent().expect("dir");
    let again = dir.join("again.html");
    let out = sim(&[
        "report".as_ref(),
        result.as_os_str(),
        "-o".as_ref(),
        again.as_os_str(),
    ]);
    assert!(out.status.success());
    let saved: RunResult =
        serde_json::from_str(&std::fs::read_to_string(result).expect("json")).expect("model");
    assert_eq!(
        std::fs::read_to_string(&again).expect("report"),
        reports::html::render(&saved)
    );

    let out = sim(&["compare".as_ref(), result.as_os_str(), result.as_os_str()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(dir.join("compare.html").exists());

    let mut worse: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(result).expect("json")).expect("json");
    worse["counters"]["lost"] = serde_json::json!(3);
    let p99 = worse["paths"]["fanout"]["intended"]["p99_ms"]
        .as_f64()
        .expect("p99");
    worse["paths"]["fanout"]["intended"]["p99_ms"] = serde_json::json!(p99 * 3.0 + 10.0);
    let worse_path = dir.join("worse.json");
    std::fs::write(&worse_path, worse.to_string()).expect("write");
    let out = sim(&[
        "compare".as_ref(),
        result.as_os_str(),
        worse_path.as_os_str(),
        "--max-regression".as_ref(),
        "10%".as_ref(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("lost") && text.contains("REGRESSED"),
        "{text}"
    );

    // merging a run with itself would double-count: refused (real shards: tests/shards.rs)
    let merged_path = dir.join("merged.json");
    let out = sim(&[
        "merge".as_ref(),
        result.as_os_str(),
        result.as_os_str(),
        "-o".as_ref(),
        merged_path.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not the shards of one run"));
    assert!(!merged_path.exists());
    assert!(r.counters["delivered"] > 0);
}
