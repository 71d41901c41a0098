//! Bots: one task per connection, scripted by its group, reporting every observation.
//!
//! Each bot schedules its sends ahead (open model): the next send's intended instant is
//! drawn from the think-time distribution, independent of how fast the backend answers, and
//! latency is measured from that instant. A bot that falls behind still sends, and the lag
//! shows as `generator.late`.

pub mod content;
mod inbound;
mod rate;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use relay::auth::{Claims, OperatorIdentity, sign_hs256};
use relay::protocol::{
    ClientTypingRequest, JoinRequest, MessageKind, OperatorTypingRequest, event,
};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};

use crate::record::{MsgId, RatePrediction, Record, SentKind, SocketKey};
use crate::scenario::{Group, Limits, ThinkTime};
use content::ImageCache;
use inbound::parse_event;
use rate::RatePredictor;
use wire::{Connection, Endpoint, Incoming, Options};

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Bots connect and send.
    Sending,
    /// No new sends; deliveries still arrive.
    Draining,
    /// One bot asks for the operators list; the others wait.
    Checking,
    /// Everyone closes.
    Closing,
}

/// What all bots of a run share.
pub struct Shared {
    /// Where records go.
    pub records: mpsc::UnboundedSender<Record>,
    /// Socket.IO endpoints; bots use them in turn.
    pub endpoints: Vec<Endpoint>,
    /// JWT secret for operator tokens.
    pub jwt_secret: String,
    /// The backend's expected limits.
    pub limits: Limits,
    /// Run phase.
    pub phase: watch::Receiver<Phase>,
    /// Live counters for the progress display.
    pub live: Arc<Live>,
    next_socket: AtomicU32,
    next_msg: AtomicU64,
    /// In a sharded run, the tag this shard's visitors carry in their names: operators only
    /// address visitors of their own shard, so every message is checked by the shard that sent it.
    shard_tag: Option<String>,
}

/// Counters the progress display reads.
#[derive(Debug, Default)]
pub struct Live {
    /// Sockets connected now.
    pub connected: AtomicU64,
    /// Messages sent.
    pub sent: AtomicU64,
}

impl Shared {
    /// State for a run's bots.
    pub fn new(
        records: mpsc::UnboundedSender<Record>,
        endpoints: Vec<Endpoint>,
        jwt_secret: String,
        limits: Limits,
        phase: watch::Receiver<Phase>,
        first_msg_id: MsgId,
    ) -> Self {
        Self {
            records,
            endpoints,
            jwt_secret,
            limits,
            phase,
            live: Arc::default(),
            next_socket: AtomicU32::new(0),
            next_msg: AtomicU64::new(first_msg_id),
            shard_tag: None,
        }
    }

    /// Marks the bots as shard `index` (0-based) of `count`.
    pub fn set_shard(&mut self, index: u32, count: u32) {
        self.shard_tag = (count > 1).then(|| format!("#shard{}of{count}", index + 1));
    }

    fn record(&self, r: Record) {
        let _ = self.records.send(r);
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

/// Runs one bot (one socket, reconnecting as its lifetime says) until the run closes.
pub async fn run(shared: Arc<Shared>, spec: BotSpec) {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut phase = shared.phase.clone();
    let mut arrival = spec.arrival;
    let lives = if spec.group.lifetime.is_some() {
        spec.group.reconnects + 1
    } else {
        1
    };
    for _ in 0..lives {
        tokio::select! {
            () = sleep_until(arrival) => {}
            _ = phase.wait_for(|p| *p != Phase::Sending) => return,
        }
        if *phase.borrow() != Phase::Sending {
            return;
        }
        let key = shared.next_socket.fetch_add(1, Ordering::Relaxed);
        let attempt = tokio::select! {
            conn = connect(&shared, &spec, key, arrival) => conn,
            _ = phase.wait_for(|p| *p != Phase::Sending) => {
                shared.record(Record::ConnectUnfinished { socket: key });
                None
            }
        };
        let Some(conn) = attempt else {
            return;
        };
        let mut bot = Bot {
            shared: &shared,
            spec: &spec,
            key,
            conn,
            rng: &mut rng,
            known_clients: Vec::new(),
            predictor: RatePredictor::new(shared.limits.rate_limit_per_minute),
            joined: false,
        };
        let outcome = bot.session(&mut phase).await;
        shared.live.connected.fetch_sub(1, Ordering::Relaxed);
        match outcome {
            SessionEnd::Lifetime => arrival = Instant::now(),
            SessionEnd::Closed | SessionEnd::Lost => return,
        }
    }
}

async fn connect(
    shared: &Shared,
    spec: &BotSpec,
    key: SocketKey,
    intended: Instant,
) -> Option<Connection> {
    let endpoint = &shared.endpoints[spec.global as usize % shared.endpoints.len()];
    let source = endpoint
        .addr
        .ip()
        .is_loopback()
        .then_some(endpoint.addr.is_ipv4())
        .filter(|v4| *v4)
        .map(|_| loopback_source(key));
    let auth = spec.operator.as_ref().map(|who| {
        let token = sign_hs256(shared.jwt_secret.as_bytes(), &Claims::new(who, 24 * 3600));
        json!({ "token": token }).to_string()
    });
    let options = Options {
        auth,
        source,
        ..Options::default()
    };
    match Connection::connect(endpoint, options).await {
        Ok(conn) => {
            let now = Instant::now();
            shared.live.connected.fetch_add(1, Ordering::Relaxed);
            shared.record(Record::Joining {
                socket: key,
                role: spec.group.role,
                sid: conn.sid.clone(),
                operator: spec
                    .operator
                    .as_ref()
                    .map(|o| (o.operator_id, o.name.clone())),
                at: now.into_std(),
            });
            let us = now.saturating_duration_since(intended).as_micros() as u64;
            shared.record(Record::Latency {
                path: crate::metrics::Path::Connect,
                intended_us: us,
                service_us: us,
            });
            Some(conn)
        }
        Err(e) => {
            shared.record(Record::ConnectFailed {
                socket: key,
                error: e.to_string(),
                at: std::time::Instant::now(),
            });
            None
        }
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

enum SessionEnd {
    /// The lifetime ran out: reconnect.
    Lifetime,
    /// The run closed it.
    Closed,
    /// The server closed it.
    Lost,
}

struct Bot<'a> {
    shared: &'a Shared,
    spec: &'a BotSpec,
    key: SocketKey,
    conn: Connection,
    rng: &'a mut StdRng,
    known_clients: Vec<String>,
    predictor: RatePredictor,
    joined: bool,
}

impl Bot<'_> {
    async fn session(&mut self, phase: &mut watch::Receiver<Phase>) -> SessionEnd {
        let role = self.spec.group.role;
        let join = match &self.spec.operator {
            // identity as the guide's frontend claims it; a JWT-checking backend takes the
            // handshake token's instead
            Some(who) => JoinRequest {
                role: "operator".into(),
                operator_id: Some(who.operator_id),
                name: Some(who.name.clone()),
                ..JoinRequest::default()
            },
            None => JoinRequest {
                role: "client".into(),
                username: Some(match &self.shared.shard_tag {
                    Some(tag) => format!("{} {tag}", content::person(self.rng)),
                    None => content::person(self.rng),
                }),
                ..JoinRequest::default()
            },
        };
        // ack id 0 is the join's; operators confirm with the operators list
        if self.conn.emit(event::JOIN, &join, Some(0)).is_err() {
            return self.lost();
        }
        if role.is_operator()
            && self
                .conn
                .sender()
                .send(&wire::packet::bare_event(
                    event::GET_CONNECTED_OPERATORS,
                    None,
                ))
                .is_err()
        {
            return self.lost();
        }
        let life_end = self.spec.group.lifetime.map(|l| Instant::now() + l);
        // timers live across iterations: re-arming one per received frame would cost more
        // than handling the frame
        let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        let send_timer = sleep_until(Instant::now() + self.think());
        let life_timer = sleep_until(life_end.unwrap_or(far));
        tokio::pin!(send_timer, life_timer);
        loop {
            let sending =
                *phase.borrow() == Phase::Sending && self.spec.group.messages_per_minute > 0.0;
            tokio::select! {
                biased;
                changed = phase.changed() => {
                    if changed.is_err() { return self.close().await; }
                    let now = *phase.borrow();
                    match now {
                        Phase::Checking if self.spec.checks_list => {
                            self.shared.record(Record::ListRequested { socket: self.key });
                            let _ = self.conn.sender().send(&wire::packet::bare_event(event::GET_CONNECTED_OPERATORS, None));
                        }
                        Phase::Closing => return self.close().await,
                        _ => {}
                    }
                }
                incoming = self.conn.next() => match incoming {
                    Ok(Incoming::Event(frame)) => self.on_event(frame.as_str(), phase),
                    Ok(Incoming::Ack(id, frame)) => self.on_ack(id, frame.as_str()),
                    Ok(Incoming::Disconnect) | Err(_) => return self.lost(),
                },
                () = &mut send_timer, if sending => {
                    let intended = send_timer.deadline();
                    self.send(intended).await;
                    let next = intended + self.think();
                    send_timer.as_mut().reset(next);
                }
                () = &mut life_timer, if life_end.is_some() && *phase.borrow() == Phase::Sending => {
                    self.leave().await;
                    return SessionEnd::Lifetime;
                }
            }
        }
    }

    fn think(&mut self) -> Duration {
        let mean = 60.0 / self.spec.group.messages_per_minute.max(1e-9);
        let secs = match self.spec.group.think_time {
            ThinkTime::Constant => mean,
            ThinkTime::Uniform => mean * self.rng.random_range(0.5..1.5),
            ThinkTime::Exponential => -mean * (1.0 - self.rng.random_range(0.0..1.0f64)).ln(),
        };
        Duration::from_secs_f64(secs.min(3600.0))
    }

    async fn send(&mut self, intended: Instant) {
        let to = if self.spec.group.role.is_operator() {
            if self.known_clients.is_empty() {
                return;
            }
            Some(self.known_clients[self.rng.random_range(0..self.known_clients.len())].clone())
        } else {
            None
        };
        let group = &self.spec.group;
        if self.rng.random_bool(group.typing_probability) {
            // recorded before it leaves, so no receipt can reach the ledger first
            self.shared.record(Record::TypingSent {
                socket: self.key,
                at: std::time::Instant::now(),
            });
            let _ = match &to {
                Some(to) => {
                    let t = OperatorTypingRequest {
                        to: to.clone(),
                        is_typing: true,
                    };
                    self.conn.emit(event::OPERATOR_TYPING, &t, None)
                }
                None => {
                    let t = ClientTypingRequest { is_typing: true };
                    self.conn.emit(event::CLIENT_TYPING, &t, None)
                }
            };
        }
        let id: MsgId = self.shared.next_msg.fetch_add(1, Ordering::Relaxed);
        let mut body = if self.rng.random_bool(group.image_fraction) {
            let (mime, url, size) = self.spec.images.pick(self.rng);
            json!({"type": MessageKind::Image, "image": url, "name": content::image_name(id, mime),
                   "mimeType": mime, "size": size})
        } else {
            json!({"type": MessageKind::Text, "message": content::text(id, group, self.rng)})
        };
        let now = Instant::now();
        let predicted: RatePrediction = self.predictor.predict(now.into_std());
        let (event_name, kind) = match to {
            Some(to) => {
                body["to"] = json!(to);
                (event::OPERATOR_MESSAGE, SentKind::OperatorToClient { to })
            }
            None => (event::CLIENT_MESSAGE, SentKind::ClientToOperators),
        };
        // recorded before it leaves, so no delivery can reach the ledger first
        self.shared.record(Record::Sent {
            socket: self.key,
            msg: id,
            kind,
            intended: intended.into_std(),
            at: now.into_std(),
            predicted,
        });
        self.shared.live.sent.fetch_add(1, Ordering::Relaxed);
        let _ = self.conn.emit(event_name, &body, Some(id));
    }

    fn on_event(&mut self, frame: &str, phase: &watch::Receiver<Phase>) {
        let at = std::time::Instant::now();
        let Some(observed) = parse_event(frame) else {
            return;
        };
        use crate::record::Observed;
        match &observed {
            Observed::NewChat { client } => {
                let mine = self
                    .shared
                    .shard_tag
                    .as_ref()
                    .is_none_or(|tag| frame.contains(tag.as_str()));
                if mine {
                    self.known_clients.push(client.clone());
                }
            }
            Observed::ChatEnded { client } => self.known_clients.retain(|c| c != client),
            Observed::OperatorsList(ids) => {
                if !self.joined {
                    self.joined = true;
                    self.shared.record(Record::Joined {
                        socket: self.key,
                        at,
                    });
                } else if *phase.borrow() == Phase::Checking && self.spec.checks_list {
                    self.shared.record(Record::FinalOperatorsList {
                        socket: self.key,
                        at,
                        ids: ids.clone(),
                    });
                }
                return;
            }
            _ => {}
        }
        self.shared.record(Record::Received {
            socket: self.key,
            at,
            what: observed,
        });
    }

    fn on_ack(&mut self, id: u64, frame: &str) {
        let at = std::time::Instant::now();
        if id == 0 {
            if !self.joined && !self.spec.group.role.is_operator() {
                self.joined = true;
                self.shared.record(Record::Joined {
                    socket: self.key,
                    at,
                });
            }
            return;
        }
        if let Some(outcome) = inbound::parse_ack(frame) {
            self.shared.record(Record::Ack {
                socket: self.key,
                msg: id,
                outcome,
            });
        }
    }

    async fn leave(&mut self) {
        self.shared.record(Record::Leaving {
            socket: self.key,
            at: std::time::Instant::now(),
        });
        let _ = self.conn.sender().send("41");
        self.conn.sender().close();
        self.closed(false);
    }

    async fn close(&mut self) -> SessionEnd {
        self.leave().await;
        SessionEnd::Closed
    }

    fn lost(&mut self) -> SessionEnd {
        self.closed(true);
        SessionEnd::Lost
    }

    fn closed(&self, unexpected: bool) {
        self.shared.record(Record::Closed {
            socket: self.key,
            at: std::time::Instant::now(),
            unexpected,
        });
    }
}

/// Operator identities for every operator-role bot, numbered from 1 across groups.
pub fn identity(index: u32, rng: &mut StdRng) -> OperatorIdentity {
    OperatorIdentity {
        operator_id: u64::from(index) + 1,
        name: content::person(rng),
    }
}
