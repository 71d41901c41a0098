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
                let fine = fine_timer_slack();
                let _ = ready_tx.send(fine);
                worker.run();
            })?;
        let fine_timer = ready_rx.recv().unwrap_or(false);
        Ok(Self {
            inner,
            thread: Some(thread),
            fine_timer,
        })
    }

    /// A handle bots submit jobs through.
    pub fn handle(&self) -> PacerHandle {
        PacerHandle(self.inner.clone())
    }

    /// Runs what is due, drops the rest and ends the thread.
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
        let mut q = self.lock();
        loop {
            if q.stop {
                return;
            }
            let Some(top) = q.heap.peek() else {
                q = self.wake.wait(q).unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            let now = Instant::now();
            if top.job.due > now {
                let wait = top.job.due - now;
                q = self
                    .wake
                    .wait_timeout(q, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                continue;
            }
            let mut due = Vec::new();
            while q.heap.peek().is_some_and(|t| t.job.due <= now) {
                if let Some(item) = q.heap.pop() {
                    due.push(item.job);
                }
            }
            drop(q);
            for job in due {
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
