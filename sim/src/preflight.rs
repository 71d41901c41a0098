//! Before any bot starts against an external target, one operator and one visitor join and
//! leave: a refused credential, a certificate not trusted or a route that breaks sessions is
//! said once, in words naming the setting to fix, instead of as thousands of violations.

use std::time::Duration;

use relay::auth::{Claims, OperatorIdentity, sign_hs256};
use serde_json::{Value, json};
use wire::{Connection, Endpoint, Incoming, Transport, WireError};

use crate::access::Access;

/// How long each preflight answer may take.
const ANSWER: Duration = Duration::from_secs(10);

/// How long a visitor's join is given to be refused when the backend does not ack joins.
const VISITOR_QUIET: Duration = Duration::from_secs(3);

/// The operator the preflight joins as (never one of the bots).
const OPERATOR_ID: u64 = 999_999_999;

/// What to fix when the target refuses the token.
const TOKEN_HINT: &str = "check [target] jwt_secret / jwt_secret_env, or RELAY_JWT_SECRET";

/// One operator and one visitor join `endpoint` and leave.
///
/// # Errors
/// What went wrong, in words naming the setting to fix.
pub async fn check(endpoint: &Endpoint, secret: &str, access: &Access) -> Result<(), String> {
    operator(endpoint, secret, access).await?;
    visitor(endpoint, access).await
}

fn connect_error(who: &str, e: &WireError) -> String {
    match e {
        WireError::Refused(body) => format!(
            "the target refused our {who}'s connection ({body}): {}",
            if who == "operator" {
                TOKEN_HINT
            } else {
                "does it accept visitors without a token?"
            }
        ),
        WireError::Io(text) if text.contains("TLS") => format!(
            "{text}: for a private CA give --ca-file / [target] ca_file; for a self-signed \
             staging server --insecure / [target] insecure = true"
        ),
        WireError::Http { status: 400, body } if body.contains("Session ID unknown") => format!(
            "a long-polling request reached a node that did not know the session (HTTP 400 \
             {body}): the load balancer does not keep a session on one node; turn on \
             stickiness (a cookie, or source-address hashing)"
        ),
        other => format!("the target is unreachable: our {who} could not connect: {other}"),
    }
}

fn code_of(data: &Value) -> Option<String> {
    data.get("error")
        .or_else(|| data.get("code"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

async fn operator(endpoint: &Endpoint, secret: &str, access: &Access) -> Result<(), String> {
    let who = OperatorIdentity {
        operator_id: OPERATOR_ID,
        name: "sim preflight".into(),
    };
    let token = sign_hs256(secret.as_bytes(), &Claims::new(&who, 600));
    let auth = json!({ "token": token }).to_string();
    let options = access
        .browser()
        .options(Transport::Websocket, Some(auth), None);
    let mut conn = Connection::connect(endpoint, options)
        .await
        .map_err(|e| connect_error("operator", &e))?;
    let join =
        json!({"role": "operator", "token": token, "operatorId": OPERATOR_ID, "name": who.name});
    let sent = conn
        .emit("join", &join, Some(1))
        .and_then(|()| conn.emit("getConnectedOperators", &Value::Null, Some(2)));
    if let Err(e) = sent {
        return Err(format!("our operator's join could not be sent: {e}"));
    }
    let refused = |code: &str| {
        if code == "unauthorized" {
            format!("the target refused our operator token ({code}): {TOKEN_HINT}")
        } else {
            format!("the target refused our operator's join: {code}")
        }
    };
    let outcome = loop {
        let next = match tokio::time::timeout(ANSWER, conn.next()).await {
            Err(_) => {
                break Err(format!(
                    "our operator joined and asked for the operators list, and the target \
                     answered nothing within {}s",
                    ANSWER.as_secs()
                ));
            }
            Ok(Err(e)) => {
                break Err(format!(
                    "the target closed our operator's connection after its join ({e}): \
                     {TOKEN_HINT}"
                ));
            }
            Ok(Ok(n)) => n,
        };
        match next {
            Incoming::Ack(id, text) => {
                let data: Value = wire::packet::ack_data(text.as_str())
                    .and_then(|d| serde_json::from_str(d).ok())
                    .unwrap_or(Value::Null);
                match code_of(&data) {
                    Some(code) => break Err(refused(&code)),
                    None if id == 2 => break Ok(()),
                    None => {}
                }
            }
            Incoming::Event(text) => {
                let Some((name, data)) = wire::packet::split_event(text.as_str()) else {
                    continue;
                };
                let data: Value = serde_json::from_str(data).unwrap_or(Value::Null);
                match name {
                    "relayError" => break Err(refused(&code_of(&data).unwrap_or_default())),
                    "connectedOperatorsList" => break Ok(()),
                    _ => {}
                }
            }
            Incoming::Disconnect => {
                break Err(format!(
                    "the target disconnected our operator after its join: {TOKEN_HINT}"
                ));
            }
        }
    };
    conn.close().await;
    outcome
}

async fn visitor(endpoint: &Endpoint, access: &Access) -> Result<(), String> {
    // long-polling, then the upgrade: the path a browser takes, where a load balancer
    // without stickiness breaks the session
    let options = access.browser().options(Transport::Upgrade, None, None);
    let mut conn = Connection::connect(endpoint, options)
        .await
        .map_err(|e| connect_error("visitor", &e))?;
    conn.upgrade()
        .await
        .map_err(|e| connect_error("visitor", &e))?;
    let join = json!({"role": "client", "username": "sim preflight"});
    conn.emit("join", &join, Some(1))
        .map_err(|e| format!("our visitor's join could not be sent: {e}"))?;
    let outcome = loop {
        let next = match tokio::time::timeout(VISITOR_QUIET, conn.next()).await {
            // a backend that does not ack joins: no refusal is an acceptance
            Err(_) => break Ok(()),
            Ok(Err(e)) => {
                break Err(format!(
                    "the target closed our visitor's connection after its join: {e}"
                ));
            }
            Ok(Ok(n)) => n,
        };
        match next {
            Incoming::Ack(_, text) => {
                let data: Value = wire::packet::ack_data(text.as_str())
                    .and_then(|d| serde_json::from_str(d).ok())
                    .unwrap_or(Value::Null);
                break match code_of(&data) {
                    Some(code) => Err(format!("the target refused our visitor's join: {code}")),
                    None => Ok(()),
                };
            }
            Incoming::Event(text) if text.as_str().contains("\"relayError\"") => {
                break Err(format!("the target refused our visitor's join: {text}"));
            }
            Incoming::Event(_) => {}
            Incoming::Disconnect => {
                break Err("the target disconnected our visitor after its join".to_owned());
            }
        }
    };
    conn.close().await;
    outcome
}
