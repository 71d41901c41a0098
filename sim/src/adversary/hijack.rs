//! Cross-site hijacking (a WebSocket upgrade or long-polling from a foreign `Origin`), and
//! long-polling bodies with bogus length prefixes, sent over raw HTTP.

use std::time::Duration;

use reports::attacks::Attack;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use wire::packet::Open;
use wire::{Options, Transport, WireError};

use super::arena::{ADVERSARY_TAG, Arena};
use super::{Outcome, judged};

/// A page no chat allows.
const FOREIGN_ORIGIN: &str = "https://evil.example";

pub(super) async fn attempt(arena: &Arena, attack: Attack, _n: u32) -> Result<Outcome, String> {
    let transport = if attack == Attack::ForeignOriginPolling {
        Transport::Polling
    } else {
        Transport::Websocket
    };
    let conn = match arena
        .connect(Options {
            transport,
            origin: Some(FOREIGN_ORIGIN.into()),
            ..Options::default()
        })
        .await
    {
        Ok(c) => c,
        Err(WireError::Http { .. } | WireError::Refused(_) | WireError::Closed) => {
            return Ok(Outcome::Blocked);
        }
        Err(WireError::Io(e)) if e.contains("403") || e.contains("400") => {
            return Ok(Outcome::Blocked);
        }
        Err(e) => return Err(e.to_string()),
    };
    let marker = arena.marker();
    let name = format!("{ADVERSARY_TAG} hijacker");
    let _ = conn.emit("join", &json!({"role": "client", "username": name}), None);
    let _ = conn.emit(
        "clientMessage",
        &json!({"type": "text", "message": marker}),
        None,
    );
    arena.settle().await;
    conn.close().await;
    judged(
        arena
            .delivered(&marker)
            .map(|d| format!("a page on {FOREIGN_ORIGIN} chats: {d}")),
    )
}

/// One request on a fresh connection; the response text, if any came within 3 s.
async fn http(arena: &Arena, request: &[u8]) -> Option<String> {
    let exchange = async {
        let mut tcp = TcpStream::connect(arena.endpoint.addr).await.ok()?;
        tcp.write_all(request).await.ok()?;
        let mut raw = Vec::new();
        tcp.read_to_end(&mut raw).await.ok()?;
        Some(String::from_utf8_lossy(&raw).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(3), exchange)
        .await
        .ok()
        .flatten()
}

/// A polling session's id, from a fresh handshake.
async fn polling_sid(arena: &Arena) -> Option<String> {
    let e = &arena.endpoint;
    let request = format!(
        "GET {}/?EIO=4&transport=polling HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        e.path, e.host
    );
    let response = http(arena, request.as_bytes()).await?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    let start = body.find("0{")?;
    let open = Open::parse(body[start..].lines().next()?).ok()?;
    Some(open.sid)
}

/// Long-polling POST bodies framed the Engine.IO v3 way (`<length>:<packet>`), with
/// lengths that lie, with a `Content-Length` that lies, and made of separators only.
pub(super) async fn bogus_polling_bodies(arena: &Arena, _n: u32) -> Result<Outcome, String> {
    let marker = arena.marker();
    let join = json!(["join", {"role": "client", "username": format!("{ADVERSARY_TAG} framer")}]);
    let message = json!(["clientMessage", {"type": "text", "message": marker}]);
    let (j, m) = (format!("42{join}"), format!("42{message}"));
    let v3 = |lie: usize| format!("2:40{}:{j}{}:{m}", j.len() + lie, m.len() + lie);
    let bodies: Vec<(String, Option<usize>)> = vec![
        (v3(0), None),
        (v3(100_000), None),
        (format!("999999999:40\u{1e}{j}\u{1e}{m}"), None),
        ("40".to_owned(), Some(1 << 40)),
        ("\u{1e}".repeat(100_000), None),
        (format!("-1:{m}"), None),
    ];
    let e = &arena.endpoint;
    for (k, (body, claimed)) in bodies.into_iter().enumerate() {
        let Some(sid) = polling_sid(arena).await else {
            return Err(format!(
                "the target answered no long-polling handshake (before body {k})"
            ));
        };
        let length = claimed.unwrap_or(body.len());
        let request = format!(
            "POST {}/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: {}\r\n\
             Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {length}\r\n\
             Connection: close\r\n\r\n{body}",
            e.path, e.host
        );
        let _ = http(arena, request.as_bytes()).await;
    }
    arena.settle().await;
    judged(
        arena
            .delivered(&marker)
            .map(|d| format!("a bogus body was read as packets: {d}")),
    )
}
