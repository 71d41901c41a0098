//! SVG charts rendered in Rust: line charts on a time axis or on HdrHistogram's percentile
//! axis. The output is inline SVG, so a page needs nothing from the network to draw them.

use std::fmt::Write as _;

/// One line.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// (x, y) points in data units.
    pub points: Vec<(f64, f64)>,
}

/// What the x axis shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    /// Seconds since the run started.
    Seconds,
    /// Percentiles on a `log10(1/(1-p))` scale: 0, 90, 99, 99.9, ...
    Percentile,
    /// Offered load, linear from zero; points joined in x order.
    Load,
}

/// Line colours, in series order (colour-blind safe).
pub const PALETTE: [&str; 6] = [
    "#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9",
];

const W: f64 = 760.0;
const H: f64 = 300.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const BOTTOM: f64 = 44.0;
/// Baseline of the title.
const TITLE_Y: f64 = 20.0;
/// Baseline of the first legend row: clear of the title's descenders.
const LEGEND_Y: f64 = 42.0;
/// Height of one legend row.
const LEGEND_ROW: f64 = 16.0;

/// Where each series' legend entry goes: (x, baseline y), wrapping rows at the right edge;
/// and the top of the plot area, below the last row.
fn legend_layout(series: &[Series]) -> (Vec<(f64, f64)>, f64) {
    let mut x = LEFT;
    let mut y = LEGEND_Y;
    let mut at = Vec::with_capacity(series.len());
    for s in series {
        let width = 24.0 + 7.0 * s.name.chars().count() as f64;
        if x + width > W - RIGHT && x > LEFT {
            x = LEFT;
            y += LEGEND_ROW;
        }
        at.push((x, y));
        x += width;
    }
    (at, y + 14.0)
}

fn x_of(axis: XAxis, x: f64) -> f64 {
    match axis {
        XAxis::Seconds | XAxis::Load => x,
        XAxis::Percentile => (1.0 / (1.0 - x.min(0.999_999_9))).log10(),
    }
}

/// Escapes text for SVG and HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A line chart with axes, ticks and a legend; `id` names it for tests and links.
pub fn line_chart(id: &str, title: &str, y_label: &str, axis: XAxis, series: &[Series]) -> String {
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|&(x, y)| (x_of(axis, x), y)))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let x_max = all.iter().map(|p| p.0).fold(f64::MIN, f64::max).max(1.0);
    let x_min = match axis {
        XAxis::Seconds => all
            .iter()
            .map(|p| p.0)
            .fold(f64::MAX, f64::min)
            .min(x_max - 1.0)
            .max(0.0),
        XAxis::Percentile | XAxis::Load => 0.0,
    };
    let y_max = nice_ceiling(all.iter().map(|p| p.1).fold(0.0, f64::max));
    let (legend, top) = legend_layout(series);
    let px = |x: f64| LEFT + (x - x_min) / (x_max - x_min) * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - y / y_max * (H - top - BOTTOM);

    let mut svg = String::with_capacity(4096);
    let _ = write!(
        svg,
        r#"<svg id="{id}" class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{t}">"#,
        t = escape(title)
    );
    let _ = write!(
        svg,
        r##"<rect x="0" y="0" width="{W}" height="{H}" fill="#fff"/>"##
    );
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="{TITLE_Y}" class="title">{}</text>"#,
        escape(title)
    );
    // y grid and ticks
    for i in 0..=4 {
        let v = y_max * f64::from(i) / 4.0;
        let y = py(v);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            short(v)
        );
    }
    // x ticks
    let ticks: Vec<(f64, String)> = match axis {
        XAxis::Percentile => (0..=(x_max + 1e-6).floor() as i32)
            .map(|n| {
                let label = match n {
                    0 => "0%".to_owned(),
                    1 => "90%".to_owned(),
                    n => format!("99.{}%", "9".repeat((n - 2) as usize)).replace("99.%", "99%"),
                };
                (f64::from(n), label)
            })
            .collect(),
        XAxis::Seconds => {
            let step = nice_ceiling((x_max - x_min) / 6.0).max(1.0);
            let mut t = (x_min / step).ceil() * step;
            let mut v = Vec::new();
            while t <= x_max + 1e-9 {
                v.push((t, format!("{}s", short(t))));
                t += step;
            }
            v
        }
        XAxis::Load => {
            let step = nice_ceiling(x_max / 6.0);
            (0..)
                .map(|n| f64::from(n) * step)
                .take_while(|t| *t <= x_max + 1e-9)
                .map(|t| (t, short(t)))
                .collect()
        }
    };
    for (x, label) in ticks {
        let _ = write!(
            svg,
            r##"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="#eee"/><text x="{0:.1}" y="{3:.1}" class="tick" text-anchor="middle">{4}</text>"##,
            px(x),
            top,
            H - BOTTOM,
            H - BOTTOM + 16.0,
            escape(&label)
        );
    }
    let _ = write!(
        svg,
        r#"<text x="14" y="{:.1}" class="axis" transform="rotate(-90 14 {:.1})" text-anchor="middle">{}</text>"#,
        (top + H - BOTTOM) / 2.0,
        (top + H - BOTTOM) / 2.0,
        escape(y_label)
    );
    // lines, and the legend in rows between the title and the plot
    for (i, (s, &(legend_x, legend_y))) in series.iter().zip(&legend).enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        for run in runs(axis, &s.points) {
            if let [(x, y)] = run.as_slice() {
                // a lone second: a dot, not a line to the next sample far away
                let _ = write!(
                    svg,
                    r#"<circle class="series" cx="{:.1}" cy="{:.1}" r="2.5" fill="{color}"/>"#,
                    px(*x),
                    py(*y)
                );
                continue;
            }
            let pts: Vec<String> = run
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            let _ = write!(
                svg,
                r#"<polyline class="series" fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
                pts.join(" ")
            );
        }
        let _ = write!(
            svg,
            r#"<rect x="{legend_x:.1}" y="{:.1}" width="10" height="10" fill="{color}"/><text x="{:.1}" y="{legend_y:.1}" class="legend">{}</text>"#,
            legend_y - 9.0,
            legend_x + 14.0,
            escape(&s.name)
        );
    }
    if all.is_empty() {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="middle">no data</text>"#,
            W / 2.0,
            H / 2.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A series' drawable points in axis units, split where seconds are missing: a path with
/// no sample for a while shows a gap, not a straight line across it.
fn runs(axis: XAxis, points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut last: Option<f64> = None;
    for &(x, y) in points {
        let (x, y) = (x_of(axis, x), y);
        if !(x.is_finite() && y.is_finite()) {
            continue;
        }
        let gap = axis == XAxis::Seconds && last.is_some_and(|l| x - l > 1.0 + 1e-9);
        match out.last_mut() {
            Some(run) if !gap => run.push((x, y)),
            _ => out.push(vec![(x, y)]),
        }
        last = Some(x);
    }
    out
}

/// 1, 2 or 5 times a power of ten, at least `v`.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

fn short(v: f64) -> String {
    if v >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_every_series_with_its_own_colour() {
        let s = vec![
            Series {
                name: "a".into(),
                points: vec![(1.0, 2.0), (2.0, 3.0)],
            },
            Series {
                name: "b<c".into(),
                points: vec![(1.0, 1.0), (2.0, 5.0)],
            },
        ];
        let svg = line_chart("c1", "T", "ms", XAxis::Seconds, &s);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains(PALETTE[0]) && svg.contains(PALETTE[1]));
        assert!(svg.contains("b&lt;c"));
        assert!(svg.starts_with("<svg id=\"c1\""));
    }

    #[test]
    fn missing_seconds_break_the_line() {
        let s = vec![Series {
            name: "presence".into(),
            points: vec![
                (1.0, 2.0),
                (2.0, 3.0),
                (9.0, 30.0),
                (10.0, 31.0),
                (15.0, 1.0),
            ],
        }];
        let svg = line_chart("c4", "T", "ms", XAxis::Seconds, &s);
        assert_eq!(svg.matches("<polyline").count(), 2, "1–2 s and 9–10 s");
        assert_eq!(svg.matches("<circle").count(), 1, "15 s alone");
    }

    #[test]
    fn percentile_axis_labels_nines() {
        let s = vec![Series {
            name: "p".into(),
            points: vec![(0.0, 1.0), (0.9, 2.0), (0.99, 3.0), (0.999, 9.0)],
        }];
        let svg = line_chart("c2", "T", "ms", XAxis::Percentile, &s);
        for label in ["0%", "90%", "99%", "99.9%"] {
            assert!(svg.contains(&format!(">{label}<")), "{label}");
        }
    }

    #[test]
    fn legend_rows_sit_between_title_and_plot() {
        let many: Vec<Series> = (0..12)
            .map(|i| Series {
                name: format!("client_to_operators_{i}"),
                points: vec![(1.0, 1.0)],
            })
            .collect();
        let (at, top) = legend_layout(&many);
        assert!(
            at.iter().all(|&(_, y)| y - 10.0 > TITLE_Y + 4.0),
            "below the title"
        );
        assert!(at.iter().all(|&(x, _)| x < W - RIGHT), "inside the width");
        let last_row = at.iter().map(|p| p.1).fold(0.0, f64::max);
        assert!(last_row > LEGEND_Y, "wrapped onto more rows");
        assert!(top > last_row, "the plot starts below the last row");
    }

    #[test]
    fn empty_chart_says_so() {
        let svg = line_chart("c3", "T", "ms", XAxis::Seconds, &[]);
        assert!(svg.contains("no data"));
    }
}
