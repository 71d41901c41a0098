//! Scenario files: TOML read strictly, then checked and normalized into a [`Plan`].
//!
//! Every error names the file, line, column and field, so a typo is found in seconds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::metrics::is_known_metric;

/// A scenario that cannot be run, and where the problem is.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A TOML syntax or type error, or an unknown field.
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// A value that parses but makes no sense.
    #[error("{file}:{line}:{column}: `{field}`: {message}")]
    Invalid {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Dotted field path, e.g. `bots[2].count`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    scenario: RawMeta,
    #[serde(default)]
    target: Option<RawTarget>,
    #[serde(default)]
    relay: Option<RawLimits>,
    #[serde(default)]
    bots: Vec<RawGroup>,
    #[serde(default)]
    thresholds: toml::Table,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeta {
    name: String,
    #[serde(default)]
    description: String,
    duration: String,
    #[serde(default)]
    drain: Option<String>,
    #[serde(default)]
    seed: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    urls: Vec<String>,
    #[serde(default)]
    jwt_secret: Option<String>,
    #[serde(default)]
    jwt_secret_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    #[serde(default)]
    rate_limit_per_minute: Option<u32>,
    #[serde(default)]
    typing_rate_limit_per_minute: Option<u32>,
    #[serde(default)]
    max_payload_bytes: Option<usize>,
    #[serde(default)]
    max_image_bytes: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRange {
    min: u32,
    max: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    name: Option<String>,
    role: String,
    count: u32,
    #[serde(default)]
    tabs: Option<u32>,
    #[serde(default)]
    ramp_up: Option<String>,
    #[serde(default)]
    messages_per_minute: Option<f64>,
    #[serde(default)]
    think_time: Option<String>,
    #[serde(default)]
    text_length: Option<RawRange>,
    #[serde(default)]
    markup_fraction: Option<f64>,
    #[serde(default)]
    image_fraction: Option<f64>,
    #[serde(default)]
    image_bytes: Option<RawRange>,
    #[serde(default)]
    typing_probability: Option<f64>,
    #[serde(default)]
    lifetime: Option<String>,
    #[serde(default)]
    reconnects: Option<u32>,
}

/// What a bot group's bots are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BotRole {
    /// Answers visitors; joins with a token.
    Operator,
    /// A visitor.
    Client,
    /// An operator who only watches and must see everything.
    Supervisor,
}

impl BotRole {
    /// The role's name in scenarios and results.
    pub fn as_str(self) -> &'static str {
        match self {
            BotRole::Operator => "operator",
            BotRole::Client => "client",
            BotRole::Supervisor => "supervisor",
        }
    }

    /// True for roles that join as `operator` on the wire.
    pub fn is_operator(self) -> bool {
        !matches!(self, BotRole::Client)
    }
}

/// How the wait between two messages of a bot is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThinkTime {
    /// Exponential around the mean: a Poisson process, the open-model default.
    Exponential,
    /// Exactly the mean.
    Constant,
    /// Uniform between 0.5 and 1.5 times the mean.
    Uniform,
}

/// An inclusive range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Smallest.
    pub min: u32,
    /// Largest.
    pub max: u32,
}

/// One validated `[[bots]]` group.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Name (default: role and index).
    pub name: String,
    /// Role.
    pub role: BotRole,
    /// Bots in the group.
    pub count: u32,
    /// Sockets per bot (operators only; visitors have one).
    pub tabs: u32,
    /// Bots arrive evenly over this.
    pub ramp_up: Duration,
    /// Messages per minute per bot (0 for supervisors).
    pub messages_per_minute: f64,
    /// Distribution of waits between messages.
    pub think_time: ThinkTime,
    /// Text length in characters.
    pub text_length: Range,
    /// Fraction of texts carrying HTML markup (to check sanitizing).
    pub markup_fraction: f64,
    /// Fraction of messages that are images.
    pub image_fraction: f64,
    /// Image size in bytes.
    pub image_bytes: Range,
    /// Chance that a message is preceded by typing events.
    pub typing_probability: f64,
    /// Each connection lives this long, then reconnects (churn); `None`: the whole run.
    pub lifetime: Option<Duration>,
    /// How many times a bot reconnects after its lifetime ends.
    pub reconnects: u32,
}

/// Where the bots connect.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The reference relay, started in-process.
    Embedded,
    /// A running backend.
    External {
        /// Socket.IO URLs including the path, e.g. `http://127.0.0.1:3001/chat`.
        urls: Vec<String>,
        /// JWT secret operator tokens are signed with.
        jwt_secret: String,
    },
}

/// The backend's limits as the simulator expects them (and configures the embedded relay with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Messages per socket per rolling minute.
    pub rate_limit_per_minute: u32,
    /// Typing events per socket per rolling minute.
    pub typing_rate_limit_per_minute: u32,
    /// Largest event.
    pub max_payload_bytes: usize,
    /// Largest decoded image.
    pub max_image_bytes: usize,
}

/// A threshold: the metric must not exceed the limit (or, written `metric.min`, not fall below it).
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// Metric name, e.g. `fanout.p99_ms` or `lost`.
    pub metric: String,
    /// The bound.
    pub limit: f64,
    /// True for a lower bound (`metric.min = 1`).
    pub at_least: bool,
}

/// A scenario ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// File it came from.
    pub file: PathBuf,
    /// Name.
    pub name: String,
    /// One-line description.
    pub description: String,
    /// Sending phase.
    pub duration: Duration,
    /// Time after sending stops for deliveries to arrive.
    pub drain: Duration,
    /// Random seed.
    pub seed: u64,
    /// Where to connect.
    pub target: Target,
    /// Expected (and, embedded, configured) limits.
    pub limits: Limits,
    /// Bot groups.
    pub groups: Vec<Group>,
    /// Pass/fail rules.
    pub thresholds: Vec<Threshold>,
}

impl Plan {
    /// Sockets the plan holds open at its peak.
    pub fn peak_sockets(&self) -> u64 {
        self.groups
            .iter()
            .map(|g| u64::from(g.count) * u64::from(g.tabs))
            .sum()
    }
}

/// Reads and validates a scenario file.
///
/// # Errors
/// [`ScenarioError`] naming the file, line, column and field.
pub fn load(path: &Path) -> Result<Plan, ScenarioError> {
    let source = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
        file: path.to_owned(),
        source,
    })?;
    parse(path, &source)
}

/// Validates scenario text read from `path`.
///
/// # Errors
/// [`ScenarioError`] naming the file, line, column and field.
pub fn parse(path: &Path, source: &str) -> Result<Plan, ScenarioError> {
    let raw: RawScenario = toml::from_str(source).map_err(|e| {
        let (line, column) = e
            .span()
            .map(|s| line_col(source, s.start))
            .unwrap_or((1, 1));
        ScenarioError::Syntax {
            file: path.to_owned(),
            line,
            column,
            message: e.message().to_owned(),
        }
    })?;
    Checker { path, source }.plan(raw)
}

/// Reads just the name and description of a scenario, for `sim list`.
///
/// # Errors
/// As [`load`].
pub fn describe(path: &Path) -> Result<(String, String), ScenarioError> {
    let plan = load(path)?;
    Ok((plan.name, plan.description))
}

struct Checker<'a> {
    path: &'a Path,
    source: &'a str,
}

impl Checker<'_> {
    fn plan(&self, raw: RawScenario) -> Result<Plan, ScenarioError> {
        let meta = &raw.scenario;
        if meta.name.trim().is_empty() {
            return Err(self.invalid("scenario", None, "name", "must not be empty"));
        }
        let duration = self.duration("scenario", None, "duration", &meta.duration)?;
        if duration.is_zero() {
            return Err(self.invalid("scenario", None, "duration", "must be more than 0s"));
        }
        let drain = match &meta.drain {
            Some(d) => self.duration("scenario", None, "drain", d)?,
            None => Duration::from_secs(3),
        };
        let target = self.target(raw.target.as_ref())?;
        let limits = self.limits(raw.relay.unwrap_or_default())?;
        if raw.bots.is_empty() {
            return Err(self.invalid(
                "scenario",
                None,
                "name",
                "a scenario needs at least one [[bots]] group",
            ));
        }
        let groups = raw
            .bots
            .iter()
            .enumerate()
            .map(|(i, g)| self.group(i, g))
            .collect::<Result<Vec<_>, _>>()?;
        let thresholds = self.thresholds(&raw.thresholds)?;
        Ok(Plan {
            file: self.path.to_owned(),
            name: meta.name.clone(),
            description: meta.description.clone(),
            duration,
            drain,
            seed: meta.seed.unwrap_or(1),
            target,
            limits,
            groups,
            thresholds,
        })
    }

    fn target(&self, raw: Option<&RawTarget>) -> Result<Target, ScenarioError> {
        let Some(t) = raw else {
            return Ok(Target::Embedded);
        };
        let mut urls: Vec<String> = t.urls.clone();
        urls.extend(t.url.clone());
        if urls.is_empty() {
            return Ok(Target::Embedded);
        }
        for u in &urls {
            check_url(u).map_err(|m| {
                self.invalid(
                    "target",
                    None,
                    if t.url.is_some() { "url" } else { "urls" },
                    &m,
                )
            })?;
        }
        let secret = match (&t.jwt_secret, &t.jwt_secret_env) {
            (Some(s), _) => s.clone(),
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                self.invalid(
                    "target",
                    None,
                    "jwt_secret_env",
                    &format!("environment variable {var} is not set"),
                )
            })?,
            (None, None) => std::env::var("RELAY_JWT_SECRET").unwrap_or_default(),
        };
        Ok(Target::External {
            urls,
            jwt_secret: secret,
        })
    }

    fn limits(&self, raw: RawLimits) -> Result<Limits, ScenarioError> {
        let limits = Limits {
            rate_limit_per_minute: raw
                .rate_limit_per_minute
                .unwrap_or(relay::config::DEFAULT_RATE_LIMIT),
            typing_rate_limit_per_minute: raw
                .typing_rate_limit_per_minute
                .unwrap_or(relay::config::DEFAULT_TYPING_RATE_LIMIT),
            max_payload_bytes: raw
                .max_payload_bytes
                .unwrap_or(relay::config::DEFAULT_MAX_PAYLOAD),
            max_image_bytes: raw
                .max_image_bytes
                .unwrap_or(relay::config::DEFAULT_MAX_IMAGE),
        };
        if limits.rate_limit_per_minute == 0 {
            return Err(self.invalid("relay", None, "rate_limit_per_minute", "must be at least 1"));
        }
        if limits.typing_rate_limit_per_minute == 0 {
            return Err(self.invalid(
                "relay",
                None,
                "typing_rate_limit_per_minute",
                "must be at least 1",
            ));
        }
        if limits.max_image_bytes > limits.max_payload_bytes {
            return Err(self.invalid(
                "relay",
                None,
                "max_image_bytes",
                "must not exceed max_payload_bytes",
            ));
        }
        Ok(limits)
    }

    fn group(&self, i: usize, g: &RawGroup) -> Result<Group, ScenarioError> {
        let at = Some(i);
        let role = match g.role.as_str() {
            "operator" => BotRole::Operator,
            "client" => BotRole::Client,
            "supervisor" => BotRole::Supervisor,
            other => {
                return Err(self.invalid(
                    "bots",
                    at,
                    "role",
                    &format!("{other:?} is not one of operator, client, supervisor"),
                ));
            }
        };
        if g.count == 0 {
            return Err(self.invalid("bots", at, "count", "must be at least 1"));
        }
        let tabs = g.tabs.unwrap_or(1);
        if tabs == 0 || tabs > 16 {
            return Err(self.invalid("bots", at, "tabs", "must be 1 to 16"));
        }
        if tabs > 1 && role == BotRole::Client {
            return Err(self.invalid(
                "bots",
                at,
                "tabs",
                "visitors have one socket; tabs is for operators",
            ));
        }
        let rate = g
            .messages_per_minute
            .unwrap_or(if role == BotRole::Supervisor {
                0.0
            } else {
                2.0
            });
        if !(0.0..=60_000.0).contains(&rate) || rate.is_nan() {
            return Err(self.invalid("bots", at, "messages_per_minute", "must be 0 to 60000"));
        }
        if role == BotRole::Supervisor && rate > 0.0 {
            return Err(self.invalid(
                "bots",
                at,
                "messages_per_minute",
                "supervisors only watch: use 0",
            ));
        }
        let think_time = match g.think_time.as_deref().unwrap_or("exponential") {
            "exponential" => ThinkTime::Exponential,
            "constant" => ThinkTime::Constant,
            "uniform" => ThinkTime::Uniform,
            other => {
                return Err(self.invalid(
                    "bots",
                    at,
                    "think_time",
                    &format!("{other:?} is not one of exponential, constant, uniform"),
                ));
            }
        };
        let text_length = self.range(
            at,
            "text_length",
            g.text_length.as_ref(),
            Range { min: 10, max: 120 },
            1,
            10_000,
        )?;
        let image_bytes = self.range(
            at,
            "image_bytes",
            g.image_bytes.as_ref(),
            Range {
                min: 1_000,
                max: 20_000,
            },
            16,
            10_000_000,
        )?;
        let fraction = |field: &str, v: Option<f64>| -> Result<f64, ScenarioError> {
            let v = v.unwrap_or(0.0);
            if (0.0..=1.0).contains(&v) {
                Ok(v)
            } else {
                Err(self.invalid("bots", at, field, "must be between 0 and 1"))
            }
        };
        let markup_fraction = fraction("markup_fraction", g.markup_fraction)?;
        let image_fraction = fraction("image_fraction", g.image_fraction)?;
        let typing_probability = fraction("typing_probability", g.typing_probability)?;
        let ramp_up = match &g.ramp_up {
            Some(d) => self.duration("bots", at, "ramp_up", d)?,
            None => Duration::ZERO,
        };
        let lifetime = match &g.lifetime {
            Some(d) => {
                let l = self.duration("bots", at, "lifetime", d)?;
                if l < Duration::from_millis(500) {
                    return Err(self.invalid("bots", at, "lifetime", "must be at least 500ms"));
                }
                Some(l)
            }
            None => None,
        };
        if g.reconnects.is_some() && lifetime.is_none() {
            return Err(self.invalid("bots", at, "reconnects", "needs a lifetime"));
        }
        Ok(Group {
            name: g
                .name
                .clone()
                .unwrap_or_else(|| format!("{}-{i}", role.as_str())),
            role,
            count: g.count,
            tabs,
            ramp_up,
            messages_per_minute: rate,
            think_time,
            text_length,
            markup_fraction,
            image_fraction,
            image_bytes,
            typing_probability,
            lifetime,
            reconnects: g.reconnects.unwrap_or(0),
        })
    }

    fn range(
        &self,
        at: Option<usize>,
        field: &str,
        raw: Option<&RawRange>,
        default: Range,
        lo: u32,
        hi: u32,
    ) -> Result<Range, ScenarioError> {
        let Some(r) = raw else { return Ok(default) };
        if r.min > r.max || r.min < lo || r.max > hi {
            return Err(self.invalid(
                "bots",
                at,
                field,
                &format!("needs {lo} <= min <= max <= {hi}"),
            ));
        }
        Ok(Range {
            min: r.min,
            max: r.max,
        })
    }

    fn thresholds(&self, table: &toml::Table) -> Result<Vec<Threshold>, ScenarioError> {
        let mut flat = BTreeMap::new();
        flatten("", table, &mut flat);
        flat.into_iter()
            .map(|(metric, value)| {
                let key = metric.rsplit('.').next().unwrap_or(&metric).to_owned();
                let limit = match value {
                    toml::Value::Integer(i) => i as f64,
                    toml::Value::Float(f) => f,
                    _ => {
                        return Err(self.invalid(
                            "thresholds",
                            None,
                            &key,
                            &format!("`{metric}` must be a number"),
                        ));
                    }
                };
                let (metric, at_least) = match metric.strip_suffix(".min") {
                    Some(base) if is_known_metric(base) => (base.to_owned(), true),
                    _ => match metric.strip_suffix(".max") {
                        Some(base) if is_known_metric(base) => (base.to_owned(), false),
                        _ => (metric, false),
                    },
                };
                if !is_known_metric(&metric) {
                    let (line, column) = locate(self.source, "thresholds", None, &key);
                    return Err(ScenarioError::Invalid {
                        file: self.path.to_owned(),
                        line,
                        column,
                        field: format!("thresholds.{metric}"),
                        message: format!(
                            "unknown metric `{metric}` (see the README's list of metrics)"
                        ),
                    });
                }
                Ok(Threshold {
                    metric,
                    limit,
                    at_least,
                })
            })
            .collect()
    }

    fn duration(
        &self,
        table: &str,
        at: Option<usize>,
        field: &str,
        s: &str,
    ) -> Result<Duration, ScenarioError> {
        humantime::parse_duration(s).map_err(|e| {
            self.invalid(
                table,
                at,
                field,
                &format!("{s:?} is not a duration like 30s or 2m: {e}"),
            )
        })
    }

    fn invalid(
        &self,
        table: &str,
        index: Option<usize>,
        key: &str,
        message: &str,
    ) -> ScenarioError {
        let (line, column) = locate(self.source, table, index, key);
        let field = match index {
            Some(i) => format!("{table}[{i}].{key}"),
            None => format!("{table}.{key}"),
        };
        ScenarioError::Invalid {
            file: self.path.to_owned(),
            line,
            column,
            field,
            message: message.to_owned(),
        }
    }
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, toml::Value>) {
    for (k, v) in table {
        let name = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&name, t, out),
            other => {
                out.insert(name, other.clone());
            }
        }
    }
}

fn check_url(u: &str) -> Result<(), String> {
    wire::Endpoint::parse(u).map(|_| ())
}

/// 1-based line and column of byte `offset`.
fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Where `key` is written inside `[table]` (or the `index`-th `[[table]]`); the table header
/// when the key is absent; line 1 when the table is too.
fn locate(source: &str, table: &str, index: Option<usize>, key: &str) -> (usize, usize) {
    let mut current: Option<(String, usize)> = None;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut header_line = None;
    for (n, line) in source.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(h) = trimmed
            .strip_prefix("[[")
            .and_then(|r| r.split_once("]]"))
            .map(|(h, _)| h.trim())
        {
            let count = seen.entry(h.to_owned()).or_insert(0);
            current = Some((h.to_owned(), *count));
            *count += 1;
        } else if let Some(h) = trimmed
            .strip_prefix('[')
            .and_then(|r| r.split_once(']'))
            .map(|(h, _)| h.trim())
        {
            current = Some((h.to_owned(), 0));
        } else if let Some((name, i)) = &current {
            let here = name == table || name.starts_with(&format!("{table}."));
            if here && index.is_none_or(|want| want == *i) {
                let k = trimmed
                    .split('=')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .trim_matches('"');
                if k == key || k.ends_with(&format!(".{key}")) {
                    return (n + 1, line.len() - trimmed.len() + 1);
                }
            }
            continue;
        } else {
            continue;
        }
        if let Some((name, i)) = &current
            && name == table
            && index.is_none_or(|want| want == *i)
            && header_line.is_none()
        {
            header_line = Some(n + 1);
        }
    }
    (header_line.unwrap_or(1), 1)
}

#[cfg(test)]
mod tests {
    use super::*;

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

[thresholds]
lost = 0
fanout.p99_ms = 50
"#;

    fn err(src: &str) -> String {
        parse(Path::new("s.toml"), src)
            .expect_err("invalid")
            .to_string()
    }

    #[test]
    fn parses_and_normalizes() {
        let plan = parse(Path::new("s.toml"), GOOD).expect("valid");
        assert_eq!(plan.groups.len(), 2);
        assert_eq!(plan.groups[0].tabs, 2);
        assert_eq!(plan.groups[1].messages_per_minute, 6.0);
        assert_eq!(plan.target, Target::Embedded);
        assert_eq!(plan.peak_sockets(), 14);
        let metrics: Vec<&str> = plan.thresholds.iter().map(|t| t.metric.as_str()).collect();
        assert_eq!(metrics, ["fanout.p99_ms", "lost"]);
    }

    #[test]
    fn unknown_field_names_line_and_column() {
        let src = GOOD.replace("tabs = 2", "tabz = 2");
        let e = err(&src);
        assert!(e.starts_with("s.toml:10:1:"), "{e}");
        assert!(e.contains("tabz"), "{e}");
    }

    #[test]
    fn wrong_type_names_line() {
        let e = err(&GOOD.replace("count = 10", "count = \"ten\""));
        assert!(e.starts_with("s.toml:14:"), "{e}");
    }

    #[test]
    fn invalid_values_name_file_line_and_field() {
        let e = err(&GOOD.replace("count = 10", "count = 0"));
        assert!(e.starts_with("s.toml:14:1: `bots[1].count`"), "{e}");
        let e = err(&GOOD.replace("role = \"client\"", "role = \"admin\""));
        assert!(e.starts_with("s.toml:13:1: `bots[1].role`"), "{e}");
        let e = err(&GOOD.replace("duration = \"5s\"", "duration = \"soon\""));
        assert!(e.starts_with("s.toml:5:1: `scenario.duration`"), "{e}");
    }

    #[test]
    fn unknown_threshold_metric_is_an_error() {
        let e = err(&GOOD.replace("lost = 0", "lots = 0"));
        assert!(e.contains("unknown metric `lots`"), "{e}");
        assert!(e.starts_with("s.toml:18:1:"), "{e}");
    }

    #[test]
    fn external_target_needs_a_proper_url() {
        let src = format!("{GOOD}\n[target]\nurl = \"127.0.0.1:3001\"\njwt_secret = \"x\"\n");
        let e = err(&src);
        assert!(e.contains("`target.url`"), "{e}");
        let src =
            format!("{GOOD}\n[target]\nurl = \"http://127.0.0.1:3001/chat\"\njwt_secret = \"x\"\n");
        let plan = parse(Path::new("s.toml"), &src).expect("valid");
        assert!(matches!(plan.target, Target::External { .. }));
    }
}
