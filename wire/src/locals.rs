//! The local ends of a Socket.IO connection's TCP connections, one per leg, so that a network
//! fault that cut one of them can be matched with the connection it broke.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Which of a Socket.IO connection's TCP connections: over WebSocket the one stream;
/// over long-polling the `GET`s' and the `POST`s'; and an upgrade's WebSocket.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Leg {
    /// The WebSocket, or the long-polling `GET`s.
    Stream = 0,
    /// The long-polling `POST`s.
    Post = 1,
    /// The WebSocket a long-polling connection upgrades to.
    Upgrade = 2,
}

/// The local end of each of a Socket.IO connection's TCP connections, the latest of each
/// leg (a long-polling leg reopened replaces its old one): what a network fault that cut
/// one of them is matched with.
#[derive(Debug, Clone, Default)]
pub(crate) struct Locals(Arc<Mutex<[Option<SocketAddr>; 3]>>);

impl Locals {
    pub(crate) fn note(&self, leg: Leg, addr: SocketAddr) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)[leg as usize] = Some(addr);
    }

    /// The local end of every leg opened.
    pub(crate) fn all(&self) -> Vec<SocketAddr> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .flatten()
            .copied()
            .collect()
    }
}
