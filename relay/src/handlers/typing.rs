//! `operatorTyping` and `clientTyping`: their own budget, dropped silently over it.

use crate::handlers::join::OPERATORS_ROOM;
use crate::handlers::{Ctx, Outcome, Refusal};
use crate::protocol::{
    ClientTyping, ClientTypingRequest, ErrorCode, OperatorTyping, OperatorTypingRequest, event,
};
use crate::session::SessionState;

pub(crate) async fn from_operator(
    ctx: &Ctx<'_>,
    state: &mut SessionState,
    req: OperatorTypingRequest,
) -> Outcome {
    if !within_budget(ctx, state) {
        return Ok(None);
    }
    if !ctx.relay.presence.has_client(&req.to) {
        return Err(Refusal::new(
            ErrorCode::UnknownClient,
            format!("no connected client {:?}", req.to),
        ));
    }
    let typing = OperatorTyping {
        is_typing: req.is_typing,
    };
    ctx.to_room(req.to, event::OPERATOR_TYPING, &typing).await;
    ctx.relay.metrics.relayed(event::OPERATOR_TYPING);
    Ok(None)
}

pub(crate) async fn from_client(
    ctx: &Ctx<'_>,
    state: &mut SessionState,
    req: ClientTypingRequest,
) -> Outcome {
    if !within_budget(ctx, state) {
        return Ok(None);
    }
    let typing = ClientTyping {
        from: ctx.sid.clone(),
        is_typing: req.is_typing,
    };
    ctx.to_room_but_me(OPERATORS_ROOM, event::CLIENT_TYPING, &typing)
        .await;
    ctx.relay.metrics.relayed(event::CLIENT_TYPING);
    Ok(None)
}

fn within_budget(ctx: &Ctx<'_>, state: &mut SessionState) -> bool {
    let ok = state
        .typing
        .try_acquire(ctx.relay.config.clock.now())
        .is_ok();
    if !ok {
        ctx.relay.metrics.rate_limited_typing.inc();
    }
    ok
}
