//! Disconnection, on every path: presence maps cleaned, departures announced once.

use socketioxide::adapter::Adapter;
use socketioxide::socket::DisconnectReason;
use tracing::debug;

use crate::handlers::{Ctx, OPERATORS_ROOM, operator_room};
use crate::protocol::{ChatEnded, OperatorInfo, event};
use crate::session::{Role, SessionState};

pub(crate) async fn handle<A: Adapter>(
    ctx: &Ctx<'_, A>,
    state: &mut SessionState,
    reason: DisconnectReason,
) {
    debug!(sid = %ctx.sid, ?reason, "disconnected");
    let role = std::mem::replace(&mut state.role, Role::Unjoined);
    let presence = &ctx.relay.presence;
    match role {
        Role::Unjoined => {}
        Role::Operator(who) => {
            let _order = presence.local().transition().await;
            if presence.remove_operator(&who, &ctx.sid).await {
                let info = OperatorInfo {
                    operator_id: who.operator_id,
                    name: who.name,
                };
                ctx.to_operators_but(
                    operator_room(who.operator_id),
                    event::OPERATOR_DISCONNECTED,
                    &info,
                )
                .await;
            }
        }
        Role::Client => {
            let _order = presence.local().transition().await;
            if presence.remove_client(&ctx.sid).await {
                let ended = ChatEnded {
                    client_id: ctx.sid.as_str().into(),
                };
                ctx.to_room_but_me(OPERATORS_ROOM, event::CHAT_ENDED, &ended)
                    .await;
            }
        }
    }
}
