//! The fault proxy: between bots and target, one listener per target node, every
//! connection passed through the run's toxics (`[network]`, and those `[[faults]]` add),
//! per direction and for the share of connections each toxic's toxicity picks; scheduled
//! outages cut every connection and refuse new ones.
//!
//! Each cut is recorded first, so the ledger can put the connection failures that follow
//! down to the network and not to the target.

mod pump;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use wire::Endpoint;

use crate::record::Record;
use crate::scenario::{Toxic, ToxicKind};

/// How a connection is ended by the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    /// TCP RST on both sides.
    Reset,
    /// An ordinary close on both sides, whatever was in flight.
    Close,
}

/// A toxic in force, since `from`, until `until` if it ends.
#[derive(Debug, Clone, Copy)]
struct Active {
    id: u64,
    toxic: Toxic,
    from: Instant,
    until: Option<Instant>,
}

/// An open connection: how to cut it, and the bot's end of it.
type Open = (watch::Sender<Option<Cut>>, SocketAddr);

/// What every connection of the proxy reads its toxics from, and what faults act on.
pub struct Control {
    toxics: Mutex<Vec<Active>>,
    next_id: AtomicU64,
    outage_until: Mutex<Option<Instant>>,
    /// Open connections: how to cut each, and the bot's end of it.
    conns: Mutex<HashMap<u64, Open>>,
    /// Connections whose cut is already noted: one cut each, however many ways it breaks.
    noted: Mutex<std::collections::HashSet<u64>>,
    /// Where cuts are noted; taken away at the end so the ledger's channel can close.
    records: Mutex<Option<mpsc::UnboundedSender<Record>>>,
    seed: u64,
}

impl Control {
    fn new(toxics: &[Toxic], records: mpsc::UnboundedSender<Record>, seed: u64) -> Self {
        let c = Self {
            toxics: Mutex::default(),
            next_id: AtomicU64::new(0),
            outage_until: Mutex::default(),
            conns: Mutex::default(),
            noted: Mutex::default(),
            records: Mutex::new(Some(records)),
            seed,
        };
        for t in toxics {
            c.add(*t, Duration::ZERO);
        }
        c
    }

    /// Puts `toxic` in force from now, for `lasting` (zero: for good).
    pub fn add(&self, toxic: Toxic, lasting: Duration) {
        let from = Instant::now();
        let active = Active {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            toxic,
            from,
            until: (!lasting.is_zero()).then(|| from + lasting),
        };
        lock(&self.toxics).push(active);
    }

    /// Cuts every connection (RST) and refuses new ones for `lasting`.
    pub fn outage(&self, lasting: Duration) {
        *lock(&self.outage_until) = Some(Instant::now() + lasting);
        let ids: Vec<u64> = lock(&self.conns).keys().copied().collect();
        for id in ids {
            self.cut(id, Cut::Reset);
        }
    }

    fn in_outage(&self) -> bool {
        lock(&self.outage_until).is_some_and(|u| Instant::now() < u)
    }

    /// Notes a cut for the ledger (before it happens), then makes it.
    fn cut(&self, conn: u64, how: Cut) {
        self.note_cut(conn);
        if let Some((tx, _)) = lock(&self.conns).get(&conn) {
            let _ = tx.send(Some(how));
        }
    }

    /// Notes that connection `conn` is cut, once per connection, with the bot's end of it
    /// (the ledger puts a broken bot connection down to the cut of its own TCP connection
    /// only).
    fn note_cut(&self, conn: u64) {
        let Some(peer) = lock(&self.conns).get(&conn).map(|(_, peer)| *peer) else {
            return;
        };
        if !lock(&self.noted).insert(conn) {
            return;
        }
        if let Some(records) = &*lock(&self.records) {
            let _ = records.send(Record::NetworkCut {
                at: std::time::Instant::now(),
                peer,
            });
        }
    }

    /// The toxics in force now on connection `conn` in direction `upstream`, each with the
    /// instant it started to act on it.
    fn on(&self, conn: u64, opened: Instant, upstream: bool) -> Vec<(ToxicKind, Instant)> {
        let now = Instant::now();
        lock(&self.toxics)
            .iter()
            .filter(|a| a.until.is_none_or(|u| now < u) && a.toxic.stream.covers(upstream))
            .filter(|a| draw(self.seed, conn, a.id) < a.toxic.toxicity)
            .map(|a| (a.toxic.kind, a.from.max(opened)))
            .collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A uniform draw in [0, 1) fixed for one connection and one toxic (splitmix64).
fn draw(seed: u64, conn: u64, toxic: u64) -> f64 {
    let mut z =
        seed ^ conn.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ toxic.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The running proxy.
pub struct Proxy {
    /// Where bots connect instead of the target: one endpoint per target node.
    pub endpoints: Vec<Endpoint>,
    /// What faults act on.
    pub control: Arc<Control>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    /// Listens on a free loopback port for each of `targets`, forwarding to it.
    ///
    /// # Errors
    /// When a listener cannot be bound.
    pub async fn start(
        targets: &[Endpoint],
        toxics: &[Toxic],
        records: mpsc::UnboundedSender<Record>,
        seed: u64,
    ) -> std::io::Result<Self> {
        let control = Arc::new(Control::new(toxics, records, seed));
        let next_conn = Arc::new(AtomicU64::new(0));
        let mut endpoints = Vec::new();
        let mut tasks = Vec::new();
        for target in targets {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let mut endpoint = target.clone();
            endpoint.addr = listener.local_addr()?;
            endpoints.push(endpoint);
            let (control, next_conn, to) = (control.clone(), next_conn.clone(), target.addr);
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok((client, peer)) = listener.accept().await else {
                        // out of descriptors, most likely: let some close
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    if control.in_outage() {
                        let _ = client.set_zero_linger();
                        continue;
                    }
                    let id = next_conn.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(connection(client, peer, to, control.clone(), id));
                }
            }));
        }
        Ok(Self {
            endpoints,
            control,
            tasks,
        })
    }

    /// Stops listening and noting cuts (the run's records end); connections still open
    /// end with their peers.
    pub fn stop(self) {
        lock(&self.control.records).take();
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Connects to `to` from the client's own source address, so bots spread over 127.0.0.x
/// stay spread on the target's side too.
async fn upstream(peer: SocketAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = if to.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if peer.ip().is_loopback() && peer.is_ipv4() == to.is_ipv4() {
        socket.bind(SocketAddr::new(peer.ip(), 0))?;
    }
    socket.connect(to).await
}

/// One proxied connection: both directions pumped until they end or a toxic, a fault or an
/// outage cuts it.
async fn connection(
    mut client: TcpStream,
    peer: SocketAddr,
    to: SocketAddr,
    control: Arc<Control>,
    id: u64,
) {
    // registered first, so an outage while it connects upstream cuts it too
    let (cut_tx, mut cut_rx) = watch::channel(None);
    lock(&control.conns).insert(id, (cut_tx, peer));
    let forget = |control: &Control| {
        lock(&control.conns).remove(&id);
        lock(&control.noted).remove(&id);
    };
    let Ok(mut target) = upstream(peer, to).await else {
        let _ = client.set_zero_linger();
        forget(&control);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = target.set_nodelay(true);
    if cut_rx.borrow().is_some() {
        let _ = client.set_zero_linger();
        let _ = target.set_zero_linger();
        forget(&control);
        return;
    }
    let opened = Instant::now();
    let how = {
        let (cr, cw) = client.split();
        let (tr, tw) = target.split();
        let up = pump::run(cr, tw, &control, id, opened, true);
        let down = pump::run(tr, cw, &control, id, opened, false);
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tokio::select! {
                cut = &mut up, if !up_done => {
                    up_done = true;
                    if cut.is_some() || down_done {
                        break cut;
                    }
                }
                cut = &mut down, if !down_done => {
                    down_done = true;
                    if cut.is_some() || up_done {
                        break cut;
                    }
                }
                _ = cut_rx.changed() => break *cut_rx.borrow(),
                _ = tick.tick() => {
                    if let Some(how) = due(&control, id, opened) {
                        control.note_cut(id);
                        break Some(how);
                    }
                }
            }
        }
    };
    forget(&control);
    if how == Some(Cut::Reset) {
        let _ = client.set_zero_linger();
        let _ = target.set_zero_linger();
    }
}

/// A reset or timeout toxic whose time has come for connection `id`.
fn due(control: &Control, id: u64, opened: Instant) -> Option<Cut> {
    let now = Instant::now();
    control
        .on(id, opened, true)
        .into_iter()
        .chain(control.on(id, opened, false))
        .find_map(|(kind, since)| match kind {
            ToxicKind::ResetPeer { timeout } if now >= since + timeout => Some(Cut::Reset),
            ToxicKind::Timeout { timeout } if !timeout.is_zero() && now >= since + timeout => {
                Some(Cut::Close)
            }
            _ => None,
        })
}

#[cfg(test)]
mod tests;
