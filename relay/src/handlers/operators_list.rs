//! `getConnectedOperators`: the asker gets one entry per online operator.

use socketioxide::adapter::Adapter;

use crate::handlers::{Ctx, Outcome};
use crate::protocol::event;

pub(crate) async fn handle<A: Adapter>(ctx: &Ctx<'_, A>) -> Outcome {
    let list = ctx.relay.presence.operators().await;
    ctx.emit(event::CONNECTED_OPERATORS_LIST, &list);
    ctx.relay.metrics.relayed(event::GET_CONNECTED_OPERATORS);
    Ok(None)
}
