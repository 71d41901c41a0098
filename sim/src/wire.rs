//! A lean Socket.IO v5 client over one WebSocket (Engine.IO v4): connect, wait for the
//! namespace's connect answer, answer pings, send and receive event frames.
//!
//! One connection is one `WebSocketStream` owned by one task; buffers are sized on purpose
//! (tungstenite's defaults cost about 136 KiB per socket).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// How long the handshake may take before the attempt counts as failed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// How long one frame may take to leave before the connection counts as broken.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// A Socket.IO endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host and port.
    pub addr: SocketAddr,
    /// `Host` header value.
    pub host: String,
    /// HTTP path of the Socket.IO endpoint, without trailing slash.
    pub path: String,
}

impl Endpoint {
    /// Parses `http://host:port/path`. Only literal IP addresses and `localhost` resolve here.
    ///
    /// # Errors
    /// A message saying what is wrong with the URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("ws://"))
            .ok_or_else(|| format!("{url:?}: only http:// and ws:// URLs are supported"))?;
        let (hostport, path) = rest.split_once('/').unwrap_or((rest, "socket.io"));
        let path = format!("/{}", path.trim_end_matches('/'));
        let hostport_resolved = hostport.replacen("localhost", "127.0.0.1", 1);
        let addr: SocketAddr = hostport_resolved
            .parse()
            .or_else(|_| format!("{hostport_resolved}:80").parse())
            .map_err(|_| {
                format!("{url:?}: host must be an IP address and port, like 127.0.0.1:3001")
            })?;
        Ok(Self {
            addr,
            host: hostport.to_owned(),
            path,
        })
    }
}

/// Why a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// TCP or WebSocket I/O.
    #[error("{0}")]
    Io(String),
    /// The namespace refused the connection (`44`).
    #[error("connect refused: {0}")]
    Refused(String),
    /// The server spoke something else.
    #[error("protocol: {0}")]
    Protocol(String),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// The connection closed.
    #[error("closed")]
    Closed,
}

/// Something the server sent.
#[derive(Debug)]
pub enum Incoming {
    /// `42["name", data]`: the whole frame text.
    Event(Utf8Bytes),
    /// `43<id>[data]`: ack id and the frame text.
    Ack(u64, Utf8Bytes),
    /// `41`: the server disconnected the namespace.
    Disconnect,
}

/// One Socket.IO connection.
pub struct Connection {
    ws: WebSocketStream<TcpStream>,
    /// Server-assigned socket id.
    pub sid: String,
}

impl Connection {
    /// Connects from `source` (spread sources over 127.0.0.x past ~15,000 sockets), sends the
    /// namespace connect with `auth` (a JSON object) and waits for the answer.
    ///
    /// # Errors
    /// [`WireError`].
    pub async fn connect(
        endpoint: &Endpoint,
        source: Option<IpAddr>,
        auth: Option<&str>,
    ) -> Result<Self, WireError> {
        tokio::time::timeout(HANDSHAKE_TIMEOUT, Self::handshake(endpoint, source, auth))
            .await
            .map_err(|_| WireError::Timeout)?
    }

    async fn handshake(
        endpoint: &Endpoint,
        source: Option<IpAddr>,
        auth: Option<&str>,
    ) -> Result<Self, WireError> {
        let io = |e: std::io::Error| WireError::Io(e.to_string());
        let socket = if endpoint.addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(io)?;
        if let Some(src) = source {
            socket.bind(SocketAddr::new(src, 0)).map_err(io)?;
        }
        let tcp = socket.connect(endpoint.addr).await.map_err(io)?;
        tcp.set_nodelay(true).map_err(io)?;
        let url = format!(
            "ws://{}{}/?EIO=4&transport=websocket",
            endpoint.host, endpoint.path
        );
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0)
            .max_message_size(Some(64 << 20));
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config))
            .await
            .map_err(|e| WireError::Io(e.to_string()))?;
        let mut conn = Self {
            ws,
            sid: String::new(),
        };
        let open = conn.next_text().await?;
        if !open.starts_with('0') {
            return Err(WireError::Protocol(format!(
                "expected an open packet, got {open:?}"
            )));
        }
        let packet = match auth {
            Some(a) => format!("40{a}"),
            None => "40".to_owned(),
        };
        conn.send_raw(packet).await?;
        loop {
            let text = conn.next_text().await?;
            if text == "2" {
                conn.send_raw("3".to_owned()).await?;
            } else if let Some(body) = text.strip_prefix("40") {
                let v: serde_json::Value = serde_json::from_str(body)
                    .map_err(|e| WireError::Protocol(format!("connect answer: {e}")))?;
                conn.sid = v["sid"].as_str().unwrap_or_default().to_owned();
                return Ok(conn);
            } else if let Some(body) = text.strip_prefix("44") {
                return Err(WireError::Refused(body.to_owned()));
            } else {
                return Err(WireError::Protocol(format!(
                    "expected a connect answer, got {text:?}"
                )));
            }
        }
    }

    /// Sends `42[event, data]`, with an ack id when given.
    ///
    /// # Errors
    /// [`WireError::Io`] when the connection is gone.
    pub async fn emit<T: serde::Serialize + ?Sized>(
        &mut self,
        event: &str,
        data: &T,
        ack: Option<u64>,
    ) -> Result<(), WireError> {
        let body = serde_json::to_string(&(event, data))
            .map_err(|e| WireError::Protocol(e.to_string()))?;
        let frame = match ack {
            Some(id) => format!("42{id}{body}"),
            None => format!("42{body}"),
        };
        self.send_raw(frame).await
    }

    /// Sends a raw Engine.IO text frame.
    ///
    /// # Errors
    /// [`WireError::Io`] when the connection is gone.
    pub async fn send_raw(&mut self, frame: String) -> Result<(), WireError> {
        // a backend that stops reading must not hang the bot
        tokio::time::timeout(SEND_TIMEOUT, self.ws.send(Message::text(frame)))
            .await
            .map_err(|_| WireError::Timeout)?
            .map_err(|e| WireError::Io(e.to_string()))
    }

    /// Next event, ack or disconnect; pings are answered on the way.
    ///
    /// # Errors
    /// [`WireError::Closed`] when the connection ends.
    pub async fn next(&mut self) -> Result<Incoming, WireError> {
        loop {
            let text = match self.ws.next().await {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Close(_))) | None => return Err(WireError::Closed),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(WireError::Io(e.to_string())),
            };
            let s = text.as_str();
            if s == "2" {
                self.send_raw("3".to_owned()).await?;
            } else if s.starts_with("42") {
                return Ok(Incoming::Event(text));
            } else if let Some(rest) = s.strip_prefix("43") {
                let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                if let Ok(id) = rest[..digits].parse() {
                    return Ok(Incoming::Ack(id, text));
                }
            } else if s.starts_with("41") || s == "1" {
                return Ok(Incoming::Disconnect);
            }
        }
    }

    async fn next_text(&mut self) -> Result<String, WireError> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(t))) => return Ok(t.as_str().to_owned()),
                Some(Ok(Message::Close(_))) | None => return Err(WireError::Closed),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(WireError::Io(e.to_string())),
            }
        }
    }

    /// Closes the WebSocket with a close frame.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(SEND_TIMEOUT, self.ws.close(None)).await;
    }
}

/// Splits `42["name",data]` (or `43<id>[data]`) into the event name and the raw JSON of the
/// first argument, without parsing the rest.
pub fn split_event(frame: &str) -> Option<(&str, &str)> {
    let body = frame.strip_prefix("42")?;
    let body = body.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = body.strip_prefix("[\"")?;
    let end = rest.find('"')?;
    let name = &rest[..end];
    let after = rest[end + 1..].trim_start();
    let data = match after.strip_prefix(',') {
        Some(d) => d.strip_suffix(']')?.trim(),
        None => "null",
    };
    Some((name, data))
}

/// The first argument of an ack frame `43<id>[data]`.
pub fn ack_data(frame: &str) -> Option<&str> {
    let rest = frame.strip_prefix("43")?;
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    rest.strip_prefix('[')?.strip_suffix(']').map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("http://127.0.0.1:3001/chat").expect("ok");
        assert_eq!(e.addr.port(), 3001);
        assert_eq!(e.path, "/chat");
        let e = Endpoint::parse("http://localhost:9/chat/").expect("ok");
        assert_eq!(e.path, "/chat");
        assert_eq!(e.host, "localhost:9");
        assert!(Endpoint::parse("https://example.com/chat").is_err());
        assert!(Endpoint::parse("http://example.com:80/chat").is_err());
    }

    #[test]
    fn splits_event_frames() {
        assert_eq!(
            split_event(r#"42["newChat",{"a":1}]"#),
            Some(("newChat", r#"{"a":1}"#))
        );
        assert_eq!(split_event(r#"42["x"]"#), Some(("x", "null")));
        assert_eq!(split_event(r#"4212["x",[1,2]]"#), Some(("x", "[1,2]")));
        assert_eq!(split_event("42"), None);
        assert_eq!(
            ack_data(r#"437[{"messageId":"a"}]"#),
            Some(r#"{"messageId":"a"}"#)
        );
    }
}
