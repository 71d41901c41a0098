//! The writing side of one WebSocket: frames from any thread, each batch one non-blocking
//! `write(2)`; what the kernel does not take waits in order for a runtime task to flush.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::tcp::OwnedWriteHalf;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};

use super::MAX_QUEUED_BYTES;
use crate::WireError;
use crate::tls::Records;

/// How long queued bytes may wait for the server to read before the connection counts
/// as broken.
const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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
    /// Over TLS: what seals the frames into records.
    records: Option<Records>,
    state: Mutex<OutState>,
    runtime: tokio::runtime::Handle,
}

impl Outbox {
    pub(crate) fn new(half: OwnedWriteHalf, records: Option<Records>) -> Arc<Self> {
        Arc::new(Self {
            half,
            records,
            state: Mutex::new(OutState::default()),
            runtime: tokio::runtime::Handle::current(),
        })
    }

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

    pub(super) fn write_frame(self: &Arc<Self>, frame: Frame) -> Result<(), WireError> {
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

    pub(super) fn write(self: &Arc<Self>, bytes: &[u8]) -> Result<(), WireError> {
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
        let sealed;
        let bytes = match &self.records {
            Some(r) => {
                sealed = r.seal(bytes)?;
                &sealed[..]
            }
            None => bytes,
        };
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
pub(super) fn format(mut frame: Frame, out: &mut Vec<u8>) -> Result<(), WireError> {
    frame.header_mut().mask = Some(rand::random());
    frame
        .format(out)
        .map_err(|e| WireError::Protocol(e.to_string()))
}
