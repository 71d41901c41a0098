//! The histograms inside a result: decoding, percentile curves, exact merging.

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};

use crate::model::LatencySummary;

/// Why a histogram could not be read.
#[derive(Debug, thiserror::Error)]
#[error("histogram is not base64 HdrHistogram V2: {0}")]
pub struct HdrError(String);

/// Decodes a summary's histogram.
///
/// # Errors
/// [`HdrError`] when the field is not a V2 histogram in base64.
pub fn decode(summary: &LatencySummary) -> Result<Histogram<u64>, HdrError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&summary.hdr_v2_base64)
        .map_err(|e| HdrError(e.to_string()))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| HdrError(format!("{e:?}")))
}

/// Percentiles and ms of a histogram along HdrHistogram's `1/(1-p)` axis: points from p = 0
/// to the largest percentile the data supports.
pub fn percentile_curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let mut points = Vec::new();
    if h.is_empty() {
        return points;
    }
    let max_nines = (h.len() as f64).log10().clamp(1.0, 6.0);
    let steps = 60;
    for i in 0..=steps {
        let nines = max_nines * f64::from(i) / f64::from(steps);
        let p = 1.0 - 10f64.powf(-nines);
        points.push((p, h.value_at_quantile(p) as f64 / 1000.0));
    }
    points
}

/// A summary of `h` in ms (the same shape `sim` writes).
pub fn summarize(h: &Histogram<u64>) -> LatencySummary {
    let ms = |us: u64| us as f64 / 1000.0;
    let mut bytes = Vec::new();
    let _ = V2DeflateSerializer::new().serialize(h, &mut bytes);
    LatencySummary {
        count: h.len(),
        min_ms: if h.is_empty() { 0.0 } else { ms(h.min()) },
        mean_ms: h.mean() / 1000.0,
        p50_ms: ms(h.value_at_quantile(0.5)),
        p90_ms: ms(h.value_at_quantile(0.9)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
        hdr_v2_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
    }
}

/// Adds histograms exactly (bucket counts, not averaged percentiles).
///
/// # Errors
/// [`HdrError`] when one does not decode or the ranges cannot be combined.
pub fn merge(summaries: &[&LatencySummary]) -> Result<LatencySummary, HdrError> {
    let mut total: Option<Histogram<u64>> = None;
    for s in summaries {
        let h = decode(s)?;
        match &mut total {
            None => total = Some(h),
            Some(t) => t.add(&h).map_err(|e| HdrError(format!("{e:?}")))?,
        }
    }
    total
        .map(|t| summarize(&t))
        .ok_or_else(|| HdrError("nothing to merge".into()))
}
