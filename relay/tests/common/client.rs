//! A lean Socket.IO v5 client over one WebSocket (Engine.IO v4), for the relay's tests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// Default wait for an expected event.
pub const WAIT: Duration = Duration::from_secs(10);

/// A received event: name and first argument.
pub type Received = (String, Value);

type Acks = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// One Socket.IO connection.
pub struct Client {
    /// The socket id the server assigned.
    pub sid: String,
    out: mpsc::UnboundedSender<Message>,
    events: mpsc::UnboundedReceiver<Received>,
    acks: Acks,
    next_ack: u64,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Why a connection attempt failed.
#[derive(Debug)]
pub enum ConnectError {
    /// WebSocket handshake refused (e.g. HTTP 403).
    Http(String),
    /// The namespace answered `44` connect_error.
    Refused(Value),
    /// Anything else.
    Protocol(String),
}

impl Client {
    /// Connects to `/chat` on `addr`, with an optional handshake `auth` object.
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
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!("ws://{addr}{path}/?EIO=4&transport=websocket");
        let mut request = url
            .into_client_request()
            .map_err(|e| ConnectError::Protocol(e.to_string()))?;
        if let Some(origin) = origin {
            request.headers_mut().insert(
                "origin",
                origin
                    .parse()
                    .map_err(|_| ConnectError::Protocol("origin".into()))?,
            );
        }
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| ConnectError::Http(e.to_string()))?;
        let (mut sink, mut stream) = ws.split();

        let open = next_text(&mut stream).await?;
        if !open.starts_with('0') {
            return Err(ConnectError::Protocol(format!(
                "expected open packet, got {open:?}"
            )));
        }
        let connect = match auth {
            Some(a) => format!("40{a}"),
            None => "40".to_owned(),
        };
        sink.send(Message::text(connect))
            .await
            .map_err(|e| ConnectError::Protocol(e.to_string()))?;
        let mut answer = next_text(&mut stream).await?;
        while answer == "2" {
            sink.send(Message::text("3"))
                .await
                .map_err(|e| ConnectError::Protocol(e.to_string()))?;
            answer = next_text(&mut stream).await?;
        }
        let sid = if let Some(body) = answer.strip_prefix("40") {
            let v: Value =
                serde_json::from_str(body).map_err(|e| ConnectError::Protocol(e.to_string()))?;
            v["sid"].as_str().unwrap_or_default().to_owned()
        } else if let Some(body) = answer.strip_prefix("44") {
            return Err(ConnectError::Refused(
                serde_json::from_str(body).unwrap_or(Value::Null),
            ));
        } else {
            return Err(ConnectError::Protocol(format!(
                "expected connect answer, got {answer:?}"
            )));
        };

        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let writer = tokio::spawn(async move {
            while let Some(msg) = out_rx.recv().await {
                if sink.send(msg).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let acks: Acks = Arc::default();
        let reader_acks = acks.clone();
        let pong = out_tx.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                let text = text.as_str();
                if text == "2" {
                    let _ = pong.send(Message::text("3"));
                } else if let Some(body) = text.strip_prefix("42") {
                    if let Ok(Value::Array(mut args)) = serde_json::from_str::<Value>(body) {
                        let name = args
                            .first()
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned();
                        let data = if args.len() > 1 {
                            args.swap_remove(1)
                        } else {
                            Value::Null
                        };
                        let _ = ev_tx.send((name, data));
                    }
                } else if let Some(body) = text.strip_prefix("43") {
                    let split = body.find('[').unwrap_or(body.len());
                    let (id, rest) = body.split_at(split);
                    if let (Ok(id), Ok(Value::Array(mut args))) =
                        (id.parse::<u64>(), serde_json::from_str::<Value>(rest))
                    {
                        let data = if args.is_empty() {
                            Value::Null
                        } else {
                            args.swap_remove(0)
                        };
                        if let Some(tx) = reader_acks.lock().expect("ack map").remove(&id) {
                            let _ = tx.send(data);
                        }
                    }
                } else if text.starts_with("41") {
                    let _ = ev_tx.send(("disconnect".to_owned(), Value::Null));
                }
            }
            let _ = ev_tx.send(("closed".to_owned(), Value::Null));
        });
        Ok(Client {
            sid,
            out: out_tx,
            events: ev_rx,
            acks,
            next_ack: 0,
            tasks: vec![writer, reader],
        })
    }

    /// Sends `42["event", data]`.
    pub fn emit(&self, event: &str, data: Value) {
        self.emit_raw(format!("42{}", json!([event, data])));
    }

    /// Sends an event with no argument.
    pub fn emit_bare(&self, event: &str) {
        self.emit_raw(format!("42{}", json!([event])));
    }

    /// Sends a raw Engine.IO text frame.
    pub fn emit_raw(&self, frame: String) {
        let _ = self.out.send(Message::text(frame));
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
    pub fn close(mut self) {
        let _ = self.out.send(Message::Close(None));
        self.tasks.clear(); // detach: let the writer send the close frame
    }
}

/// Dropping a client cuts its TCP connection without a close frame.
impl Drop for Client {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn next_text<S>(stream: &mut S) -> Result<String, ConnectError>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(WAIT, stream.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Ok(t.as_str().to_owned()),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(ConnectError::Protocol(e.to_string())),
            Ok(None) => return Err(ConnectError::Protocol("closed".into())),
            Err(_) => return Err(ConnectError::Protocol("timed out".into())),
        }
    }
}
