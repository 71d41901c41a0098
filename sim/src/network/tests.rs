//! The fault proxy against an echo server over real sockets: each toxic does what
//! Toxiproxy's does, toxicity picks connections, outages cut and refuse.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use wire::Endpoint;

use super::*;
use crate::scenario::Stream;

async fn echo() -> Endpoint {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    Endpoint::new(addr, "/chat")
}

fn toxic(kind: ToxicKind) -> Toxic {
    Toxic {
        kind,
        stream: Stream::Both,
        toxicity: 1.0,
    }
}

async fn proxy(toxics: &[Toxic]) -> (Proxy, mpsc::UnboundedReceiver<Record>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let p = Proxy::start(&[echo().await], toxics, tx, 7)
        .await
        .expect("proxy");
    (p, rx)
}

async fn connect(p: &Proxy) -> TcpStream {
    TcpStream::connect(p.endpoints[0].addr)
        .await
        .expect("connect")
}

/// Reads until `n` bytes came, the peer closed, or 3 s passed.
async fn read_n(s: &mut TcpStream, n: usize) -> std::io::Result<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(3);
    while got.len() < n {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => break,
            Ok(Ok(0)) => break,
            Ok(Ok(k)) => got.extend_from_slice(&buf[..k]),
            Ok(Err(e)) => return Err(e),
        }
    }
    Ok(got)
}

#[tokio::test]
async fn without_toxics_bytes_pass_unchanged() {
    let (p, _rx) = proxy(&[]).await;
    let mut s = connect(&p).await;
    let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    s.write_all(&data).await.expect("write");
    assert_eq!(read_n(&mut s, data.len()).await.expect("read"), data);
}

#[tokio::test]
async fn latency_delays_each_way_and_keeps_order() {
    let latency = Duration::from_millis(150);
    let (p, _rx) = proxy(&[toxic(ToxicKind::Latency {
        latency,
        jitter: Duration::from_millis(20),
    })])
    .await;
    let mut s = connect(&p).await;
    let started = Instant::now();
    for i in 0..50u8 {
        s.write_all(&[i]).await.expect("write");
    }
    let got = read_n(&mut s, 50).await.expect("read");
    assert_eq!(got, (0..50).collect::<Vec<u8>>(), "in order");
    // up and back down: at least twice the latency less the jitter
    assert!(started.elapsed() >= 2 * (latency - Duration::from_millis(20)));
}

#[tokio::test]
async fn limit_data_cuts_mid_stream_and_is_recorded() {
    let (p, mut rx) = proxy(&[Toxic {
        kind: ToxicKind::LimitData { bytes: 100 },
        stream: Stream::Downstream,
        toxicity: 1.0,
    }])
    .await;
    let mut s = connect(&p).await;
    s.write_all(&[7u8; 1000]).await.expect("write");
    let got = read_n(&mut s, 1000).await.unwrap_or_default();
    assert_eq!(got.len(), 100, "exactly the limit went through");
    let me = s.local_addr().expect("local address");
    assert!(
        matches!(rx.recv().await, Some(Record::NetworkCut { peer, .. }) if peer == me),
        "the cut names the bot's end of the connection it cut"
    );
    assert!(rx.try_recv().is_err(), "one cut, noted once");
}

#[tokio::test]
async fn reset_peer_resets_after_its_timeout() {
    let (p, _rx) = proxy(&[toxic(ToxicKind::ResetPeer {
        timeout: Duration::from_millis(200),
    })])
    .await;
    let mut s = connect(&p).await;
    s.write_all(b"x").await.expect("write");
    assert_eq!(read_n(&mut s, 1).await.expect("echo"), b"x");
    let started = Instant::now();
    let mut buf = [0u8; 8];
    let end = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await;
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(
        matches!(end, Ok(Err(ref e)) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{end:?}"
    );
}

#[tokio::test]
async fn timeout_holds_a_connection_half_open() {
    let (p, mut rx) = proxy(&[toxic(ToxicKind::Timeout {
        timeout: Duration::ZERO,
    })])
    .await;
    let mut s = connect(&p).await;
    s.write_all(b"hello").await.expect("write");
    let mut buf = [0u8; 8];
    let r = tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await;
    assert!(r.is_err(), "nothing comes back, and nothing closes: {r:?}");
    assert!(matches!(rx.recv().await, Some(Record::NetworkCut { .. })));
}

#[tokio::test]
async fn slicer_and_bandwidth_deliver_everything_paced() {
    let (p, _rx) = proxy(&[
        Toxic {
            kind: ToxicKind::Slicer {
                average_size: 64,
                size_variation: 32,
                delay: Duration::from_micros(100),
            },
            stream: Stream::Downstream,
            toxicity: 1.0,
        },
        Toxic {
            kind: ToxicKind::Bandwidth {
                bytes_per_s: 20 * 1024,
            },
            stream: Stream::Upstream,
            toxicity: 1.0,
        },
    ])
    .await;
    let mut s = connect(&p).await;
    let data = vec![3u8; 10 * 1024];
    let started = Instant::now();
    s.write_all(&data).await.expect("write");
    assert_eq!(read_n(&mut s, data.len()).await.expect("read"), data);
    // 10 KiB at 20 KiB/s
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn slow_close_holds_the_close_back() {
    let (p, _rx) = proxy(&[Toxic {
        kind: ToxicKind::SlowClose {
            delay: Duration::from_millis(300),
        },
        stream: Stream::Downstream,
        toxicity: 1.0,
    }])
    .await;
    let mut s = connect(&p).await;
    let started = Instant::now();
    s.shutdown().await.expect("shutdown");
    let got = read_n(&mut s, 1).await.expect("read");
    assert!(got.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn toxicity_picks_a_share_of_connections() {
    let hits = (0..2000u64).filter(|c| draw(7, *c, 0) < 0.3).count();
    assert!((500..700).contains(&hits), "{hits}");
    let (p, _rx) = proxy(&[Toxic {
        kind: ToxicKind::LimitData { bytes: 0 },
        stream: Stream::Both,
        toxicity: 0.0,
    }])
    .await;
    let mut s = connect(&p).await;
    s.write_all(b"ok").await.expect("write");
    assert_eq!(
        read_n(&mut s, 2).await.expect("read"),
        b"ok",
        "toxicity 0 spares all"
    );
}

#[tokio::test]
async fn an_outage_cuts_every_connection_and_refuses_new_ones_until_it_ends() {
    let (p, _rx) = proxy(&[]).await;
    let mut s = connect(&p).await;
    s.write_all(b"a").await.expect("write");
    assert_eq!(read_n(&mut s, 1).await.expect("read"), b"a");
    p.control.outage(Duration::from_millis(400));
    let mut buf = [0u8; 4];
    let cut = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
    assert!(matches!(cut, Ok(Ok(0)) | Ok(Err(_))), "{cut:?}");
    let mut during = connect(&p).await;
    let _ = during.write_all(b"b").await;
    assert!(read_n(&mut during, 1).await.unwrap_or_default().is_empty());
    tokio::time::sleep(Duration::from_millis(450)).await;
    let mut after = connect(&p).await;
    after.write_all(b"c").await.expect("write");
    assert_eq!(read_n(&mut after, 1).await.expect("read"), b"c");
}

#[tokio::test]
async fn a_toxic_added_later_acts_for_its_time_only() {
    let (p, _rx) = proxy(&[]).await;
    p.control.add(
        toxic(ToxicKind::Latency {
            latency: Duration::from_millis(300),
            jitter: Duration::ZERO,
        }),
        Duration::from_millis(200),
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    let mut s = connect(&p).await;
    let started = Instant::now();
    s.write_all(b"z").await.expect("write");
    assert_eq!(read_n(&mut s, 1).await.expect("read"), b"z");
    assert!(started.elapsed() < Duration::from_millis(300), "expired");
}

#[tokio::test]
async fn a_half_open_spell_that_ends_closes_the_connection() {
    let (p, _rx) = proxy(&[]).await;
    let mut s = connect(&p).await;
    s.write_all(b"a").await.expect("write");
    assert_eq!(read_n(&mut s, 1).await.expect("read"), b"a");
    p.control.add(
        toxic(ToxicKind::Timeout {
            timeout: Duration::ZERO,
        }),
        Duration::from_millis(300),
    );
    s.write_all(b"lost in the void").await.expect("write");
    let started = Instant::now();
    let mut buf = [0u8; 32];
    let end = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await;
    assert!(matches!(end, Ok(Ok(0))), "closed, nothing echoed: {end:?}");
    assert!(started.elapsed() >= Duration::from_millis(200));
}
