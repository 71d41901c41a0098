//! Disconnection, on every path: presence maps cleaned, departures announced once.

use socketioxide::socket::DisconnectReason;
use tracing::debug;

use crate::handlers::Ctx;
use crate::handlers::join::OPERATORS_ROOM;
use crate::protocol::{ChatEnded, OperatorInfo, event};
use crate::session::{Role, SessionState};

pub(crate) async fn handle(ctx: &Ctx<'_>, state: &mut SessionState, reason: DisconnectReason) {
    debug!(sid = %ctx.sid, ?reason, "disconnected");
    let role = std::mem::replace(&mut state.role, Role::Unjoined);
    let presence = &ctx.relay.presence;
    match role {
        Role::Unjoined => {}
        Role::Operator(who) => {
            let _order = presence.transition().await;
            if presence.remove_operator(who.operator_id, &ctx.sid) {
                let info = OperatorInfo {
                    operator_id: who.operator_id,
                    name: who.name,
                };
                ctx.to_room_but_me(OPERATORS_ROOM, event::OPERATOR_DISCONNECTED, &info)
                    .await;
            }
        }
        Role::Client => {
            let _order = presence.transition().await;
            if presence.remove_client(&ctx.sid) {
                let ended = ChatEnded {
                    client_id: ctx.sid.as_str().into(),
                };
                ctx.to_room_but_me(OPERATORS_ROOM, event::CHAT_ENDED, &ended)
                    .await;
            }
        }
    }
}
