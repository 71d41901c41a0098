//! Every socket of the run: who it is, when its join left and was confirmed, when it began
//! to close; and who is owed what at a given instant.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

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
}

impl SocketInfo {
    /// True for operator-role sockets whose join was confirmed before `t` and that stayed
    /// open at least `grace` after it: such a socket is owed what the room got at `t`.
    pub fn owed_at(&self, t: Instant, grace: Duration) -> bool {
        self.role.is_operator()
            && !self.refused
            && self.joined.is_some_and(|j| j < t)
            && self.stays(t, grace)
    }

    /// Still open, and still hearing, `grace` after `t`: a connection whose transport broke
    /// heard nothing after it was last heard from, whenever the bot found out.
    pub fn stays(&self, t: Instant, grace: Duration) -> bool {
        self.silent_since
            .or(self.leaving)
            .is_none_or(|l| l >= t + grace)
    }

    /// When the backend must have seen it go: when it left, or, for a connection whose
    /// transport broke (the backend may hear nothing of it), [`BROKEN_LINGER`] later.
    pub fn departure(&self) -> Option<Instant> {
        let linger = if self.silent_since.is_some() {
            BROKEN_LINGER
        } else {
            Duration::ZERO
        };
        self.leaving.map(|l| l + linger)
    }

    /// Open now: joined, not refused, not leaving.
    pub fn online(&self) -> bool {
        self.joined.is_some() && !self.refused && self.leaving.is_none()
    }
}

/// How long after the fault proxy cut a connection a broken connection may be put down to
/// the cut: a half-open one only fails at the client's ping deadline (45 s by default).
pub const NETWORK_WINDOW: Duration = Duration::from_secs(60);

/// How long a backend may take to notice a connection whose transport broke without a
/// close reaching it (a reset long-polling request, a half-open link): Engine.IO's default
/// ping interval and timeout (25 s + 20 s), and 5 s more.
pub const BROKEN_LINGER: Duration = Duration::from_secs(50);

/// The sockets of a run.
#[derive(Debug, Default)]
pub struct Registry {
    sockets: Vec<Option<SocketInfo>>,
    /// Cuts of the fault proxy not yet matched with a broken connection, oldest first.
    cuts: VecDeque<Instant>,
    by_sid: HashMap<String, SocketKey>,
    operator_keys: Vec<SocketKey>,
    tabs: HashMap<u64, Vec<SocketKey>>,
    connected: u64,
    /// Some socket sits on a node other than the first.
    several_nodes: bool,
}

impl Registry {
    /// Takes the oldest cut of the proxy that can explain a connection found broken at
    /// `at`: each cut explains one broken connection within [`NETWORK_WINDOW`] (either
    /// side, for a cut noted a little after the bot saw it).
    fn cut_explains(&mut self, at: Instant) -> bool {
        while self.cuts.front().is_some_and(|c| *c + NETWORK_WINDOW < at) {
            self.cuts.pop_front();
        }
        match self.cuts.front() {
            Some(c) if at + NETWORK_WINDOW >= *c => {
                self.cuts.pop_front();
                true
            }
            _ => false,
        }
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
            Record::NetworkCut { at } => self.cuts.push_back(*at),
            Record::Closed {
                socket,
                at,
                unexpected,
                broken,
            } => {
                let by_server = self
                    .get(*socket)
                    .is_some_and(|s| *unexpected && s.leaving.is_none());
                let explained = by_server && broken.is_some() && self.cut_explains(*at);
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
