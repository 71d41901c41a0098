//! `[network]` and network `[[faults]]`: the toxics of the simulator's fault proxy, in
//! Toxiproxy's vocabulary (type, stream, toxicity and each type's attributes).

use std::time::Duration;

use toml::Spanned;

use super::ScenarioError;
use super::raw::RawToxic;
use super::resolve::Resolver;

/// Which way a toxic acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Bots → target.
    Upstream,
    /// Target → bots.
    Downstream,
    /// Both ways.
    Both,
}

impl Stream {
    /// True when the toxic acts on bytes going to the target (`upstream`) or not.
    pub fn covers(self, upstream: bool) -> bool {
        match self {
            Stream::Both => true,
            Stream::Upstream => upstream,
            Stream::Downstream => !upstream,
        }
    }
}

/// What a toxic does to the bytes of a connection it applies to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ToxicKind {
    /// Each chunk waits `latency` ± `jitter` (order kept).
    Latency {
        /// Added delay.
        latency: Duration,
        /// Uniform spread around it.
        jitter: Duration,
    },
    /// At most this many bytes per second.
    Bandwidth {
        /// Bytes per second.
        bytes_per_s: u64,
    },
    /// Chunks split into pieces of `average_size` ± `size_variation` bytes, `delay` apart:
    /// frames cross TCP segments.
    Slicer {
        /// Mean piece size.
        average_size: usize,
        /// Spread of piece sizes.
        size_variation: usize,
        /// Wait between pieces.
        delay: Duration,
    },
    /// The connection is closed once this many bytes went through: cut mid-frame.
    LimitData {
        /// Bytes let through.
        bytes: u64,
    },
    /// The connection is reset (TCP RST) this long after it opened.
    ResetPeer {
        /// Time before the reset.
        timeout: Duration,
    },
    /// Nothing goes through any more (half-open); closed after `timeout`, or never if 0.
    Timeout {
        /// Time before closing; zero: never.
        timeout: Duration,
    },
    /// A close waits this long before it is passed on.
    SlowClose {
        /// Delay of the close.
        delay: Duration,
    },
}

/// One toxic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Toxic {
    /// What it does.
    pub kind: ToxicKind,
    /// Which way.
    pub stream: Stream,
    /// Share of connections it applies to, 0 to 1.
    pub toxicity: f64,
}

impl Resolver<'_> {
    /// One toxic at `field` (e.g. `network.toxics[2]`).
    pub(super) fn toxic(
        &self,
        field: &str,
        raw: Spanned<RawToxic>,
    ) -> Result<Toxic, ScenarioError> {
        let span = raw.span();
        let t = raw.into_inner();
        let f = |name: &str| format!("{field}.{name}");
        let stream = match t.stream.as_ref().map(|s| (s.get_ref().as_str(), s.span())) {
            None | Some(("both", _)) => Stream::Both,
            Some(("upstream", _)) => Stream::Upstream,
            Some(("downstream", _)) => Stream::Downstream,
            Some((other, span)) => {
                return Err(self.err(
                    span,
                    f("stream"),
                    format!("{other:?}: one of upstream, downstream, both"),
                ));
            }
        };
        let toxicity = match &t.toxicity {
            Some(x) if !(0.0..=1.0).contains(x.get_ref()) => {
                return Err(self.err(x.span(), f("toxicity"), "must be 0 to 1"));
            }
            Some(x) => *x.get_ref(),
            None => 1.0,
        };
        let kind_name = t.kind.get_ref().as_str();
        // every attribute written must belong to the type
        let written: [(&str, bool); 8] = [
            ("latency", t.latency.is_some()),
            ("jitter", t.jitter.is_some()),
            ("rate_kib", t.rate_kib.is_some()),
            ("average_size", t.average_size.is_some()),
            ("size_variation", t.size_variation.is_some()),
            ("delay", t.delay.is_some()),
            ("bytes", t.bytes.is_some()),
            ("timeout", t.timeout.is_some()),
        ];
        let allowed: &[&str] = match kind_name {
            "latency" => &["latency", "jitter"],
            "bandwidth" => &["rate_kib"],
            "slicer" => &["average_size", "size_variation", "delay"],
            "limit_data" => &["bytes"],
            "reset_peer" | "timeout" => &["timeout"],
            "slow_close" => &["delay"],
            other => {
                return Err(self.err(
                    t.kind.span(),
                    f("type"),
                    format!(
                        "{other:?}: one of latency, bandwidth, slicer, limit_data, reset_peer, timeout, slow_close"
                    ),
                ));
            }
        };
        if let Some((name, _)) = written.iter().find(|(n, set)| *set && !allowed.contains(n)) {
            return Err(self.err(
                span,
                f(name),
                format!(
                    "is not an attribute of a {kind_name} toxic (it has {})",
                    allowed.join(", ")
                ),
            ));
        }
        let need = |name: &str| {
            self.err(
                span.clone(),
                f(name),
                format!("a {kind_name} toxic needs it"),
            )
        };
        let d = |x: Option<super::raw::HumanDuration>| x.map(|x| x.0);
        let kind = match kind_name {
            "latency" => ToxicKind::Latency {
                latency: d(t.latency).ok_or_else(|| need("latency"))?,
                jitter: d(t.jitter).unwrap_or_default(),
            },
            "bandwidth" => {
                let rate = t.rate_kib.ok_or_else(|| need("rate_kib"))?;
                if *rate.get_ref() == 0 {
                    return Err(self.err(rate.span(), f("rate_kib"), "must be at least 1"));
                }
                ToxicKind::Bandwidth {
                    bytes_per_s: rate.get_ref() * 1024,
                }
            }
            "slicer" => {
                let average = t.average_size.ok_or_else(|| need("average_size"))?;
                let variation = t.size_variation.unwrap_or(0);
                if *average.get_ref() == 0 || variation >= *average.get_ref() {
                    return Err(self.err(
                        average.span(),
                        f("average_size"),
                        "must be at least 1 and more than size_variation",
                    ));
                }
                ToxicKind::Slicer {
                    average_size: *average.get_ref(),
                    size_variation: variation,
                    delay: d(t.delay).unwrap_or_default(),
                }
            }
            "limit_data" => ToxicKind::LimitData {
                bytes: *t.bytes.ok_or_else(|| need("bytes"))?.get_ref(),
            },
            "reset_peer" => ToxicKind::ResetPeer {
                timeout: d(t.timeout).unwrap_or_default(),
            },
            "timeout" => ToxicKind::Timeout {
                timeout: d(t.timeout).unwrap_or_default(),
            },
            _ => ToxicKind::SlowClose {
                delay: d(t.delay).ok_or_else(|| need("delay"))?,
            },
        };
        Ok(Toxic {
            kind,
            stream,
            toxicity,
        })
    }
}
