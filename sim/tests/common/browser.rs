//! A real browser on a report: headless Chromium loads the page from a file with no console
//! errors, and each chart, screenshotted alone, shows its lines.

use std::path::Path;
use std::process::Command;

use reports::charts::PALETTE;

const CHARTS: [&str; 10] = [
    "chart-distribution",
    "chart-target-memory",
    "chart-target-presence",
    "chart-send-lag",
    "chart-p99-time",
    "chart-p50-time",
    "chart-sent",
    "chart-throughput",
    "chart-connected",
    "chart-violations",
];

fn chromium(args: &[&str], profile: &Path) -> std::process::Output {
    let bin = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok())
        .expect("Chromium is not installed: run scripts/test, which installs Debian's chromium");
    Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium runs")
}

/// Pixels of `rgb` in a PNG at or below row `from_row` (above it sit the title and legend,
/// whose colour swatches must not count as drawn lines).
fn count_colour(png_path: &Path, rgb: [u8; 3], from_row: usize) -> usize {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).expect("png"),
    ));
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("png frame");
    let channels = info.color_type.samples();
    let row = info.line_size;
    buf[(from_row * row).min(info.buffer_size())..info.buffer_size()]
        .chunks(channels)
        .filter(|p| p[..3].iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 24))
        .count()
}

fn hex(c: &str) -> [u8; 3] {
    let v = u32::from_str_radix(c.trim_start_matches('#'), 16).expect("hex colour");
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

/// Loads `report` (whose text is `html`) in headless Chromium and checks every chart.
pub fn page_renders_every_chart(report: &Path, html: &str) {
    let dir = report.parent().expect("dir").join("browser");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let profile = dir.join("profile");
    // the whole page: loads from a file, logs no console error
    let page_png = dir.join("page.png");
    let out = chromium(
        &[
            &format!("--screenshot={}", page_png.display()),
            "--window-size=1000,4000",
            &format!("file://{}", report.display()),
        ],
        &profile,
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(page_png.exists(), "no screenshot: {log}");
    assert!(
        !log.contains("CONSOLE") && !log.contains("Uncaught"),
        "console output: {log}"
    );
    assert!(
        count_colour(&page_png, hex(PALETTE[0]), 0) > 100,
        "the page shows no chart line"
    );
    // each chart alone, with the page's styles
    let style =
        &html[html.find("<style>").expect("style")..html.find("</style>").expect("style") + 8];
    for id in CHARTS {
        let start = html
            .find(&format!("<svg id=\"{id}\""))
            .unwrap_or_else(|| panic!("{id} missing"));
        let end = start + html[start..].find("</svg>").expect("svg end") + 6;
        let file = dir.join(format!("{id}.html"));
        std::fs::write(
            &file,
            format!(
                "<!doctype html><meta charset=utf-8>{style}<body style=\"margin:0;width:760px\">{}",
                &html[start..end]
            ),
        )
        .expect("write");
        let shot = dir.join(format!("{id}.png"));
        chromium(
            &[
                &format!("--screenshot={}", shot.display()),
                "--window-size=780,320",
                &format!("file://{}", file.display()),
            ],
            &profile,
        );
        // below the title and legend rows; lines may cover each other, so any series counts
        let drawn: usize = PALETTE
            .iter()
            .map(|c| count_colour(&shot, hex(c), 75))
            .sum();
        assert!(drawn > 40, "{id}: only {drawn} pixels of its lines");
    }
}
