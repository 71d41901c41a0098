//! Each socket's inbox: the queue that hands its events, then its disconnection, to the
//! handlers one at a time and in arrival order.
//!
//! socketioxide spawns a task per incoming event, so two events of one socket can run out of
//! order. Instead, the relay registers one [`SessionHandler`] per socket whose `call` runs
//! synchronously on the socket's read loop and appends the event to the inbox; a single
//! drain task at a time works through it. Disconnection goes through the same queue, so it
//! is handled after every event the socket sent before it.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::FutureExt as _;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Event, SocketRef};
use socketioxide::handler::{DisconnectHandler, FromMessageParts, MessageHandler, Value};
use socketioxide::socket::{DisconnectReason, Socket};
use tracing::{debug, error};

use crate::handlers::{self, Inbound};
use crate::session::SessionState;
use crate::state::Relay;

/// Events a socket may have waiting; past this (or [`MAX_QUEUED_PAYLOADS`] bytes) the
/// socket is flooding: it is disconnected and the event counted as dropped.
pub const MAX_QUEUED_EVENTS: usize = 1024;

/// Queued bytes allowed, in multiples of `MAX_PAYLOAD_BYTES`.
pub const MAX_QUEUED_PAYLOADS: usize = 8;

struct Queue<A: Adapter> {
    items: VecDeque<(Inbound<A>, usize)>,
    bytes: usize,
    draining: bool,
    closed: bool,
}

/// A socket's inbox, shared by its message and disconnect handlers.
pub(crate) struct Inbox<A: Adapter> {
    relay: Arc<Relay>,
    state: tokio::sync::Mutex<SessionState>,
    queue: Mutex<Queue<A>>,
}

impl<A: Adapter> Inbox<A> {
    pub fn new(relay: Arc<Relay>, handshake_token: Option<String>) -> Arc<Self> {
        let state = SessionState::new(&relay.config, handshake_token);
        relay.metrics.sockets.inc();
        Arc::new(Self {
            relay,
            state: tokio::sync::Mutex::new(state),
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                bytes: 0,
                draining: false,
                closed: false,
            }),
        })
    }

    fn enqueue(self: &Arc<Self>, socket: &Arc<Socket<A>>, item: Inbound<A>, size: usize) {
        let is_disconnect = matches!(item, Inbound::Disconnect { .. });
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.closed {
            return;
        }
        let max_bytes = self
            .relay
            .config
            .max_payload_bytes
            .saturating_mul(MAX_QUEUED_PAYLOADS);
        if !is_disconnect
            && (queue.items.len() >= MAX_QUEUED_EVENTS || queue.bytes + size > max_bytes)
        {
            drop(queue);
            self.relay.metrics.inbound_dropped.inc();
            debug!(sid = %socket.id, "flooding: disconnecting");
            let _ = SocketRef::from(socket.clone()).disconnect();
            return;
        }
        queue.closed = is_disconnect;
        queue.bytes += size;
        queue.items.push_back((item, size));
        if !queue.draining {
            queue.draining = true;
            tokio::spawn(self.clone().drain(socket.clone()));
        }
    }

    async fn drain(self: Arc<Self>, socket: Arc<Socket<A>>) {
        let mut state = self.state.lock().await;
        loop {
            let item = {
                let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                match queue.items.pop_front() {
                    Some((item, size)) => {
                        queue.bytes -= size;
                        item
                    }
                    None => {
                        queue.draining = false;
                        return;
                    }
                }
            };
            // Socket clean-up must run even if handling panics, or the socket's rooms and
            // namespace entry would outlive it.
            let defer = match &item {
                Inbound::Disconnect { defer, .. } => Some(*defer),
                _ => None,
            };
            let handled =
                AssertUnwindSafe(handlers::dispatch(&self.relay, &mut state, &socket, item))
                    .catch_unwind()
                    .await;
            if handled.is_err() {
                self.relay.metrics.handler_panics.inc();
                error!(sid = %socket.id, "event handler panicked; socket state kept");
            }
            if let Some(defer) = defer {
                defer(socket.clone());
            }
        }
    }
}

impl<A: Adapter> Drop for Inbox<A> {
    fn drop(&mut self) {
        self.relay.metrics.sockets.dec();
    }
}

/// Marker type for the [`MessageHandler`] impl.
pub(crate) struct Sequenced;

/// Registered as the socket's only message handler (the fallback), before the connect answer.
pub(crate) struct SessionHandler<A: Adapter>(pub Arc<Inbox<A>>);

impl<A: Adapter> MessageHandler<A, Sequenced> for SessionHandler<A> {
    fn call(&self, s: Arc<Socket<A>>, mut v: Value, ack_id: Option<i64>) {
        let size = value_len(&v);
        let name = match Event::from_message_parts(&s, &mut v, &ack_id) {
            Ok(Event(name)) => name,
            Err(_) => String::new(),
        };
        let ack = ack_id.and_then(|_| AckSender::from_message_parts(&s, &mut v, &ack_id).ok());
        let (item, queued) = if size > self.0.relay.config.max_payload_bytes {
            (Inbound::Oversized { name, size, ack }, 0)
        } else {
            (Inbound::Event { name, data: v, ack }, size)
        };
        self.0.enqueue(&s, item, queued);
    }
}

impl<A: Adapter> DisconnectHandler<A, Sequenced> for SessionHandler<A> {
    fn call_with_defer(
        &self,
        s: Arc<Socket<A>>,
        reason: DisconnectReason,
        defer: fn(Arc<Socket<A>>),
    ) {
        self.0.enqueue(&s, Inbound::Disconnect { reason, defer }, 0);
    }
}

fn value_len(v: &Value) -> usize {
    match v {
        Value::Str(s, bins) => {
            s.len() + bins.as_ref().map_or(0, |b| b.iter().map(|b| b.len()).sum())
        }
        Value::Bytes(b) => b.len(),
    }
}
