//! Operators' presence: every operator socket that was there gets `operatorConnected` when
//! another operator's first tab joins and `operatorDisconnected` after its last tab left;
//! neither comes twice in a row.
//!
//! "First" and "last" tab come from what the ledger knows: an operator is online from the
//! moment its first tab's `join` left until its last tab began to close. Tabs whose gap is
//! shorter than the presence window there are one online span (the backend may or may not have
//! seen zero tabs in between, so neither answer is wrong there). An operator with a tab
//! whose join was never confirmed is not judged.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reports::model::Violation;

use super::{Check, Cx, at_operator, presence_event};
use crate::ledger::registry::{Registry, SocketInfo};
use crate::record::{Observed, Record, SocketKey};

/// `operatorConnected` and `operatorDisconnected`.
#[derive(Debug, Default)]
pub struct OperatorPresence {
    /// What each observer was told about each operator id: (online, when), in order.
    told: HashMap<(SocketKey, u64), Vec<(bool, Instant)>>,
}

impl OperatorPresence {
    fn operator_event(
        &mut self,
        observer: SocketKey,
        at: Instant,
        operator_id: u64,
        online: bool,
        cx: &mut Cx<'_>,
    ) {
        let registry = cx.registry;
        let Some(o) = registry.get(observer) else {
            return;
        };
        let event = if online {
            "operatorConnected"
        } else {
            "operatorDisconnected"
        };
        let log = self.told.entry((observer, operator_id)).or_default();
        if log.last().is_some_and(|(was, _)| *was == online) {
            cx.tally
                .violation(Violation::PresenceDuplicated, None, &o.sid, at, || {
                    format!("{event} {operator_id} twice in a row")
                });
        }
        let tabs = || {
            registry
                .tabs_of(operator_id)
                .iter()
                .filter_map(|k| registry.get(*k))
                .filter(|t| !t.refused)
        };
        // the nearest cause: the latest tab join (or departure) before it
        let (cause, deadline) = if online {
            let cause = tabs().map(|t| t.joining).filter(|c| *c <= at).max();
            (cause, cause.map(|c| (c, relay::bounds::PRESENCE)))
        } else {
            let gone = || tabs().filter(|t| t.leaving.is_some_and(|l| l <= at));
            // a departure is late only when no tab is left online to be the reason, and only
            // past the last moment any of its tabs' departures could be announced
            let alone = !tabs().any(|t| t.joining <= at && t.leaving.is_none_or(|l| l > at));
            let deadline = gone()
                .filter_map(|t| registry.departure_deadline(t))
                .max_by_key(|(known, bound)| *known + *bound)
                .filter(|_| alone);
            (gone().filter_map(|t| t.leaving).max(), deadline)
        };
        // only the first announcement since the cause can be late
        let first = cause.is_some_and(|c| {
            !log.iter()
                .rev()
                .take_while(|(_, t)| *t >= c)
                .any(|(on, _)| *on == online)
        });
        log.push((online, at));
        presence_event(cx, &o.sid, at, cause, deadline.filter(|_| first), || {
            format!("{event} {operator_id}")
        });
    }

    /// Every operator's arrival and departure at every other operator socket owed them:
    /// those that stayed the presence window around the cause after it.
    fn missed_operators(&self, cx: &mut Cx<'_>) {
        let evidence = &*cx.evidence;
        let window = |t: Instant| evidence.presence_window(t);
        let mut missed = Vec::new();
        for (id, tabs) in cx.registry.tabs() {
            let tabs = tabs.iter().filter_map(|k| cx.registry.get(*k));
            let Some(spans) = spans(tabs, cx.registry, window) else {
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
                    if o.owed_at(start, window(start)) && !got(true, start) {
                        missed.push((
                            o.sid.clone(),
                            start,
                            format!("no operatorConnected for {id}"),
                        ));
                    }
                    // owed by the latest the backend may see the last tab go; an announcement
                    // counts from around the earliest
                    if let Some((first, end)) = end
                        && o.owed_across(first, end, window(end))
                        && !got(
                            false,
                            first.checked_sub(window(first)).unwrap_or(first).max(start),
                        )
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

/// When an online span ends: the earliest and the latest the backend may see its last tab
/// go (`None`: still online).
type End = Option<(Instant, Instant)>;

/// An operator's online spans (from a tab's `join` to the last tab's departure), tabs closer
/// than the presence window at the earlier one's latest end merged; `None` when a tab's join
/// was never confirmed (the backend may or may not count it).
fn spans<'a>(
    tabs: impl Iterator<Item = &'a SocketInfo>,
    registry: &Registry,
    window: impl Fn(Instant) -> Duration,
) -> Option<Vec<(Instant, End)>> {
    let mut intervals: Vec<(Instant, End)> = Vec::new();
    for t in tabs {
        if t.refused {
            continue;
        }
        t.joined?;
        let end = Registry::earliest_departure(t).zip(registry.departure(t));
        intervals.push((t.joining, end));
    }
    intervals.sort_by_key(|i| i.0);
    let mut out: Vec<(Instant, End)> = Vec::new();
    for (start, end) in intervals {
        match out.last_mut() {
            Some(last) if last.1.is_none_or(|(_, e)| start < e + window(e)) => {
                last.1 = match (last.1, end) {
                    (Some(a), Some(b)) => Some((a.0.max(b.0), a.1.max(b.1))),
                    _ => None,
                };
            }
            _ => out.push((start, end)),
        }
    }
    Some(out)
}

impl Check for OperatorPresence {
    fn record(&mut self, record: &Record, cx: &mut Cx<'_>) {
        let Some((socket, at, what)) = at_operator(record, cx) else {
            return;
        };
        match what {
            Observed::OperatorConnected { operator_id } => {
                self.operator_event(socket, at, *operator_id, true, cx);
            }
            Observed::OperatorDisconnected { operator_id } => {
                self.operator_event(socket, at, *operator_id, false, cx);
            }
            _ => {}
        }
    }

    fn finish(&mut self, cx: &mut Cx<'_>) {
        self.missed_operators(cx);
    }
}
