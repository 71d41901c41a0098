//! `join`: a socket becomes an operator (authenticated) or a visitor, once.

use socketioxide::adapter::Adapter;

use crate::auth::{self, AuthError, OperatorIdentity};
use crate::handlers::{Ctx, Outcome, Refusal};
use crate::protocol::{ErrorCode, JoinRequest, NewChat, OperatorInfo, event};
use crate::sanitize::strip_markup;
use crate::session::{Role, SessionState};

/// Room every operator socket joins.
pub(crate) const OPERATORS_ROOM: &str = "operators";

/// Room of one operator's own sockets: its presence is announced to every operator but
/// these, on every node, however its tabs' joins and departures interleave across nodes.
pub(crate) fn operator_room(operator_id: u64) -> String {
    format!("operator:{operator_id}")
}

/// Longest display name kept, in characters.
const MAX_NAME_CHARS: usize = 100;

pub(crate) async fn handle<A: Adapter>(
    ctx: &Ctx<'_, A>,
    state: &mut SessionState,
    req: JoinRequest,
) -> Outcome {
    if !matches!(state.role, Role::Unjoined) {
        return Err(Refusal::new(
            ErrorCode::Forbidden,
            "this socket has already joined",
        ));
    }
    match req.role.as_str() {
        "operator" => join_operator(ctx, state, req).await,
        "client" => join_client(ctx, state, req).await,
        other => Err(Refusal::new(
            ErrorCode::InvalidPayload,
            format!("unknown role {other:?}: expected \"operator\" or \"client\""),
        )),
    }
}

async fn join_operator<A: Adapter>(
    ctx: &Ctx<'_, A>,
    state: &mut SessionState,
    req: JoinRequest,
) -> Outcome {
    let who = identify(ctx, &req, state.handshake_token.as_deref())?;
    state.role = Role::Operator(who.clone());
    let presence = &ctx.relay.presence;
    let _order = presence.local().transition().await;
    if presence.add_operator(&who, &ctx.sid).await {
        let info = OperatorInfo {
            operator_id: who.operator_id,
            name: who.name,
        };
        ctx.to_operators_but(
            operator_room(who.operator_id),
            event::OPERATOR_CONNECTED,
            &info,
        )
        .await;
    }
    ctx.socket
        .join([OPERATORS_ROOM.to_owned(), operator_room(who.operator_id)]);
    Ok(None)
}

/// The operator's identity: from its token, or (insecure development mode only) from `join`.
fn identify<A: Adapter>(
    ctx: &Ctx<'_, A>,
    req: &JoinRequest,
    handshake_token: Option<&str>,
) -> Result<OperatorIdentity, Refusal> {
    let token = req.token.as_deref().or(handshake_token);
    let Some(verifier) = &ctx.relay.verifier else {
        return match (req.operator_id, token) {
            (_, Some(token)) => auth::claims_unverified(token)
                .map(|who| OperatorIdentity {
                    name: clean_name(&who.name),
                    ..who
                })
                .map_err(|e| Refusal::new(ErrorCode::Unauthorized, e.to_string())),
            (Some(operator_id), None) => Ok(OperatorIdentity {
                operator_id,
                name: clean_name(req.name.as_deref().unwrap_or("Operador")),
            }),
            (None, None) => Err(Refusal::new(
                ErrorCode::Unauthorized,
                AuthError::Missing.to_string(),
            )),
        };
    };
    let token = token
        .ok_or_else(|| Refusal::new(ErrorCode::Unauthorized, AuthError::Missing.to_string()))?;
    let who = verifier
        .verify(token)
        .map_err(|e| Refusal::new(ErrorCode::Unauthorized, e.to_string()))?;
    // the backend signed the name, but it still reaches other operators' pages
    Ok(OperatorIdentity {
        name: clean_name(&who.name),
        ..who
    })
}

async fn join_client<A: Adapter>(
    ctx: &Ctx<'_, A>,
    state: &mut SessionState,
    req: JoinRequest,
) -> Outcome {
    let username = match req.username.as_deref().map(clean_name) {
        Some(name) if !name.is_empty() => name,
        _ => {
            return Err(Refusal::new(
                ErrorCode::InvalidPayload,
                "a client joins with a non-empty username",
            ));
        }
    };
    state.role = Role::Client;
    let presence = &ctx.relay.presence;
    let _order = presence.local().transition().await;
    presence.add_client(&ctx.sid, &username).await;
    let chat = NewChat {
        client_id: ctx.sid.as_str().into(),
        username: username.into(),
    };
    ctx.to_room_but_me(OPERATORS_ROOM, event::NEW_CHAT, &chat)
        .await;
    Ok(None)
}

/// A display name without markup, trimmed and capped.
fn clean_name(name: &str) -> String {
    strip_markup(name.trim())
        .chars()
        .take(MAX_NAME_CHARS)
        .collect()
}
