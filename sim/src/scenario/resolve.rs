//! From the spanned file and the command line's overrides to one validated [`Plan`]:
//! defaults filled in, every value checked once, the default gate added.

use std::ops::Range as Span;
use std::path::Path;
use std::time::Duration;

use reports::model::{Counter, Violation};
use serde::Deserialize;
use toml::Spanned;
use toml::de::DeTable;

use super::locate::{field_at, line_col};
use super::raw::{Bound, RawGroup, RawLimits, RawRange, RawScenario, Thresholds};
use super::{
    ATTACKS_SUCCEEDED, Adversary, BotRole, Burst, Group, Limits, Overrides, Plan, Range,
    ScenarioError, ThinkTime, Threshold,
};
use crate::metrics::is_known_metric;

/// Drain after sending when the scenario names none.
const DEFAULT_DRAIN: Duration = Duration::from_secs(3);

pub(super) fn resolve(path: &Path, source: &str, o: &Overrides) -> Result<Plan, ScenarioError> {
    let r = Resolver { path, source };
    let root = DeTable::parse(source).map_err(|e| r.toml_error(None, &e))?;
    let raw = RawScenario::deserialize(toml::de::Deserializer::from(root.clone()))
        .map_err(|e| r.toml_error(Some(&root), &e))?;
    r.plan(raw, o)
}

pub(super) struct Resolver<'a> {
    pub(super) path: &'a Path,
    source: &'a str,
}

/// What an image message adds to its image's base64: the data URL's prefix, the other
/// fields, the event's name and framing.
const PAYLOAD_OVERHEAD: usize = 1024;

impl Resolver<'_> {
    /// A parser or serde error, with the field found at its position.
    fn toml_error(
        &self,
        root: Option<&Spanned<DeTable<'_>>>,
        e: &toml::de::Error,
    ) -> ScenarioError {
        let at = e.span().map_or(0, |s| s.start);
        let (line, column) = line_col(self.source, at);
        let field = root.and_then(|root| field_at(root, at));
        match field {
            Some(field) => ScenarioError::Invalid {
                file: self.path.to_owned(),
                line,
                column,
                field,
                message: e.message().to_owned(),
            },
            None => ScenarioError::Syntax {
                file: self.path.to_owned(),
                line,
                column,
                message: e.message().to_owned(),
            },
        }
    }

    pub(super) fn err(
        &self,
        span: Span<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ScenarioError {
        let (line, column) = line_col(self.source, span.start);
        ScenarioError::Invalid {
            file: self.path.to_owned(),
            line,
            column,
            field: field.into(),
            message: message.into(),
        }
    }

    fn plan(&self, raw: RawScenario, o: &Overrides) -> Result<Plan, ScenarioError> {
        let meta_span = raw.scenario.span();
        let meta = raw.scenario.into_inner();
        if meta.name.get_ref().trim().is_empty() {
            return Err(self.err(meta.name.span(), "scenario.name", "must not be empty"));
        }
        let duration = match o.duration {
            Some(d) if d.is_zero() => {
                return Err(ScenarioError::Override(
                    "--duration must be more than 0s".into(),
                ));
            }
            Some(d) => d,
            None => {
                let d = meta.duration.get_ref().0;
                if d.is_zero() {
                    return Err(self.err(
                        meta.duration.span(),
                        "scenario.duration",
                        "must be more than 0s",
                    ));
                }
                d
            }
        };
        let drain = meta.drain.map_or(DEFAULT_DRAIN, |d| d.get_ref().0);
        let target = self.target(raw.target, o)?;
        let mut warnings = Vec::new();
        let (section, mut raw_limits) = match (raw.limits, raw.relay) {
            (Some(_), Some(old)) => {
                return Err(self.err(
                    old.span(),
                    "relay",
                    "is the old name of [limits]: keep one of them",
                ));
            }
            (Some(l), None) => ("limits", l.into_inner()),
            (None, Some(old)) => {
                let (line, _) = super::locate::line_col(self.source, old.span().start);
                warnings.push(format!(
                    "{}:{line}: [relay] is deprecated: rename it [limits] (the same fields; \
                     they are the target's limits, whichever backend runs)",
                    self.path.display()
                ));
                ("relay", old.into_inner())
            }
            (None, None) => ("limits", RawLimits::default()),
        };
        let cors_origin = self.origins(section, std::mem::take(&mut raw_limits.cors_origin))?;
        let limits = self.limits(section, raw_limits)?;
        let scale = match o.scale {
            Some(s) if !(s.is_finite() && s > 0.0 && s <= 1000.0) => {
                return Err(ScenarioError::Override(format!(
                    "--scale {s}: needs 0 < scale <= 1000"
                )));
            }
            s => s.unwrap_or(1.0),
        };
        let mut groups = Vec::new();
        let mut adversary: Option<Adversary> = None;
        for (i, g) in raw
            .bots
            .map(Spanned::into_inner)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let role = *g.get_ref().role.get_ref();
            match role.chat() {
                Some(chat) => groups.push(self.group(i, g, chat, scale, &limits)?),
                None if adversary.is_some() => {
                    let span = g.get_ref().role.span();
                    return Err(self.err(
                        span,
                        format!("bots[{i}].role"),
                        "one adversary group per scenario: list every attack in it",
                    ));
                }
                None => adversary = Some(self.adversary(i, g.into_inner())?),
            }
        }
        if groups.is_empty() {
            return Err(self.err(
                meta_span,
                "bots",
                "a scenario needs at least one [[bots]] group of operators, supervisors or visitors",
            ));
        }
        let thresholds =
            self.thresholds(raw.thresholds.unwrap_or_default(), adversary.is_some())?;
        let reconnect = self.reconnect(raw.reconnect)?;
        let faults = self.faults(raw.faults, &target, duration)?;
        let network = self.network(raw.network)?;
        let capacity = self.capacity(raw.capacity, duration)?;
        Ok(Plan {
            file: self.path.to_owned(),
            name: meta.name.into_inner(),
            description: meta.description,
            duration,
            drain,
            seed: o.seed.or(meta.seed).unwrap_or(1),
            target,
            limits,
            cors_origin,
            groups,
            adversary,
            thresholds,
            reconnect,
            faults,
            network,
            capacity,
            warnings,
        })
    }

    /// `[limits] cors_origin`: each like `https://chat.example[:port]`, or `*`.
    fn origins(
        &self,
        section: &str,
        raw: Vec<Spanned<String>>,
    ) -> Result<Vec<String>, ScenarioError> {
        raw.into_iter()
            .enumerate()
            .map(|(i, o)| {
                let text = o.get_ref();
                let ok = text == "*"
                    || ["http://", "https://"].iter().any(|p| {
                        text.strip_prefix(p)
                            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
                    });
                if ok {
                    Ok(text.clone())
                } else {
                    Err(self.err(
                        o.span(),
                        format!("{section}.cors_origin[{i}]"),
                        format!("{text:?} is not an origin like https://chat.example or *"),
                    ))
                }
            })
            .collect()
    }

    fn limits(&self, section: &str, raw: RawLimits) -> Result<Limits, ScenarioError> {
        let field = |name: &str| format!("{section}.{name}");
        let at_least_one = |v: &Option<Spanned<u32>>, field: String, default: u32| match v {
            Some(s) if *s.get_ref() == 0 => Err(self.err(s.span(), field, "must be at least 1")),
            Some(s) => Ok(*s.get_ref()),
            None => Ok(default),
        };
        let limits = Limits {
            rate_limit_per_minute: at_least_one(
                &raw.rate_limit_per_minute,
                field("rate_limit_per_minute"),
                relay::config::DEFAULT_RATE_LIMIT,
            )?,
            typing_rate_limit_per_minute: at_least_one(
                &raw.typing_rate_limit_per_minute,
                field("typing_rate_limit_per_minute"),
                relay::config::DEFAULT_TYPING_RATE_LIMIT,
            )?,
            max_payload_bytes: raw
                .max_payload_bytes
                .unwrap_or(relay::config::DEFAULT_MAX_PAYLOAD),
            max_image_bytes: raw
                .max_image_bytes
                .as_ref()
                .map_or(relay::config::DEFAULT_MAX_IMAGE, |s| *s.get_ref()),
        };
        if let Some(s) = &raw.max_image_bytes
            && limits.max_image_bytes > limits.max_payload_bytes
        {
            return Err(self.err(
                s.span(),
                field("max_image_bytes"),
                "must not exceed max_payload_bytes",
            ));
        }
        Ok(limits)
    }

    fn group(
        &self,
        i: usize,
        g: Spanned<RawGroup>,
        role: BotRole,
        scale: f64,
        limits: &Limits,
    ) -> Result<Group, ScenarioError> {
        let g_span = g.span();
        let g = g.into_inner();
        let f = |name: &str| format!("bots[{i}].{name}");
        if let Some(a) = &g.attacks {
            return Err(self.err(a.span(), f("attacks"), "only adversary groups attack"));
        }
        if let Some(m) = &g.memory_bound_mib {
            return Err(self.err(
                m.span(),
                f("memory_bound_mib"),
                "only adversary groups have a memory bound",
            ));
        }
        if *g.count.get_ref() == 0 {
            return Err(self.err(g.count.span(), f("count"), "must be at least 1"));
        }
        let count = ((f64::from(*g.count.get_ref()) * scale).round() as u32).max(1);
        let tabs = match &g.tabs {
            Some(t) if !(1..=16).contains(t.get_ref()) => {
                return Err(self.err(t.span(), f("tabs"), "must be 1 to 16"));
            }
            Some(t) if *t.get_ref() > 1 && role == BotRole::Client => {
                return Err(self.err(
                    t.span(),
                    f("tabs"),
                    "visitors have one socket; tabs is for operators",
                ));
            }
            Some(t) => *t.get_ref(),
            None => 1,
        };
        let default_rate = if role == BotRole::Supervisor {
            0.0
        } else {
            2.0
        };
        let rate = match &g.messages_per_minute {
            Some(r) if !(0.0..=60_000.0).contains(r.get_ref()) => {
                return Err(self.err(r.span(), f("messages_per_minute"), "must be 0 to 60000"));
            }
            Some(r) if role == BotRole::Supervisor && *r.get_ref() > 0.0 => {
                return Err(self.err(
                    r.span(),
                    f("messages_per_minute"),
                    "supervisors only watch: use 0",
                ));
            }
            Some(r) => *r.get_ref(),
            None => default_rate,
        };
        let burst = match &g.burst {
            Some(b) if role == BotRole::Supervisor => {
                return Err(self.err(b.span(), f("burst"), "supervisors only watch"));
            }
            Some(b) if !(1..=100).contains(&b.get_ref().size) => {
                return Err(self.err(b.span(), f("burst.size"), "must be 1 to 100"));
            }
            Some(b) if b.get_ref().every.0 < Duration::from_millis(100) => {
                return Err(self.err(b.span(), f("burst.every"), "must be at least 100ms"));
            }
            Some(b) => Some(Burst {
                size: b.get_ref().size,
                every: b.get_ref().every.0,
            }),
            None => None,
        };
        let text_length = self.range(
            &g.text_length,
            f("text_length"),
            Range { min: 10, max: 120 },
            (1, 10_000),
        )?;
        let image_bytes = self.range(
            &g.image_bytes,
            f("image_bytes"),
            Range {
                min: 1_000,
                max: 20_000,
            },
            (16, 10_000_000),
        )?;
        let fraction = |v: &Option<Spanned<f64>>, name: &str| match v {
            Some(x) if !(0.0..=1.0).contains(x.get_ref()) => {
                Err(self.err(x.span(), f(name), "must be between 0 and 1"))
            }
            Some(x) => Ok(*x.get_ref()),
            None => Ok(0.0),
        };
        let image_fraction = fraction(&g.image_fraction, "image_fraction")?;
        // what the bots send must be within the limits the target is expected to keep: a
        // refusal of a payload over them would be right, and reported as `refused`
        if image_fraction > 0.0 {
            let span = g.image_bytes.as_ref().map_or(g_span.clone(), |r| r.span());
            let max = image_bytes.max as usize;
            let encoded = max.div_ceil(3) * 4 + PAYLOAD_OVERHEAD;
            if max > limits.max_image_bytes {
                return Err(self.err(
                    span,
                    f("image_bytes"),
                    format!(
                        "sends images up to {} bytes, over limits.max_image_bytes ({}): the \
                         target would rightly refuse them",
                        image_bytes.max, limits.max_image_bytes
                    ),
                ));
            }
            if encoded > limits.max_payload_bytes {
                return Err(self.err(
                    span,
                    f("image_bytes"),
                    format!(
                        "images of {} bytes make events of about {encoded} bytes (base64), over \
                         limits.max_payload_bytes ({}): the target would rightly refuse them",
                        image_bytes.max, limits.max_payload_bytes
                    ),
                ));
            }
        }
        let lifetime = match &g.lifetime {
            Some(l) if l.get_ref().0 < Duration::from_millis(500) => {
                return Err(self.err(l.span(), f("lifetime"), "must be at least 500ms"));
            }
            l => l.as_ref().map(|l| l.get_ref().0),
        };
        if lifetime.is_none()
            && let Some(r) = &g.reconnects
        {
            return Err(self.err(r.span(), f("reconnects"), "needs a lifetime"));
        }
        Ok(Group {
            name: g.name.unwrap_or_else(|| format!("{}-{i}", role.as_str())),
            role,
            count,
            tabs,
            transport: g.transport.unwrap_or_default(),
            ramp_up: g.ramp_up.map_or(Duration::ZERO, |d| d.0),
            messages_per_minute: rate,
            think_time: g.think_time.unwrap_or(ThinkTime::Exponential),
            burst,
            text_length,
            markup_fraction: fraction(&g.markup_fraction, "markup_fraction")?,
            image_fraction,
            image_bytes,
            typing_probability: fraction(&g.typing_probability, "typing_probability")?,
            lifetime,
            offline: g.offline.map_or(Duration::ZERO, |d| d.0),
            reconnects: g.reconnects.map_or(0, |r| *r.get_ref()),
        })
    }

    fn range(
        &self,
        raw: &Option<Spanned<RawRange>>,
        field: String,
        default: Range,
        (lo, hi): (u32, u32),
    ) -> Result<Range, ScenarioError> {
        let Some(r) = raw else { return Ok(default) };
        let RawRange { min, max } = *r.get_ref();
        if min > max || min < lo || max > hi {
            return Err(self.err(r.span(), field, format!("needs {lo} <= min <= max <= {hi}")));
        }
        Ok(Range { min, max })
    }

    /// The scenario's thresholds, then every violation class it leaves unbounded at 0,
    /// and `connect.failed` at 0: a run with no `[thresholds]` still fails on a violation.
    fn thresholds(
        &self,
        raw: Thresholds,
        adversary: bool,
    ) -> Result<Vec<Threshold>, ScenarioError> {
        let mut out = Vec::new();
        for (name, value) in raw.0 {
            let span = value.span();
            let field = format!("thresholds.{name}");
            let limit = match value.into_inner() {
                Bound::Number(n) => n,
                Bound::NotANumber => return Err(self.err(span, field, "must be a number")),
            };
            let (metric, at_least) = match name.strip_suffix(".min") {
                Some(base) if is_known_metric(base) => (base.to_owned(), true),
                _ => match name.strip_suffix(".max") {
                    Some(base) if is_known_metric(base) => (base.to_owned(), false),
                    _ => (name, false),
                },
            };
            if !is_known_metric(&metric) {
                return Err(self.err(
                    span,
                    field,
                    format!(
                        "unknown metric `{metric}` (see docs/simulator.md for the list of metrics)"
                    ),
                ));
            }
            out.push(Threshold {
                metric,
                limit,
                at_least,
                implicit: false,
            });
        }
        let gate = Violation::ALL
            .iter()
            .map(|v| v.name())
            .chain([Counter::ConnectFailed.name(), Counter::FaultsFailed.name()])
            .chain(adversary.then_some(ATTACKS_SUCCEEDED));
        for metric in gate {
            if !out.iter().any(|t| t.metric == metric && !t.at_least) {
                out.push(Threshold {
                    metric: metric.to_owned(),
                    limit: 0.0,
                    at_least: false,
                    implicit: true,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
