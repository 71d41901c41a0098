//! The WebSocket transport: the HTTP upgrade, frames in, and an [`Outbox`] any thread can
//! write frames to with one non-blocking `write(2)`.
//!
//! Frames are parsed and formatted with tungstenite's `FrameHeader`/`Frame`; the stream is
//! split so reading stays with the connection's task while writes may come from a pacing
//! thread. Writers take the outbox's lock for a whole batch of frames, so frames never
//! interleave; when the kernel's buffer is full the rest is queued and a runtime task
//! flushes it as the socket drains.

use std::io::Cursor;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tungstenite::Utf8Bytes;
use tungstenite::handshake::client::generate_key;
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::{Frame, FrameHeader};

use crate::WireError;
use crate::endpoint::Endpoint;
pub(crate) use crate::locals::{Leg, Locals};
use crate::packet::clip;

/// Largest message accepted from the server.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Bytes allowed to wait in an outbox before writes fail with [`WireError::Backlog`].
pub const MAX_QUEUED_BYTES: usize = 16 << 20;

/// How long queued bytes may wait for the server to read before the connection counts
/// as broken.
const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Initial read buffer; it grows as a message needs.
const READ_BUFFER_BYTES: usize = 4096;

/// Opens a TCP connection from `source` (when given) with Nagle off, noting its local end
/// in `locals` as `leg`.
pub(crate) async fn tcp(
    endpoint: &Endpoint,
    source: Option<IpAddr>,
    (locals, leg): (&Locals, Leg),
) -> Result<TcpStream, WireError> {
    let socket = if endpoint.addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }?;
    if let Some(src) = source {
        socket.bind(SocketAddr::new(src, 0))?;
    }
    let tcp = socket.connect(endpoint.addr).await?;
    tcp.set_nodelay(true)?;
    if let Ok(local) = tcp.local_addr() {
        locals.note(leg, local);
    }
    Ok(tcp)
}

/// Upgrades `tcp` to a WebSocket at `target` and splits it.
pub(crate) async fn open(
    mut tcp: TcpStream,
    endpoint: &Endpoint,
    target: &str,
    origin: Option<&str>,
) -> Result<(Reader, Arc<Outbox>), WireError> {
    let key = generate_key();
    let mut request = format!(
        "GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n",
        endpoint.host
    );
    if let Some(origin) = origin {
        request.push_str(&format!("Origin: {origin}\r\n"));
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes()).await?;
    let mut buf = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let head_len = loop {
        if tcp.read_buf(&mut buf).await? == 0 {
            return Err(WireError::Io(
                "closed during the WebSocket handshake".into(),
            ));
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = response.code.unwrap_or(0);
                if status != 101 {
                    let body = String::from_utf8_lossy(&buf[len..]);
                    return Err(WireError::Http {
                        status,
                        body: clip(&body).to_owned(),
                    });
                }
                let accept = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
                    .map(|h| h.value);
                if accept != Some(derive_accept_key(key.as_bytes()).as_bytes()) {
                    return Err(WireError::Protocol("bad Sec-WebSocket-Accept".into()));
                }
                break len;
            }
            Ok(httparse::Status::Partial) if buf.len() < 16 * 1024 => {}
            Ok(httparse::Status::Partial) => {
                return Err(WireError::Protocol("handshake answer too long".into()));
            }
            Err(e) => return Err(WireError::Protocol(format!("handshake answer: {e}"))),
        }
    };
    // the server may have sent its first frames in the same segment as its answer
    buf.advance(head_len);
    let runtime = tokio::runtime::Handle::current();
    let (read, write) = tcp.into_split();
    let outbox = Arc::new(Outbox {
        half: write,
        state: Mutex::new(OutState::default()),
        runtime,
    });
    Ok((
        Reader {
            half: read,
            buf,
            fragments: None,
        },
        outbox,
    ))
}

/// The reading side: whole text messages out of the byte stream.
pub(crate) struct Reader {
    half: OwnedReadHalf,
    buf: BytesMut,
    /// A fragmented message being put together: (is text, bytes so far).
    fragments: Option<(bool, BytesMut)>,
}

impl Reader {
    /// The next text message. Pings are answered through `outbox`; binary messages are
    /// skipped; a close frame is answered and ends the connection.
    pub(crate) async fn next_text(&mut self, outbox: &Arc<Outbox>) -> Result<Utf8Bytes, WireError> {
        // one unit of the task's cooperative budget per message, not per read: one read of
        // a backlog holds a hundred messages, and a task taking its 128 reads in one turn
        // keeps the runtime's other tasks (the simulator's ledger among them) waiting
        tokio::task::consume_budget().await;
        loop {
            if let Some(frame) = self.parse()? {
                if let Some(text) = self.on_frame(frame, outbox)? {
                    return Ok(text);
                }
                continue;
            }
            if self.buf.capacity() - self.buf.len() < 1024 {
                self.buf.reserve(READ_BUFFER_BYTES);
            }
            if self.half.read_buf(&mut self.buf).await? == 0 {
                // a server that closes on purpose sends a close frame first
                return Err(WireError::Io(
                    "the connection ended without a close frame".into(),
                ));
            }
        }
    }

    fn parse(&mut self) -> Result<Option<Frame>, WireError> {
        let mut cursor = Cursor::new(&self.buf[..]);
        let Some((header, len)) = FrameHeader::parse(&mut cursor)
            .map_err(|e| WireError::Protocol(format!("frame header: {e}")))?
        else {
            return Ok(None);
        };
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > MAX_MESSAGE_BYTES {
            return Err(WireError::Protocol(format!("a {len}-byte frame")));
        }
        let head = usize::try_from(cursor.position()).unwrap_or(usize::MAX);
        if self.buf.len() < head + len {
            self.buf.reserve(head + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(head);
        let mut payload = self.buf.split_to(len);
        if let Some(mask) = header.mask {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
        }
        Ok(Some(Frame::from_payload(
            FrameHeader {
                mask: None,
                ..header
            },
            payload.freeze(),
        )))
    }

    fn on_frame(
        &mut self,
        frame: Frame,
        outbox: &Arc<Outbox>,
    ) -> Result<Option<Utf8Bytes>, WireError> {
        let header = frame.header().clone();
        let whole = |text: bool, bytes: bytes::Bytes| -> Result<Option<Utf8Bytes>, WireError> {
            if !text {
                return Ok(None);
            }
            Utf8Bytes::try_from(bytes)
                .map(Some)
                .map_err(|_| WireError::Protocol("text frame is not UTF-8".into()))
        };
        match header.opcode {
            OpCode::Data(Data::Continue) => {
                let Some((text, mut so_far)) = self.fragments.take() else {
                    return Err(WireError::Protocol("continuation without a start".into()));
                };
                if so_far.len() + frame.len() > MAX_MESSAGE_BYTES {
                    return Err(WireError::Protocol("message too large".into()));
                }
                so_far.extend_from_slice(frame.payload());
                if header.is_final {
                    whole(text, so_far.freeze())
                } else {
                    self.fragments = Some((text, so_far));
                    Ok(None)
                }
            }
            OpCode::Data(data) => {
                let text = data == Data::Text;
                if header.is_final {
                    whole(text, frame.into_payload())
                } else {
                    self.fragments = Some((text, BytesMut::from(frame.payload())));
                    Ok(None)
                }
            }
            OpCode::Control(Control::Ping) => {
                outbox.write_frame(Frame::pong(frame.into_payload()))?;
                Ok(None)
            }
            OpCode::Control(Control::Close) => {
                outbox.close();
                Err(WireError::Closed)
            }
            OpCode::Control(_) => Ok(None),
        }
    }
}

#[derive(Default)]
struct OutState {
    /// Bytes the kernel did not take yet, in order.
    queued: Vec<u8>,
    /// A flush task is running.
    flushing: bool,
    /// A close frame left: nothing more may.
    closed: bool,
    /// Writing failed for good.
    failed: Option<String>,
}

/// The writing side of one WebSocket, shared by every [`crate::Sender`] of it.
pub(crate) struct Outbox {
    half: OwnedWriteHalf,
    state: Mutex<OutState>,
    runtime: tokio::runtime::Handle,
}

impl Outbox {
    /// Writes each of `texts` as one masked text frame, all in one write.
    pub(crate) fn send_texts(self: &Arc<Self>, texts: &[&str]) -> Result<(), WireError> {
        let mut bytes = Vec::with_capacity(texts.iter().map(|t| t.len() + 14).sum());
        for t in texts {
            format(
                Frame::message(t.as_bytes().to_vec(), OpCode::Data(Data::Text), true),
                &mut bytes,
            )?;
        }
        self.write(&bytes)
    }

    /// Writes `data` as one masked binary frame (a Socket.IO attachment).
    pub(crate) fn send_binary(self: &Arc<Self>, data: &[u8]) -> Result<(), WireError> {
        self.write_frame(Frame::message(
            data.to_vec(),
            OpCode::Data(Data::Binary),
            true,
        ))
    }

    fn write_frame(self: &Arc<Self>, frame: Frame) -> Result<(), WireError> {
        let mut bytes = Vec::with_capacity(frame.len() + 14);
        format(frame, &mut bytes)?;
        self.write(&bytes)
    }

    /// Sends a close frame (once) and refuses every later write.
    pub(crate) fn close(self: &Arc<Self>) {
        let mut bytes = Vec::with_capacity(8);
        if format(Frame::close(None), &mut bytes).is_err() {
            return;
        }
        // checked, written and marked under one lock: nothing follows the close frame
        let mut st = self.lock();
        if !st.closed {
            let _ = self.write_locked(&mut st, &bytes);
            st.closed = true;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OutState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(self: &Arc<Self>, bytes: &[u8]) -> Result<(), WireError> {
        let mut st = self.lock();
        self.write_locked(&mut st, bytes)
    }

    fn write_locked(self: &Arc<Self>, st: &mut OutState, bytes: &[u8]) -> Result<(), WireError> {
        if st.closed {
            return Err(WireError::Closed);
        }
        if let Some(e) = &st.failed {
            return Err(WireError::Io(e.clone()));
        }
        if st.queued.len() + bytes.len() > MAX_QUEUED_BYTES {
            // refused whole, before any of it is written: no half frame on the wire
            let waiting = st.queued.len();
            st.failed = Some(format!("{waiting} bytes waiting to leave"));
            return Err(WireError::Backlog(waiting));
        }
        let mut done = 0;
        if st.queued.is_empty() {
            while done < bytes.len() {
                match self.half.try_write(&bytes[done..]) {
                    Ok(0) => {
                        st.failed = Some("connection closed".into());
                        return Err(WireError::Closed);
                    }
                    Ok(n) => done += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        st.failed = Some(e.to_string());
                        return Err(e.into());
                    }
                }
            }
            if done == bytes.len() {
                return Ok(());
            }
        }
        st.queued.extend_from_slice(&bytes[done..]);
        if !st.flushing {
            st.flushing = true;
            let me = self.clone();
            self.runtime.spawn(async move { me.flush().await });
        }
        Ok(())
    }

    /// Writes the queue out as the socket drains.
    async fn flush(self: Arc<Self>) {
        loop {
            // a peer that stops reading for this long is gone: give up, do not hold the socket
            let ready = tokio::time::timeout(FLUSH_TIMEOUT, self.half.writable()).await;
            if let Err(why) = ready
                .map_err(|_| "the server stopped reading".to_owned())
                .and_then(|r| r.map_err(|e| e.to_string()))
            {
                let mut st = self.lock();
                st.failed = Some(why);
                st.flushing = false;
                return;
            }
            let mut st = self.lock();
            loop {
                match self.half.try_write(&st.queued) {
                    Ok(n) if n > 0 => {
                        st.queued.drain(..n);
                        if st.queued.is_empty() {
                            st.flushing = false;
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Ok(_) | Err(_) => {
                        st.failed = Some("connection closed while flushing".into());
                        st.flushing = false;
                        return;
                    }
                }
            }
        }
    }
}

/// A client frame: masked with a fresh key, as RFC 6455 requires.
fn format(mut frame: Frame, out: &mut Vec<u8>) -> Result<(), WireError> {
    frame.header_mut().mask = Some(rand::random());
    frame
        .format(out)
        .map_err(|e| WireError::Protocol(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A reader and outbox on one end of a loopback connection, and the server's end.
    async fn pair() -> (Reader, Arc<Outbox>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (read, write) = client.expect("connect").into_split();
        let reader = Reader {
            half: read,
            buf: BytesMut::with_capacity(READ_BUFFER_BYTES),
            fragments: None,
        };
        let outbox = Arc::new(Outbox {
            half: write,
            state: Mutex::new(OutState::default()),
            runtime: tokio::runtime::Handle::current(),
        });
        (reader, outbox, server.expect("accept").0)
    }

    /// A server's text frame (unmasked).
    fn server_frame(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        Frame::message(text.as_bytes().to_vec(), OpCode::Data(Data::Text), true)
            .format(&mut out)
            .expect("format");
        out
    }

    #[tokio::test]
    async fn a_backlog_of_messages_leaves_other_tasks_their_turns() {
        let (mut reader, outbox, mut server) = pair().await;
        let backlog: Vec<u8> = (0..2000)
            .flat_map(|i| server_frame(&format!("42[\"chatEnded\",{{\"clientId\":\"{i}\"}}]")))
            .collect();
        server.write_all(&backlog).await.expect("write");
        let turns = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = turns.clone();
        let other = tokio::spawn(async move {
            loop {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        });
        for i in 0..2000 {
            let text = reader.next_text(&outbox).await.expect("message");
            assert!(text.as_str().contains(&format!("\"{i}\"")), "in order");
        }
        let seen = turns.load(std::sync::atomic::Ordering::Relaxed);
        other.abort();
        // 2,000 messages at 128 per turn: the other task ran between them, though the
        // backlog took fewer than 128 reads
        assert!(
            seen >= 10,
            "the other task ran {seen} times while 2,000 messages were read"
        );
    }

    #[test]
    fn client_frames_are_masked_and_read_back() {
        let mut out = Vec::new();
        format(
            Frame::message(b"42[\"x\",1]".to_vec(), OpCode::Data(Data::Text), true),
            &mut out,
        )
        .expect("format");
        assert_eq!(out[0], 0x81, "FIN + text");
        assert_eq!(out[1] & 0x80, 0x80, "masked");
        let mut cursor = Cursor::new(&out[..]);
        let (header, len) = FrameHeader::parse(&mut cursor)
            .expect("parse")
            .expect("whole");
        let mask = header.mask.expect("mask");
        let start = cursor.position() as usize;
        let plain: Vec<u8> = out[start..start + len as usize]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        assert_eq!(plain, b"42[\"x\",1]");
    }
}
