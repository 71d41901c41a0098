//! Scenario resolution: defaults, overrides, the default gate, and errors at the right place.

use super::*;
use crate::scenario::{
    ATTACKS_SUCCEEDED, Credentials, FaultAction, Reconnect, Stream, Target, Toxic, ToxicKind,
};
use reports::attacks::Attack;

const GOOD: &str = r#"
[scenario]
name = "t"
description = "a test"
duration = "5s"

[[bots]]
role = "operator"
count = 2
tabs = 2

[[bots]]
role = "client"
count = 10
messages_per_minute = 6
transport = "polling"

[thresholds]
lost = 0
fanout.p99_ms = 50
"#;

fn plan(src: &str) -> Plan {
    resolve(Path::new("s.toml"), src, &Overrides::default()).expect("valid")
}

fn err(src: &str) -> String {
    resolve(Path::new("s.toml"), src, &Overrides::default())
        .expect_err("invalid")
        .to_string()
}

#[test]
fn parses_and_normalizes() {
    let p = plan(GOOD);
    assert_eq!(p.groups.len(), 2);
    assert_eq!(p.groups[0].tabs, 2);
    assert_eq!(p.groups[0].transport, wire::Transport::Websocket);
    assert_eq!(p.groups[1].transport, wire::Transport::Polling);
    assert_eq!(p.groups[1].messages_per_minute, 6.0);
    assert_eq!(p.target, Target::Embedded { relays: 1 });
    assert_eq!(p.peak_sockets(), 14);
    assert_eq!(p.drain, DEFAULT_DRAIN);
    let written: Vec<&str> = p
        .thresholds
        .iter()
        .filter(|t| !t.implicit)
        .map(|t| t.metric.as_str())
        .collect();
    assert_eq!(written, ["fanout.p99_ms", "lost"]);
}

#[test]
fn every_violation_class_is_gated_at_zero_unless_the_scenario_says_otherwise() {
    let p = plan(&GOOD.replace("lost = 0", "lost = 5"));
    for v in Violation::ALL {
        let t: Vec<&Threshold> = p
            .thresholds
            .iter()
            .filter(|t| t.metric == v.name())
            .collect();
        assert_eq!(t.len(), 1, "{v} bounded once");
        let expected = if v == Violation::Lost { 5.0 } else { 0.0 };
        assert_eq!(t[0].limit, expected, "{v}");
        assert_eq!(t[0].implicit, v != Violation::Lost, "{v}");
    }
    for gated in ["connect.failed", "faults.failed"] {
        assert!(
            p.thresholds.iter().any(|t| t.metric == gated && t.implicit),
            "{gated}"
        );
    }
    // no [thresholds] at all: the gate alone
    let bare = GOOD.split("[thresholds]").next().expect("head");
    assert_eq!(plan(bare).thresholds.len(), Violation::ALL.len() + 2);
}

#[test]
fn overrides_are_resolved_once_flag_over_file() {
    let o = Overrides {
        seed: Some(99),
        duration: Some(Duration::from_secs(1)),
        scale: Some(2.5),
        rate: None,
        targets: vec!["http://127.0.0.1:9/chat".into()],
        jwt_secret: Some("s3cret".into()),
        ..Overrides::default()
    };
    let p = resolve(Path::new("s.toml"), GOOD, &o).expect("valid");
    assert_eq!(p.seed, 99);
    assert_eq!(p.duration, Duration::from_secs(1));
    assert_eq!(p.groups[0].count, 5);
    assert_eq!(p.groups[1].count, 25);
    assert!(
        matches!(&p.target, Target::External { urls, .. } if urls == &["http://127.0.0.1:9/chat"])
    );
    let bad = Overrides {
        targets: vec!["ftp://x".into()],
        ..Overrides::default()
    };
    let e = resolve(Path::new("s.toml"), GOOD, &bad).expect_err("bad flag");
    assert!(e.to_string().starts_with("--target"), "{e}");
    let bad = Overrides {
        scale: Some(0.0),
        ..Overrides::default()
    };
    assert!(resolve(Path::new("s.toml"), GOOD, &bad).is_err());
    // --rate multiplies every group's message rate
    let base =
        crate::scenario::parse(Path::new("s.toml"), GOOD, &Overrides::default()).expect("valid");
    let rate = |r: f64| Overrides {
        rate: Some(r),
        ..Overrides::default()
    };
    let fast = crate::scenario::parse(Path::new("s.toml"), GOOD, &rate(3.0)).expect("valid");
    for (a, b) in base.groups.iter().zip(&fast.groups) {
        assert!((b.messages_per_minute - 3.0 * a.messages_per_minute).abs() < 1e-9);
    }
    let e = crate::scenario::parse(Path::new("s.toml"), GOOD, &rate(-1.0)).expect_err("bad");
    assert!(e.to_string().starts_with("--rate"), "{e}");
}

#[test]
fn unknown_field_names_line_column_and_field() {
    let e = err(&GOOD.replace("tabs = 2", "tabz = 2"));
    assert!(e.starts_with("s.toml:10:1: `bots[0].tabz`"), "{e}");
    assert!(e.contains("unknown field"), "{e}");
}

#[test]
fn wrong_types_name_the_field_at_its_value() {
    let e = err(&GOOD.replace("count = 10", "count = \"ten\""));
    assert!(e.starts_with("s.toml:14:9: `bots[1].count`"), "{e}");
    let e = err(&GOOD.replace("role = \"client\"", "role = \"admin\""));
    assert!(e.starts_with("s.toml:13:8: `bots[1].role`"), "{e}");
    assert!(e.contains("operator") && e.contains("supervisor"), "{e}");
    let e = err(&GOOD.replace("duration = \"5s\"", "duration = \"soon\""));
    assert!(e.starts_with("s.toml:5:12: `scenario.duration`"), "{e}");
    assert!(e.contains("not a duration"), "{e}");
    let e = err(&GOOD.replace("\"polling\"", "\"carrier-pigeon\""));
    assert!(e.starts_with("s.toml:16:13: `bots[1].transport`"), "{e}");
}

#[test]
fn images_over_the_targets_limits_are_refused_where_they_are_written() {
    let src = GOOD.replace(
        "transport = \"polling\"",
        "transport = \"polling\"\nimage_fraction = 0.1\nimage_bytes = { min = 1000, max = 300000 }",
    );
    let e = err(&format!("{src}\n[limits]\nmax_image_bytes = 200000\n"));
    assert!(e.starts_with("s.toml:18:15: `bots[1].image_bytes`"), "{e}");
    assert!(e.contains("over limits.max_image_bytes (200000)"), "{e}");
    // within the image limit, but its base64 over the event limit
    let e = err(&format!(
        "{src}\n[limits]\nmax_payload_bytes = 350000\nmax_image_bytes = 300000\n"
    ));
    assert!(e.contains("over limits.max_payload_bytes (350000)"), "{e}");
    // images that fit pass, and no images at all pass whatever their size
    plan(&format!("{src}\n[limits]\nmax_image_bytes = 400000\n"));
    plan(&format!(
        "{}\n[limits]\nmax_image_bytes = 2000\n",
        GOOD.replace(
            "transport = \"polling\"",
            "transport = \"polling\"\nimage_bytes = { min = 1000, max = 300000 }"
        )
    ));
}

#[test]
fn invalid_values_point_at_the_value() {
    let e = err(&GOOD.replace("count = 10", "count = 0"));
    assert!(
        e.starts_with("s.toml:14:9: `bots[1].count`: must be at least 1"),
        "{e}"
    );
    let e = err(&GOOD.replace("tabs = 2", "tabs = 17"));
    assert!(e.starts_with("s.toml:10:8: `bots[0].tabs`"), "{e}");
    let e = err(&GOOD.replace(
        "messages_per_minute = 6",
        "messages_per_minute = 6\nburst = { size = 0, every = \"1s\" }",
    ));
    assert!(e.contains("`bots[1].burst.size`"), "{e}");
}

#[test]
fn inline_tables_point_at_the_right_line() {
    let src = "[scenario]\nname = \"i\"\nduration = \"1s\"\nbots = 1\n";
    assert!(
        err(src).contains("unknown field"),
        "bots belongs at the top level"
    );
    let src = "bots = [\n  { role = \"client\", count = 1 },\n  { role = \"client\", count = 0 },\n]\n\n[scenario]\nname = \"i\"\nduration = \"1s\"\n";
    let e = err(src);
    assert!(
        e.starts_with("s.toml:3:30: `bots[1].count`: must be at least 1"),
        "{e}"
    );
}

#[test]
fn unknown_threshold_metric_is_an_error_at_its_line() {
    let e = err(&GOOD.replace("lost = 0", "lots = 0"));
    assert!(e.contains("unknown metric `lots`"), "{e}");
    assert!(e.starts_with("s.toml:19:8: `thresholds.lots`"), "{e}");
    let e = err(&GOOD.replace("fanout.p99_ms = 50", "fanout.p99_ms = \"fast\""));
    assert!(
        e.contains("`thresholds.fanout.p99_ms`: must be a number"),
        "{e}"
    );
    let p = plan(&GOOD.replace("lost = 0", "send_lag.p99_ms = 0.1\nfanout.count.min = 1"));
    assert!(p.thresholds.iter().any(|t| t.metric == "send_lag.p99_ms"));
    assert!(
        p.thresholds
            .iter()
            .any(|t| t.metric == "fanout.count" && t.at_least)
    );
}

#[test]
fn external_target_needs_a_proper_url() {
    let src = format!("{GOOD}\n[target]\nurl = \"127.0.0.1:3001\"\njwt_secret = \"x\"\n");
    let e = err(&src);
    assert!(e.contains("`target.url`"), "{e}");
    let src =
        format!("{GOOD}\n[target]\nurl = \"http://127.0.0.1:3001/chat\"\njwt_secret = \"x\"\n");
    assert!(
        matches!(plan(&src).target, Target::External { credentials: Credentials::Secret(ref s), .. } if s == "x")
    );
}

#[test]
fn a_scenario_without_bots_is_refused() {
    let e = err("[scenario]\nname = \"n\"\nduration = \"1s\"\n");
    assert!(e.contains("`bots`") && e.contains("at least one"), "{e}");
}

#[test]
fn an_embedded_cluster_is_asked_for_with_relays() {
    let src = GOOD.replace(
        "[[bots]]\nrole = \"operator\"",
        "[target]\nrelays = 3\n\n[[bots]]\nrole = \"operator\"",
    );
    assert_eq!(plan(&src).target, Target::Embedded { relays: 3 });
    let e = err(&src.replace("relays = 3", "relays = 0"));
    assert!(
        e.starts_with("s.toml:8:10: `target.relays`: must be 1 to 8"),
        "{e}"
    );
    let e = err(&src.replace(
        "relays = 3",
        "relays = 3\nurl = \"http://127.0.0.1:9/chat\"",
    ));
    assert!(
        e.contains("`target.relays`") && e.contains("cannot be combined"),
        "{e}"
    );
}

#[test]
fn faults_and_reconnection_are_read_and_checked() {
    let cluster = GOOD.replace(
        "[[bots]]\nrole = \"operator\"",
        "[target]\nrelays = 3\n\n[reconnect]\ndelay = \"500ms\"\n\n\
         [[faults]]\nat = \"3s\"\nrestart_redis = true\n\n\
         [[faults]]\nat = \"1s\"\nkill_relay = 2\n\n\
         [[faults]]\nat = \"2s\"\nrestart_relay = 2\n\n[[bots]]\nrole = \"operator\"",
    );
    let p = plan(&cluster);
    assert_eq!(p.reconnect.delay, Duration::from_millis(500));
    assert_eq!(p.reconnect.max_delay, Duration::from_secs(5));
    let actions: Vec<&FaultAction> = p.faults.iter().map(|f| &f.action).collect();
    assert_eq!(
        actions,
        [
            &FaultAction::KillRelay(1),
            &FaultAction::RestartRelay(1),
            &FaultAction::RestartRedis
        ],
        "in time order, relays counted from 0"
    );
    assert_eq!(p.faults[1].action.revives(), Some(1));
    let e = err(&cluster.replace("kill_relay = 2", "kill_relay = 4"));
    assert!(
        e.contains("`faults[1].kill_relay`: names relay 1 to 3"),
        "{e}"
    );
    let e = err(&cluster.replace("at = \"3s\"", "at = \"9s\""));
    assert!(e.contains("`faults[0].at`: must fall within"), "{e}");
    let e = err(&cluster.replace(
        "restart_redis = true",
        "restart_redis = true\ncommand = \"x\"",
    ));
    assert!(e.contains("exactly one of"), "{e}");
    let e = err(&cluster.replace("delay = \"500ms\"", "delay = \"5s\"\nmax_delay = \"1s\""));
    assert!(e.contains("`reconnect.max_delay`"), "{e}");
    // killing a relay needs relays to kill; an external target uses a command
    let single = cluster.replace("relays = 3", "relays = 1");
    let e = err(&single);
    assert!(
        e.contains("embedded cluster ([target] relays = 2 or more)"),
        "{e}"
    );
    let external = GOOD.replace(
        "[[bots]]\nrole = \"operator\"",
        "[target]\nurls = [\"http://127.0.0.1:9/chat\", \"http://127.0.0.1:10/chat\"]\n\n\
         [[faults]]\nat = \"1s\"\ncommand = \"true\"\nnode = 2\n\n[[bots]]\nrole = \"operator\"",
    );
    assert_eq!(plan(&external).faults[0].action.kills(), Some(1));
    // `node` is one of the target's nodes; `restart` names the node it brings back
    let e = err(&external.replace("node = 2", "node = 3"));
    assert!(
        e.contains("`faults[0].node`: names a node of the target, 1 to 2"),
        "{e}"
    );
    let back = external.replace(
        "command = \"true\"\nnode = 2",
        "restart = \"true\"\nnode = 1",
    );
    let p = plan(&back);
    assert_eq!(p.faults[0].action.revives(), Some(0));
    assert_eq!(p.faults[0].action.kills(), None);
    let e = err(&external.replace("command = \"true\"\nnode = 2", "restart = \"true\""));
    assert!(e.contains("`faults[0].restart`: brings a node back"), "{e}");
    let e = err(&external.replace("command = \"true\"\nnode = 2", "command = \" \""));
    assert!(e.contains("`faults[0].command`: is empty"), "{e}");
    let e = err(&external.replace(
        "command = \"true\"\nnode = 2",
        "network_outage = \"1s\"\nnode = 1",
    ));
    assert!(
        e.contains("`faults[0].node`: is for command or restart"),
        "{e}"
    );
}

#[test]
fn reconnection_delays_double_up_to_the_cap_within_the_spread() {
    let r = Reconnect::default();
    assert_eq!(r.delay(0, 0.5), Duration::from_secs(1));
    assert_eq!(r.delay(1, 0.5), Duration::from_secs(2));
    assert_eq!(r.delay(5, 0.5), Duration::from_secs(5));
    assert_eq!(r.delay(0, 0.0), Duration::from_millis(500));
    assert!(r.delay(0, 0.999) < Duration::from_millis(1500));
    assert_eq!(
        r.delay(9, 0.999),
        Duration::from_secs(5),
        "never past the cap"
    );
}

const ADVERSARY: &str = r#"
[[bots]]
name = "attackers"
role = "adversary"
count = 2
attacks = ["forged_token", "join_null", "forged_token"]
"#;

#[test]
fn an_adversary_group_is_resolved_apart_from_the_chat() {
    let p = plan(&format!("{GOOD}{ADVERSARY}"));
    assert_eq!(p.groups.len(), 2, "the adversary is not a chat group");
    let a = p.adversary.expect("an adversary");
    assert_eq!(a.attempts, 2);
    assert_eq!(a.attacks, [Attack::ForgedToken, Attack::JoinNull]);
    assert_eq!(a.memory_bound_mib, 256);
    assert!(
        p.thresholds
            .iter()
            .any(|t| t.metric == ATTACKS_SUCCEEDED && t.implicit && t.limit == 0.0),
        "the default gate bounds successful attacks at 0"
    );
    let all = plan(&format!(
        "{GOOD}{}",
        ADVERSARY.replace(
            r#"attacks = ["forged_token", "join_null", "forged_token"]"#,
            r#"attacks = ["all"]"#
        )
    ));
    assert_eq!(all.adversary.expect("adversary").attacks, Attack::ALL);
    assert!(plan(GOOD).adversary.is_none());
    assert!(
        !plan(GOOD)
            .thresholds
            .iter()
            .any(|t| t.metric == ATTACKS_SUCCEEDED)
    );
}

#[test]
fn adversary_mistakes_name_the_field() {
    let src = format!("{GOOD}{ADVERSARY}");
    let e = err(&src.replace(r#""join_null""#, r#""sql_injection""#));
    assert!(
        e.starts_with("s.toml:26:28: `bots[2].attacks[1]`: unknown attack"),
        "{e}"
    );
    assert!(e.contains("forged_token"), "lists the catalogue: {e}");
    let e = err(&src.replace(
        "count = 2\nattacks",
        "count = 2\nmessages_per_minute = 5\nattacks",
    ));
    assert!(
        e.contains("`bots[2].messages_per_minute`: is for chat bots"),
        "{e}"
    );
    let e = err(&src.replace("count = 2\nattacks", "count = 0\nattacks"));
    assert!(
        e.contains("`bots[2].count`: is the attempts of each attack"),
        "{e}"
    );
    let e = err(&GOOD.replace("tabs = 2", "tabs = 2\nattacks = [\"all\"]"));
    assert!(
        e.contains("`bots[0].attacks`: only adversary groups attack"),
        "{e}"
    );
    let e = err(&format!("{src}{ADVERSARY}"));
    assert!(e.contains("one adversary group per scenario"), "{e}");
    let e = err(&format!(
        "{src}\n[limits]\ncors_origin = [\"chat.example\"]\n"
    ));
    assert!(e.contains("`limits.cors_origin[0]`"), "{e}");
    let only = r#"
[scenario]
name = "t"
duration = "5s"
"#;
    let e = err(&format!("{only}{ADVERSARY}"));
    assert!(
        e.contains("at least one [[bots]] group of operators"),
        "{e}"
    );
}

const NETWORK: &str = r#"
[[network.toxics]]
type = "latency"
latency = "40ms"
jitter = "10ms"
toxicity = 0.5

[[network.toxics]]
type = "limit_data"
stream = "downstream"
bytes = 1000

[[faults]]
at = "2s"
toxic = { type = "timeout", timeout = "0s", toxicity = 0.1 }
lasting = "1s"

[[faults]]
at = "3s"
network_outage = "1s"
"#;

#[test]
fn network_toxics_and_faults_are_read_in_toxiproxys_terms() {
    let p = plan(&format!("{GOOD}{NETWORK}"));
    assert!(p.proxied());
    assert!(!plan(GOOD).proxied());
    assert_eq!(
        p.network[0],
        Toxic {
            kind: ToxicKind::Latency {
                latency: Duration::from_millis(40),
                jitter: Duration::from_millis(10)
            },
            stream: Stream::Both,
            toxicity: 0.5
        }
    );
    assert_eq!(p.network[1].kind, ToxicKind::LimitData { bytes: 1000 });
    assert_eq!(p.network[1].stream, Stream::Downstream);
    assert!(matches!(
        p.faults[0].action,
        FaultAction::Toxic { lasting, toxic } if lasting == Duration::from_secs(1)
            && toxic.kind == ToxicKind::Timeout { timeout: Duration::ZERO }
    ));
    assert_eq!(
        p.faults[1].action,
        FaultAction::NetworkOutage(Duration::from_secs(1))
    );
}

#[test]
fn network_mistakes_name_the_field() {
    let src = format!("{GOOD}{NETWORK}");
    let e = err(&src.replace(r#"type = "latency""#, r#"type = "lag""#));
    assert!(
        e.contains("`network.toxics[0].type`") && e.contains("slicer"),
        "{e}"
    );
    let e = err(&src.replace("toxicity = 0.5", "toxicity = 1.5"));
    assert!(
        e.contains("`network.toxics[0].toxicity`: must be 0 to 1"),
        "{e}"
    );
    let e = err(&src.replace("bytes = 1000", "bytes = 1000\nlatency = \"1s\""));
    assert!(
        e.contains("`network.toxics[1].latency`: is not an attribute of a limit_data toxic"),
        "{e}"
    );
    let e = err(&src.replace(r#"stream = "downstream""#, r#"stream = "sideways""#));
    assert!(e.contains("`network.toxics[1].stream`"), "{e}");
    let e = err(&src.replace(
        "network_outage = \"1s\"",
        "network_outage = \"1s\"\nlasting = \"1s\"",
    ));
    assert!(e.contains("`faults[1].lasting`: is for a toxic"), "{e}");
    let e = err(&src.replace(
        r#"type = "latency"
latency = "40ms""#,
        r#"type = "latency""#,
    ));
    assert!(
        e.contains("`network.toxics[0].latency`: a latency toxic needs it"),
        "{e}"
    );
}

/// `[limits]` holds the target's limits; `[relay]`, its old name, still works with a warning
/// naming the line, and errors name the section as written; both at once are refused.
#[test]
fn limits_are_read_from_limits_or_from_relay_with_a_warning() {
    let p = plan(&format!("{GOOD}\n[limits]\nrate_limit_per_minute = 42\n"));
    assert_eq!(p.limits.rate_limit_per_minute, 42);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let old = format!("{GOOD}\n[relay]\nrate_limit_per_minute = 43\n");
    let p = plan(&old);
    assert_eq!(p.limits.rate_limit_per_minute, 43);
    let line = old.lines().position(|l| l == "[relay]").expect("there") + 1;
    assert_eq!(p.warnings.len(), 1);
    assert!(
        p.warnings[0].starts_with(&format!(
            "s.toml:{line}: [relay] is deprecated: rename it [limits]"
        )),
        "{:?}",
        p.warnings
    );
    let e = err(&format!("{GOOD}\n[relay]\nrate_limit_per_minute = 0\n"));
    assert!(e.contains("`relay.rate_limit_per_minute`"), "{e}");
    let e = err(&format!(
        "{GOOD}\n[limits]\nrate_limit_per_minute = 1\n[relay]\nrate_limit_per_minute = 1\n"
    ));
    assert!(e.contains("old name of [limits]"), "{e}");
}
