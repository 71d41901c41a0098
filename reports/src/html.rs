//! One self-contained HTML page per run: verdict, scenario, latency, charts, correctness.
//! All CSS and every chart (inline SVG) are in the page; nothing is loaded from anywhere.

use std::fmt::Write as _;

use crate::charts::{Series, XAxis, escape, line_chart};
use crate::hdr;
use crate::model::{Counter, LatencySummary, RunResult, Violation};

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;margin:0;background:#f6f7f9}
main{max-width:1000px;margin:0 auto;padding:16px}
h1{font-size:22px;margin:8px 0}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.verdict{display:inline-block;padding:4px 14px;border-radius:4px;color:#fff;font-weight:700;font-size:18px}
.pass{background:#1b7f3b}.fail{background:#b3261e}
table{border-collapse:collapse;width:100%;background:#fff;margin:6px 0}
th,td{padding:4px 8px;border-bottom:1px solid #e4e4e4;text-align:right;font-variant-numeric:tabular-nums}
th:first-child,td:first-child{text-align:left}
tr.bad td{background:#fde7e6}.ok{color:#1b7f3b}.no{color:#b3261e;font-weight:700}
.scroll{overflow-x:auto}.note{color:#b3261e;font-weight:600}.note-default{color:#777;font-size:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:8px}
.card{background:#fff;padding:8px 12px;border:1px solid #e4e4e4;border-radius:4px}
.chart{width:100%;height:auto;background:#fff;border:1px solid #e4e4e4;margin:6px 0}
.chart .title{font-size:14px;font-weight:600}.chart .tick{font-size:11px;fill:#555}
.chart .axis,.chart .legend{font-size:12px;fill:#333}
details{margin:2px 0}code{font-size:12px}
@media print{body{background:#fff}.chart{break-inside:avoid}h2{break-after:avoid}}
"#;

fn ms(v: f64) -> String {
    format!("{v:.3}")
}

/// Renders a run as one page.
pub fn render(r: &RunResult) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let verdict = if r.passed { "PASS" } else { "FAIL" };
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>{v} {n}</title><style>{STYLE}</style></head><body><main>"#,
        v = verdict,
        n = escape(&r.scenario.name)
    );
    if r.interrupted {
        h.push_str(r#"<p id="interrupted" class="note">Interrupted by Ctrl-C: the figures cover less than the scenario asked for, so the run fails.</p>"#);
    }
    failed_faults(&mut h, r);
    sessions_unknown(&mut h, r);
    let _ = write!(
        h,
        r#"<h1><span id="verdict" class="verdict {c}">{verdict}</span> {}</h1><p>{}</p>"#,
        escape(&r.scenario.name),
        escape(&r.scenario.description),
        c = verdict.to_lowercase()
    );
    thresholds(&mut h, r);
    scenario(&mut h, r);
    latency_table(&mut h, r);
    charts(&mut h, r);
    correctness(&mut h, r);
    rate_limit(&mut h, r);
    attacks(&mut h, r);
    h.push_str("</main></body></html>\n");
    h
}

/// Scheduled faults that could not be injected: the run did not break what it was asked to.
fn failed_faults(h: &mut String, r: &RunResult) {
    let name = Counter::FaultsFailed.name();
    let n = r.counters.get(name).copied().unwrap_or(0);
    if n == 0 {
        return;
    }
    let _ = write!(
        h,
        r#"<p id="faults-failed" class="note">{n} scheduled fault(s) could not be injected, so the run did not break what its scenario asked for and fails:"#
    );
    for e in r.examples.get(name).into_iter().flatten() {
        let _ = write!(h, " {} (at {:.1} s).", escape(&e.detail), e.at_s);
    }
    h.push_str("</p>");
}

/// Long-polling sessions a load balancer broke, in words.
fn sessions_unknown(h: &mut String, r: &RunResult) {
    let n = r
        .counters
        .get(Counter::SessionsUnknown.name())
        .copied()
        .unwrap_or(0);
    if n > 0 {
        let _ = write!(
            h,
            r#"<p id="sessions-unknown" class="note">{}</p>"#,
            escape(&crate::counters::sessions_unknown_words(n))
        );
    }
}

fn thresholds(h: &mut String, r: &RunResult) {
    h.push_str(r#"<h2 id="thresholds">Thresholds</h2><div class="scroll"><table><tr><th>metric</th><th>value</th><th>bound</th><th>verdict</th></tr>"#);
    for t in &r.thresholds {
        let value = t
            .value
            .map_or_else(|| "no data".to_owned(), |v| format!("{v}"));
        let op = if t.bound == "min" { "≥" } else { "≤" };
        let default = if t.implicit {
            r#" <span class="note-default">(default)</span>"#
        } else {
            ""
        };
        let (cls, mark) = if t.passed {
            ("", r#"<span class="ok">ok</span>"#)
        } else {
            ("bad", r#"<span class="no">FAIL</span>"#)
        };
        let _ = write!(
            h,
            r#"<tr class="{cls}"><td>{}{default}</td><td>{value}</td><td>{op} {}</td><td>{mark}</td></tr>"#,
            escape(&t.metric),
            t.limit
        );
    }
    if r.thresholds.is_empty() {
        h.push_str(r#"<tr><td colspan="4">no thresholds</td></tr>"#);
    }
    h.push_str("</table></div>");
}

fn scenario(h: &mut String, r: &RunResult) {
    let s = &r.scenario;
    let e = &r.environment;
    let target = if r.target.kind == "embedded" {
        format!(
            "embedded reference relay {}",
            r.target.relay_version.as_deref().unwrap_or("")
        )
    } else {
        format!("external: {}", r.target.urls.join(", "))
    };
    let mut target = escape(&target).to_string();
    if r.target.insecure_tls {
        target.push_str(" <strong>(TLS certificates not checked: --insecure)</strong>");
    }
    let _ = write!(
        h,
        r#"<h2 id="scenario">Scenario and target</h2><div class="grid"><div class="card"><b>scenario</b> {}<br>file <code>{}</code><br>duration {} s, drain {} s, seed {}{}</div><div class="card"><b>target</b> {}<br>sim {} on {} cores, {}<br>started {}, wall {:.1} s<br>sim CPU {} s, peak RSS {} KiB<br>pacer: {}</div></div>"#,
        escape(&s.name),
        escape(&s.file),
        s.duration_s,
        s.drain_s,
        s.seed,
        s.shard
            .as_ref()
            .map(|x| format!(", shard {}", escape(x)))
            .unwrap_or_default(),
        target,
        escape(&e.sim_version),
        e.cores,
        escape(&e.os),
        escape(&e.started_at),
        e.wall_s,
        e.sim_cpu_s.map_or("?".into(), |c| format!("{c:.2}")),
        e.sim_peak_rss_kib.map_or("?".into(), |k| k.to_string()),
        escape(e.pacer.as_deref().unwrap_or("?")),
    );
    h.push_str(r#"<table id="groups"><tr><th>bot group</th><th>role</th><th>bots</th><th>tabs</th><th>messages/min each</th><th>transport</th></tr>"#);
    for g in &s.groups {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&g.name),
            escape(&g.role),
            g.count,
            g.tabs,
            g.messages_per_minute,
            escape(&g.transport)
        );
    }
    h.push_str("</table>");
}

fn latency_row(h: &mut String, label: &str, s: &LatencySummary) {
    let _ = write!(
        h,
        "<td>{label}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
        s.count,
        ms(s.min_ms),
        ms(s.p50_ms),
        ms(s.p90_ms),
        ms(s.p99_ms),
        ms(s.p999_ms),
        ms(s.max_ms)
    );
}

fn latency_table(h: &mut String, r: &RunResult) {
    h.push_str(r#"<h2 id="latency">Latency per path (ms)</h2><div class="scroll"><table><tr><th>path</th><th>measured from</th><th>count</th><th>min</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>"#);
    for (name, p) in &r.paths {
        let _ = write!(
            h,
            r#"<tr data-path="{0}"><td rowspan="2">{0}</td>"#,
            escape(name)
        );
        latency_row(h, "intended send", &p.intended);
        h.push_str("</tr><tr>");
        latency_row(h, "actual send", &p.service);
        h.push_str("</tr>");
    }
    if let Some(lag) = &r.send_lag {
        h.push_str(r#"<tr id="send-lag"><td>send lag</td>"#);
        latency_row(h, "intended → actual send", lag);
        h.push_str("</tr>");
    }
    h.push_str("</table></div>");
    h.push_str("<p>Latency from the intended send time includes the send lag, the generator's own delay in putting a message on the wire; service time starts when it actually left.</p>");
}

fn charts(h: &mut String, r: &RunResult) {
    h.push_str(r#"<h2 id="charts">Charts</h2>"#);
    let distribution: Vec<Series> = r
        .paths
        .iter()
        .filter_map(|(name, p)| {
            hdr::decode(&p.intended).ok().map(|hist| Series {
                name: name.clone(),
                points: hdr::percentile_curve(&hist),
            })
        })
        .collect();
    h.push_str(&line_chart(
        "chart-distribution",
        "Latency by percentile (from intended send time)",
        "ms",
        XAxis::Percentile,
        &distribution,
    ));
    if let Some(lag) = r.send_lag.as_ref().and_then(|l| hdr::decode(l).ok()) {
        h.push_str(&line_chart(
            "chart-send-lag",
            "Send lag by percentile (intended → actual send)",
            "ms",
            XAxis::Percentile,
            &[Series {
                name: "send lag".into(),
                points: hdr::percentile_curve(&lag),
            }],
        ));
    }
    let per_second = |pick: &dyn Fn(&crate::model::SecondLatency) -> f64| -> Vec<Series> {
        r.paths
            .keys()
            .map(|name| Series {
                name: name.clone(),
                points: r
                    .timeseries
                    .iter()
                    .filter_map(|s| s.latency.get(name).map(|l| (f64::from(s.t), pick(l))))
                    .collect(),
            })
            .collect()
    };
    h.push_str(&line_chart(
        "chart-p99-time",
        "p99 latency per second",
        "ms",
        XAxis::Seconds,
        &per_second(&|l| l.p99_ms),
    ));
    h.push_str(&line_chart(
        "chart-p50-time",
        "p50 latency per second",
        "ms",
        XAxis::Seconds,
        &per_second(&|l| l.p50_ms),
    ));
    let column = |name: &str, f: &dyn Fn(&crate::model::SecondSample) -> u64| Series {
        name: name.to_owned(),
        points: r
            .timeseries
            .iter()
            .map(|s| (f64::from(s.t), f(s) as f64))
            .collect(),
    };
    if let Some(w) = &r.target_watch {
        let line = |name: &str, f: &dyn Fn(&crate::model::TargetSample) -> Option<f64>| Series {
            name: name.to_owned(),
            points: w
                .samples
                .iter()
                .filter_map(|s| Some((s.t_s, f(s)?)))
                .collect(),
        };
        // a target without /metrics has no memory or presence to draw
        type Pick = fn(&crate::model::TargetSample) -> Option<f64>;
        let charts: [(&str, &str, &str, &str, Pick); 2] = [
            (
                "chart-target-memory",
                "Target resident memory (its /metrics, all nodes)",
                "MiB",
                "resident memory",
                |s| s.rss_mib,
            ),
            (
                "chart-target-presence",
                "Sockets the target counts (operator tabs + visitors)",
                "sockets",
                "presence",
                |s| s.presence,
            ),
        ];
        for (id, title, unit, name, f) in charts {
            let series = line(name, &f);
            if !series.points.is_empty() {
                h.push_str(&line_chart(id, title, unit, XAxis::Seconds, &[series]));
            }
        }
    }
    h.push_str(&line_chart(
        "chart-sent",
        "Messages sent per second",
        "messages / s",
        XAxis::Seconds,
        &[column("sent", &|s| s.sent)],
    ));
    h.push_str(&line_chart(
        "chart-throughput",
        "Deliveries received per second",
        "deliveries / s",
        XAxis::Seconds,
        &[column("delivered", &|s| s.delivered)],
    ));
    h.push_str(&line_chart(
        "chart-connected",
        "Connected sockets",
        "sockets",
        XAxis::Seconds,
        &[column("connected", &|s| s.connected)],
    ));
    h.push_str(&line_chart(
        "chart-violations",
        "Violations found per second",
        "violations",
        XAxis::Seconds,
        &[column("violations", &|s| s.violations)],
    ));
}

/// The windows of "either answer is right" the run judged with: how wide each kind was over
/// the run's seconds, against its bound, and a chart of them second by second.
fn judging(h: &mut String, j: &crate::model::Judging) {
    let _ = write!(
        h,
        r#"<div id="judging"><p>Judged with windows taken from what the run observed around each moment, never wider than the protocol's bounds; messages judged {:.0} s after they left (slowest delivery {:.1} ms, slowest presence event {:.1} ms).</p><table><tr><th>window</th><th>p50 (ms)</th><th>p90 (ms)</th><th>max (ms)</th><th>bound (ms)</th></tr>"#,
        j.settle_after_s, j.slowest_message_ms, j.slowest_presence_ms
    );
    for (name, w) in [
        ("delivery", &j.delivery_window),
        ("presence", &j.presence_window),
        ("rate-limit edge", &j.rate_window),
    ] {
        let _ = write!(
            h,
            r#"<tr data-window="{name}"><td>{name}</td><td>{:.0}</td><td>{:.0}</td><td>{:.0}</td><td>{:.0}</td></tr>"#,
            w.p50_ms, w.p90_ms, w.max_ms, w.bound_ms
        );
    }
    h.push_str("</table>");
    if !j.per_second.is_empty() {
        let line = |name: &str, f: fn(&crate::model::WindowSecond) -> f64| Series {
            name: name.to_owned(),
            points: j
                .per_second
                .iter()
                .map(|s| (f64::from(s.t), f(s)))
                .collect(),
        };
        h.push_str(&line_chart(
            "chart-windows",
            "Judging windows, by the second a message left or a presence event's cause came",
            "ms",
            XAxis::Seconds,
            &[
                line("delivery", |s| s.delivery_ms),
                line("presence", |s| s.presence_ms),
                line("rate-limit edge", |s| s.rate_ms),
            ],
        ));
    }
    h.push_str("</div>");
}

fn correctness(h: &mut String, r: &RunResult) {
    let get = |k: &str| r.counters.get(k).copied().unwrap_or(0);
    let _ = write!(
        h,
        r#"<h2 id="correctness">Correctness</h2><p>{} messages sent, {} deliveries owed, {} received; <b>{}</b> violations.</p><table><tr><th>class</th><th>meaning</th><th>count</th></tr>"#,
        get(Counter::Sent.name()),
        get(Counter::ExpectedDeliveries.name()),
        get(Counter::Delivered.name()),
        get(Counter::Violations.name())
    );
    if let Some(j) = &r.judging {
        judging(h, j);
    }
    let owed = get(Counter::ExpectedDeliveries.name());
    let _ = write!(
        h,
        r#"<tr data-class="delivered"><td>delivered</td><td>owed deliveries that arrived</td><td>{}</td></tr>"#,
        owed.saturating_sub(get(Violation::Lost.name()))
    );
    for v in Violation::ALL {
        let (class, meaning) = (v.name(), v.meaning());
        let n = get(class);
        let cls = if n > 0 { "bad" } else { "" };
        let _ = write!(
            h,
            r#"<tr class="{cls}" data-class="{class}"><td>{class}</td><td>{meaning}</td><td>{n}</td></tr>"#
        );
        if let Some(examples) = r.examples.get(class).filter(|e| !e.is_empty() && n > 0) {
            h.push_str(r#"<tr><td colspan="3"><details open><summary>examples</summary><table><tr><th>message</th><th>socket</th><th>at (s)</th><th>what</th></tr>"#);
            for e in examples.iter().take(20) {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td><code>{}</code></td><td>{:.3}</td><td>{}</td></tr>",
                    e.message_id.map_or("-".into(), |m| m.to_string()),
                    escape(&e.socket),
                    e.at_s,
                    escape(&e.detail)
                );
            }
            h.push_str("</table></details></td></tr>");
        }
    }
    h.push_str("</table>");
}

fn rate_limit(h: &mut String, r: &RunResult) {
    h.push_str(
        r#"<h2 id="rate-limit">Rate limit</h2><table><tr><th>counter</th><th>count</th></tr>"#,
    );
    for k in [
        Counter::RateLimitRejected.name(),
        Violation::RateLimitWronglyDelivered.name(),
        Violation::RateLimitWronglyRejected.name(),
        Counter::GeneratorLate.name(),
        Counter::SendFailed.name(),
        Counter::ConnectFailed.name(),
        Counter::RelayErrors.name(),
    ] {
        let _ = write!(
            h,
            "<tr><td>{k}</td><td>{}</td></tr>",
            r.counters.get(k).copied().unwrap_or(0)
        );
    }
    h.push_str("</table>");
}

/// The adversary's attacks: verdicts per attack, what success means, and examples.
fn attacks(h: &mut String, r: &RunResult) {
    if r.attacks.is_empty() {
        return;
    }
    let total = |f: fn(&crate::model::AttackReport) -> u64| r.attacks.iter().map(f).sum::<u64>();
    let _ = write!(
        h,
        r#"<h2 id="attacks">Attacks</h2><p>{} attempts: {} blocked, <b>{}</b> succeeded, {} not judged.</p><div class="scroll"><table><tr><th>attack</th><th>family</th><th>attempted</th><th>blocked</th><th>succeeded</th><th>not judged</th></tr>"#,
        total(|a| a.attempted),
        total(|a| a.blocked),
        total(|a| a.succeeded),
        total(|a| a.not_judged)
    );
    for a in &r.attacks {
        let bad = if a.succeeded + a.not_judged > 0 {
            r#" class="bad""#
        } else {
            ""
        };
        let _ = write!(
            h,
            r#"<tr{bad}><td><details><summary>{}</summary>succeeds when {}{}</details></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            escape(&a.name),
            escape(&a.succeeds_when),
            a.examples
                .iter()
                .map(|e| format!("<br><code>{}</code>", escape(e)))
                .collect::<String>(),
            escape(&a.family),
            a.attempted,
            a.blocked,
            a.succeeded,
            a.not_judged
        );
    }
    h.push_str("</table></div>");
}

#[cfg(test)]
mod tests {
    use crate::model::Counter;

    /// Sessions a load balancer broke are said in words, with the fix, only when there were some.
    #[test]
    fn broken_sessions_are_said_in_words() {
        let mut r = crate::merge::tests::sample([1000, 2000], 0);
        assert!(!super::render(&r).contains("sessions-unknown"));
        r.counters
            .insert(Counter::SessionsUnknown.name().to_owned(), 3);
        let page = super::render(&r);
        assert!(page.contains(r#"id="sessions-unknown""#), "no note");
        assert!(page.contains("3 long-polling request(s)"), "no count");
        assert!(page.contains("turn on stickiness"), "no fix");
    }
}
