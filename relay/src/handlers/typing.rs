//! `operatorTyping` and `clientTyping` (their budget is spent in dispatch, silently).

use socketioxide::adapter::Adapter;

use crate::handlers::{Ctx, OPERATORS_ROOM, Outcome, Refusal};
use crate::protocol::{
    ClientTyping, ClientTypingRequest, ErrorCode, OperatorTyping, OperatorTypingRequest, event,
};

pub(crate) async fn from_operator<A: Adapter>(
    ctx: &Ctx<'_, A>,
    req: OperatorTypingRequest,
) -> Outcome {
    let Some(at) = ctx.find_client(&req.to).await else {
        return Err(Refusal::new(
            ErrorCode::UnknownClient,
            format!("no connected client {:?}", req.to),
        ));
    };
    let typing = OperatorTyping {
        is_typing: req.is_typing,
    };
    ctx.to_client(&req.to, at, event::OPERATOR_TYPING, &typing)
        .await;
    ctx.relay.metrics.relayed(event::OPERATOR_TYPING);
    Ok(None)
}

pub(crate) async fn from_client<A: Adapter>(ctx: &Ctx<'_, A>, req: ClientTypingRequest) -> Outcome {
    let typing = ClientTyping {
        from: ctx.sid.as_str().into(),
        is_typing: req.is_typing,
    };
    ctx.to_room_but_me(OPERATORS_ROOM, event::CLIENT_TYPING, &typing)
        .await;
    ctx.relay.metrics.relayed(event::CLIENT_TYPING);
    Ok(None)
}
