//! Volume attacks: message and typing floods past the limits, connect/disconnect storms,
//! and half-open sockets that stop answering pings.

use std::time::Duration;

use reports::attacks::Attack;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::arena::{Arena, Who, field};
use super::{Outcome, judged};
use crate::bots::Phase;

/// Visitors per connect storm.
const STORM: usize = 60;

/// Margin past the target's own ping deadline before a half-open socket counts as kept.
const HALF_OPEN_MARGIN: Duration = Duration::from_secs(5);

pub(super) async fn attempt(arena: &Arena, attack: Attack, n: u32) -> Result<Outcome, String> {
    match attack {
        Attack::MessageFlood => message_flood(arena).await,
        Attack::TypingFlood => typing_flood(arena).await,
        _ => connect_storm(arena, n).await,
    }
}

async fn message_flood(arena: &Arena) -> Result<Outcome, String> {
    let conn = arena
        .visitor_socket("flooder")
        .await
        .map_err(|e| e.to_string())?;
    let limit = arena.limits.rate_limit_per_minute as usize;
    let markers: Vec<String> = (0..limit * 2).map(|_| arena.marker()).collect();
    let sender = conn.sender();
    for m in &markers {
        let _ = sender.emit(
            "clientMessage",
            &json!({"type": "text", "message": m}),
            None,
        );
    }
    arena.settle().await;
    conn.close().await;
    let delivered = markers
        .iter()
        .filter(|m| !arena.with_marker(m).is_empty())
        .count();
    judged((delivered > limit).then(|| {
        format!(
            "{delivered} of {} messages sent at once delivered; the limit is {limit} per minute",
            markers.len()
        )
    }))
}

async fn typing_flood(arena: &Arena) -> Result<Outcome, String> {
    let since = Instant::now();
    let conn = arena
        .visitor_socket("typist")
        .await
        .map_err(|e| e.to_string())?;
    let limit = arena.limits.typing_rate_limit_per_minute as usize;
    let sender = conn.sender();
    for _ in 0..limit * 2 {
        let _ = sender.emit("clientTyping", &json!({"isTyping": true}), None);
    }
    arena.settle().await;
    let sid = conn.sid.clone();
    conn.close().await;
    let delivered = arena
        .events_since(since, Who::Operator, "clientTyping")
        .iter()
        .filter(|s| s.json().is_some_and(|v| field(&v, "from") == Some(&sid)))
        .count();
    judged((delivered > limit).then(|| {
        format!(
            "{delivered} of {} typing events delivered; the limit is {limit} per minute",
            limit * 2
        )
    }))
}

/// Visitors that come and go at once, half of them without a goodbye: every one announced
/// must be ended.
async fn connect_storm(arena: &Arena, _n: u32) -> Result<Outcome, String> {
    let since = Instant::now();
    let marker = arena.marker();
    let mut set = tokio::task::JoinSet::new();
    for k in 0..STORM {
        let conn = match arena.visitor_socket(&format!("storm {marker} {k}")).await {
            Ok(c) => c,
            Err(_) => continue,
        };
        set.spawn(async move {
            if k % 2 == 0 {
                conn.close().await;
            } else {
                conn.sender().close();
            }
        });
    }
    set.join_all().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ended: Vec<String> = arena
        .events_since(since, Who::Operator, "chatEnded")
        .iter()
        .filter_map(|s| {
            s.json()
                .and_then(|v| field(&v, "clientId").map(str::to_owned))
        })
        .collect();
    let ghosts: Vec<String> = arena
        .with_marker(&marker)
        .iter()
        .filter(|s| s.event == "newChat")
        .filter_map(|s| {
            s.json()
                .and_then(|v| field(&v, "clientId").map(str::to_owned))
        })
        .filter(|c| !ended.contains(c))
        .collect();
    judged((!ghosts.is_empty()).then(|| {
        format!(
            "{} visitors announced but never ended 3 s after they left, e.g. {}",
            ghosts.len(),
            ghosts[0]
        )
    }))
}

/// `attempts` visitors join and then never read again, so never answer a ping: each must be
/// ended within the ping deadline the target announced (interval + timeout), plus a margin.
pub(super) async fn half_open(
    arena: &Arena,
    attempts: u32,
    phase: watch::Receiver<Phase>,
) -> Vec<Outcome> {
    let since = Instant::now();
    let mut held = Vec::new();
    for _ in 0..attempts {
        match arena.visitor_socket("sleeper").await {
            Ok(c) => held.push(c),
            Err(e) => return vec![Outcome::NotJudged(e.to_string()); attempts as usize],
        }
    }
    let deadline = held
        .iter()
        .map(|c| c.ping_deadline())
        .max()
        .unwrap_or_default();
    let until = since + deadline + HALF_OPEN_MARGIN;
    let ended = |sid: &str| {
        arena
            .events_since(since, Who::Operator, "chatEnded")
            .iter()
            .any(|s| {
                s.json()
                    .is_some_and(|v: Value| field(&v, "clientId") == Some(sid))
            })
    };
    loop {
        if held.iter().all(|c| ended(&c.sid)) {
            break;
        }
        if Instant::now() >= until {
            break;
        }
        if *phase.borrow() != Phase::Sending {
            let why = format!(
                "the sending phase ended before the target's ping deadline ({} s) passed; make the scenario longer",
                deadline.as_secs()
            );
            return vec![Outcome::NotJudged(why); held.len()];
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if !arena.alive().await {
        let why = "the target went down before the ping deadline passed".to_owned();
        return vec![Outcome::NotJudged(why); held.len()];
    }
    held.iter()
        .map(|c| {
            if ended(&c.sid) {
                Outcome::Blocked
            } else {
                Outcome::Succeeded(format!(
                    "visitor {} stopped answering pings and was still there {} s later (ping deadline {} s)",
                    c.sid,
                    (deadline + HALF_OPEN_MARGIN).as_secs(),
                    deadline.as_secs()
                ))
            }
        })
        .collect()
}
