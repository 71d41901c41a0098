//! `getConnectedOperators`: the asker gets one entry per online operator.

use crate::handlers::{Ctx, Outcome};
use crate::protocol::event;

pub(crate) fn handle(ctx: &Ctx<'_>) -> Outcome {
    let list = ctx.relay.presence.operators();
    ctx.emit(event::CONNECTED_OPERATORS_LIST, &list);
    ctx.relay.metrics.relayed(event::GET_CONNECTED_OPERATORS);
    Ok(None)
}
