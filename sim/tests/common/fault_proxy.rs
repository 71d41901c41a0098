//! A backend with exactly one fault: the reference relay behind a proxy that reads every
//! Socket.IO packet on WebSocket connections and breaks one rule in 20 (drops, duplicates,
//! holds, leaks, misattributes, echoes, keeps markup, skips or repeats presence, corrupts
//! a payload, closes a connection, refuses a valid reply), or delays everything by a fixed
//! time. With no fault it must be invisible: the simulator then reports nothing.
//!
//! Long-polling connections are passed through untouched. Client packets are only watched
//! (who joined as what, who sent which message), but for the replies to refuse, which are
//! readdressed to a visitor that does not exist so that the relay refuses them itself.

use std::collections::HashMap;
use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use relay::protocol::event;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

/// Every rule the proxy can break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// None: a correct backend.
    None,
    /// Every packet to every client arrives this much later, in order: a slow but correct backend.
    Slow(Duration),
    /// One chat delivery in 20 never arrives.
    DropRecipient,
    /// One chat delivery in 20 arrives twice.
    Duplicate,
    /// One broadcast in 20 also reaches a visitor.
    LeakToVisitor,
    /// One broadcast in 20 names another operator.
    Misattribute,
    /// One chat delivery in 20 is held ~20 ms, so later ones overtake it.
    ReorderHold,
    /// One chat text in 20 arrives with markup.
    SkipSanitizing,
    /// One broadcast in 20 also goes back to its sender.
    EchoToSender,
    /// The presence events of one visitor or operator in 20 are never sent.
    SkipPresence,
    /// One presence event in 20 arrives twice.
    DuplicatePresence,
    /// The operators list leaves one operator out.
    WrongList,
    /// One typing event in 20 has a payload of the wrong shape.
    Malformed,
    /// One connection in 20 is closed by the "server" a few seconds after it joined.
    CloseConnection,
    /// One operator reply in 20 is refused with `unknown_client` although its visitor is
    /// online, as a cluster that checks `to` against its own node only does.
    RefuseReply,
    /// One chat delivery in 20 of the proxy's first [`LATE_FOR`] is held [`LATE_BY`]:
    /// past the protocol's 10 s delivery bound, within twice it.
    LateDelivery,
}

/// How long the [`Fault::LateDelivery`] proxy holds deliveries back.
pub const LATE_BY: Duration = Duration::from_secs(13);

/// For how long after it starts the [`Fault::LateDelivery`] proxy holds deliveries.
pub const LATE_FOR: Duration = Duration::from_secs(5);

impl Fault {
    fn one_in_20(counter: &AtomicU64) -> bool {
        counter.fetch_add(1, Ordering::Relaxed) % 20 == 7
    }
}

#[derive(Default)]
struct Conn {
    visitor: bool,
    to_client: Option<mpsc::UnboundedSender<(Instant, Bytes)>>,
}

struct State {
    /// When the proxy started.
    started: Instant,
    conns: Mutex<Vec<Conn>>,
    /// Which connection sent each simulator message id.
    senders: Mutex<HashMap<u64, usize>>,
    /// Presence subjects (visitor id or operator id) and whether their events are skipped.
    subjects: Mutex<HashMap<String, bool>>,
    /// Messages already leaked or echoed: once each, like a backend with a routing bug.
    misrouted: Mutex<std::collections::HashSet<u64>>,
    deliveries: AtomicU64,
    broadcasts: AtomicU64,
    presence: AtomicU64,
    typing: AtomicU64,
    accepted: AtomicU64,
}

/// A running proxy.
pub struct FaultProxy {
    /// Where the simulator connects.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Proxies 127.0.0.1:<ephemeral> to `upstream`, breaking `fault`.
pub async fn start(upstream: SocketAddr, fault: Fault) -> FaultProxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let state = Arc::new(State {
        started: Instant::now(),
        conns: Mutex::default(),
        senders: Mutex::default(),
        subjects: Mutex::default(),
        misrouted: Mutex::default(),
        deliveries: AtomicU64::default(),
        broadcasts: AtomicU64::default(),
        presence: AtomicU64::default(),
        typing: AtomicU64::default(),
        accepted: AtomicU64::default(),
    });
    let task = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let _ = serve(client, upstream, fault, state).await;
            });
        }
    });
    FaultProxy { addr, task }
}

async fn read_head(s: &mut TcpStream) -> std::io::Result<BytesMut> {
    let mut buf = BytesMut::with_capacity(4096);
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if s.read_buf(&mut buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(buf)
}

async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    fault: Fault,
    state: Arc<State>,
) -> std::io::Result<()> {
    let mut server = TcpStream::connect(upstream).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let head = read_head(&mut client).await?;
    server.write_all(&head).await?;
    let line = head[..].split(|b| *b == b'\n').next().unwrap_or_default();
    if !line.windows(19).any(|w| w == b"transport=websocket") {
        tokio::io::copy_bidirectional(&mut client, &mut server).await?;
        return Ok(());
    }
    // the upgrade answer goes back as it is; frames the server sent with it stay in `rest`
    let mut rest = read_head(&mut server).await?;
    let end = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
    client.write_all(&rest.split_to(end)).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    let id = {
        let mut conns = state.conns.lock().expect("conns");
        conns.push(Conn {
            visitor: false,
            to_client: Some(tx.clone()),
        });
        conns.len() - 1
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::spawn(write_client(client_write, rx));
    tokio::spawn(client_to_server(
        client_read,
        server_write,
        id,
        fault,
        state.clone(),
    ));
    server_to_client(server_read, rest, tx, id, fault, state).await;
    Ok(())
}

async fn write_client(mut w: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<(Instant, Bytes)>) {
    while let Some((due, bytes)) = rx.recv().await {
        tokio::time::sleep_until(due).await;
        if w.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

/// One frame out of `buf`: (opcode, payload unmasked, the frame's raw bytes).
fn next_frame(buf: &mut BytesMut) -> Option<(OpCode, Bytes, Bytes)> {
    let mut cursor = Cursor::new(&buf[..]);
    let (header, len) = FrameHeader::parse(&mut cursor).ok()??;
    let head = cursor.position() as usize;
    let total = head + len as usize;
    if buf.len() < total {
        return None;
    }
    let raw = buf.split_to(total).freeze();
    let mut payload = raw.slice(head..).to_vec();
    if let Some(mask) = header.mask {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Some((header.opcode, Bytes::from(payload), raw))
}

fn server_frame(text: &str) -> Bytes {
    let mut out = Vec::with_capacity(text.len() + 10);
    let header = FrameHeader {
        opcode: OpCode::Data(Data::Text),
        ..FrameHeader::default()
    };
    let _ = header.format(text.len() as u64, &mut out);
    out.extend_from_slice(text.as_bytes());
    Bytes::from(out)
}

/// A client's text frame (clients must mask theirs; a zero key leaves the bytes as they are).
fn client_frame(text: &str) -> Bytes {
    let mut out = Vec::with_capacity(text.len() + 14);
    let header = FrameHeader {
        opcode: OpCode::Data(Data::Text),
        mask: Some([0; 4]),
        ..FrameHeader::default()
    };
    let _ = header.format(text.len() as u64, &mut out);
    out.extend_from_slice(text.as_bytes());
    Bytes::from(out)
}

fn close_frame() -> Bytes {
    let mut out = Vec::new();
    let header = FrameHeader {
        opcode: OpCode::Control(Control::Close),
        ..FrameHeader::default()
    };
    let _ = header.format(0, &mut out);
    Bytes::from(out)
}

async fn client_to_server(
    mut r: OwnedReadHalf,
    mut w: OwnedWriteHalf,
    id: usize,
    fault: Fault,
    state: Arc<State>,
) {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        while let Some((op, payload, raw)) = next_frame(&mut buf) {
            let mut raw = raw;
            if op == OpCode::Data(Data::Text) {
                watch_client(&payload, id, &state);
                if fault == Fault::RefuseReply
                    && let Some(readdressed) = refuse(&payload)
                {
                    raw = readdressed;
                }
            }
            if w.write_all(&raw).await.is_err() {
                return;
            }
        }
        match r.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                // gone: nothing more is routed to it (a leak must reach a live visitor)
                if let Some(c) = state.conns.lock().expect("conns").get_mut(id) {
                    c.to_client = None;
                }
                return;
            }
            Ok(_) => {}
        }
    }
}

/// One operator reply in 20 (by its simulator id) readdressed to a visitor that does not
/// exist, so that the relay refuses it as `unknown_client` through its ack and a
/// `relayError` (and counts it against the sender's budget, as the simulator does).
fn refuse(payload: &[u8]) -> Option<Bytes> {
    let text = std::str::from_utf8(payload).ok()?;
    let (name, data) = wire::packet::split_event(text)?;
    if name != event::OPERATOR_MESSAGE || sim::record::find_msg_id(data)? % 20 != 7 {
        return None;
    }
    let ack = wire::packet::ack_id(text)?;
    let mut v: Value = serde_json::from_str(data).ok()?;
    let to = v.get("to")?.as_str()?.to_owned();
    v["to"] = Value::from(format!("gone-{to}"));
    Some(client_frame(&format!(
        "42{ack}{}",
        serde_json::json!([name, v])
    )))
}

/// Learns who joined as a visitor and who sent which message.
fn watch_client(payload: &[u8], id: usize, state: &State) {
    let Ok(text) = std::str::from_utf8(payload) else {
        return;
    };
    let Some((name, data)) = wire::packet::split_event(text) else {
        return;
    };
    match name {
        event::JOIN if data.contains("\"client\"") => {
            if let Some(c) = state.conns.lock().expect("conns").get_mut(id) {
                c.visitor = true;
            }
        }
        event::OPERATOR_MESSAGE | event::CLIENT_MESSAGE => {
            if let Some(msg) = sim::record::find_msg_id(data) {
                state.senders.lock().expect("senders").insert(msg, id);
            }
        }
        _ => {}
    }
}

async fn server_to_client(
    mut r: OwnedReadHalf,
    mut buf: BytesMut,
    tx: mpsc::UnboundedSender<(Instant, Bytes)>,
    id: usize,
    fault: Fault,
    state: Arc<State>,
) {
    let delay = match fault {
        Fault::Slow(d) => d,
        _ => Duration::ZERO,
    };
    let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    loop {
        while let Some((op, payload, raw)) = next_frame(&mut buf) {
            if closed.load(Ordering::Acquire) {
                continue; // the "server" hung up on this client
            }
            let now = Instant::now() + delay;
            let text = (op == OpCode::Data(Data::Text))
                .then(|| std::str::from_utf8(&payload).ok())
                .flatten();
            let Some(text) = text else {
                let _ = tx.send((now, raw));
                continue;
            };
            if text.starts_with("40")
                && fault == Fault::CloseConnection
                && Fault::one_in_20(&state.accepted)
            {
                // the "server" closes this connection once it has been in use for a while
                let tx = tx.clone();
                let st = state.clone();
                let closed = closed.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    closed.store(true, Ordering::Release);
                    let _ = tx.send((Instant::now(), close_frame()));
                    if let Some(c) = st.conns.lock().expect("conns").get_mut(id) {
                        c.to_client = None;
                    }
                });
            }
            for (to, at, bytes) in break_rule(text, raw, id, now, fault, &state) {
                let target = if to == id {
                    Some(tx.clone())
                } else {
                    state
                        .conns
                        .lock()
                        .expect("conns")
                        .get(to)
                        .and_then(|c| c.to_client.clone())
                };
                let Some(t) = target else { continue };
                if matches!(fault, Fault::ReorderHold | Fault::LateDelivery) && at > now {
                    // the connection's writer keeps order: a held packet joins it later
                    tokio::spawn(async move {
                        tokio::time::sleep_until(at).await;
                        let _ = t.send((Instant::now(), bytes));
                    });
                } else {
                    let _ = t.send((at, bytes));
                }
            }
        }
        match r.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                // gone: nothing more is routed to it (a leak must reach a live visitor)
                if let Some(c) = state.conns.lock().expect("conns").get_mut(id) {
                    c.to_client = None;
                }
                return;
            }
            Ok(_) => {}
        }
    }
}

/// How long a held packet waits while later ones pass it.
const HOLD: Duration = Duration::from_millis(20);

/// True for the first packet of one message in 20 (by its simulator id).
fn once_in_20(data: &str, state: &State) -> bool {
    sim::record::find_msg_id(data)
        .is_some_and(|m| m % 20 == 7 && state.misrouted.lock().expect("misrouted").insert(m))
}

/// What to send where for one server packet: (connection, when, frame bytes).
fn break_rule(
    text: &str,
    raw: Bytes,
    me: usize,
    now: Instant,
    fault: Fault,
    state: &State,
) -> Vec<(usize, Instant, Bytes)> {
    let pass = vec![(me, now, raw.clone())];
    let Some((name, data)) = wire::packet::split_event(text) else {
        return pass;
    };
    let chat = matches!(
        name,
        event::INCOMING_OPERATOR_MESSAGE
            | event::OPERATOR_MESSAGE_BROADCAST
            | event::INCOMING_MESSAGE
    );
    let broadcast = name == event::OPERATOR_MESSAGE_BROADCAST;
    let presence = matches!(
        name,
        event::NEW_CHAT
            | event::CHAT_ENDED
            | event::OPERATOR_CONNECTED
            | event::OPERATOR_DISCONNECTED
    );
    let typing = matches!(name, event::CLIENT_TYPING | event::OPERATOR_TYPING);
    let edit = |f: &dyn Fn(&mut Value)| -> Bytes {
        let mut v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
        f(&mut v);
        server_frame(&format!("42{}", serde_json::json!([name, v])))
    };
    match fault {
        Fault::DropRecipient if chat && Fault::one_in_20(&state.deliveries) => vec![],
        Fault::Duplicate if chat && Fault::one_in_20(&state.deliveries) => {
            vec![(me, now, raw.clone()), (me, now, raw)]
        }
        Fault::ReorderHold if chat && Fault::one_in_20(&state.deliveries) => {
            // far in the future: held apart from the connection's queue, see `HOLD`
            vec![(me, now + HOLD, raw)]
        }
        Fault::LateDelivery
            if chat
                && state.started.elapsed() < LATE_FOR
                && Fault::one_in_20(&state.deliveries) =>
        {
            vec![(me, now + LATE_BY, raw)]
        }
        Fault::SkipSanitizing
            if chat && data.contains("#sim") && Fault::one_in_20(&state.deliveries) =>
        {
            let bytes = edit(&|v| {
                let text = match v.get("message") {
                    Some(Value::String(_)) => v.get_mut("message"),
                    _ => v.pointer_mut("/message/text"),
                };
                if let Some(text) = text
                    && let Some(s) = text.as_str()
                {
                    *text = Value::String(format!("{s} <b>bold</b>"));
                }
            });
            vec![(me, now, bytes)]
        }
        Fault::Misattribute if broadcast && Fault::one_in_20(&state.broadcasts) => {
            let bytes = edit(&|v| {
                if let Some(id) = v["operatorId"].as_u64() {
                    v["operatorId"] = Value::from(id + 1000);
                }
            });
            vec![(me, now, bytes)]
        }
        Fault::LeakToVisitor if broadcast && once_in_20(data, state) => {
            let visitor = state
                .conns
                .lock()
                .expect("conns")
                .iter()
                .position(|c| c.visitor && c.to_client.is_some());
            let mut out = pass;
            out.extend(visitor.map(|v| (v, now, raw)));
            out
        }
        Fault::EchoToSender if broadcast && once_in_20(data, state) => {
            let sender = sim::record::find_msg_id(data)
                .and_then(|m| state.senders.lock().expect("senders").get(&m).copied());
            let mut out = pass;
            out.extend(sender.map(|s| (s, now, raw)));
            out
        }
        Fault::SkipPresence if presence => {
            let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
            let subject = v
                .get("clientId")
                .or_else(|| v.get("operatorId"))
                .map(Value::to_string)
                .unwrap_or_default();
            let skip = *state
                .subjects
                .lock()
                .expect("subjects")
                .entry(subject)
                .or_insert_with(|| Fault::one_in_20(&state.presence));
            if skip { vec![] } else { pass }
        }
        Fault::DuplicatePresence if presence && Fault::one_in_20(&state.presence) => {
            vec![(me, now, raw.clone()), (me, now, raw)]
        }
        Fault::WrongList if name == event::CONNECTED_OPERATORS_LIST => {
            let bytes = edit(&|v| {
                if let Some(list) = v.as_array_mut().filter(|l| l.len() > 1) {
                    list.pop();
                }
            });
            vec![(me, now, bytes)]
        }
        Fault::Malformed if typing && Fault::one_in_20(&state.typing) => {
            let bytes = edit(&|v| v["isTyping"] = Value::from("yes"));
            vec![(me, now, bytes)]
        }
        _ => pass,
    }
}
