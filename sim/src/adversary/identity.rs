//! Identity attacks: operator events from a visitor, bad tokens, a valid token with
//! another identity in the payload, and a second `join` with another role.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use relay::auth::{Claims, OperatorIdentity, sign_hs256};
use reports::attacks::Attack;
use serde_json::{Value, json};
use tokio::time::Instant;
use wire::{Connection, Transport, WireError};

use super::arena::{Arena, Who, field};
use super::{Outcome, judged};

pub(super) async fn attempt(arena: &Arena, attack: Attack, _n: u32) -> Result<Outcome, String> {
    match attack {
        Attack::VisitorOperatorEvents => visitor_operator_events(arena).await,
        Attack::PayloadIdentity => payload_identity(arena).await,
        Attack::SecondJoin => second_join(arena).await,
        _ => bad_token(arena, attack).await,
    }
}

/// An `operatorMessage` with `marker` and an `operatorTyping`, both to the witness visitor.
fn operator_events(conn: &Connection, arena: &Arena, marker: &str, who: Option<&OperatorIdentity>) {
    let mut msg = json!({"to": arena.visitor, "type": "text", "message": marker});
    if let Some(who) = who {
        msg["operatorId"] = json!(who.operator_id);
        msg["operatorName"] = json!(who.name);
    }
    let _ = conn.emit("operatorMessage", &msg, None);
    let _ = conn.emit(
        "operatorTyping",
        &json!({"to": arena.visitor, "isTyping": true}),
        None,
    );
}

/// What shows operator powers since `since`: the marker delivered, a typing indicator at
/// the witness visitor, or `operatorConnected` for `id`.
fn operator_powers(arena: &Arena, since: Instant, marker: &str, id: Option<u64>) -> Option<String> {
    if let Some(d) = arena.delivered(marker) {
        return Some(d);
    }
    if let Some(t) = arena
        .events_since(since, Who::Visitor, "operatorTyping")
        .first()
    {
        return Some(t.describe());
    }
    let id = id?;
    arena
        .events_since(since, Who::Operator, "operatorConnected")
        .into_iter()
        .find(|s| {
            s.json()
                .and_then(|v| v.get("operatorId").and_then(Value::as_u64))
                == Some(id)
        })
        .map(|s| s.describe())
}

/// Tries operator events on `conn` (joined as `who`, or as a visitor) and judges them.
async fn act_as_operator(
    arena: &Arena,
    conn: Connection,
    since: Instant,
    who: Option<&OperatorIdentity>,
) -> Result<Outcome, String> {
    let marker = arena.marker();
    operator_events(&conn, arena, &marker, who);
    arena.settle().await;
    conn.close().await;
    judged(operator_powers(
        arena,
        since,
        &marker,
        who.map(|w| w.operator_id),
    ))
}

async fn visitor_operator_events(arena: &Arena) -> Result<Outcome, String> {
    let since = Instant::now();
    let conn = arena
        .visitor_socket("impostor")
        .await
        .map_err(|e| e.to_string())?;
    act_as_operator(arena, conn, since, None).await
}

async fn second_join(arena: &Arena) -> Result<Outcome, String> {
    let since = Instant::now();
    let conn = arena
        .visitor_socket("turncoat")
        .await
        .map_err(|e| e.to_string())?;
    let who = arena.identity();
    let _ = conn.emit(
        "join",
        &json!({"role": "operator", "name": who.name, "operatorId": who.operator_id}),
        None,
    );
    act_as_operator(arena, conn, since, Some(&who)).await
}

/// The token each bad-token attack presents for `who`; `None` when it cannot be made here
/// (an expired token needs the signing key, which a tokens file or command does not give).
fn token(arena: &Arena, attack: Attack, who: &OperatorIdentity) -> Result<Option<String>, String> {
    let claims = Claims::new(who, 3600);
    let valid = arena.token(who).map_err(|e| e.to_string())?;
    let (signing_input, _) = valid.rsplit_once('.').unwrap_or((&valid, ""));
    Ok(Some(match attack {
        Attack::ForgedToken => format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(b"forged")),
        Attack::ExpiredToken => {
            let Some(signer) = arena.signer() else {
                return Ok(None);
            };
            let mut old = claims;
            old.exp = old.iat.unwrap_or(0).saturating_sub(3600);
            old.iat = Some(old.exp.saturating_sub(3600));
            signer.sign(&old)
        }
        Attack::AlgNoneToken => {
            let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
            let payload = signing_input.split_once('.').map_or("", |(_, p)| p);
            format!("{header}.{payload}.")
        }
        _ => sign_hs256(b"a secret the target has never heard of", &claims),
    }))
}

async fn bad_token(arena: &Arena, attack: Attack) -> Result<Outcome, String> {
    let since = Instant::now();
    let who = arena.identity();
    let Some(token) = token(arena, attack, &who)? else {
        return Ok(Outcome::NotJudged(
            "an expired token needs the signing key; with tokens_file or token_command the \
             simulator has none"
                .into(),
        ));
    };
    let conn = match arena
        .operator_with_token(&who, &token, Transport::Websocket)
        .await
    {
        Ok(c) => c,
        Err(WireError::Refused(_) | WireError::Http { .. }) => return Ok(Outcome::Blocked),
        Err(e) => return Err(e.to_string()),
    };
    act_as_operator(arena, conn, since, Some(&who)).await
}

async fn payload_identity(arena: &Arena) -> Result<Outcome, String> {
    let (who, conn) = arena.insider().await?;
    let marker = arena.marker();
    // the payload claims to be the witness operator
    let claimed = &arena.operator.0;
    let _ = conn.emit(
        "operatorMessage",
        &json!({"to": arena.visitor, "type": "text", "message": marker,
                "operatorId": claimed.operator_id, "operatorName": claimed.name}),
        None,
    );
    arena.settle().await;
    conn.close().await;
    let spoofed = arena.with_marker(&marker).into_iter().find(|s| {
        let Some(v) = s.json() else { return false };
        [&v, v.get("message").unwrap_or(&Value::Null)]
            .iter()
            .any(|v| {
                v.get("operatorId")
                    .and_then(Value::as_u64)
                    .is_some_and(|id| id != who.operator_id)
                    || field(v, "operatorName").is_some_and(|n| n != who.name)
            })
    });
    judged(spoofed.map(|s| format!("signed in as {}: {}", who.operator_id, s.describe())))
}
