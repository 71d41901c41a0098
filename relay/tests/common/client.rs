//! The relay tests' client: the project's Socket.IO client (`wire`) with a reader task, so
//! a test can wait for events and acks while it writes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use wire::{Connection, Endpoint, Incoming, Options, Sender, Transport, WireError};

/// Default wait for an expected event.
pub const WAIT: Duration = Duration::from_secs(10);

/// A received event: name and first argument.
pub type Received = (String, Value);

type Acks = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// One Socket.IO connection.
pub struct Client {
    /// The socket id the server assigned.
    pub sid: String,
    sender: Sender,
    events: mpsc::UnboundedReceiver<Received>,
    acks: Acks,
    next_ack: u64,
    reader: tokio::task::JoinHandle<()>,
}

/// Why a connection attempt failed.
#[derive(Debug)]
pub enum ConnectError {
    /// HTTP refused (e.g. 403 for a foreign origin).
    Http(String),
    /// The namespace answered `44` connect_error.
    Refused(Value),
    /// Anything else.
    Protocol(String),
}

impl Client {
    /// Connects to `/chat` on `addr` over WebSocket, with an optional handshake `auth` object.
    pub async fn connect(addr: SocketAddr, auth: Option<Value>) -> Result<Client, ConnectError> {
        Self::connect_with(addr, "/chat", auth, None).await
    }

    /// Connects with full control over path and `Origin` header.
    pub async fn connect_with(
        addr: SocketAddr,
        path: &str,
        auth: Option<Value>,
        origin: Option<&str>,
    ) -> Result<Client, ConnectError> {
        Self::connect_over(addr, path, auth, origin, Transport::Websocket).await
    }

    /// Connects over `transport`; with [`Transport::Upgrade`] the connection is upgraded
    /// to WebSocket before this returns.
    pub async fn connect_over(
        addr: SocketAddr,
        path: &str,
        auth: Option<Value>,
        origin: Option<&str>,
        transport: Transport,
    ) -> Result<Client, ConnectError> {
        let options = Options {
            transport,
            auth: auth.map(|a| a.to_string()),
            source: None,
            origin: origin.map(str::to_owned),
            ..Options::default()
        };
        Self::connect_to(&Endpoint::new(addr, path), options).await
    }

    /// Connects to `endpoint` with `options`; with [`Transport::Upgrade`] the connection
    /// is upgraded to WebSocket before this returns.
    pub async fn connect_to(endpoint: &Endpoint, options: Options) -> Result<Client, ConnectError> {
        let transport = options.transport;
        let mut conn = Connection::connect(endpoint, options)
            .await
            .map_err(|e| match e {
                WireError::Http { status, body } => ConnectError::Http(format!("{status} {body}")),
                WireError::Refused(body) => {
                    ConnectError::Refused(serde_json::from_str(&body).unwrap_or(Value::Null))
                }
                other => ConnectError::Protocol(other.to_string()),
            })?;
        if transport == Transport::Upgrade {
            conn.upgrade()
                .await
                .map_err(|e| ConnectError::Protocol(format!("upgrade: {e}")))?;
        }
        Ok(Self::wrap(conn))
    }

    fn wrap(mut conn: Connection) -> Client {
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let acks: Acks = Arc::default();
        let reader_acks = acks.clone();
        let sid = conn.sid.clone();
        let sender = conn.sender();
        let reader = tokio::spawn(async move {
            loop {
                match conn.next().await {
                    Ok(Incoming::Event(frame)) => {
                        let (name, data) =
                            wire::packet::split_event(frame.as_str()).unwrap_or(("", "null"));
                        let data = serde_json::from_str(data).unwrap_or(Value::Null);
                        let _ = ev_tx.send((name.to_owned(), data));
                    }
                    Ok(Incoming::Ack(id, frame)) => {
                        let data = wire::packet::ack_data(frame.as_str())
                            .and_then(|d| serde_json::from_str(d).ok())
                            .unwrap_or(Value::Null);
                        if let Some(tx) = reader_acks.lock().expect("ack map").remove(&id) {
                            let _ = tx.send(data);
                        }
                    }
                    Ok(Incoming::Disconnect) => {
                        let _ = ev_tx.send(("disconnect".to_owned(), Value::Null));
                    }
                    Err(_) => break,
                }
            }
            let _ = ev_tx.send(("closed".to_owned(), Value::Null));
        });
        Client {
            sid,
            sender,
            events: ev_rx,
            acks,
            next_ack: 0,
            reader,
        }
    }

    /// Sends `42["event", data]`.
    pub fn emit(&self, event: &str, data: Value) {
        self.emit_raw(format!("42{}", json!([event, data])));
    }

    /// Sends an event with no argument.
    pub fn emit_bare(&self, event: &str) {
        self.emit_raw(wire::packet::bare_event(event, None));
    }

    /// Sends a raw Engine.IO text packet.
    pub fn emit_raw(&self, frame: String) {
        let _ = self.sender.send(&frame);
    }

    /// Sends an event asking for an ack, and waits for it.
    pub async fn emit_with_ack(&mut self, event: &str, data: Value) -> Value {
        self.next_ack += 1;
        let id = self.next_ack;
        let (tx, rx) = oneshot::channel();
        self.acks.lock().expect("ack map").insert(id, tx);
        self.emit_raw(format!("42{id}{}", json!([event, data])));
        tokio::time::timeout(WAIT, rx)
            .await
            .expect("ack in time")
            .expect("ack sender alive")
    }

    /// Next event, whatever it is.
    pub async fn recv(&mut self) -> Received {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .unwrap_or_else(|_| panic!("socket {} received nothing within {WAIT:?}", self.sid))
            .expect("reader alive")
    }

    /// Next event if one arrives within `within`.
    pub async fn recv_within(&mut self, within: Duration) -> Option<Received> {
        tokio::time::timeout(within, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// Next event, which must be `name`; returns its data.
    pub async fn expect(&mut self, name: &str) -> Value {
        let (got, data) = self.recv().await;
        assert_eq!(
            got, name,
            "socket {} expected {name}, got {got} {data}",
            self.sid
        );
        data
    }

    /// Skips events until `name` arrives; returns its data.
    pub async fn wait_for(&mut self, name: &str) -> Value {
        loop {
            let (got, data) = self.recv().await;
            if got == name {
                return data;
            }
        }
    }

    /// Every event received within `quiet` of the previous one.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<Received> {
        let mut all = Vec::new();
        while let Ok(Some(ev)) = tokio::time::timeout(quiet, self.events.recv()).await {
            all.push(ev);
        }
        all
    }

    /// Asserts nothing (but pings) arrives within `quiet`.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        let got = self.drain(quiet).await;
        assert!(
            got.is_empty(),
            "socket {} should have received nothing, got {got:?}",
            self.sid
        );
    }

    /// Closes the WebSocket gracefully (close frame).
    pub fn close(self) {
        self.sender.close();
    }
}

/// Dropping a client cuts its TCP connection without a close frame.
impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}
