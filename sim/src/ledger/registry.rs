//! Every socket of the run: who it is, when its join left and was confirmed, when it began
//! to close; and who is owed what at a given instant.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use relay::bounds;
use reports::model::Counter;

use super::tally::Tally;
use crate::record::{Record, SocketKey};
use crate::scenario::BotRole;

/// One connection of one bot.
#[derive(Debug)]
pub struct SocketInfo {
    /// Role.
    pub role: BotRole,
    /// Server-assigned id.
    pub sid: String,
    /// Operator id and name, for operator roles.
    pub operator: Option<(u64, String)>,
    /// Dense index among operator sockets (for per-operator bitsets).
    pub operator_index: Option<u32>,
    /// Which of the target's endpoints (nodes) it is on.
    pub node: u32,
    /// When `join` left.
    pub joining: Instant,
    /// When the join was known to be processed.
    pub joined: Option<Instant>,
    /// The backend refused the join.
    pub refused: bool,
    /// When the bot began to close it, or the backend closed it.
    pub leaving: Option<Instant>,
    /// The backend closed it while the bot still wanted it.
    pub closed_by_server: bool,
    /// The simulator's fault proxy broke its transport, and nothing arrived after this
    /// instant (when it was last heard from). Only ever set for a break a cut explains.
    pub silent_since: Option<Instant>,
    /// The backend's ping deadline (`pingInterval + pingTimeout` of its open packet): how
    /// long it may take to notice a connection that broke without a close.
    pub ping_deadline: Duration,
    /// The latest deliveries to it: when, and how long after their message left. The
    /// quickest of them is its own link's floor.
    recent: [Option<(Instant, Duration)>; LINK_SAMPLES],
}

/// Deliveries to a socket that speak for its link.
const LINK_SAMPLES: usize = 3;

/// How long a delivery to a socket speaks for its link.
const LINK_MEMORY: Duration = Duration::from_secs(30);

impl SocketInfo {
    /// Its own link's window at `t`: twice the quickest of its last deliveries (when they
    /// are [`LINK_SAMPLES`], all within [`LINK_MEMORY`] before `t`), plus the floor, at
    /// most the delivery bound. A socket on a slow link (every delivery to it slow, not one
    /// slow moment) is owed less of what came just before it left, whatever the others'
    /// speed.
    pub fn link_window(&self, t: Instant) -> Duration {
        let recent = |r: &Option<(Instant, Duration)>| {
            r.filter(|(at, _)| *at <= t && t.saturating_duration_since(*at) <= LINK_MEMORY)
                .map(|(_, d)| d)
        };
        let floor = if self.recent.iter().all(|r| recent(r).is_some()) {
            self.recent
                .iter()
                .filter_map(recent)
                .min()
                .unwrap_or_default()
        } else {
            Duration::ZERO
        };
        (super::evidence::FLOOR + floor * 2).min(bounds::DELIVERY)
    }

    /// True for operator-role sockets whose join was confirmed before `t` and that stayed
    /// open at least `grace` after it: such a socket is owed what the room got at `t`.
    pub fn owed_at(&self, t: Instant, grace: Duration) -> bool {
        self.role.is_operator()
            && !self.refused
            && self.joined.is_some_and(|j| j < t)
            && self.stays(t, grace)
    }

    /// True for operator-role sockets owed what the room got for a cause the backend saw
    /// anywhere from `from` to `to` (a departure it may learn of late): joined before the
    /// earliest, and still there `grace` after the latest. One that joined in between may
    /// or may not have been told: either answer is right.
    pub fn owed_across(&self, from: Instant, to: Instant, grace: Duration) -> bool {
        self.owed_at(from, Duration::ZERO) && self.stays(to, grace)
    }

    /// Still open, and still hearing, `grace` after `t`: a connection whose transport broke
    /// heard nothing after it was last heard from, whenever the bot found out.
    pub fn stays(&self, t: Instant, grace: Duration) -> bool {
        self.silent_since
            .or(self.leaving)
            .is_none_or(|l| l >= t + grace)
    }

    /// When the backend must have seen it go: when it left, or, for a connection whose
    /// transport broke (the backend may hear nothing of it), at its ping deadline after the
    /// connection was last heard from, and [`DEADLINE_SLACK`] more.
    pub fn departure(&self) -> Option<Instant> {
        match self.silent_since {
            Some(q) => self
                .leaving
                .map(|l| l.max(q + self.ping_deadline + DEADLINE_SLACK)),
            None => self.leaving,
        }
    }

    /// Open now: joined, not refused, not leaving.
    pub fn online(&self) -> bool {
        self.joined.is_some() && !self.refused && self.leaving.is_none()
    }
}

/// How long after the fault proxy cut a connection a broken connection may be put down to
/// the cut: a half-open one only fails at the client's ping deadline (45 s by default).
pub const NETWORK_WINDOW: Duration = Duration::from_secs(60);

/// Past a backend's ping deadline, how long its timers may take to drop a silent peer.
pub const DEADLINE_SLACK: Duration = Duration::from_secs(5);

/// How long after a node is killed its sockets' closing is put down to the kill.
pub const FAULT_WINDOW: Duration = Duration::from_secs(10);

/// The sockets of a run.
#[derive(Debug, Default)]
pub struct Registry {
    sockets: Vec<Option<SocketInfo>>,
    /// Cuts of the fault proxy not yet matched with a broken connection, by the bot's end
    /// of the cut TCP connection.
    cuts: HashMap<SocketAddr, Instant>,
    /// How many cuts were left when they were last pruned.
    cuts_pruned_at: usize,
    /// Nodes killed by faults: from when the fault began to when it was done (the node
    /// died somewhere in between; `None` while it is under way).
    kills: Vec<(u32, Instant, Option<Instant>)>,
    by_sid: HashMap<String, SocketKey>,
    operator_keys: Vec<SocketKey>,
    tabs: HashMap<u64, Vec<SocketKey>>,
    connected: u64,
    /// Some socket sits on a node other than the first.
    several_nodes: bool,
}

impl Registry {
    /// Takes the cut of the proxy that explains a connection found broken at `at`: a cut
    /// of one of its own TCP connections (`local`: the bot's ends of them, a polling
    /// socket's two included), within [`NETWORK_WINDOW`] either side, for a cut noted a
    /// little after the bot saw it. Each cut explains its own connection only, once.
    fn cut_explains(&mut self, local: &[SocketAddr], at: Instant) -> bool {
        let near = |c: Instant| c <= at + NETWORK_WINDOW && at <= c + NETWORK_WINDOW;
        let found = local
            .iter()
            .find(|a| self.cuts.get(*a).is_some_and(|c| near(*c)))
            .copied();
        if let Some(a) = found {
            self.cuts.remove(&a);
        }
        found.is_some()
    }

    /// Notes a cut of the bot's connection from `peer`; cuts too old to explain anything
    /// are dropped as more come, each time the notes have doubled.
    fn note_cut(&mut self, peer: SocketAddr, at: Instant) {
        if self.cuts.len() >= self.cuts_pruned_at.max(4096) * 2 {
            self.cuts.retain(|_, c| *c + NETWORK_WINDOW >= at);
            self.cuts_pruned_at = self.cuts.len();
        }
        self.cuts.insert(peer, at);
    }

    /// The latest `node` may have died, if a fault killed it at most [`FAULT_WINDOW`]
    /// before `at`.
    pub fn killed_before(&self, node: u32, at: Instant) -> Option<Instant> {
        self.kills.iter().rev().find_map(|&(n, from, until)| {
            // a kill under way may still be killing: it explains what closes meanwhile
            let until = until.unwrap_or(at);
            (n == node && from <= at && at <= until + FAULT_WINDOW).then_some(until)
        })
    }

    /// The latest the backend may learn that `s` went: when it left; for a connection that
    /// broke silently, its ping deadline after it was last heard from; for one on a killed
    /// node, the protocol's dead-node bound after the kill (survivors reap it by then).
    pub fn departure(&self, s: &SocketInfo) -> Option<Instant> {
        let latest = s.departure()?;
        match s.leaving {
            Some(left) if s.closed_by_server => Some(
                self.killed_before(s.node, left)
                    .map_or(latest, |k| latest.max(k + bounds::DEAD_NODE)),
            ),
            _ => Some(latest),
        }
    }

    /// The earliest the backend may see `s` go: when it left, or, for a link that broke
    /// silently, when it was last heard from.
    pub fn earliest_departure(s: &SocketInfo) -> Option<Instant> {
        s.leaving.map(|l| s.silent_since.map_or(l, |q| q.min(l)))
    }

    /// When the backend must know that `s` went and how long it then has to announce it:
    /// a clean leave at once, a socket of a killed node at the latest its node died (the
    /// protocol's dead-node bound), a connection that broke silently at its ping deadline.
    pub fn departure_deadline(&self, s: &SocketInfo) -> Option<(Instant, Duration)> {
        let left = s.leaving?;
        if s.silent_since.is_some() {
            return Some((s.departure()?, bounds::PRESENCE));
        }
        if s.closed_by_server
            && let Some(k) = self.killed_before(s.node, left)
        {
            return Some((k, bounds::DEAD_NODE));
        }
        Some((left, bounds::PRESENCE))
    }

    /// Takes the socket-related part of a record into account.
    pub fn apply(&mut self, record: &Record, tally: &mut Tally) {
        match record {
            Record::Joining {
                socket,
                role,
                sid,
                operator,
                node,
                ping_deadline,
                at,
            } => {
                let idx = *socket as usize;
                if self.sockets.len() <= idx {
                    self.sockets.resize_with(idx + 1, || None);
                }
                self.by_sid.insert(sid.clone(), *socket);
                self.several_nodes |= *node > 0;
                let operator_index = role.is_operator().then(|| {
                    self.operator_keys.push(*socket);
                    u32::try_from(self.operator_keys.len() - 1).unwrap_or(u32::MAX)
                });
                if let Some((id, _)) = operator {
                    self.tabs.entry(*id).or_default().push(*socket);
                }
                self.sockets[idx] = Some(SocketInfo {
                    role: *role,
                    sid: sid.clone(),
                    operator: operator.clone(),
                    operator_index,
                    node: *node,
                    joining: *at,
                    joined: None,
                    refused: false,
                    leaving: None,
                    closed_by_server: false,
                    silent_since: None,
                    ping_deadline: *ping_deadline,
                    recent: [None; LINK_SAMPLES],
                });
                self.connected += 1;
            }
            Record::Joined { socket, at } => {
                if let Some(s) = self.get_mut(*socket) {
                    s.joined.get_or_insert(*at);
                }
            }
            Record::JoinRefused { socket, .. } => {
                if let Some(s) = self.get_mut(*socket) {
                    s.refused = true;
                }
            }
            Record::Leaving { socket, at } => {
                if let Some(s) = self.get_mut(*socket) {
                    s.leaving.get_or_insert(*at);
                }
            }
            Record::NetworkCut { at, peer } => self.note_cut(*peer, *at),
            Record::Fault {
                killed: Some(node),
                at,
            } => self.kills.push((*node, *at, None)),
            Record::FaultDone { node, at } => {
                if let Some(k) = self.kills.iter_mut().rev().find(|k| k.0 == *node) {
                    k.2 = Some(*at);
                }
            }
            Record::FaultFailed {
                node: Some(node), ..
            } => {
                if let Some(i) = self.kills.iter().rposition(|k| k.0 == *node) {
                    self.kills.remove(i);
                }
            }
            Record::Closed {
                socket,
                at,
                unexpected,
                broken,
                local,
            } => {
                let by_server = self
                    .get(*socket)
                    .is_some_and(|s| *unexpected && s.leaving.is_none());
                let explained = by_server && broken.is_some() && self.cut_explains(local, *at);
                if by_server && broken.is_some() && !explained {
                    tracing::debug!(
                        socket,
                        ?local,
                        "a broken connection no cut of its own explains"
                    );
                }
                if let Some(s) = self.get_mut(*socket) {
                    s.closed_by_server = by_server;
                    if explained {
                        s.silent_since = *broken;
                    }
                    s.leaving.get_or_insert(*at);
                    self.connected = self.connected.saturating_sub(1);
                }
            }
            Record::ConnectFailed { .. } => tally.count(Counter::ConnectFailed, 1),
            Record::ConnectUnfinished { .. } => tally.count(Counter::ConnectUnfinished, 1),
            _ => {}
        }
    }

    /// A delivery reached socket `k` at `at`, `d` after its message left.
    pub fn delivered(&mut self, k: SocketKey, at: Instant, d: Duration) {
        if let Some(s) = self.get_mut(k) {
            s.recent.rotate_left(1);
            s.recent[LINK_SAMPLES - 1] = Some((at, d));
        }
    }

    /// True when the target's sockets sit on more than one node.
    pub fn spans_nodes(&self) -> bool {
        self.several_nodes
    }

    /// A socket by key.
    pub fn get(&self, k: SocketKey) -> Option<&SocketInfo> {
        self.sockets.get(k as usize).and_then(Option::as_ref)
    }

    fn get_mut(&mut self, k: SocketKey) -> Option<&mut SocketInfo> {
        self.sockets.get_mut(k as usize).and_then(Option::as_mut)
    }

    /// A socket's key by its server-assigned id.
    pub fn by_sid(&self, sid: &str) -> Option<SocketKey> {
        self.by_sid.get(sid).copied()
    }

    /// The server-assigned id of socket `k` (empty when unknown).
    pub fn sid(&self, k: SocketKey) -> &str {
        self.get(k).map_or("", |s| s.sid.as_str())
    }

    /// Operator-role sockets, in the order they joined (their dense index order).
    pub fn operators(&self) -> impl Iterator<Item = (SocketKey, &SocketInfo)> {
        self.operator_keys
            .iter()
            .filter_map(|&k| self.get(k).map(|s| (k, s)))
    }

    /// Every socket.
    pub fn all(&self) -> impl Iterator<Item = (SocketKey, &SocketInfo)> {
        self.sockets
            .iter()
            .enumerate()
            .filter_map(|(k, s)| s.as_ref().map(|s| (k as SocketKey, s)))
    }

    /// Operator ids with the keys of their tabs.
    pub fn tabs(&self) -> impl Iterator<Item = (u64, &[SocketKey])> {
        self.tabs.iter().map(|(id, keys)| (*id, keys.as_slice()))
    }

    /// The keys of operator `id`'s tabs.
    pub fn tabs_of(&self, id: u64) -> &[SocketKey] {
        self.tabs.get(&id).map_or(&[], Vec::as_slice)
    }

    /// Sockets connected now.
    pub fn connected(&self) -> u64 {
        self.connected
    }
}
