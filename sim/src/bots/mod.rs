//! Bots: one task per bot runs its connections ([`life`]), scripted by its role
//! ([`operator`], [`visitor`], [`supervisor`]); every payload is built from the protocol's
//! types ([`outgoing`]) and every event read with them ([`inbound`]).
//!
//! Sends are scheduled ahead (open model): the next intended instant is drawn from the
//! think-time distribution, independent of how fast the backend answers; the pacer puts
//! each send on the wire at its instant and latency is measured from it.

pub mod content;
pub mod inbound;
mod life;
mod operator;
pub mod outgoing;
mod supervisor;
mod visitor;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rand::rngs::StdRng;
use relay::auth::OperatorIdentity;
use relay::protocol::JoinRequest;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::pacer::PacerHandle;
use crate::record::{MsgId, Observed, Record, SentKind, SocketKey};
use crate::scenario::{BotRole, Group, Limits, Reconnect};
use content::ImageCache;
use wire::Endpoint;

pub use life::run;

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Bots connect and send.
    Sending,
    /// No new sends; deliveries still arrive.
    Draining,
    /// One operator asks for the operators list; the others wait.
    Checking,
    /// Visitors leave; operators stay to hear every `chatEnded`.
    VisitorsLeave,
    /// Operators leave.
    OperatorsLeave,
}

/// What all bots of a run share.
pub struct Shared {
    /// Where records go.
    pub records: mpsc::UnboundedSender<Record>,
    /// Socket.IO endpoints; bots use them in turn.
    pub endpoints: Vec<Endpoint>,
    /// Operator tokens.
    pub tokens: Arc<crate::tokens::Tokens>,
    /// The backend's expected limits.
    pub limits: Limits,
    /// Run phase.
    pub phase: watch::Receiver<Phase>,
    /// Live counters for the progress display and the phase driver.
    pub live: Arc<Live>,
    /// Where sends are scheduled.
    pub pacer: PacerHandle,
    /// Visitor ids operators have heard of, interned.
    pub visitors: Directory,
    /// How bots come back after losing a connection.
    pub reconnect: Reconnect,
    /// TLS trust and headers; each bot's browser comes from it.
    pub access: crate::access::Access,
    /// Nodes a fault killed, one bit each: new connections go to the others, as a load
    /// balancer would send them.
    dead_nodes: AtomicU64,
    next_socket: AtomicU32,
    next_msg: AtomicU64,
    /// In a sharded run, the tag this shard's visitors carry in their names: operators only
    /// address visitors of their own shard, so every message is checked by the shard that sent it.
    shard_tag: Option<String>,
}

impl Shared {
    /// State for a run's bots; message ids start at `first_msg_id`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        records: mpsc::UnboundedSender<Record>,
        endpoints: Vec<Endpoint>,
        tokens: Arc<crate::tokens::Tokens>,
        limits: Limits,
        phase: watch::Receiver<Phase>,
        pacer: PacerHandle,
        first_msg_id: MsgId,
        shard: (u32, u32),
    ) -> Self {
        let (index, count) = shard;
        Self {
            records,
            endpoints,
            tokens,
            limits,
            phase,
            live: Arc::default(),
            pacer,
            visitors: Directory::default(),
            reconnect: Reconnect::default(),
            access: crate::access::Access::default(),
            dead_nodes: AtomicU64::new(0),
            next_socket: AtomicU32::new(0),
            next_msg: AtomicU64::new(first_msg_id),
            shard_tag: (count > 1).then(|| format!("#shard{}of{count}", index + 1)),
        }
    }

    fn record(&self, r: Record) {
        let _ = self.records.send(r);
    }

    /// Notes that a fault killed node `n`.
    pub fn node_killed(&self, n: u32) {
        self.dead_nodes
            .fetch_or(1u64.checked_shl(n).unwrap_or(0), Ordering::Relaxed);
    }

    /// Notes that a fault brought node `n` back.
    pub fn node_revived(&self, n: u32) {
        self.dead_nodes
            .fetch_and(!1u64.checked_shl(n).unwrap_or(0), Ordering::Relaxed);
    }

    /// The endpoint for a bot's connection: its own turn, moved on by `shift`, skipping
    /// nodes a fault killed.
    fn node_for(&self, global: u32, shift: usize) -> usize {
        let n = self.endpoints.len();
        let dead = self.dead_nodes.load(Ordering::Relaxed);
        let first = (global as usize + shift) % n;
        (0..n)
            .map(|i| (first + i) % n)
            .find(|&i| dead & 1u64.checked_shl(i as u32).unwrap_or(0) == 0)
            .unwrap_or(first)
    }

    fn next_socket(&self) -> SocketKey {
        self.next_socket.fetch_add(1, Ordering::Relaxed)
    }

    fn next_msg(&self) -> MsgId {
        self.next_msg.fetch_add(1, Ordering::Relaxed)
    }
}

/// Counters the progress display and the phase driver read.
#[derive(Debug, Default)]
pub struct Live {
    /// Sockets connected now.
    pub connected: AtomicU64,
    /// Visitor sockets connected now.
    pub visitors: AtomicU64,
    /// Messages scheduled.
    pub sent: AtomicU64,
}

/// Visitor ids, interned: operators keep 4-byte indexes instead of a copy each.
#[derive(Debug, Default)]
pub struct Directory {
    inner: Mutex<Interned>,
}

/// Ids by index, and indexes by id.
#[derive(Debug, Default)]
struct Interned(HashMap<Arc<str>, u32>, Vec<Arc<str>>);

impl Directory {
    /// The index of `sid`, added when new.
    pub fn intern(&self, sid: &str) -> u32 {
        let mut d = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&i) = d.0.get(sid) {
            return i;
        }
        let i = u32::try_from(d.1.len()).unwrap_or(u32::MAX);
        let d = &mut *d;
        let s: Arc<str> = Arc::from(sid);
        d.1.push(s.clone());
        d.0.insert(s, i);
        i
    }

    /// The id at `index`.
    pub fn get(&self, index: u32) -> Option<Arc<str>> {
        let d = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        d.1.get(index as usize).cloned()
    }
}

/// One bot's script.
#[derive(Clone)]
pub struct BotSpec {
    /// Its group.
    pub group: Arc<Group>,
    /// Images it may send.
    pub images: Arc<ImageCache>,
    /// Index over all bots of the run.
    pub global: u32,
    /// Scheduled arrival.
    pub arrival: Instant,
    /// Operator identity (operator roles; shared by its tabs).
    pub operator: Option<OperatorIdentity>,
    /// Whether this bot asks for the operators list at the end.
    pub checks_list: bool,
    /// RNG seed.
    pub seed: u64,
}

/// A message about to be scheduled: its packet and what it means.
pub struct Draft {
    /// The Socket.IO packet.
    pub packet: String,
    /// Its id.
    pub msg: MsgId,
    /// Its path.
    pub kind: SentKind,
}

/// What a role does: how it joins, what it writes, what it learns from what it receives.
pub trait Script: Send {
    /// The `join` payload.
    fn join(&mut self, rng: &mut StdRng) -> JoinRequest;

    /// The join is confirmed by the operators list (the guide's servers do not ack joins).
    fn confirms_with_list(&self) -> bool {
        false
    }

    /// `n` messages to leave together (a burst when `n` > 1), or none when there is
    /// nobody to write to; with a typing indicator first when `typing`.
    fn compose(
        &mut self,
        c: &mut Compose<'_>,
        n: u32,
        typing: bool,
    ) -> Option<(Vec<Draft>, Option<Typing>)>;

    /// Learns from an event.
    fn observe(&mut self, what: &Observed, visitors: &Directory);

    /// A new connection starts: forget what the last one learned.
    fn reset(&mut self) {}
}

/// A typing indicator about to be scheduled.
pub struct Typing {
    /// The packet.
    pub packet: String,
    /// The visitor an operator's indicator goes to.
    pub to: Option<String>,
}

/// What composing needs besides the script's own state.
pub struct Compose<'a> {
    /// The bot's group.
    pub group: &'a Group,
    /// Its images.
    pub images: &'a ImageCache,
    /// Its randomness.
    pub rng: &'a mut StdRng,
    /// Run-wide state (message ids, the visitor directory).
    pub shared: &'a Shared,
}

impl Compose<'_> {
    /// A fresh run-unique message id.
    pub fn next_msg(&self) -> MsgId {
        self.shared.next_msg()
    }
}

/// The script of a bot of `role`.
pub fn script(spec: &BotSpec, shared: &Shared) -> Box<dyn Script> {
    match (spec.group.role, &spec.operator) {
        (BotRole::Client, _) | (_, None) => {
            Box::new(visitor::Visitor::new(shared.shard_tag.clone()))
        }
        (BotRole::Supervisor, Some(who)) => Box::new(supervisor::Supervisor::new(who.clone())),
        (BotRole::Operator, Some(who)) => Box::new(operator::Operator::new(
            who.clone(),
            shared.shard_tag.clone(),
        )),
    }
}

/// Loopback source address of connection `key`: round-robin over 127.0.0.1–64, so no address
/// carries more than a few hundred connections and the kernel finds a free port at once
/// (past ~15,000 sockets on one address, `connect()` spends its time hunting for ports).
fn loopback_source(key: SocketKey) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (key % SOURCE_ADDRESSES) as u8))
}

/// Loopback addresses connections are spread over.
const SOURCE_ADDRESSES: u32 = 64;

/// Operator identities for every operator-role bot, numbered from 1 across groups.
pub fn identity(index: u32, rng: &mut StdRng) -> OperatorIdentity {
    OperatorIdentity {
        operator_id: u64::from(index) + 1,
        name: content::person(rng),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A run's shared state for unit tests, with its pacer (kept alive by the caller) and
    /// the receiving end of its records.
    pub fn shared() -> (
        (crate::pacer::Pacer, mpsc::UnboundedReceiver<Record>),
        Shared,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (_phase_tx, phase_rx) = watch::channel(Phase::Sending);
        let pacer = crate::pacer::Pacer::start(tx.clone()).expect("pacer");
        let limits = Limits {
            rate_limit_per_minute: 100,
            typing_rate_limit_per_minute: 600,
            max_payload_bytes: 1_000_000,
            max_image_bytes: 1_000_000,
        };
        let shared = Shared::new(
            tx,
            Vec::new(),
            Arc::new(crate::tokens::Tokens::hs256("")),
            limits,
            phase_rx,
            pacer.handle(),
            1,
            (0, 1),
        );
        ((pacer, rx), shared)
    }
}
