//! The scenario file as serde reads it: strict (`deny_unknown_fields`), enums for closed
//! sets, every value that a later check may reject wrapped in `Spanned` so the error can
//! point at it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use toml::Spanned;

use super::{BotRole, ThinkTime};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScenario {
    pub scenario: Spanned<RawMeta>,
    #[serde(default)]
    pub target: Option<Spanned<RawTarget>>,
    #[serde(default)]
    pub limits: Option<Spanned<RawLimits>>,
    /// The old name of `[limits]`.
    #[serde(default)]
    pub relay: Option<Spanned<RawLimits>>,
    #[serde(default)]
    pub bots: Option<Spanned<Vec<Spanned<RawGroup>>>>,
    #[serde(default)]
    pub thresholds: Option<Thresholds>,
    #[serde(default)]
    pub reconnect: Option<Spanned<RawReconnect>>,
    #[serde(default)]
    pub faults: Vec<Spanned<RawFault>>,
    #[serde(default)]
    pub network: Option<Spanned<RawNetwork>>,
    #[serde(default)]
    pub capacity: Option<Spanned<super::capacity::RawCapacity>>,
}

/// `[network]`: toxics every connection of the run passes through.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNetwork {
    #[serde(default)]
    pub toxics: Vec<Spanned<RawToxic>>,
}

/// One toxic, Toxiproxy's way: `type`, `stream`, `toxicity` and the type's attributes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawToxic {
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    #[serde(default)]
    pub stream: Option<Spanned<String>>,
    #[serde(default)]
    pub toxicity: Option<Spanned<f64>>,
    #[serde(default)]
    pub latency: Option<HumanDuration>,
    #[serde(default)]
    pub jitter: Option<HumanDuration>,
    #[serde(default)]
    pub rate_kib: Option<Spanned<u64>>,
    #[serde(default)]
    pub average_size: Option<Spanned<usize>>,
    #[serde(default)]
    pub size_variation: Option<usize>,
    #[serde(default)]
    pub delay: Option<HumanDuration>,
    #[serde(default)]
    pub bytes: Option<Spanned<u64>>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
}

/// `[reconnect]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReconnect {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub delay: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    pub max_delay: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    pub randomization: Option<Spanned<f64>>,
}

/// `[[faults]]`: an instant and exactly one action.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFault {
    pub at: Spanned<HumanDuration>,
    #[serde(default)]
    pub kill_relay: Option<Spanned<u32>>,
    #[serde(default)]
    pub restart_relay: Option<Spanned<u32>>,
    #[serde(default)]
    pub restart_redis: Option<Spanned<bool>>,
    #[serde(default)]
    pub command: Option<Spanned<String>>,
    #[serde(default)]
    pub restart: Option<Spanned<String>>,
    #[serde(default)]
    pub node: Option<Spanned<u32>>,
    #[serde(default)]
    pub network_outage: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    pub toxic: Option<Spanned<RawToxic>>,
    #[serde(default)]
    pub lasting: Option<Spanned<HumanDuration>>,
}

/// `[scenario]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMeta {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: String,
    pub duration: Spanned<HumanDuration>,
    #[serde(default)]
    pub drain: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    pub seed: Option<u64>,
}

/// `[target]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTarget {
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    #[serde(default)]
    pub urls: Vec<Spanned<String>>,
    #[serde(default)]
    pub jwt_secret: Option<String>,
    #[serde(default)]
    pub jwt_secret_env: Option<Spanned<String>>,
    #[serde(default)]
    pub jwt_private_key_file: Option<Spanned<String>>,
    #[serde(default)]
    pub tokens_file: Option<Spanned<String>>,
    #[serde(default)]
    pub token_command: Option<Spanned<String>>,
    #[serde(default)]
    pub namespace: Option<Spanned<String>>,
    #[serde(default)]
    pub relays: Option<Spanned<u32>>,
    #[serde(default)]
    pub process: Option<Spanned<bool>>,
    #[serde(default)]
    pub ca_file: Option<Spanned<String>>,
    #[serde(default)]
    pub insecure: Option<Spanned<bool>>,
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
}

/// `[limits]` (formerly `[relay]`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    #[serde(default)]
    pub rate_limit_per_minute: Option<Spanned<u32>>,
    #[serde(default)]
    pub typing_rate_limit_per_minute: Option<Spanned<u32>>,
    #[serde(default)]
    pub max_payload_bytes: Option<usize>,
    #[serde(default)]
    pub max_image_bytes: Option<Spanned<usize>>,
    #[serde(default)]
    pub cors_origin: Vec<Spanned<String>>,
}

/// `{ min = .., max = .. }`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRange {
    pub min: u32,
    pub max: u32,
}

/// `burst = { size = .., every = ".." }`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBurst {
    pub size: u32,
    pub every: HumanDuration,
}

/// One `[[bots]]` group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroup {
    #[serde(default)]
    pub name: Option<String>,
    pub role: Spanned<RawRole>,
    pub count: Spanned<u32>,
    #[serde(default)]
    pub tabs: Option<Spanned<u32>>,
    #[serde(default)]
    pub transport: Option<wire::Transport>,
    #[serde(default)]
    pub ramp_up: Option<HumanDuration>,
    #[serde(default)]
    pub messages_per_minute: Option<Spanned<f64>>,
    #[serde(default)]
    pub think_time: Option<ThinkTime>,
    #[serde(default)]
    pub burst: Option<Spanned<RawBurst>>,
    #[serde(default)]
    pub text_length: Option<Spanned<RawRange>>,
    #[serde(default)]
    pub markup_fraction: Option<Spanned<f64>>,
    #[serde(default)]
    pub image_fraction: Option<Spanned<f64>>,
    #[serde(default)]
    pub image_bytes: Option<Spanned<RawRange>>,
    #[serde(default)]
    pub typing_probability: Option<Spanned<f64>>,
    #[serde(default)]
    pub lifetime: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    pub offline: Option<HumanDuration>,
    #[serde(default)]
    pub reconnects: Option<Spanned<u32>>,
    #[serde(default)]
    pub attacks: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub memory_bound_mib: Option<Spanned<u32>>,
}

/// A group's role as written: the chat's roles, or the adversary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawRole {
    Operator,
    Client,
    Supervisor,
    Adversary,
}

impl RawRole {
    /// The chat role; `None` for the adversary.
    pub fn chat(self) -> Option<BotRole> {
        match self {
            RawRole::Operator => Some(BotRole::Operator),
            RawRole::Client => Some(BotRole::Client),
            RawRole::Supervisor => Some(BotRole::Supervisor),
            RawRole::Adversary => None,
        }
    }
}

/// A duration written as humantime text (`"30s"`, `"2m"`, `"250ms"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(HumanDuration)
            .map_err(|e| {
                de::Error::custom(format!("{text:?} is not a duration like 30s or 2m: {e}"))
            })
    }
}

/// `[thresholds]`, flattened: dotted metric name → bound, each with the span of its value.
/// Tables nest (`fanout.p99_ms = 5` is `fanout = { p99_ms = 5 }`), so names are joined back.
#[derive(Debug, Default)]
pub(super) struct Thresholds(pub BTreeMap<String, Spanned<Bound>>);

/// A threshold's number, or a note that it was not one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Bound {
    /// The bound.
    Number(f64),
    /// Not a number: reported with the metric's name.
    NotANumber,
}

impl<'de> Deserialize<'de> for Thresholds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut out = BTreeMap::new();
        d.deserialize_map(Flatten {
            prefix: String::new(),
            out: &mut out,
        })?;
        Ok(Thresholds(out))
    }
}

struct Flatten<'a> {
    prefix: String,
    out: &'a mut BTreeMap<String, Spanned<Bound>>,
}

impl<'de> Visitor<'de> for Flatten<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table of metric = number")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            let name = if self.prefix.is_empty() {
                key
            } else {
                format!("{}.{key}", self.prefix)
            };
            let entry: Spanned<Entry> = map.next_value()?;
            let span = entry.span();
            match entry.into_inner() {
                Entry::Leaf(b) => {
                    self.out.insert(name, Spanned::new(span, b));
                }
                Entry::Table(nested) => {
                    for (k, v) in nested {
                        self.out.insert(format!("{name}.{k}"), v);
                    }
                }
            }
        }
        Ok(())
    }
}

/// One value inside `[thresholds]`: a number, or a nested table.
enum Entry {
    Leaf(Bound),
    Table(BTreeMap<String, Spanned<Bound>>),
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EntryVisitor)
    }
}

struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = Entry;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number or a table")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Entry, E> {
        Ok(Entry::Leaf(Bound::Number(v as f64)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Entry, E> {
        Ok(Entry::Leaf(Bound::Number(v as f64)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Entry, E> {
        Ok(Entry::Leaf(Bound::Number(v)))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Entry, E> {
        Ok(Entry::Leaf(Bound::NotANumber))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Entry, E> {
        Ok(Entry::Leaf(Bound::NotANumber))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Entry, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(Entry::Leaf(Bound::NotANumber))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Entry, A::Error> {
        let mut nested = BTreeMap::new();
        Flatten {
            prefix: String::new(),
            out: &mut nested,
        }
        .visit_map(map)?;
        Ok(Entry::Table(nested))
    }
}
