//! Presence: every operator socket that was there gets `newChat` and `chatEnded` for every
//! visitor, and `operatorConnected` / `operatorDisconnected` for every other operator's
//! first and last tab; nothing is announced twice; the final operators list is right.
//!
//! "First" and "last" tab come from what the ledger knows: an operator is online from the
//! moment its first tab's `join` left until its last tab began to close. Tabs whose gap is
//! shorter than the presence grace are one online span (the backend may or may not have
//! seen zero tabs in between, so neither answer is wrong there). An operator with a tab
//! whose join was never confirmed is not judged.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use reports::model::Violation;

use super::{Check, Cx};
use crate::ledger::registry::{Registry, SocketInfo};
use crate::metrics::Path;
use crate::record::{Observed, Record, SocketKey};

/// One bit per operator socket (by its dense index).
#[derive(Debug, Default, Clone)]
struct Bits(Vec<u64>);

impl Bits {
    /// Sets bit `i`; false when it was set already.
    fn set(&mut self, i: u32) -> bool {
        let (w, b) = ((i / 64) as usize, i % 64);
        if self.0.len() <= w {
            self.0.resize(w + 1, 0);
        }
        let fresh = self.0[w] & (1 << b) == 0;
        self.0[w] |= 1 << b;
        fresh
    }

    fn get(&self, i: u32) -> bool {
        self.0
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

/// Operator sockets that got one visitor's `newChat` and `chatEnded`.
#[derive(Debug, Default)]
struct Chat {
    announced: Bits,
    ended: Bits,
}

/// Presence events and the operators list.
#[derive(Debug)]
pub struct Presence {
    sharded: bool,
    chats: HashMap<SocketKey, Chat>,
    /// What each observer was told about each operator id: (online, when), in order.
    told: HashMap<(SocketKey, u64), Vec<(bool, Instant)>>,
    list_requested: Option<(SocketKey, Instant)>,
    list_answered: bool,
}

impl Presence {
    /// For a run whose other shards' operators may appear in the list (`sharded`).
    pub fn new(sharded: bool) -> Self {
        Self {
            sharded,
            chats: HashMap::new(),
            told: HashMap::new(),
            list_requested: None,
            list_answered: false,
        }
    }

    /// `chatEnded`s still owed to operator sockets that are open, for visitors that began
    /// to leave at or after `since`: what the closing phase waits for.
    pub fn outstanding_chat_ended(&self, registry: &Registry, since: Instant) -> u64 {
        let mut n = 0;
        for (vk, v) in registry.all() {
            let Some(left) = v.leaving.filter(|l| *l >= since) else {
                continue;
            };
            if v.role.is_operator() || v.refused {
                continue;
            }
            let ended = self.chats.get(&vk).map(|c| &c.ended);
            for (_, o) in registry.operators() {
                let waiting =
                    o.leaving.is_none() && !o.refused && o.joined.is_some_and(|j| j <= left);
                let got = o
                    .operator_index
                    .is_some_and(|i| ended.is_some_and(|e| e.get(i)));
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
        let Some(o) = cx.registry.get(observer) else {
            return;
        };
        let (Some(index), Some(vk)) = (o.operator_index, cx.registry.by_sid(client)) else {
            return; // a visitor of another shard, or not a visitor of this run at all
        };
        let chat = self.chats.entry(vk).or_default();
        let fresh = if started {
            chat.announced.set(index)
        } else {
            chat.ended.set(index)
        };
        let event = if started { "newChat" } else { "chatEnded" };
        if !fresh {
            cx.tally
                .violation(Violation::PresenceDuplicated, None, &o.sid, at, || {
                    format!("{event} for {client} twice")
                });
        }
        let cause = cx
            .registry
            .get(vk)
            .and_then(|v| if started { Some(v.joining) } else { v.leaving });
        if let Some(cause) = cause.filter(|c| *c <= at) {
            latency(cx, at - cause);
        }
    }

    fn operator_event(
        &mut self,
        observer: SocketKey,
        at: Instant,
        operator_id: u64,
        online: bool,
        cx: &mut Cx<'_>,
    ) {
        let Some(o) = cx.registry.get(observer) else {
            return;
        };
        let log = self.told.entry((observer, operator_id)).or_default();
        if log.last().is_some_and(|(was, _)| *was == online) {
            let event = if online {
                "operatorConnected"
            } else {
                "operatorDisconnected"
            };
            cx.tally
                .violation(Violation::PresenceDuplicated, None, &o.sid, at, || {
                    format!("{event} {operator_id} twice in a row")
                });
        }
        log.push((online, at));
        // latency from the nearest cause: the latest tab join (or departure) before it
        let cause = cx
            .registry
            .tabs_of(operator_id)
            .iter()
            .filter_map(|k| cx.registry.get(*k))
            .filter_map(|t| if online { Some(t.joining) } else { t.leaving })
            .filter(|c| *c <= at)
            .max();
        if let Some(cause) = cause {
            latency(cx, at - cause);
        }
    }

    fn check_list(&mut self, socket: SocketKey, at: Instant, listed: &[u64], cx: &mut Cx<'_>) {
        let mut online = BTreeSet::new();
        let mut own = BTreeSet::new();
        for (id, tabs) in cx.registry.tabs() {
            own.insert(id);
            if tabs
                .iter()
                .filter_map(|k| cx.registry.get(*k))
                .any(|t| t.online())
            {
                online.insert(id);
            }
        }
        let got: BTreeSet<u64> = listed.iter().copied().collect();
        let judged: BTreeSet<u64> = if self.sharded {
            // other shards' operators are listed too: judge this shard's own
            got.intersection(&own).copied().collect()
        } else {
            got.clone()
        };
        if judged != online || listed.len() != got.len() {
            let sid = cx.registry.sid(socket);
            let n = listed.len();
            cx.tally
                .violation(Violation::PresenceListMismatch, None, sid, at, || {
                    format!("listed {got:?} ({n} entries), online {online:?}")
                });
        }
    }

    /// Every visitor's `newChat` and `chatEnded` at every operator socket owed them.
    fn missed_chats(&self, cx: &mut Cx<'_>) {
        let grace = cx.evidence.presence_grace();
        let mut missed = Vec::new();
        for (vk, v) in cx.registry.all() {
            if v.role.is_operator() || v.refused {
                continue;
            }
            let chat = self.chats.get(&vk);
            for (_, o) in cx.registry.operators() {
                let Some(i) = o.operator_index else { continue };
                if o.owed_at(v.joining, grace) && !chat.is_some_and(|c| c.announced.get(i)) {
                    missed.push((
                        o.sid.clone(),
                        v.joining,
                        format!("no newChat for {}", v.sid),
                    ));
                }
                if let Some(left) = v.leaving
                    && o.owed_at(left, grace)
                    && !chat.is_some_and(|c| c.ended.get(i))
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

    /// Every operator's arrival and departure at every other operator socket owed them.
    fn missed_operators(&self, cx: &mut Cx<'_>) {
        let grace = cx.evidence.presence_grace();
        let mut missed = Vec::new();
        for (id, tabs) in cx.registry.tabs() {
            let Some(spans) = spans(tabs.iter().filter_map(|k| cx.registry.get(*k)), grace) else {
                continue;
            };
            for (n, &(start, end)) in spans.iter().enumerate() {
                let next = spans.get(n + 1).map(|s| s.0);
                let before_next = |t: Instant| next.is_none_or(|nx| t < nx);
                for (ok, o) in cx.registry.operators() {
                    if o.operator.as_ref().is_some_and(|(oid, _)| *oid == id) {
                        continue;
                    }
                    let log = self.told.get(&(ok, id)).map(Vec::as_slice).unwrap_or(&[]);
                    let got = |online: bool, from: Instant| {
                        log.iter()
                            .any(|(on, t)| *on == online && *t >= from && before_next(*t))
                    };
                    if o.owed_at(start, grace) && !got(true, start) {
                        missed.push((
                            o.sid.clone(),
                            start,
                            format!("no operatorConnected for {id}"),
                        ));
                    }
                    if let Some(end) = end
                        && o.owed_at(end, grace)
                        && !got(false, end.checked_sub(grace).unwrap_or(end).max(start))
                    {
                        missed.push((
                            o.sid.clone(),
                            end,
                            format!("no operatorDisconnected for {id}"),
                        ));
                    }
                }
            }
        }
        for (sid, at, detail) in missed {
            cx.tally
                .violation(Violation::PresenceMissed, None, &sid, at, || detail);
        }
    }
}

/// An operator's online spans (from a tab's `join` to the last tab's departure; `None` for
/// still online), tabs closer than `grace` merged; `None` when a tab's join was never
/// confirmed (the backend may or may not count it).
fn spans<'a>(
    tabs: impl Iterator<Item = &'a SocketInfo>,
    grace: Duration,
) -> Option<Vec<(Instant, Option<Instant>)>> {
    let mut intervals: Vec<(Instant, Option<Instant>)> = Vec::new();
    for t in tabs {
        if t.refused {
            continue;
        }
        t.joined?;
        intervals.push((t.joining, t.leaving));
    }
    intervals.sort_by_key(|i| i.0);
    let mut out: Vec<(Instant, Option<Instant>)> = Vec::new();
    for (start, end) in intervals {
        match out.last_mut() {
            Some(last) if last.1.is_none_or(|e| start < e + grace) => {
                last.1 = match (last.1, end) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
            _ => out.push((start, end)),
        }
    }
    Some(out)
}

fn latency(cx: &mut Cx<'_>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    cx.histograms.record(Path::Presence, us, us);
    cx.evidence.presence(d);
}

impl Check for Presence {
    fn record(&mut self, record: &Record, cx: &mut Cx<'_>) {
        match record {
            Record::Received { socket, at, what } => {
                if !cx
                    .registry
                    .get(*socket)
                    .is_some_and(|s| s.role.is_operator())
                {
                    return; // what visitors get is the leak check's business
                }
                match what {
                    Observed::NewChat { client, .. } => {
                        self.chat_event(*socket, *at, client, true, cx)
                    }
                    Observed::ChatEnded { client } => {
                        self.chat_event(*socket, *at, client, false, cx)
                    }
                    Observed::OperatorConnected { operator_id } => {
                        self.operator_event(*socket, *at, *operator_id, true, cx);
                    }
                    Observed::OperatorDisconnected { operator_id } => {
                        self.operator_event(*socket, *at, *operator_id, false, cx);
                    }
                    _ => {}
                }
            }
            Record::ListRequested { socket, at } => self.list_requested = Some((*socket, *at)),
            Record::FinalOperatorsList { socket, at, ids } => {
                self.list_answered = true;
                self.check_list(*socket, *at, ids, cx);
            }
            _ => {}
        }
    }

    fn finish(&mut self, cx: &mut Cx<'_>) {
        self.missed_chats(cx);
        self.missed_operators(cx);
        if let (Some((socket, at)), false) = (self.list_requested, self.list_answered) {
            let sid = cx.registry.sid(socket);
            cx.tally
                .violation(Violation::PresenceListMismatch, None, sid, at, || {
                    "getConnectedOperators got no answer".into()
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_set_once() {
        let mut b = Bits::default();
        assert!(b.set(70));
        assert!(!b.set(70));
        assert!(b.get(70) && !b.get(69));
    }
}
