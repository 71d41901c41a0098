//! Which Socket.IO client should bots use? Connects N clients of each kind to a running
//! relay and reports connect time and client-side memory per connection.
//!
//! ```sh
//! RELAY_JWT_SECRET=bench-secret-0123456789abcdef target/release/relay --host 127.0.0.1 --port 3101 &
//! cargo run --release -p relay --example client_compare -- 127.0.0.1:3101 2000
//! ```
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use futures_util::FutureExt;
use rust_socketio::asynchronous::ClientBuilder;
use rust_socketio::{Event, TransportType};
use tokio::sync::mpsc;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:3101".into());
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);

    // the project's client (wire): one WebSocket, waits for the connect answer
    let base = rss_kib();
    let t0 = Instant::now();
    let mut lean = Vec::with_capacity(n);
    let endpoint =
        wire::Endpoint::parse(&format!("http://{addr}/chat")).map_err(anyhow::Error::msg)?;
    for _ in 0..n {
        lean.push(wire::Connection::connect(&endpoint, wire::Options::default()).await?);
    }
    let lean_time = t0.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let lean_kib = (rss_kib() - base) as f64 / n as f64;
    drop(lean);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // rust_socketio 0.6 (async, WebSocket only), waiting for its connect callback
    let base = rss_kib();
    let t0 = Instant::now();
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, mut rx) = mpsc::unbounded_channel::<()>();
        let client = ClientBuilder::new(format!("http://{addr}/chat/"))
            .transport_type(TransportType::Websocket)
            .on(Event::Connect, move |_, _| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(());
                }
                .boxed()
            })
            .connect()
            .await?;
        tokio::time::timeout(Duration::from_secs(10), rx.recv()).await?;
        clients.push(client);
    }
    let rs_time = t0.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rs_kib = (rss_kib() - base) as f64 / n as f64;

    println!("{n} connections, sequential, each waiting for the server's connect answer:");
    println!("  wire (this project's):  {lean_time:?} total, {lean_kib:.1} KiB RSS per connection");
    println!("  rust_socketio 0.6:     {rs_time:?} total, {rs_kib:.1} KiB RSS per connection");
    for c in clients {
        let _ = c.disconnect().await;
    }
    Ok(())
}
