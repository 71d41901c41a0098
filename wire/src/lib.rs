//! The project's one Socket.IO client (protocol v5 over Engine.IO v4), used by the
//! simulator's bots, the relay's tests and the relay's benchmark.
//!
//! - [`Connection`] connects over WebSocket, long-polling, or long-polling upgraded to
//!   WebSocket as `socket.io-client` does by default, waits for the namespace's connect
//!   answer and yields what the server sends ([`Incoming`]), answering pings on the way.
//! - [`Sender`] writes packets from any thread without blocking: a WebSocket write is one
//!   non-blocking `write(2)` of ready-made frames (queued and flushed by the runtime only
//!   when the kernel's buffer is full), so a pacing thread can put a message on the wire at
//!   its intended instant.
//! - [`packet`] frames and reads Socket.IO text packets.
//! - [`tls`] sets up `https://` and `wss://`; [`Cookies`] is a client's cookie jar, sent on
//!   every transport so a load balancer's stickiness holds.

mod connection;
mod cookies;
mod dial;
mod endpoint;
mod locals;
mod namespace;
pub mod packet;
mod polling;
mod recovery;
pub mod tls;
mod ws;

pub use connection::{Connection, HANDSHAKE_TIMEOUT, Incoming, Options, Sender, Transport};
pub use cookies::Cookies;
pub use endpoint::Endpoint;
pub use recovery::Resume;
pub use tungstenite::Utf8Bytes;

/// Why a connection failed or a packet could not leave.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// TCP, HTTP or WebSocket I/O.
    #[error("{0}")]
    Io(String),
    /// The HTTP server refused the request (e.g. 403 for a foreign `Origin`).
    #[error("HTTP {status}: {body}")]
    Http {
        /// Status code.
        status: u16,
        /// Start of the body.
        body: String,
    },
    /// The namespace refused the connection (`44`), with the server's data.
    #[error("connect refused: {0}")]
    Refused(String),
    /// The server spoke something else.
    #[error("protocol: {0}")]
    Protocol(String),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// The connection is closed.
    #[error("closed")]
    Closed,
    /// More than [`ws::MAX_QUEUED_BYTES`] waiting to leave: the server stopped reading.
    #[error("the server stopped reading: {0} bytes waiting to leave")]
    Backlog(usize),
}

impl From<std::io::Error> for WireError {
    fn from(e: std::io::Error) -> Self {
        WireError::Io(e.to_string())
    }
}
