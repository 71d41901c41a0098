//! Live progress: a bar on a terminal, plain periodic lines otherwise, off on request.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::bots::Live;
use crate::ledger::Ledger;
use crate::metrics::Path;
use reports::model::Counter;

/// Figures the aggregator publishes once a second.
#[derive(Debug, Default)]
pub struct Snapshot {
    delivered: AtomicU64,
    violations: AtomicU64,
    fanout_p99_us: AtomicU64,
}

impl Snapshot {
    /// Copies the ledger's current totals.
    pub fn publish(&self, ledger: &Ledger) {
        self.delivered
            .store(ledger.counter(Counter::Delivered), Ordering::Relaxed);
        self.violations
            .store(ledger.counter(Counter::Violations), Ordering::Relaxed);
        let h = ledger.histograms();
        let p99 = h
            .p99_ms(Path::Fanout)
            .or_else(|| h.p99_ms(Path::ClientToOperators))
            .unwrap_or(0.0);
        self.fanout_p99_us
            .store((p99 * 1000.0) as u64, Ordering::Relaxed);
    }
}

/// The display of one run.
pub struct Progress {
    bar: Option<ProgressBar>,
    snapshot: Arc<Snapshot>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts the display: a bar when stderr is a terminal, a line every 5 s otherwise.
    pub fn new(enabled: bool, sockets: u64, live: Arc<Live>) -> Self {
        let snapshot = Arc::new(Snapshot::default());
        if !enabled {
            return Self {
                bar: None,
                snapshot,
                ticker: None,
            };
        }
        let tty = std::io::stderr().is_terminal();
        let bar = ProgressBar::with_draw_target(Some(sockets), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {prefix:>9} [{elapsed_precise}] {pos}/{len} connected | {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        if !tty {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        let (b, s) = (bar.clone(), snapshot.clone());
        let ticker = tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                n += 1;
                let line = format!(
                    "sent {} | delivered {} | p99 {:.1} ms | violations {}",
                    live.sent.load(Ordering::Relaxed),
                    s.delivered.load(Ordering::Relaxed),
                    s.fanout_p99_us.load(Ordering::Relaxed) as f64 / 1000.0,
                    s.violations.load(Ordering::Relaxed),
                );
                b.set_position(live.connected.load(Ordering::Relaxed));
                if tty {
                    b.set_message(line);
                    b.tick();
                } else if n.is_multiple_of(20) {
                    eprintln!(
                        "[{:>4}s] {} | connected {}/{} | {line}",
                        b.elapsed().as_secs(),
                        b.prefix(),
                        b.position(),
                        b.length().unwrap_or(0)
                    );
                }
            }
        });
        Self {
            bar: Some(bar),
            snapshot,
            ticker: Some(ticker),
        }
    }

    /// The snapshot the aggregator fills.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.clone()
    }

    /// Names the current phase.
    pub fn phase(&self, name: &str) {
        if let Some(b) = &self.bar {
            b.set_prefix(name.to_owned());
        }
    }

    /// Prints a line above the bar.
    pub fn note(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Clears the display.
    pub fn finish(&self) {
        if let Some(t) = &self.ticker {
            t.abort();
        }
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
