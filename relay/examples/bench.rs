//! Relay benchmark: memory per idle socket and CPU per delivered event under fan-out.
//!
//! Starts the release `relay` binary as a separate process on 127.0.0.1, connects idle
//! visitors and measures the relay's RSS, then has operators send at a fixed rate and
//! measures the relay's CPU time per delivered event from `/proc/<pid>/stat`.
//!
//! ```sh
//! cargo build --release -p relay --bins --examples
//! target/release/examples/bench --sockets 10000 --operators 21 --deliveries-per-sec 100000
//! ```
#![allow(missing_docs)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use relay::auth::{Claims, OperatorIdentity, sign_hs256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const SECRET: &str = "bench-secret-0123456789abcdef";

#[derive(Parser)]
struct Args {
    /// Idle visitors to hold open.
    #[arg(long, default_value_t = 10_000)]
    sockets: usize,
    /// Operator sockets; each message fans out to the other operators and one visitor,
    /// so fan-out = operators.
    #[arg(long, default_value_t = 20)]
    operators: usize,
    /// Target deliveries per second (messages per second × fan-out).
    #[arg(long, default_value_t = 100_000)]
    deliveries_per_sec: u64,
    /// Length of the measured window.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Path of the relay binary (default: next to this example's directory).
    #[arg(long)]
    relay: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let exe = match &args.relay {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .and_then(|p| p.parent())
            .context("no target dir")?
            .join("relay"),
    };
    let port = free_port()?;
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let mut child = Command::new(&exe)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .env("RELAY_JWT_SECRET", SECRET)
        .env("RATE_LIMIT_PER_MINUTE", "100000000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    let result = run(&args, addr, child.id()).await;
    let _ = child.kill();
    let _ = child.wait();
    result
}

async fn run(args: &Args, addr: SocketAddr, pid: u32) -> anyhow::Result<()> {
    wait_healthy(addr).await?;
    let rss0 = rss_kib(pid)?;
    println!("relay pid {pid}, idle RSS {rss0} KiB");

    // 1. idle visitors
    let started = Instant::now();
    let (ids_tx, mut ids_rx) = mpsc::unbounded_channel::<String>();
    let delivered = Arc::new(AtomicU64::new(0));
    let sem = Arc::new(tokio::sync::Semaphore::new(256));
    let mut holders = Vec::with_capacity(args.sockets);
    for i in 0..args.sockets {
        let permit = sem.clone().acquire_owned().await?;
        let ids_tx = ids_tx.clone();
        let counter = delivered.clone();
        holders.push(tokio::spawn(async move {
            let src = Ipv4Addr::new(127, 0, 0, 2 + (i / 20_000) as u8);
            let conn = connect(addr, src, None).await;
            drop(permit);
            let conn = match conn {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("visitor {i}: {e:#}");
                    return;
                }
            };
            let _ = conn.sender().send(&format!(
                r#"42["join",{{"role":"client","username":"v{i}"}}]"#
            ));
            let _ = ids_tx.send(conn.sid.clone());
            hold(conn, None, counter).await;
        }));
    }
    drop(ids_tx);
    let mut visitor_ids = Vec::with_capacity(args.sockets);
    while visitor_ids.len() < args.sockets {
        match tokio::time::timeout(Duration::from_secs(30), ids_rx.recv()).await {
            Ok(Some(id)) => visitor_ids.push(id),
            _ => bail!(
                "only {} of {} visitors connected",
                visitor_ids.len(),
                args.sockets
            ),
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    wait_metric(addr, "relay_connected_clients", args.sockets as f64).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss1 = rss_kib(pid)?;
    let per_socket = (rss1 - rss0) as f64 / args.sockets as f64;
    println!(
        "{} visitors connected and joined in {connect_secs:.2} s; relay RSS {rss1} KiB = {per_socket:.1} KiB per socket",
        args.sockets
    );

    // 2. fan-out
    let mut senders = Vec::new();
    for op in 0..args.operators {
        let token = sign_hs256(
            SECRET.as_bytes(),
            &Claims::new(
                &OperatorIdentity {
                    operator_id: op as u64 + 1,
                    name: format!("op{op}"),
                },
                3600,
            ),
        );
        let conn = connect(addr, Ipv4Addr::LOCALHOST, Some(&token)).await?;
        let _ = conn.sender().send(r#"42["join",{"role":"operator"}]"#);
        let (tx, rx) = mpsc::unbounded_channel::<String>();
        senders.push(tx);
        let counter = delivered.clone();
        tokio::spawn(async move { hold(conn, Some(rx), counter).await });
    }
    // visitors count what they get through the same counter
    wait_metric(addr, "relay_connected_operators", args.operators as f64).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let fanout = args.operators as u64; // (operators - 1) others + 1 visitor
    let msgs_per_sec = (args.deliveries_per_sec / fanout).max(1);
    let tick = Duration::from_millis(10);
    let per_tick = (msgs_per_sec / 100).max(1);
    println!(
        "sending {msgs_per_sec} msg/s from {} operators (fan-out {fanout}) for {} s",
        args.operators, args.seconds
    );
    let stop = Instant::now() + Duration::from_secs(args.seconds + 2);
    let generator = {
        let senders = senders.clone();
        let ids = visitor_ids.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            let mut n = 0u64;
            while Instant::now() < stop {
                interval.tick().await;
                for _ in 0..per_tick {
                    let op = (n as usize) % senders.len();
                    let to = &ids[(n as usize * 7919) % ids.len()];
                    let frame = format!(
                        r#"42["operatorMessage",{{"to":"{to}","type":"text","message":"bench message {n} with some ordinary text"}}]"#
                    );
                    let _ = senders[op].send(frame);
                    n += 1;
                }
            }
            n
        })
    };
    // warm up 2 s, then measure
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu0, d0, t0) = (
        cpu_ticks(pid)?,
        delivered.load(Ordering::Relaxed),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let (cpu1, d1, t1) = (
        cpu_ticks(pid)?,
        delivered.load(Ordering::Relaxed),
        Instant::now(),
    );
    let sent = generator.await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let total = delivered.load(Ordering::Relaxed);

    let secs = (t1 - t0).as_secs_f64();
    let deliveries = d1 - d0;
    let ticks_per_sec = 100.0; // Linux USER_HZ
    let cpu_secs = (cpu1 - cpu0) as f64 / ticks_per_sec;
    let dropped = metric(addr, "relay_emit_dropped_total").await?;
    println!(
        "measured {secs:.1} s: {:.0} deliveries/s, relay CPU {:.1}% of a core = {:.2} µs per delivery",
        deliveries as f64 / secs,
        cpu_secs / secs * 100.0,
        cpu_secs * 1e6 / deliveries.max(1) as f64
    );
    println!(
        "sent {sent} messages, expected {} deliveries, received {total}; relay_emit_dropped_total {dropped}",
        sent * fanout
    );
    for h in holders {
        h.abort();
    }
    Ok(())
}

/// A WebSocket Socket.IO connection from `src`, with `token` in the handshake.
async fn connect(
    addr: SocketAddr,
    src: Ipv4Addr,
    token: Option<&str>,
) -> anyhow::Result<wire::Connection> {
    let options = wire::Options {
        auth: token.map(|t| serde_json::json!({ "token": t }).to_string()),
        source: Some(IpAddr::V4(src)),
        ..wire::Options::default()
    };
    Ok(wire::Connection::connect(&wire::Endpoint::new(addr, "/chat"), options).await?)
}

/// Sends what `outgoing` gives and counts chat deliveries until the connection ends.
async fn hold(
    mut conn: wire::Connection,
    mut outgoing: Option<mpsc::UnboundedReceiver<String>>,
    counter: Arc<AtomicU64>,
) {
    let sender = conn.sender();
    loop {
        tokio::select! {
            incoming = conn.next() => match incoming {
                Ok(wire::Incoming::Event(frame)) => {
                    let t = frame.as_str();
                    if t.starts_with("42[\"operatorMessageBroadcast\"")
                        || t.starts_with("42[\"incomingOperatorMessage\"")
                    {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            },
            Some(frame) = async { match outgoing.as_mut() { Some(r) => r.recv().await, None => std::future::pending().await } } => {
                let _ = sender.send(&frame);
            }
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")
}

fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').map(|(_, r)| r).context("bad stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // fields[0] is state (field 3); utime and stime are fields 14 and 15
    let utime: u64 = fields.get(11).context("utime")?.parse()?;
    let stime: u64 = fields.get(12).context("stime")?.parse()?;
    Ok(utime + stime)
}

async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut out = String::new();
    tcp.read_to_string(&mut out).await?;
    Ok(out)
}

async fn metric(addr: SocketAddr, series: &str) -> anyhow::Result<f64> {
    let text = http_get(addr, "/metrics").await?;
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no {series}"))
}

async fn wait_metric(addr: SocketAddr, series: &str, want: f64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = metric(addr, series).await.unwrap_or(-1.0);
        if got == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{series} is {got}, want {want}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_healthy(addr: SocketAddr) -> anyhow::Result<()> {
    for _ in 0..100 {
        if http_get(addr, "/health")
            .await
            .is_ok_and(|b| b.contains("\"ok\""))
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("relay did not become healthy on {addr}")
}
