//! Watching the target while it is under load: its `/metrics` scraped every few seconds
//! (parsed with `prometheus-parse`), summed over its nodes, its CPU from `/proc` when it is
//! local and says nothing itself, beside the simulator's own CPU and the machine's; the
//! memory slope after warm-up and the presence it still counts once everyone has left.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use reports::model::{TargetSample, TargetWatch};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Time between scrapes.
pub const EVERY: Duration = Duration::from_secs(1);

/// How long after the bots left the target gets to count them gone.
const SETTLE: Duration = Duration::from_secs(5);

/// Figures of one scrape, summed over nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Figures {
    rss_bytes: Option<f64>,
    presence: Option<f64>,
    emit_dropped: Option<f64>,
    cpu_s: Option<f64>,
}

/// Whose CPU a sample reads besides the target's `/metrics`.
#[derive(Debug, Clone, Default)]
struct CpuSources {
    /// Local target processes (listening on a node's port) other than this one.
    target_pids: Vec<u32>,
    /// The thread the bots run on, when they have one to themselves.
    bot_thread: Option<u32>,
    /// Each target thread's CPU seconds and seconds it wanted a core, at the previous
    /// sample, and when.
    threads: Option<(Instant, ThreadTimes)>,
}

/// Each thread's (process, thread) CPU seconds and seconds it wanted a core (where the
/// kernel tells).
type ThreadTimes = std::collections::HashMap<(u32, u32), (f64, Option<f64>)>;

impl CpuSources {
    fn find(nodes: &[SocketAddr], bot_thread: Option<u32>) -> Self {
        let me = std::process::id();
        let mut target_pids: Vec<u32> = nodes
            .iter()
            .filter_map(|a| crate::procfs::listening_pid(*a))
            .filter(|p| *p != me)
            .collect();
        target_pids.sort_unstable();
        target_pids.dedup();
        Self {
            target_pids,
            bot_thread,
            threads: None,
        }
    }

    /// CPU of the target's busiest thread since the previous call, in cores (a
    /// single-threaded target, an event loop, is used up at one core, whatever the machine
    /// has), and the most of a core any of its threads wanted (running, or ready and kept
    /// waiting by a busy machine).
    fn hottest_thread(&mut self) -> (Option<f64>, Option<f64>) {
        if self.target_pids.is_empty() {
            return (None, None);
        }
        let now = Instant::now();
        let threads: ThreadTimes = self
            .target_pids
            .iter()
            .flat_map(|p| {
                crate::procfs::threads_cpu(*p)
                    .into_iter()
                    .map(move |(t, cpu)| ((*p, t), (cpu, crate::procfs::thread_wanted(*p, t))))
            })
            .collect();
        let rates = self.threads.as_ref().and_then(|(then, before)| {
            let dt = now.duration_since(*then).as_secs_f64();
            (dt > 0.1).then(|| {
                let mut hottest: (f64, Option<f64>) = (0.0, None);
                for (t, (c, w)) in &threads {
                    let Some((c0, w0)) = before.get(t) else {
                        continue;
                    };
                    hottest.0 = hottest.0.max((c - c0) / dt);
                    // both readings from schedstat, or none: never one of each
                    if let (Some(w), Some(w0)) = (w, w0) {
                        hottest.1 = Some(hottest.1.unwrap_or(0.0).max((w - w0) / dt));
                    }
                }
                hottest
            })
        });
        self.threads = Some((now, threads));
        (rates.map(|r| r.0), rates.and_then(|r| r.1))
    }

    fn target_cpu(&self) -> Option<f64> {
        if self.target_pids.is_empty() {
            return None;
        }
        self.target_pids
            .iter()
            .map(|p| crate::procfs::process_cpu(*p))
            .sum()
    }

    fn sim_cpu(&self) -> Option<f64> {
        match self.bot_thread {
            Some(t) => crate::procfs::thread_cpu(t),
            None => crate::procfs::own_cpu(),
        }
    }
}

/// A running watch.
pub struct Watcher {
    samples: Arc<Mutex<Vec<TargetSample>>>,
    task: tokio::task::JoinHandle<()>,
    nodes: Vec<SocketAddr>,
    start: Instant,
}

impl Watcher {
    /// Scrapes `nodes` every [`EVERY`] from now on; times count from `start`. Called on
    /// the bots' runtime: on a current-thread runtime, this thread is the bots' own.
    pub fn start(nodes: Vec<SocketAddr>, start: Instant) -> Self {
        let samples: Arc<Mutex<Vec<TargetSample>>> = Arc::default();
        let bot_thread = (tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::CurrentThread)
            .then(crate::procfs::this_thread)
            .flatten();
        let task = {
            let (samples, nodes) = (samples.clone(), nodes.clone());
            tokio::spawn(async move {
                let mut sources = {
                    let nodes = nodes.clone();
                    tokio::task::spawn_blocking(move || CpuSources::find(&nodes, bot_thread))
                        .await
                        .unwrap_or_default()
                };
                let mut tick = tokio::time::interval(EVERY);
                loop {
                    tick.tick().await;
                    let f = scrape_all(&nodes).await;
                    samples
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(sample(start, f.unwrap_or_default(), &mut sources));
                }
            })
        };
        Self {
            samples,
            task,
            nodes,
            start,
        }
    }

    /// Stops scraping once the bots have left: waits (at most [`SETTLE`]) for the target to
    /// count nobody, then sums up. `None` when no sample was taken (a run shorter than one
    /// interval); a target without `/metrics` leaves its figures `None` in each sample.
    pub async fn finish(self, warm_until_s: f64) -> Option<TargetWatch> {
        self.task.abort();
        let deadline = Instant::now() + SETTLE;
        let mut last = None;
        while Instant::now() < deadline {
            last = scrape_all(&self.nodes).await;
            if last.is_none_or(|f| f.presence.is_none_or(|p| p == 0.0)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut samples =
            std::mem::take(&mut *self.samples.lock().unwrap_or_else(PoisonError::into_inner));
        if let Some(f) = last {
            // the closing scrape: the target's own figures only
            let mut last = sample(self.start, f, &mut CpuSources::default());
            (last.sim_cpu_s, last.machine_busy_s) = (None, None);
            samples.push(last);
        }
        if samples.is_empty() {
            return None;
        }
        Some(TargetWatch {
            rss_slope_kib_per_min: slope_kib_per_min(&samples, warm_until_s),
            presence_after: last.and_then(|f| f.presence),
            samples,
        })
    }
}

fn sample(start: Instant, f: Figures, cpu: &mut CpuSources) -> TargetSample {
    let (hottest_thread, hottest_thread_wanted) = cpu.hottest_thread();
    TargetSample {
        t_s: start.elapsed().as_secs_f64(),
        rss_mib: f.rss_bytes.map(|b| b / (1024.0 * 1024.0)),
        presence: f.presence,
        emit_dropped: f.emit_dropped,
        cpu_s: f.cpu_s.or_else(|| cpu.target_cpu()),
        sim_cpu_s: cpu.sim_cpu(),
        machine_busy_s: crate::procfs::machine_busy(),
        hottest_thread,
        hottest_thread_wanted,
    }
}

/// Least-squares slope of resident memory over the samples after `warm_until_s`, in KiB
/// per minute; `None` with fewer than three such samples.
fn slope_kib_per_min(samples: &[TargetSample], warm_until_s: f64) -> Option<f64> {
    let points: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.t_s >= warm_until_s)
        .filter_map(|s| Some((s.t_s / 60.0, s.rss_mib? * 1024.0)))
        .collect();
    if points.len() < 3 {
        return None;
    }
    let n = points.len() as f64;
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(x, y), p| (x + p.0 / n, y + p.1 / n));
    let (num, den) = points.iter().fold((0.0, 0.0), |(a, b), p| {
        (a + (p.0 - mx) * (p.1 - my), b + (p.0 - mx) * (p.0 - mx))
    });
    (den > 0.0).then(|| num / den)
}

/// One scrape of every node, summed; `None` when no node answered.
async fn scrape_all(nodes: &[SocketAddr]) -> Option<Figures> {
    let mut total: Option<Figures> = None;
    for &addr in nodes {
        let Some(f) = scrape(addr).await else {
            continue;
        };
        let t = total.get_or_insert_with(Figures::default);
        let add = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        t.rss_bytes = add(t.rss_bytes, f.rss_bytes);
        t.presence = add(t.presence, f.presence);
        t.emit_dropped = add(t.emit_dropped, f.emit_dropped);
        t.cpu_s = add(t.cpu_s, f.cpu_s);
    }
    total
}

async fn scrape(addr: SocketAddr) -> Option<Figures> {
    let body = tokio::time::timeout(Duration::from_secs(1), get_metrics(addr))
        .await
        .ok()??;
    Some(figures(&body))
}

async fn get_metrics(addr: SocketAddr) -> Option<String> {
    let (status, body) = http_get(addr, "/metrics").await?;
    (status == 200).then_some(body)
}

/// `GET path` on `addr`: status and body; `None` when nothing answered HTTP.
async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut tcp = TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await.ok()?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// The status `GET path` gets from `addr` within `timeout`; `None` without an answer.
pub async fn http_status(addr: SocketAddr, path: &str, timeout: Duration) -> Option<u16> {
    tokio::time::timeout(timeout, http_get(addr, path))
        .await
        .ok()?
        .map(|(status, _)| status)
}

/// The target's resident memory now, bytes, summed over nodes; `None` without `/metrics`.
pub async fn resident_memory(nodes: &[SocketAddr]) -> Option<f64> {
    scrape_all(nodes).await?.rss_bytes
}

/// The figures a Prometheus text exposition holds (any it lacks stay `None`).
fn figures(text: &str) -> Figures {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let Ok(scrape) = prometheus_parse::Scrape::parse(lines) else {
        return Figures::default();
    };
    let value = |name: &str| -> Option<f64> {
        let mut found = None;
        for s in scrape.samples.iter().filter(|s| s.metric == name) {
            let v = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => continue,
            };
            *found.get_or_insert(0.0) += v;
        }
        found
    };
    let presence = match (
        value("relay_connected_operator_sockets"),
        value("relay_connected_clients"),
    ) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
    };
    Figures {
        rss_bytes: value("process_resident_memory_bytes"),
        presence,
        emit_dropped: value("relay_emit_dropped_total"),
        cpu_s: value("process_cpu_seconds_total"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_relays_exposition() {
        let text = "# TYPE process_resident_memory_bytes gauge\n\
                    process_resident_memory_bytes 10485760\n\
                    # TYPE relay_connected_clients gauge\n\
                    relay_connected_clients 3\n\
                    # TYPE relay_connected_operator_sockets gauge\n\
                    relay_connected_operator_sockets 2\n\
                    # TYPE relay_emit_dropped counter\n\
                    relay_emit_dropped_total 0\n";
        let f = figures(text);
        assert_eq!(f.rss_bytes, Some(10_485_760.0));
        assert_eq!(f.presence, Some(5.0));
        assert_eq!(f.emit_dropped, Some(0.0));
        assert_eq!(figures("not metrics at all {{"), Figures::default());
    }

    #[test]
    fn the_slope_is_growth_per_minute_after_warm_up() {
        let at = |t: f64, mib: f64| TargetSample {
            t_s: t,
            rss_mib: Some(mib),
            presence: None,
            emit_dropped: None,
            cpu_s: None,
            sim_cpu_s: None,
            machine_busy_s: None,
            hottest_thread: None,
            hottest_thread_wanted: None,
        };
        // 1 MiB per minute after 60 s, a jump during warm-up ignored
        let samples = [
            at(0.0, 10.0),
            at(30.0, 50.0),
            at(60.0, 50.0),
            at(120.0, 51.0),
            at(180.0, 52.0),
        ];
        let slope = slope_kib_per_min(&samples, 60.0).expect("three samples");
        assert!((slope - 1024.0).abs() < 1e-6, "{slope}");
        assert_eq!(slope_kib_per_min(&samples, 150.0), None);
    }
}
