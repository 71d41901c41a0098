//! Visitors' presence: every operator socket that was there gets `newChat` when a visitor
//! joins and `chatEnded` when it leaves, each once.

use std::collections::HashMap;
use std::time::Instant;

use reports::model::Violation;

use super::{Check, Cx, at_operator, presence_event};
use crate::ledger::bits::Bits;
use crate::ledger::registry::Registry;
use crate::record::{Observed, Record, SocketKey};

/// Operator sockets that got one visitor's `newChat` and `chatEnded`.
#[derive(Debug, Default)]
struct Chat {
    announced: Bits,
    ended: Bits,
}

/// `newChat` and `chatEnded`.
#[derive(Debug, Default)]
pub struct Presence {
    chats: HashMap<SocketKey, Chat>,
}

impl Presence {
    /// `chatEnded`s still owed to operator sockets that are open, for visitors that began
    /// to leave at or after `since`: what the closing phase waits for.
    pub fn outstanding_chat_ended(&self, registry: &Registry, since: Instant) -> u64 {
        let mut n = 0;
        for (vk, v) in registry.all() {
            let Some(left) = v.leaving.filter(|l| *l >= since) else {
                continue;
            };
            // a broken connection's chatEnded may wait for the backend's ping timeout
            if v.role.is_operator() || v.refused || v.silent_since.is_some() {
                continue;
            }
            let ended = self.chats.get(&vk).map(|c| &c.ended);
            for (_, o) in registry.operators() {
                let waiting =
                    o.leaving.is_none() && !o.refused && o.joined.is_some_and(|j| j <= left);
                let got = o
                    .operator_index
                    .is_some_and(|i| ended.is_some_and(|e| e.get(u64::from(i))));
                if waiting && !got {
                    n += 1;
                }
            }
        }
        n
    }

    fn chat_event(
        &mut self,
        observer: SocketKey,
        at: Instant,
        client: &str,
        started: bool,
        cx: &mut Cx<'_>,
    ) {
        let registry = cx.registry;
        let Some(o) = registry.get(observer) else {
            return;
        };
        let (Some(index), Some(vk)) = (o.operator_index, registry.by_sid(client)) else {
            return; // a visitor of another shard, or not a visitor of this run at all
        };
        let chat = self.chats.entry(vk).or_default();
        let fresh = if started {
            chat.announced.set(u64::from(index))
        } else {
            chat.ended.set(u64::from(index))
        };
        let event = if started { "newChat" } else { "chatEnded" };
        if !fresh {
            cx.tally
                .violation(Violation::PresenceDuplicated, None, &o.sid, at, || {
                    format!("{event} for {client} twice")
                });
        }
        let Some(v) = registry.get(vk) else {
            return;
        };
        let (cause, deadline) = if started {
            (Some(v.joining), Some((v.joining, relay::bounds::PRESENCE)))
        } else {
            (v.leaving, registry.departure_deadline(v))
        };
        let deadline = deadline.filter(|_| fresh);
        presence_event(cx, &o.sid, at, cause, deadline, || {
            format!("{event} for {client}")
        });
    }

    /// Every visitor's `newChat` and `chatEnded` at every operator socket owed them: those
    /// that stayed the presence window around the cause after it.
    fn missed_chats(&self, cx: &mut Cx<'_>) {
        let mut missed = Vec::new();
        for (vk, v) in cx.registry.all() {
            if v.role.is_operator() || v.refused {
                continue;
            }
            let chat = self.chats.get(&vk);
            for (_, o) in cx.registry.operators() {
                let Some(i) = o.operator_index else { continue };
                if o.owed_at(v.joining, cx.evidence.presence_window(v.joining))
                    && !chat.is_some_and(|c| c.announced.get(u64::from(i)))
                {
                    missed.push((
                        o.sid.clone(),
                        v.joining,
                        format!("no newChat for {}", v.sid),
                    ));
                }
                if let (Some(first), Some(left)) =
                    (Registry::earliest_departure(v), cx.registry.departure(v))
                    && o.owed_across(first, left, cx.evidence.presence_window(left))
                    && !chat.is_some_and(|c| c.ended.get(u64::from(i)))
                {
                    missed.push((o.sid.clone(), left, format!("no chatEnded for {}", v.sid)));
                }
            }
        }
        for (sid, at, detail) in missed {
            cx.tally
                .violation(Violation::PresenceMissed, None, &sid, at, || detail);
        }
    }
}

impl Check for Presence {
    fn record(&mut self, record: &Record, cx: &mut Cx<'_>) {
        let Some((socket, at, what)) = at_operator(record, cx) else {
            return;
        };
        match what {
            Observed::NewChat { client, .. } => self.chat_event(socket, at, client, true, cx),
            Observed::ChatEnded { client } => self.chat_event(socket, at, client, false, cx),
            _ => {}
        }
    }

    fn finish(&mut self, cx: &mut Cx<'_>) {
        self.missed_chats(cx);
    }
}
