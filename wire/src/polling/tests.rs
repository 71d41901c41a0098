//! Long-polling payloads, and a session against a hand-driven HTTP server: what a `POST`
//! that never got its answer carried is dated from that `POST`, however recently the
//! `GET`s heard the server.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::{Connection, Endpoint, Options, Transport};

#[test]
fn payloads_split_and_join() {
    let body = Bytes::from_static(b"40{\"sid\":\"a\"}\x1e42[\"x\",1]\x1e2");
    let parts: Vec<String> = split(&body)
        .expect("utf8")
        .iter()
        .map(|p| p.as_str().to_owned())
        .collect();
    assert_eq!(parts, ["40{\"sid\":\"a\"}", "42[\"x\",1]", "2"]);
    assert_eq!(&join(&["a", "b"])[..], b"a\x1eb");
    assert_eq!(
        &concat(vec![Bytes::from_static(b"1"), Bytes::from_static(b"2")])[..],
        b"1\x1e2"
    );
}

/// One request off `s`: its first line and its body; `None` when the peer closed.
async fn request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let body = buf[end + 4..end + 4 + length].to_vec();
                buf.drain(..end + 4 + length);
                return Some((head.lines().next()?.to_owned(), body));
            }
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn respond(s: &mut TcpStream, body: &str) {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes()).await;
    let _ = s.write_all(body.as_bytes()).await;
}

/// An Engine.IO server that opens a session, answers the namespace connect, keeps every
/// later `GET` waiting, and drops the connection of the first `POST` carrying an event
/// without answering it.
async fn swallowing_server() -> Endpoint {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let connected = Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let connected = connected.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Some((line, body)) = request(&mut s, &mut buf).await {
                    if line.starts_with("POST") {
                        if body.starts_with(b"42") {
                            return; // taken in, never answered: the connection drops
                        }
                        respond(&mut s, "ok").await;
                    } else if !line.contains("sid=") {
                        respond(
                            &mut s,
                            r#"0{"sid":"e1","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#,
                        )
                        .await;
                    } else if !connected.swap(true, Ordering::AcqRel) {
                        respond(&mut s, r#"40{"sid":"n1"}"#).await;
                    } else {
                        // a long poll the server keeps open: the GETs go on hearing nothing bad
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                }
            });
        }
    });
    Endpoint::new(addr, "/chat")
}

#[tokio::test]
async fn a_post_that_failed_dates_what_it_carried() {
    let endpoint = swallowing_server().await;
    let options = Options {
        transport: Transport::Polling,
        ..Options::default()
    };
    let mut conn = Connection::connect(&endpoint, options)
        .await
        .expect("connects");
    assert_eq!(conn.sid, "n1");
    assert_eq!(conn.unconfirmed_since(), None, "nothing is in flight");
    let before = tokio::time::Instant::now();
    conn.sender().send(r#"42["x",1]"#).expect("queued");
    let end = tokio::time::timeout(Duration::from_secs(5), conn.next()).await;
    assert!(matches!(end, Ok(Err(_))), "the session broke: {end:?}");
    let since = conn.unconfirmed_since().expect("the failed POST is dated");
    assert!(since >= before && since <= tokio::time::Instant::now());
    // the GETs heard the server more recently than the POST left: only the POST dates it
    assert_eq!(
        conn.local_addrs().len(),
        2,
        "the GET's and the POST's connections"
    );
}
