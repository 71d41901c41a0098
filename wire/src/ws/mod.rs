//! The WebSocket transport: the HTTP upgrade ([`open`]), frames in ([`Reader`]), and an
//! [`Outbox`] any thread can write frames to with one non-blocking `write(2)`.
//!
//! Frames are parsed and formatted with tungstenite's `FrameHeader`/`Frame`; the stream is
//! split so reading stays with the connection's task while writes may come from a pacing
//! thread. Over TLS the split halves carry records that [`crate::tls::Records`] seals and
//! opens, so a write is still one `write(2)` of ready-made bytes.

mod open;
mod outbox;

use std::io::Cursor;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tungstenite::Utf8Bytes;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::{Frame, FrameHeader};

use crate::WireError;
use crate::tls::Records;
pub(crate) use open::open;
pub(crate) use outbox::Outbox;

/// Largest message accepted from the server.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Bytes allowed to wait in an outbox before writes fail with [`WireError::Backlog`].
pub const MAX_QUEUED_BYTES: usize = 16 << 20;

/// Initial read buffer; it grows as a message needs.
const READ_BUFFER_BYTES: usize = 4096;

/// The reading side: whole text messages out of the byte stream.
pub(crate) struct Reader {
    half: OwnedReadHalf,
    buf: BytesMut,
    /// A fragmented message being put together: (is text, bytes so far).
    fragments: Option<(bool, BytesMut)>,
    /// Over TLS: its records, and bytes read but not opened yet.
    tls: Option<(Records, BytesMut)>,
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
            if !self.fill(outbox).await? {
                // a server that closes on purpose sends a close frame first
                return Err(WireError::Io(
                    "the connection ended without a close frame".into(),
                ));
            }
        }
    }

    /// Reads more of the stream into `buf`; false when it ended.
    async fn fill(&mut self, outbox: &Arc<Outbox>) -> Result<bool, WireError> {
        let Self { half, buf, tls, .. } = self;
        let Some((records, raw)) = tls else {
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(READ_BUFFER_BYTES);
            }
            return Ok(half.read_buf(buf).await? > 0);
        };
        loop {
            if raw.capacity() - raw.len() < 1024 {
                raw.reserve(READ_BUFFER_BYTES);
            }
            if half.read_buf(raw).await? == 0 {
                return Ok(false);
            }
            let before = buf.len();
            let (answer, closed) = records.open(raw, buf)?;
            if answer {
                // what the session must say back (a key update) leaves in record order
                outbox.write(&[])?;
            }
            if buf.len() > before {
                return Ok(true);
            }
            if closed {
                return Ok(false);
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

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
            tls: None,
        };
        let outbox = Outbox::new(write, None);
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
        outbox::format(
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
