//! Routing attacks: a valid operator addresses its message and typing indicator to an id
//! nobody has, to an operator's socket id, to room names, or sends in another namespace.

use reports::attacks::Attack;
use serde_json::json;
use tokio::time::Instant;

use super::arena::{Arena, Who};
use super::{Outcome, judged};

pub(super) async fn attempt(arena: &Arena, attack: Attack, n: u32) -> Result<Outcome, String> {
    let since = Instant::now();
    let (who, conn) = arena.insider().await?;
    let marker = arena.marker();
    let targets: Vec<String> = match attack {
        Attack::ToUnknownId => vec![format!("nobody-{n}-{}", who.operator_id)],
        Attack::ToOperatorSocket => vec![arena.operator.1.clone()],
        Attack::ToRoomName => vec![
            "operators".into(),
            format!("operator:{}", arena.operator.0.operator_id),
            "/".into(),
        ],
        _ => Vec::new(),
    };
    for to in &targets {
        let _ = conn.emit(
            "operatorMessage",
            &json!({"to": to, "type": "text", "message": marker,
                    "operatorId": who.operator_id, "operatorName": who.name}),
            None,
        );
        let _ = conn.emit("operatorTyping", &json!({"to": to, "isTyping": true}), None);
    }
    if attack == Attack::OtherNamespace {
        // the same socket opens /admin and speaks there as an operator and as a visitor
        let token = arena.token(&who).unwrap_or_default();
        let sender = conn.sender();
        let join = json!(["join", {"role": "operator", "name": who.name,
                                   "operatorId": who.operator_id, "token": token}]);
        let message = json!(["operatorMessage", {"to": arena.visitor, "type": "text",
                                                 "message": marker}]);
        let visitor = json!(["clientMessage", {"type": "text", "message": marker}]);
        for ns in ["/admin", "/chat"] {
            let _ = sender.send_all(&[
                &format!("40{ns},{}", json!({ "token": token })),
                &format!("42{ns},{join}"),
                &format!("42{ns},{message}"),
                &format!("42{ns},{visitor}"),
            ]);
        }
    }
    arena.settle().await;
    conn.close().await;
    let leaked = arena.delivered(&marker).or_else(|| {
        ["operatorTyping", "incomingOperatorMessage"]
            .iter()
            .find_map(|e| {
                arena
                    .events_since(since, Who::Operator, e)
                    .first()
                    .map(|s| s.describe())
            })
    });
    judged(leaked)
}
