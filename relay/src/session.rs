//! One socket's session: its identity, budgets, and the queue that handles its events in order.
//!
//! socketioxide spawns a task per incoming event, so two events of one socket can run out of
//! order. Instead, the relay registers one [`SessionHandler`] per socket whose `call` runs
//! synchronously on the socket's read loop and appends the event to the session's queue; a
//! single drain task at a time works through the queue. Disconnection goes through the same
//! queue, so it is handled after every event the socket sent before it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, Event};
use socketioxide::handler::{DisconnectHandler, FromMessageParts, MessageHandler, Value};
use socketioxide::socket::{DisconnectReason, Socket};

use crate::auth::OperatorIdentity;
use crate::handlers;
use crate::ratelimit::SlidingWindow;
use crate::server::Relay;

/// The adapter the relay runs on.
pub(crate) type Adapter = LocalAdapter;

/// Events a socket may have waiting before further ones are dropped (and counted).
pub const MAX_QUEUED_EVENTS: usize = 1024;

const MINUTE: Duration = Duration::from_secs(60);

/// What a socket has joined as.
#[derive(Debug, Clone)]
pub(crate) enum Role {
    /// Nothing yet: only `join` is allowed.
    Unjoined,
    /// An authenticated operator.
    Operator(OperatorIdentity),
    /// A visitor.
    Client,
}

/// State only the drain task touches.
#[derive(Debug)]
pub(crate) struct SessionState {
    pub role: Role,
    pub messages: SlidingWindow,
    pub typing: SlidingWindow,
}

/// One queued item.
pub(crate) enum Inbound {
    /// An event within the size limit.
    Event {
        name: String,
        data: Value,
        ack: Option<AckSender<Adapter>>,
    },
    /// An event over `MAX_PAYLOAD_BYTES`; its data was dropped on arrival.
    Oversized { name: String, size: usize },
    /// The socket is gone; run `defer` (socketioxide's room clean-up) after handling it.
    Disconnect {
        reason: DisconnectReason,
        defer: fn(Arc<Socket<Adapter>>),
    },
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Inbound>,
    draining: bool,
    closed: bool,
}

/// A socket's session, shared by its message and disconnect handlers.
pub(crate) struct Session {
    relay: Arc<Relay>,
    /// Token from the handshake `auth` object, verified at `join`.
    pub handshake_token: Option<String>,
    state: tokio::sync::Mutex<SessionState>,
    queue: Mutex<Queue>,
}

impl Session {
    pub fn new(relay: Arc<Relay>, handshake_token: Option<String>) -> Arc<Self> {
        let state = SessionState {
            role: Role::Unjoined,
            messages: SlidingWindow::new(relay.config.rate_limit_per_minute, MINUTE),
            typing: SlidingWindow::new(relay.config.typing_rate_limit_per_minute, MINUTE),
        };
        relay.metrics.sockets.inc();
        Arc::new(Self {
            relay,
            handshake_token,
            state: tokio::sync::Mutex::new(state),
            queue: Mutex::new(Queue::default()),
        })
    }

    fn enqueue(self: &Arc<Self>, socket: &Arc<Socket<Adapter>>, item: Inbound) {
        let is_disconnect = matches!(item, Inbound::Disconnect { .. });
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.closed {
            return;
        }
        if !is_disconnect && queue.items.len() >= MAX_QUEUED_EVENTS {
            self.relay.metrics.inbound_dropped.inc();
            return;
        }
        queue.closed = is_disconnect;
        queue.items.push_back(item);
        if !queue.draining {
            queue.draining = true;
            tokio::spawn(self.clone().drain(socket.clone()));
        }
    }

    async fn drain(self: Arc<Self>, socket: Arc<Socket<Adapter>>) {
        let mut state = self.state.lock().await;
        loop {
            let item = {
                let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                match queue.items.pop_front() {
                    Some(item) => item,
                    None => {
                        queue.draining = false;
                        return;
                    }
                }
            };
            handlers::dispatch(&self, &self.relay, &mut state, &socket, item).await;
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.relay.metrics.sockets.dec();
    }
}

/// Marker type for the [`MessageHandler`] impl.
pub(crate) struct Sequenced;

/// Registered as the socket's only message handler (the fallback), before the connect answer.
pub(crate) struct SessionHandler(pub Arc<Session>);

impl MessageHandler<Adapter, Sequenced> for SessionHandler {
    fn call(&self, s: Arc<Socket<Adapter>>, mut v: Value, ack_id: Option<i64>) {
        let size = value_len(&v);
        let name = match Event::from_message_parts(&s, &mut v, &ack_id) {
            Ok(Event(name)) => name,
            Err(_) => String::new(),
        };
        let item = if size > self.0.relay.config.max_payload_bytes {
            Inbound::Oversized { name, size }
        } else {
            let ack = ack_id.and_then(|_| AckSender::from_message_parts(&s, &mut v, &ack_id).ok());
            Inbound::Event { name, data: v, ack }
        };
        self.0.enqueue(&s, item);
    }
}

impl DisconnectHandler<Adapter, Sequenced> for SessionHandler {
    fn call_with_defer(
        &self,
        s: Arc<Socket<Adapter>>,
        reason: DisconnectReason,
        defer: fn(Arc<Socket<Adapter>>),
    ) {
        self.0.enqueue(&s, Inbound::Disconnect { reason, defer });
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
