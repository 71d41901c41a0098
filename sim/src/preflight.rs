//! Before any bot starts against an external target, one operator and one visitor join and
//! leave: a refused credential, a certificate not trusted or a route that breaks sessions is
//! said once, in words naming the setting to fix, instead of as thousands of violations.

use std::time::Duration;

use relay::auth::OperatorIdentity;
use serde_json::{Value, json};
use wire::{Connection, Endpoint, Incoming, Transport, WireError};

use crate::access::Access;
use crate::tokens::Tokens;

/// How long each preflight answer may take.
const ANSWER: Duration = Duration::from_secs(10);

/// How long a visitor's join is given to be refused when the backend does not ack joins.
const VISITOR_QUIET: Duration = Duration::from_secs(3);

/// What to check when the target refuses a visitor's connection.
const VISITOR_HINT: &str = "does it accept visitors without a token?";

/// The operator the preflight joins as (never one of the bots).
const OPERATOR_ID: u64 = 999_999_999;

/// One operator and one visitor join `endpoint` and leave.
///
/// # Errors
/// What went wrong, in words naming the setting to fix.
pub async fn check(endpoint: &Endpoint, tokens: &Tokens, access: &Access) -> Result<(), String> {
    operator(endpoint, tokens, access).await?;
    visitor(endpoint, access).await
}

/// `e` in words; `hint` is what to check when the target refuses the connection.
fn connect_error(who: &str, e: &WireError, hint: &str) -> String {
    match e {
        WireError::Refused(body) if body.contains("Invalid namespace") => format!(
            "the target refused our {who}'s connection ({body}): it does not serve this \
             Socket.IO namespace; check [target] namespace"
        ),
        WireError::Refused(body) => {
            format!("the target refused our {who}'s connection ({body}): {hint}")
        }
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

/// The JSON an ack packet carries (`Null` when it carries none).
fn ack_json(text: &str) -> Value {
    wire::packet::ack_data(text)
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or(Value::Null)
}

async fn operator(endpoint: &Endpoint, tokens: &Tokens, access: &Access) -> Result<(), String> {
    // a tokens file's first operator, else one no bot is
    let who = tokens
        .identities()
        .and_then(|w| w.first().cloned())
        .unwrap_or_else(|| OperatorIdentity {
            operator_id: OPERATOR_ID,
            name: "sim preflight".into(),
        });
    let token = tokens.token(&who)?;
    let token_hint = format!("check {}", tokens.setting());
    let auth = json!({ "token": token }).to_string();
    let options = access
        .browser()
        .options(Transport::Websocket, Some(auth), None);
    let mut conn = Connection::connect(endpoint, options)
        .await
        .map_err(|e| connect_error("operator", &e, &token_hint))?;
    let join = json!({"role": "operator", "token": token, "operatorId": who.operator_id,
                      "name": who.name});
    let sent = conn
        .emit("join", &join, Some(1))
        .and_then(|()| conn.emit("getConnectedOperators", &Value::Null, Some(2)));
    if let Err(e) = sent {
        return Err(format!("our operator's join could not be sent: {e}"));
    }
    let refused = |code: &str| {
        if code == "unauthorized" {
            format!("the target refused our operator token ({code}): {token_hint}")
        } else {
            format!("the target refused our operator's join: {code}")
        }
    };
    let outcome = loop {
        let next = match tokio::time::timeout(ANSWER, conn.next()).await {
            Err(_) => {
                break Err(format!(
                    "our operator joined and asked for the operators list, and the target \
                     answered nothing within {}s: does it speak docs/PROTOCOL.md on this \
                     Socket.IO namespace ({})? check [target] namespace",
                    ANSWER.as_secs(),
                    if endpoint.namespace.is_empty() {
                        "/"
                    } else {
                        &endpoint.namespace
                    }
                ));
            }
            Ok(Err(e)) => {
                break Err(format!(
                    "the target closed our operator's connection after its join ({e}): \
                     {token_hint}"
                ));
            }
            Ok(Ok(n)) => n,
        };
        match next {
            Incoming::Ack(id, text) => match code_of(&ack_json(text.as_str())) {
                Some(code) => break Err(refused(&code)),
                None if id == 2 => break Ok(()),
                None => {}
            },
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
                    "the target disconnected our operator after its join: {token_hint}"
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
        .map_err(|e| connect_error("visitor", &e, VISITOR_HINT))?;
    conn.upgrade()
        .await
        .map_err(|e| connect_error("visitor", &e, VISITOR_HINT))?;
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
                break match code_of(&ack_json(text.as_str())) {
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
