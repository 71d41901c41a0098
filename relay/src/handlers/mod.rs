//! Event dispatch: one place maps each queued event to its handler and answers refusals.

mod disconnect;
mod join;
mod message;
mod operators_list;
mod typing;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, SocketRef, TryData};
use socketioxide::handler::{FromMessageParts, Value};
use socketioxide::operators::BroadcastOperators;
use socketioxide::socket::{DisconnectReason, Socket};
use socketioxide::{BroadcastError, SendError, SocketError};
use tracing::debug;

use crate::metrics::Metrics;
use crate::protocol::{
    ErrorCode, MessageAck, RATE_LIMIT_MESSAGE, RateLimitExceeded, RelayError, event,
};
use crate::session::{Role, SessionState};
use crate::state::Relay;

pub(crate) use join::{OPERATORS_ROOM, operator_room};

/// One item of a socket's inbox.
pub(crate) enum Inbound<A: Adapter> {
    /// An event within the size limit.
    Event {
        name: String,
        data: Value,
        ack: Option<AckSender<A>>,
    },
    /// An event over `MAX_PAYLOAD_BYTES`; its data was dropped on arrival.
    Oversized {
        name: String,
        size: usize,
        ack: Option<AckSender<A>>,
    },
    /// The socket is gone; run `defer` (socketioxide's room clean-up) after handling it.
    Disconnect {
        reason: DisconnectReason,
        defer: fn(Arc<Socket<A>>),
    },
}

/// Everything a handler needs about the event it handles.
pub(crate) struct Ctx<'a, A: Adapter> {
    pub relay: &'a Relay,
    pub socket: SocketRef<A>,
    pub sid: String,
    pub event: &'a str,
    ack: Mutex<Option<AckSender<A>>>,
}

/// Why an event was not relayed, and so what the sender gets back.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// `relayError{event, code, message}`.
    Error { code: ErrorCode, message: String },
    /// `rateLimitExceeded{message, retryAfterMs}`.
    RateLimited { retry_after: Duration },
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
        }
    }
}

/// Where a visitor is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Whereabouts {
    /// On this node.
    Here,
    /// On another node of the cluster.
    Elsewhere,
}

/// What a handler returns: `Ok(Some(id))` acks a relayed message with its id.
pub(crate) type Outcome = Result<Option<String>, Refusal>;

/// Handles one queued item of `session`.
pub(crate) async fn dispatch<A: Adapter>(
    relay: &Relay,
    state: &mut SessionState,
    socket: &Arc<Socket<A>>,
    item: Inbound<A>,
) {
    let (name, data, ack) = match item {
        Inbound::Event { name, data, ack } => (name, Some(data), ack),
        Inbound::Oversized { name, size, ack } => {
            relay.metrics.oversized.inc();
            debug!(sid = %socket.id, size, "oversized event");
            (name, None, ack)
        }
        Inbound::Disconnect { reason, .. } => {
            let ctx = Ctx::new(relay, socket, "disconnect", None);
            disconnect::handle(&ctx, state, reason).await;
            return;
        }
    };
    let ctx = Ctx::new(relay, socket, &name, ack);
    match route(&ctx, state, socket, data).await {
        Ok(message_id) => ctx.ack(&MessageAck {
            message_id,
            ..MessageAck::default()
        }),
        Err(refusal) => ctx.refuse(refusal),
    }
}

/// Checks role, then budget, then size, then decodes and handles. `data` is `None` for an
/// event over `MAX_PAYLOAD_BYTES`: it still counts against the sender's budget.
async fn route<A: Adapter>(
    ctx: &Ctx<'_, A>,
    state: &mut SessionState,
    socket: &Arc<Socket<A>>,
    data: Option<Value>,
) -> Outcome {
    let allowed = match (ctx.event, &state.role) {
        (event::JOIN, _) => true,
        (
            event::OPERATOR_MESSAGE
            | event::CLIENT_MESSAGE
            | event::OPERATOR_TYPING
            | event::CLIENT_TYPING
            | event::GET_CONNECTED_OPERATORS,
            Role::Unjoined,
        ) => return Err(Refusal::new(ErrorCode::NotJoined, "send join first")),
        (
            event::OPERATOR_MESSAGE | event::OPERATOR_TYPING | event::GET_CONNECTED_OPERATORS,
            Role::Operator(_),
        )
        | (event::CLIENT_MESSAGE | event::CLIENT_TYPING, Role::Client) => true,
        (
            event::OPERATOR_MESSAGE
            | event::CLIENT_MESSAGE
            | event::OPERATOR_TYPING
            | event::CLIENT_TYPING
            | event::GET_CONNECTED_OPERATORS,
            _,
        ) => false,
        (other, _) => {
            return Err(Refusal::new(
                ErrorCode::InvalidPayload,
                format!("unknown event {other:?}"),
            ));
        }
    };
    if !allowed {
        return Err(Refusal::new(
            ErrorCode::Forbidden,
            "this role may not send this event",
        ));
    }
    let now = ctx.relay.config.clock.now();
    match ctx.event {
        event::OPERATOR_MESSAGE | event::CLIENT_MESSAGE => {
            // every message a joined socket sends counts, valid or not
            state
                .messages
                .try_acquire(now)
                .map_err(|retry_after| Refusal::RateLimited { retry_after })?;
        }
        event::OPERATOR_TYPING | event::CLIENT_TYPING if state.typing.try_acquire(now).is_err() => {
            ctx.relay.metrics.rate_limited_typing.inc();
            return Ok(None);
        }
        _ => {}
    }
    let Some(mut data) = data else {
        let limit = ctx.relay.config.max_payload_bytes;
        return Err(Refusal::new(
            ErrorCode::PayloadTooLarge,
            format!("event is over the {limit}-byte limit"),
        ));
    };
    let data = &mut data;
    match (ctx.event, state.role.clone()) {
        (event::JOIN, _) => join::handle(ctx, state, decode(socket, data)?).await,
        (event::OPERATOR_MESSAGE, Role::Operator(who)) => {
            message::from_operator(ctx, &who, decode(socket, data)?).await
        }
        (event::CLIENT_MESSAGE, _) => message::from_client(ctx, decode(socket, data)?).await,
        (event::OPERATOR_TYPING, _) => typing::from_operator(ctx, decode(socket, data)?).await,
        (event::CLIENT_TYPING, _) => typing::from_client(ctx, decode(socket, data)?).await,
        _ => operators_list::handle(ctx).await,
    }
}

/// Decodes the event's first argument.
fn decode<T: DeserializeOwned, A: Adapter>(
    socket: &Arc<Socket<A>>,
    data: &mut Value,
) -> Result<T, Refusal> {
    let TryData(result) = match TryData::<T>::from_message_parts(socket, data, &None) {
        Ok(d) => d,
        Err(never) => match never {},
    };
    result.map_err(|e| Refusal::new(ErrorCode::InvalidPayload, format!("bad payload: {e}")))
}

impl<'a, A: Adapter> Ctx<'a, A> {
    fn new(
        relay: &'a Relay,
        socket: &Arc<Socket<A>>,
        event: &'a str,
        ack: Option<AckSender<A>>,
    ) -> Self {
        Self {
            relay,
            socket: SocketRef::from(socket.clone()),
            sid: socket.id.to_string(),
            event,
            ack: Mutex::new(ack),
        }
    }

    /// Answers a refusal (and acks negatively when an ack was asked for).
    ///
    /// A refused operator token also ends the connection.
    pub fn refuse(&self, refusal: Refusal) {
        match refusal {
            Refusal::Error { code, message } => {
                debug!(sid = %self.sid, event = self.event, %code, "refused");
                self.relay.metrics.error(code);
                self.ack(&MessageAck {
                    error: Some(code),
                    ..MessageAck::default()
                });
                let payload = RelayError {
                    event: self.event.to_owned(),
                    code,
                    message,
                };
                self.emit(event::RELAY_ERROR, &payload);
                if code == ErrorCode::Unauthorized {
                    let _ = self.socket.clone().disconnect();
                }
            }
            Refusal::RateLimited { retry_after } => {
                debug!(sid = %self.sid, event = self.event, "rate limited");
                self.relay.metrics.rate_limited_messages.inc();
                let retry_after_ms = u64::try_from(retry_after.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1);
                self.ack(&MessageAck {
                    retry_after_ms: Some(retry_after_ms),
                    ..MessageAck::default()
                });
                let payload = RateLimitExceeded {
                    message: RATE_LIMIT_MESSAGE.to_owned(),
                    retry_after_ms,
                };
                self.emit(event::RATE_LIMIT_EXCEEDED, &payload);
            }
        }
    }

    fn ack(&self, ack: &MessageAck) {
        let sender = self
            .ack
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(sender) = sender {
            let _ = sender.send(ack);
        }
    }

    /// Emits to this socket only, counting a full buffer as a drop.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) {
        if let Err(e) = self.socket.emit(event, data) {
            count_send_error(&self.relay.metrics, &e);
        }
    }

    /// Emits to every socket in `room` but this one, on every node.
    pub async fn to_room_but_me<T: Serialize + ?Sized>(
        &self,
        room: &'static str,
        event: &str,
        data: &T,
    ) {
        self.broadcast(|| self.socket.to(room), event, data).await;
    }

    /// Emits to every operator socket but those in `except` (and this one), on every node.
    pub async fn to_operators_but<T: Serialize + ?Sized>(
        &self,
        except: String,
        event: &str,
        data: &T,
    ) {
        let to = || self.socket.to(OPERATORS_ROOM).except(except.clone());
        self.broadcast(to, event, data).await;
    }

    /// Emits to visitor `sid` where it is: on this node without touching the cluster.
    pub async fn to_client<T: Serialize + ?Sized>(
        &self,
        sid: &str,
        at: Whereabouts,
        event: &str,
        data: &T,
    ) {
        let to = || self.socket.to(sid.to_owned());
        match at {
            Whereabouts::Here => {
                count_broadcast_error(&self.relay.metrics, to().local().emit(event, data).await);
            }
            Whereabouts::Elsewhere => self.broadcast(to, event, data).await,
        }
    }

    /// Where visitor `sid` is connected, if anywhere: this node's own visitors are found
    /// without awaiting the (possibly remote) presence store.
    pub async fn find_client(&self, sid: &str) -> Option<Whereabouts> {
        let presence = &self.relay.presence;
        if presence.local().has_client(sid) {
            return Some(Whereabouts::Here);
        }
        match presence.has_client(sid).await {
            // when the cluster cannot tell, the visitor may well be there: send it on
            Some(true) | None => Some(Whereabouts::Elsewhere),
            Some(false) => None,
        }
    }

    /// Broadcasts across the cluster (the bus holds what Redis cannot take now); should the
    /// adapter still refuse, to this node's sockets only, so local chat goes on.
    async fn broadcast<T: Serialize + ?Sized>(
        &self,
        to: impl Fn() -> BroadcastOperators<A>,
        event: &str,
        data: &T,
    ) {
        let metrics = &self.relay.metrics;
        match to().emit(event, data).await {
            Err(BroadcastError::Adapter(e)) => {
                debug!(error = %e, "cluster publish failed: delivering on this node only");
                metrics.cluster_publish_failed.inc();
                count_broadcast_error(metrics, to().local().emit(event, data).await);
            }
            result => count_broadcast_error(metrics, result),
        }
    }
}

fn count_send_error(metrics: &Metrics, e: &SendError) {
    match e {
        SendError::Socket(SocketError::InternalChannelFull) => {
            metrics.emit_dropped.inc();
        }
        other => debug!(error = %other, "emit failed"),
    }
}

fn count_broadcast_error(metrics: &Metrics, result: Result<(), BroadcastError>) {
    match result {
        Ok(()) => {}
        Err(BroadcastError::Socket(errors)) => {
            for e in errors {
                if matches!(e, SocketError::InternalChannelFull) {
                    metrics.emit_dropped.inc();
                }
            }
        }
        Err(other) => debug!(error = %other, "broadcast failed"),
    }
}
