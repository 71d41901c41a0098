//! The phases of a run and the one task that owns the ledger.
//!
//! Sending for the scenario's duration, then draining (deliveries still arrive), then one
//! operator asks for the operators list, then an orderly close: visitors leave first;
//! operators keep listening while the `chatEnded` owed to them keep arriving, until every
//! one has, or until none has for the protocol's presence bound (what is still owed then is
//! missed); only then do operators leave. A socket is owed nothing from the moment it
//! starts to close, so nothing in flight at the end is judged lost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use reports::model::SecondSample;
use tokio::sync::{mpsc, watch};

use crate::bots::{Phase, Shared};
use crate::ledger::Ledger;
use crate::progress::{Progress, Snapshot};
use crate::record::Record;
use crate::scenario::Plan;

/// How long the operators-list answer may take; no answer is a violation.
const CHECKING: Duration = Duration::from_secs(2);

/// The longest operators wait for `chatEnded` after the last visitor left, however steadily
/// they keep coming: a run stays bounded in time.
const MAX_CLOSING_WAIT: Duration = Duration::from_secs(180);

/// How long bots get to close when told to.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(15);

/// What the driver and the aggregator share about the closing phase.
#[derive(Debug, Default)]
pub struct Closing {
    /// When visitors were told to leave.
    since: Mutex<Option<Instant>>,
    /// The driver's barrier the aggregator has applied.
    mark: AtomicU64,
    /// `chatEnded` still owed to open operator sockets.
    outstanding: AtomicU64,
    /// When the owed `chatEnded` last became fewer.
    progress: Mutex<Option<Instant>>,
}

impl Closing {
    fn since(&self) -> Option<Instant> {
        *self.since.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, ledger: &Ledger) {
        if let Some(since) = self.since() {
            self.owed(ledger.outstanding_chat_ended(since), Instant::now());
        }
    }

    /// `n` are still owed at `now`: fewer than before is progress.
    fn owed(&self, n: u64, now: Instant) {
        if n < self.outstanding.swap(n, Ordering::AcqRel) {
            *self.progress.lock().unwrap_or_else(PoisonError::into_inner) = Some(now);
        }
    }

    /// True at `now` once nothing is owed, or nothing owed has arrived for the presence
    /// bound since `gone` (the last visitor left) or the last one that did.
    fn settled(&self, gone: Instant, now: Instant) -> bool {
        let last = *self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        let since = last.map_or(gone, |p| p.max(gone));
        let quiet = now.saturating_duration_since(since) >= relay::bounds::PRESENCE;
        self.mark.load(Ordering::Acquire) >= 1
            && (self.outstanding.load(Ordering::Acquire) == 0 || quiet)
    }
}

/// Records the ledger takes from its channel at once.
const BATCH: usize = 4096;

/// The most records the ledger applies in one turn: on a runtime of several threads bots
/// keep pushing while it applies, and its clock ticks must still come.
const TURN: usize = 16 * BATCH;

/// The steady part of a plan's sending, as offsets from the start: sends intended from a
/// second after the last bot arrived (its join takes a moment) to the end of sending;
/// `None` without a whole second of it.
pub fn steady_window(plan: &Plan) -> Option<(Duration, Duration)> {
    let to = plan.duration.max(plan.ramp());
    let from = plan.ramp() + Duration::from_secs(1);
    (to >= from + Duration::from_secs(1)).then_some((from, to))
}

/// The one owner of the ledger: applies records, settles due messages, samples each second
/// and keeps the closing figures current. Ends when every record sender is gone.
pub async fn aggregate(
    mut rx: mpsc::UnboundedReceiver<Record>,
    mut ledger: Ledger,
    snapshot: Arc<Snapshot>,
    closing: Arc<Closing>,
) -> (Ledger, Vec<SecondSample>) {
    let start = tokio::time::Instant::from_std(ledger.start());
    let mut series = Vec::new();
    let mut second =
        tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    // a backlog must not bunch several seconds' samples together
    second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut quick = tokio::time::interval(Duration::from_millis(100));
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            // everything waiting, in one turn: 10,000 bot tasks each push records in theirs,
            // and a ledger taking a few per turn would let them pile up in memory
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    break;
                }
                let mut applied = 0;
                loop {
                    applied += batch.len();
                    for record in batch.drain(..) {
                        take(&mut ledger, &closing, record);
                    }
                    while batch.len() < BATCH && applied < TURN {
                        match rx.try_recv() {
                            Ok(record) => batch.push(record),
                            Err(_) => break,
                        }
                    }
                    if batch.is_empty() {
                        break;
                    }
                }
            }
            _ = second.tick() => {
                ledger.settle_due_now();
                series.push(sample(&mut ledger, series.len()));
                snapshot.publish(&ledger);
            }
            _ = quick.tick() => closing.publish(&ledger),
        }
    }
    ledger.finish();
    series.push(sample(&mut ledger, series.len()));
    (ledger, series)
}

/// Applies one record; the driver's mark also publishes the closing figures it waits on.
fn take(ledger: &mut Ledger, closing: &Closing, record: Record) {
    match record {
        Record::Mark(n) => {
            closing.publish(ledger);
            closing.mark.store(n, Ordering::Release);
        }
        record => ledger.apply(record),
    }
}

fn sample(ledger: &mut Ledger, t: usize) -> SecondSample {
    let connected = ledger.connected();
    let (tally, latency) = ledger.take_second();
    SecondSample {
        t: u32::try_from(t + 1).unwrap_or(u32::MAX),
        sent: tally.sent,
        delivered: tally.delivered,
        connected,
        violations: tally.violations,
        late: tally.late,
        latency,
    }
}

/// Drives the phases; Ctrl-C once skips to draining, twice exits at once. Returns whether
/// the run was interrupted.
pub async fn drive(
    plan: &Plan,
    phase: &watch::Sender<Phase>,
    progress: &Progress,
    shared: &Shared,
    closing: &Closing,
) -> bool {
    // one listener for the whole run: the first Ctrl-C drains, the second exits
    let (interrupt_tx, mut interrupt_rx) = mpsc::unbounded_channel::<()>();
    let listener = tokio::spawn(async move {
        let mut presses = 0;
        while tokio::signal::ctrl_c().await.is_ok() {
            presses += 1;
            if presses >= 2 {
                std::process::exit(130);
            }
            let _ = interrupt_tx.send(());
        }
    });
    let mut interrupted = false;
    progress.phase("sending");
    tokio::select! {
        () = tokio::time::sleep(plan.duration.max(plan.ramp())) => {}
        _ = interrupt_rx.recv() => {
            interrupted = true;
            progress.note("interrupted: draining and writing results (Ctrl-C again to quit now)");
        }
    }
    let _ = phase.send(Phase::Draining);
    progress.phase("draining");
    tokio::time::sleep(plan.drain).await;
    let _ = phase.send(Phase::Checking);
    progress.phase("checking");
    tokio::time::sleep(CHECKING).await;

    progress.phase("visitors leave");
    *closing.since.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    let _ = phase.send(Phase::VisitorsLeave);
    until(LEAVE_TIMEOUT, || {
        shared.live.visitors.load(Ordering::Acquire) == 0
    })
    .await;
    // every Leaving record is in the channel now: once the mark is applied, the count holds
    let _ = shared.records.send(Record::Mark(1));
    let gone = Instant::now();
    progress.phase("chatEnded");
    until(MAX_CLOSING_WAIT, || closing.settled(gone, Instant::now())).await;
    drop(listener); // stays alive: a second Ctrl-C while closing still exits
    let _ = phase.send(Phase::OperatorsLeave);
    progress.phase("operators leave");
    until(LEAVE_TIMEOUT, || {
        shared.live.connected.load(Ordering::Acquire) == 0
    })
    .await;
    interrupted
}

/// Waits until `done` holds, checking every 20 ms, for at most `limit`.
async fn until(limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_waits_while_owed_events_keep_coming() {
        let c = Closing::default();
        let gone = Instant::now();
        let at = |s: u64| gone + Duration::from_secs(s);
        c.mark.store(1, Ordering::Release);
        c.owed(100, at(0));
        // a backend announcing slowly but steadily: 8 s, then 16 s in, some more arrive
        c.owed(60, at(8));
        assert!(!c.settled(gone, at(12)), "progress 4 s ago");
        c.owed(20, at(16));
        assert!(!c.settled(gone, at(25)), "progress 9 s ago");
        // then nothing for the protocol's bound: what is still owed is missed
        assert!(c.settled(gone, at(26)));
        // and once nothing is owed, at once
        c.owed(0, at(26));
        assert!(c.settled(gone, at(26)));
    }

    #[test]
    fn closing_never_ends_before_the_leaving_is_applied() {
        let c = Closing::default();
        let gone = Instant::now();
        assert!(
            !c.settled(gone, gone + Duration::from_secs(60)),
            "no mark yet"
        );
        c.mark.store(1, Ordering::Release);
        assert!(c.settled(gone, gone), "nothing owed");
    }
}
