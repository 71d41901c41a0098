//! One Socket.IO connection: the Engine.IO handshake on either transport, the namespace
//! connect, the upgrade from long-polling to WebSocket, and what the server sends.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tungstenite::Utf8Bytes;

use crate::WireError;
use crate::cookies::Cookies;
use crate::dial::Dialer;
use crate::endpoint::Endpoint;
use crate::locals::Leg;
use crate::namespace::{Namespace, Seen};
use crate::packet::{self, Open, clip};
use crate::polling::{self, Handshake, Session};
use crate::recovery::{Resume, resume_auth, take_offset};
use crate::tls;
use crate::ws::{self, Outbox, Reader};

/// How long connecting (TCP, HTTP, Engine.IO open, namespace connect) may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// How long an upgrade to WebSocket may take.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a connection carries its packets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// WebSocket from the first request (`transports: ["websocket"]` in socket.io-client).
    #[default]
    Websocket,
    /// HTTP long-polling only (`transports: ["polling"]`).
    Polling,
    /// Long-polling first, then upgraded to WebSocket when [`Connection::upgrade`] is called,
    /// as socket.io-client does by default.
    Upgrade,
}

impl Transport {
    /// The name in scenarios and results.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Websocket => "websocket",
            Transport::Polling => "polling",
            Transport::Upgrade => "upgrade",
        }
    }
}

/// How to connect.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Transport to start with.
    pub transport: Transport,
    /// The namespace connect's `auth` object, as JSON text (e.g. `{"token":"..."}`).
    pub auth: Option<String>,
    /// Local address to connect from (spread sources over 127.0.0.x past ~15,000 sockets).
    pub source: Option<IpAddr>,
    /// `Origin` header, as a browser would send it.
    pub origin: Option<String>,
    /// More headers for every request (an `Authorization`, a fixed `Cookie`), in order.
    pub headers: Vec<(String, String)>,
    /// The client's cookie jar, shared by all its connections as a browser's is; `None`
    /// keeps no cookies.
    pub cookies: Option<Cookies>,
    /// TLS for an `https://` endpoint (see [`tls::Tls::for_client`]); `None`: the system's
    /// roots, with a session cache of its own.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The session of an earlier connection to recover (its `pid` and last offset go into
    /// the connect's `auth`); `None`: a new session.
    pub resume: Option<Resume>,
}

/// Something the server sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// `42["name", data]`: the whole packet text.
    Event(Utf8Bytes),
    /// `43<id>[data]`: the ack id and the whole packet text.
    Ack(u64, Utf8Bytes),
    /// `41` (or `44` after connecting): the server disconnected the namespace.
    Disconnect,
}

enum Link {
    Ws { reader: Reader, outbox: Arc<Outbox> },
    Polling(Session),
}

/// One Socket.IO connection. Reading belongs to its owner; writing goes through
/// [`Sender`]s, which any thread may hold.
pub struct Connection {
    /// Socket id the server assigned (the namespace connect answer's `sid`).
    pub sid: String,
    open: Open,
    /// Opens its legs, and keeps their local ends and the first TLS handshake's figures.
    dialer: Dialer,
    /// The namespace, when not `/`.
    ns: Option<Namespace>,
    /// The session's private id and the last offset received, when the server offers
    /// connection state recovery.
    session: Option<Resume>,
    /// The server restored the session `Options::resume` named.
    recovered: bool,
    link: Link,
    /// Packets that arrived on the old transport during an upgrade.
    pending: VecDeque<Utf8Bytes>,
    /// When the server was last heard from: silence past the ping deadline ends the
    /// connection, as socket.io-client's ping timeout does.
    heard: tokio::time::Instant,
}

impl Connection {
    /// Connects and waits for the namespace's connect answer.
    ///
    /// # Errors
    /// [`WireError`]: I/O, an HTTP refusal, a `44` refusal, or [`HANDSHAKE_TIMEOUT`].
    pub async fn connect(endpoint: &Endpoint, options: Options) -> Result<Self, WireError> {
        tokio::time::timeout(HANDSHAKE_TIMEOUT, Self::handshake(endpoint, options))
            .await
            .map_err(|_| WireError::Timeout)?
    }

    async fn handshake(endpoint: &Endpoint, options: Options) -> Result<Self, WireError> {
        let ns = Namespace::new(&endpoint.namespace);
        let auth = match &options.resume {
            Some(r) => Some(resume_auth(options.auth.as_deref(), r)),
            None => options.auth.clone(),
        };
        let connect = match &auth {
            Some(a) => format!("40{a}"),
            None => "40".to_owned(),
        };
        let connect = on(ns.as_ref(), &connect).into_owned();
        let dialer = Dialer::new(endpoint, &options)?;
        match options.transport {
            Transport::Websocket => {
                let stream = dialer.dial(Leg::Stream).await?;
                let target = endpoint.target("EIO=4&transport=websocket");
                let (mut reader, outbox) = ws::open(stream, &dialer, &target).await?;
                let open = Open::parse(reader.next_text(&outbox).await?.as_str())
                    .map_err(WireError::Protocol)?;
                outbox.send_texts(&[&connect])?;
                // a recovered session's missed events come before the connect answer
                let mut pending = VecDeque::new();
                let (sid, pid) = loop {
                    let text = reader.next_text(&outbox).await?;
                    if text.as_str() == "2" {
                        outbox.send_texts(&["3"])?;
                    } else if let Some(local) = off(ns.as_ref(), text.as_str()) {
                        if let Some(answer) = namespace_answer(&local)? {
                            break answer;
                        }
                        pending.push_back(text);
                    }
                };
                Ok(Self {
                    recovered: recovered(options.resume.as_ref(), pid.as_deref()),
                    session: pid.map(|pid| Resume { pid, offset: None }),
                    sid,
                    open,
                    dialer,
                    ns,
                    link: Link::Ws { reader, outbox },
                    pending,
                    heard: tokio::time::Instant::now(),
                })
            }
            Transport::Polling | Transport::Upgrade => {
                let mut hs = Handshake::open(&dialer).await?;
                hs.post(&connect).await?;
                let mut pending = VecDeque::new();
                let mut answer = None;
                while answer.is_none() {
                    for p in hs.poll().await? {
                        match p.as_str() {
                            "2" => hs.post("3").await?,
                            s if answer.is_none() => {
                                if let Some(local) = off(ns.as_ref(), s) {
                                    answer = namespace_answer(&local)?;
                                    if answer.is_none() {
                                        pending.push_back(p);
                                    }
                                }
                            }
                            _ => pending.push_back(p),
                        }
                    }
                }
                let open = hs.open.clone();
                let (sid, pid) = answer.unwrap_or_default();
                Ok(Self {
                    recovered: recovered(options.resume.as_ref(), pid.as_deref()),
                    session: pid.map(|pid| Resume { pid, offset: None }),
                    sid,
                    open,
                    dialer,
                    ns,
                    link: Link::Polling(hs.start()),
                    pending,
                    heard: tokio::time::Instant::now(),
                })
            }
        }
    }

    /// Moves a long-polling connection to WebSocket (Engine.IO's probe, then upgrade);
    /// nothing is lost or reordered on the way. A no-op on WebSocket.
    ///
    /// [`Sender`]s taken before fail afterwards: take a new one.
    ///
    /// # Errors
    /// [`WireError`] when the server refuses or does not answer in time; the connection
    /// is then unusable.
    pub async fn upgrade(&mut self) -> Result<(), WireError> {
        if matches!(self.link, Link::Ws { .. }) {
            return Ok(());
        }
        if !self.open.upgrades.iter().any(|u| u == "websocket") {
            return Err(WireError::Protocol(
                "the server offers no upgrade to websocket".into(),
            ));
        }
        tokio::time::timeout(UPGRADE_TIMEOUT, self.probe_and_switch())
            .await
            .map_err(|_| WireError::Timeout)?
    }

    async fn probe_and_switch(&mut self) -> Result<(), WireError> {
        let Link::Polling(session) = &self.link else {
            return Ok(());
        };
        session.start_upgrade();
        let stream = self.dialer.dial(Leg::Upgrade).await?;
        let target = self
            .dialer
            .endpoint
            .target(&format!("EIO=4&transport=websocket&sid={}", self.open.sid));
        let (mut reader, outbox) = ws::open(stream, &self.dialer, &target).await?;
        outbox.send_texts(&["2probe"])?;
        let answer = reader.next_text(&outbox).await?;
        if answer.as_str() != "3probe" {
            return Err(WireError::Protocol(format!(
                "expected 3probe, got {:?}",
                clip(answer.as_str())
            )));
        }
        let old = std::mem::replace(&mut self.link, Link::Ws { reader, outbox });
        if let Link::Polling(session) = old {
            self.pending.extend(session.finish().await?);
        }
        if let Link::Ws { outbox, .. } = &self.link {
            outbox.send_texts(&["5"])?;
        }
        Ok(())
    }

    /// How long the server waits, by its open packet, before it may drop a peer that
    /// stopped answering pings: ping interval plus ping timeout.
    pub fn ping_deadline(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.open.ping_interval + self.open.ping_timeout)
    }

    /// When the server was last heard from: a connection that went silent past its ping
    /// deadline broke at the latest then.
    pub fn last_heard(&self) -> tokio::time::Instant {
        self.heard
    }

    /// Since when what this connection sent may not have reached the server: the start of
    /// a long-polling `POST` that failed (its messages may be lost with it). `None` over
    /// WebSocket, whose one connection carries both directions, so [`Self::last_heard`]
    /// dates a break of either.
    pub fn unconfirmed_since(&self) -> Option<tokio::time::Instant> {
        match &self.link {
            Link::Polling(s) => s.unconfirmed_since(),
            Link::Ws { .. } => None,
        }
    }

    /// The local ends of the TCP connections this connection opened, the latest of each
    /// (a long-polling session's two, an upgrade's): a network fault that cut one of them
    /// is what broke this connection.
    pub fn local_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.dialer.locals.all()
    }

    /// What a later connection presents to recover this one's session: its `pid` and the
    /// offset of the last event received; `None` when the server offers no recovery.
    pub fn resume(&self) -> Option<Resume> {
        self.session.clone()
    }

    /// The server restored the session [`Options::resume`] named (same `pid` back): it
    /// replays what was missed, and the socket keeps its id and rooms.
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// What its first TLS handshake took, and whether it resumed an earlier session of the
    /// same client; `None` over plain TCP.
    pub fn tls_handshake(&self) -> Option<tls::Handshake> {
        self.dialer.handshake()
    }

    /// The transport packets travel on now.
    pub fn transport(&self) -> Transport {
        match self.link {
            Link::Ws { .. } => Transport::Websocket,
            Link::Polling(_) => Transport::Polling,
        }
    }

    /// A handle to write packets with, from any thread.
    pub fn sender(&self) -> Sender {
        Sender {
            out: match &self.link {
                Link::Ws { outbox, .. } => Out::Ws(outbox.clone()),
                Link::Polling(s) => Out::Polling(s.out.clone()),
            },
            ns: self.ns.clone(),
        }
    }

    /// Sends an event (see [`Sender::emit`]).
    ///
    /// # Errors
    /// As [`Sender::emit`].
    pub fn emit<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        ack: Option<u64>,
    ) -> Result<(), WireError> {
        self.sender().emit(event, data, ack)
    }

    /// The next event, ack or disconnect; Engine.IO pings are answered on the way.
    ///
    /// # Errors
    /// [`WireError::Closed`] when the server closes the connection, [`WireError::Timeout`]
    /// when it went silent past its own ping deadline, or what broke it.
    pub async fn next(&mut self) -> Result<Incoming, WireError> {
        loop {
            let text = match self.pending.pop_front() {
                Some(t) => t,
                None => {
                    let deadline = self.ping_deadline();
                    let until = self.heard + deadline;
                    let next = self.next_text();
                    let text = if deadline.is_zero() {
                        next.await?
                    } else {
                        tokio::time::timeout_at(until, next)
                            .await
                            .map_err(|_| WireError::Timeout)??
                    };
                    self.heard = tokio::time::Instant::now();
                    text
                }
            };
            let text = match &self.ns {
                None => text,
                Some(ns) => match ns.incoming(text.as_str()) {
                    Seen::Engine => text,
                    Seen::Ours(packet) => Utf8Bytes::from(packet.into_owned()),
                    Seen::Other => continue,
                },
            };
            let s = text.as_str();
            match s.as_bytes() {
                [b'2', ..] => {
                    let _ = self.sender().send(&format!("3{}", &s[1..]));
                }
                [b'4', b'2', ..] => {
                    if let Some(session) = &mut self.session
                        && let Some((packet, offset)) = take_offset(s)
                    {
                        session.offset = Some(offset);
                        return Ok(Incoming::Event(Utf8Bytes::from(packet)));
                    }
                    return Ok(Incoming::Event(text));
                }
                [b'4', b'3', ..] => {
                    if let Some(id) = packet::ack_id(s) {
                        return Ok(Incoming::Ack(id, text));
                    }
                }
                [b'4', b'1', ..] | [b'4', b'4', ..] => return Ok(Incoming::Disconnect),
                [b'1', ..] => return Err(WireError::Closed),
                _ => {}
            }
        }
    }

    async fn next_text(&mut self) -> Result<Utf8Bytes, WireError> {
        match &mut self.link {
            Link::Ws { reader, outbox } => reader.next_text(outbox).await,
            Link::Polling(s) => s.packets.recv().await.unwrap_or(Err(WireError::Closed)),
        }
    }

    /// Leaves the namespace (`41`) and closes the transport (a WebSocket close frame, or
    /// Engine.IO's close packet over long-polling).
    pub async fn close(self) {
        let leave = on(self.ns.as_ref(), "41");
        match self.link {
            Link::Ws { outbox, .. } => {
                let _ = outbox.send_texts(&[&leave]);
                outbox.close();
            }
            Link::Polling(s) => s.close(&[&leave, "1"]).await,
        }
    }
}

/// `packet` as it goes out on namespace `ns`.
fn on<'a>(ns: Option<&Namespace>, packet: &'a str) -> Cow<'a, str> {
    ns.map_or(Cow::Borrowed(packet), |ns| ns.outgoing(packet))
}

/// `packet` as if on `/` when it came on namespace `ns` (or is Engine.IO's); `None` when it
/// belongs to another namespace.
fn off<'a>(ns: Option<&Namespace>, packet: &'a str) -> Option<Cow<'a, str>> {
    match ns.map(|ns| ns.incoming(packet)) {
        None | Some(Seen::Engine) => Some(Cow::Borrowed(packet)),
        Some(Seen::Ours(p)) => Some(p),
        Some(Seen::Other) => None,
    }
}

/// The server restored the session `resume` named: it answered with the same `pid`.
fn recovered(resume: Option<&Resume>, pid: Option<&str>) -> bool {
    resume.is_some_and(|r| Some(r.pid.as_str()) == pid)
}

/// The socket id and `pid` of a namespace connect answer; `None` for other packets.
fn namespace_answer(text: &str) -> Result<Option<(String, Option<String>)>, WireError> {
    if let Some(body) = text.strip_prefix("40") {
        return packet::connect_answer(body)
            .map(Some)
            .map_err(WireError::Protocol);
    }
    if let Some(body) = text.strip_prefix("44") {
        return Err(WireError::Refused(clip(body).to_owned()));
    }
    Ok(None)
}

#[derive(Clone)]
enum Out {
    Ws(Arc<Outbox>),
    Polling(tokio::sync::mpsc::UnboundedSender<Bytes>),
}

/// Writes packets of one connection. Cheap to clone, usable from any thread, never blocks:
/// over WebSocket the packets leave in one `write(2)` (or are queued when the kernel's
/// buffer is full); over long-polling they are handed to the `POST` loop.
#[derive(Clone)]
pub struct Sender {
    out: Out,
    /// The namespace its packets go to, when not `/`.
    ns: Option<Namespace>,
}

impl Sender {
    /// Sends one raw Engine.IO packet (e.g. `42["x",1]`, `41`).
    ///
    /// # Errors
    /// [`WireError::Closed`] once the connection is gone, [`WireError::Backlog`] when the
    /// server stopped reading.
    pub fn send(&self, packet: &str) -> Result<(), WireError> {
        self.send_all(&[packet])
    }

    /// Sends several raw packets together: one write over WebSocket, one payload over
    /// long-polling.
    ///
    /// # Errors
    /// As [`Sender::send`].
    pub fn send_all(&self, packets: &[&str]) -> Result<(), WireError> {
        if let Some(ns) = &self.ns {
            let named: Vec<Cow<'_, str>> = packets.iter().map(|p| ns.outgoing(p)).collect();
            let named: Vec<&str> = named.iter().map(AsRef::as_ref).collect();
            return self.send_raw(&named);
        }
        self.send_raw(packets)
    }

    fn send_raw(&self, packets: &[&str]) -> Result<(), WireError> {
        match &self.out {
            Out::Ws(outbox) => outbox.send_texts(packets),
            Out::Polling(tx) => tx
                .send(polling::join(packets))
                .map_err(|_| WireError::Closed),
        }
    }

    /// Sends `42["event", data]`, asking for ack `ack` when given.
    ///
    /// # Errors
    /// As [`Sender::send`], or a protocol error when `data` does not serialize.
    pub fn emit<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        ack: Option<u64>,
    ) -> Result<(), WireError> {
        let text =
            packet::event(event, data, ack).map_err(|e| WireError::Protocol(e.to_string()))?;
        self.send(&text)
    }

    /// Sends one binary frame (a Socket.IO attachment) over WebSocket.
    ///
    /// # Errors
    /// As [`Sender::send`]; a protocol error over long-polling, which this client only
    /// speaks in text.
    pub fn send_binary(&self, data: &[u8]) -> Result<(), WireError> {
        match &self.out {
            Out::Ws(outbox) => outbox.send_binary(data),
            Out::Polling(_) => Err(WireError::Protocol(
                "binary frames need the WebSocket transport".into(),
            )),
        }
    }

    /// Closes the transport without leaving the namespace first: a WebSocket close frame,
    /// or Engine.IO's close packet over long-polling.
    pub fn close(&self) {
        match &self.out {
            Out::Ws(outbox) => outbox.close(),
            Out::Polling(tx) => {
                let _ = tx.send(Bytes::from_static(b"1"));
            }
        }
    }
}
