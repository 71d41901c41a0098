//! The pacer: one OS thread that puts every scheduled send on the wire at its intended
//! instant, to the tens of microseconds, without spinning.
//!
//! Bots build their packets a little ahead ([`LEAD`]) and hand them over as [`Job`]s; the
//! pacer sleeps on a condition variable until the earliest is due (the kernel wakes it
//! with its high-resolution timer; the thread asks for 1 µs of timer slack instead of the
//! default 50 µs), stamps the actual instant, reports the send and writes the packets with
//! one non-blocking `write(2)` ([`wire::Sender`]). Tokio's timer, whose resolution is a
//! millisecond, and the runtime's queue of ready tasks stay out of the measured latency.
//! A bot leaves through the pacer too, so nothing it scheduled can follow its goodbye.
//!
//! Waking up takes the kernel tens of microseconds (more on a virtual machine), so the
//! pacer learns how late it wakes (the 90th percentile of its recent wakes) and sets its
//! alarm that much early, then waits out the rest on the CPU. That wait is bounded: at most
//! [`MAX_MARGIN`] per wake and [`SPIN_BUDGET`] per second (2 % of one core), past which it
//! simply wakes on time and is late by what the kernel takes. Where the operating system
//! allows it, the thread runs at the lowest real-time priority, so a busy machine does not
//! keep it waiting for a CPU.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use crate::record::{MsgId, Record, SentKind, SocketKey};

/// How long before a send's intended instant its bot builds it and hands it over.
pub const LEAD: Duration = Duration::from_millis(25);

/// Timer slack the pacing thread asks the kernel for, in nanoseconds.
const TIMER_SLACK_NS: &str = "1000";

/// The earliest the pacer wakes before a send's instant.
pub const MAX_MARGIN: Duration = Duration::from_micros(200);

/// How long the pacer may wait on the CPU each second.
pub const SPIN_BUDGET: Duration = Duration::from_millis(20);

/// How late the pacer woke, recently, and so how early it sets its alarm.
#[derive(Debug)]
struct Alarm {
    late_us: [u32; 64],
    seen: usize,
    margin: Duration,
    second: Instant,
    spun: Duration,
}

impl Alarm {
    fn new() -> Self {
        Self {
            late_us: [0; 64],
            seen: 0,
            margin: Duration::ZERO,
            second: Instant::now(),
            spun: Duration::ZERO,
        }
    }

    /// How early to wake now: the learned margin, or none once this second's budget is spent.
    fn margin(&self) -> Duration {
        if self.spun >= SPIN_BUDGET {
            Duration::ZERO
        } else {
            self.margin
        }
    }

    /// The alarm set for `target` went off at `woke`.
    fn woke(&mut self, target: Instant, woke: Instant) {
        let late =
            u32::try_from(woke.saturating_duration_since(target).as_micros()).unwrap_or(u32::MAX);
        self.late_us[self.seen % self.late_us.len()] = late;
        self.seen += 1;
        if self.seen.is_multiple_of(16) {
            let n = self.seen.min(self.late_us.len());
            let mut recent = self.late_us[..n].to_vec();
            recent.sort_unstable();
            let p90 = recent[(n * 9 / 10).min(n - 1)];
            self.margin = Duration::from_micros(u64::from(p90)).min(MAX_MARGIN);
        }
    }

    /// The pacer waited `d` on the CPU.
    fn spent(&mut self, d: Duration, now: Instant) {
        if now.saturating_duration_since(self.second) >= Duration::from_secs(1) {
            self.second = now;
            self.spun = Duration::ZERO;
        }
        self.spun += d;
    }
}

/// What a sent packet means to the ledger.
#[derive(Debug, Clone)]
pub enum Note {
    /// A chat message.
    Message {
        /// Its id.
        msg: MsgId,
        /// Its path.
        kind: SentKind,
    },
    /// A typing indicator (to this visitor, for an operator's).
    Typing {
        /// The addressed visitor.
        to: Option<String>,
    },
}

/// One bot's connection as the pacer knows it.
#[derive(Debug, Default)]
pub struct Slot {
    /// The bot left: its remaining jobs are dropped.
    left: AtomicBool,
}

impl Slot {
    /// Drops every job still queued for this connection (the server closed it).
    pub fn abandon(&self) {
        self.left.store(true, Ordering::Release);
    }
}

/// Work for the pacer.
pub enum Work {
    /// Packets that leave together, in one write.
    Send {
        /// Their packets, in order.
        packets: Vec<String>,
        /// What each means, for the ledger.
        notes: Vec<Note>,
    },
    /// The bot leaves: the namespace's disconnect, then the transport's close.
    Leave,
}

/// A scheduled write.
pub struct Job {
    /// When it must leave.
    pub due: Instant,
    /// The connection's socket key.
    pub socket: SocketKey,
    /// The connection's writer.
    pub sender: wire::Sender,
    /// The bot's slot.
    pub slot: Arc<Slot>,
    /// What to do.
    pub work: Work,
}

struct Queued {
    job: Job,
    seq: u64,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

/// Earliest due first; equal instants in submission order (a max-heap, so reversed).
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other
            .job
            .due
            .cmp(&self.job.due)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Queued>,
    seq: u64,
    stop: bool,
}

struct Inner {
    queue: Mutex<Queue>,
    wake: Condvar,
    records: UnboundedSender<Record>,
}

/// The pacing thread's handle; dropping it (or [`Pacer::stop`]) ends the thread.
pub struct Pacer {
    inner: Arc<Inner>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Whether the kernel granted the fine timer slack.
    pub fine_timer: bool,
    /// Whether the thread runs at real-time priority.
    pub realtime: bool,
}

impl Pacer {
    /// Starts the thread; sends are reported on `records`.
    ///
    /// # Errors
    /// When the thread cannot be spawned.
    pub fn start(records: UnboundedSender<Record>) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            records,
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let worker = inner.clone();
        let thread = std::thread::Builder::new()
            .name("sim-pacer".into())
            .spawn(move || {
                let granted = (fine_timer_slack(), realtime_priority());
                let _ = ready_tx.send(granted);
                worker.run();
            })?;
        let (fine_timer, realtime) = ready_rx.recv().unwrap_or((false, false));
        Ok(Self {
            inner,
            thread: Some(thread),
            fine_timer,
            realtime,
        })
    }

    /// How the pacer runs, for the result: e.g. "real-time priority, 1 µs timer slack".
    pub fn describe(&self) -> String {
        let priority = if self.realtime {
            "real-time priority"
        } else {
            "normal priority"
        };
        let slack = if self.fine_timer {
            "1 µs timer slack"
        } else {
            "default timer slack"
        };
        format!(
            "{priority}, {slack}, early wake up to {} µs",
            MAX_MARGIN.as_micros()
        )
    }

    /// A handle bots submit jobs through.
    pub fn handle(&self) -> PacerHandle {
        PacerHandle(self.inner.clone())
    }

    /// Sends the goodbyes still queued, drops every other job and ends the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.inner.lock().stop = true;
            self.inner.wake.notify_one();
            let _ = thread.join();
        }
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Asks the kernel for 1 µs of timer slack for the calling thread (Linux: proc(5),
/// `/proc/<tid>/timerslack_ns`, writable by the thread itself); true when granted.
fn fine_timer_slack() -> bool {
    let Ok(link) = std::fs::read_link("/proc/thread-self") else {
        return false;
    };
    let Some(tid) = link.file_name().and_then(|t| t.to_str()) else {
        return false;
    };
    let file = format!("/proc/{tid}/timerslack_ns");
    std::fs::write(&file, TIMER_SLACK_NS).is_ok()
        && std::fs::read_to_string(&file).is_ok_and(|v| v.trim() == TIMER_SLACK_NS)
}

/// Runs the calling thread at the lowest real-time (FIFO) priority, above every normal
/// thread; true when the operating system allows it (root, or `CAP_SYS_NICE`).
fn realtime_priority() -> bool {
    use thread_priority::unix::{
        RealtimeThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
        thread_native_id,
    };
    set_thread_priority_and_policy(
        thread_native_id(),
        thread_priority::ThreadPriority::Min,
        ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
    )
    .is_ok()
}

/// Submits jobs to the pacer.
#[derive(Clone)]
pub struct PacerHandle(Arc<Inner>);

impl PacerHandle {
    /// Queues `job` for its instant (at once when that has passed).
    pub fn submit(&self, job: Job) {
        let mut q = self.0.lock();
        let earliest = q.heap.peek().is_none_or(|top| job.due < top.job.due);
        q.seq += 1;
        let seq = q.seq;
        q.heap.push(Queued { job, seq });
        drop(q);
        if earliest {
            self.0.wake.notify_one();
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn run(&self) {
        let mut alarm = Alarm::new();
        let mut q = self.lock();
        loop {
            if q.stop {
                let leaves: Vec<Job> = std::mem::take(&mut q.heap)
                    .into_iter()
                    .map(|item| item.job)
                    .filter(|job| matches!(job.work, Work::Leave))
                    .collect();
                drop(q);
                for job in leaves {
                    self.execute(job);
                }
                return;
            }
            let Some(top) = q.heap.peek() else {
                q = self.wake.wait(q).unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            let due = top.job.due;
            let now = Instant::now();
            let margin = alarm.margin();
            if due > now + margin {
                let target = due - margin;
                let (guard, timeout) = self
                    .wake
                    .wait_timeout(q, target - now)
                    .unwrap_or_else(PoisonError::into_inner);
                q = guard;
                if timeout.timed_out() {
                    alarm.woke(target, Instant::now());
                }
                continue;
            }
            if due > now {
                // woken early on purpose: wait out the rest on the CPU, without the lock
                drop(q);
                while Instant::now() < due {
                    std::hint::spin_loop();
                }
                let after = Instant::now();
                alarm.spent(after - now, after);
                q = self.lock();
                continue;
            }
            let mut ready = Vec::new();
            while q.heap.peek().is_some_and(|t| t.job.due <= now) {
                if let Some(item) = q.heap.pop() {
                    ready.push(item.job);
                }
            }
            drop(q);
            for job in ready {
                self.execute(job);
            }
            q = self.lock();
        }
    }

    fn execute(&self, job: Job) {
        match job.work {
            Work::Leave => {
                job.slot.left.store(true, Ordering::Release);
                let _ = job.sender.send("41");
                job.sender.close();
            }
            Work::Send { packets, notes } => {
                if job.slot.left.load(Ordering::Acquire) {
                    return;
                }
                let at = Instant::now();
                for note in &notes {
                    let record = match note {
                        Note::Message { msg, kind } => Record::Sent {
                            socket: job.socket,
                            msg: *msg,
                            kind: kind.clone(),
                            intended: job.due,
                            at,
                        },
                        Note::Typing { to } => Record::TypingSent {
                            socket: job.socket,
                            to: to.clone(),
                            at,
                        },
                    };
                    // sent before the write: no delivery can reach the ledger first
                    let _ = self.records.send(record);
                }
                let packets: Vec<&str> = packets.iter().map(String::as_str).collect();
                if job.sender.send_all(&packets).is_err() {
                    for note in notes {
                        if let Note::Message { msg, .. } = note {
                            let _ = self.records.send(Record::SendFailed {
                                socket: job.socket,
                                msg,
                            });
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alarm_learns_how_late_it_wakes_and_keeps_to_its_budget() {
        let mut a = Alarm::new();
        let t0 = Instant::now();
        for i in 0..64u64 {
            // late by 10..=73 µs
            a.woke(t0, t0 + Duration::from_micros(10 + i));
        }
        assert_eq!(a.margin(), Duration::from_micros(67), "the 90th percentile");
        for _ in 0..64 {
            a.woke(t0, t0 + Duration::from_millis(5));
        }
        assert_eq!(a.margin(), MAX_MARGIN, "never earlier than the bound");
        a.spent(SPIN_BUDGET, t0 + Duration::from_millis(1));
        assert_eq!(
            a.margin(),
            Duration::ZERO,
            "budget spent: no more waiting on the CPU"
        );
        a.spent(Duration::from_micros(1), t0 + Duration::from_secs(2));
        assert_eq!(a.margin(), MAX_MARGIN, "a new second, a new budget");
    }
}
