//! One bot's life, the same for every role: arrive, connect, join, send on schedule and
//! listen until its lifetime ends or the run tells it to leave; then, as its group says,
//! stay away a while and come back as a new connection. A connection the backend (or a
//! fault) breaks is made again as socket.io-client does, on the next node.
//!
//! Leaving is orderly: the bot first reads what already arrived, then records that it
//! stops listening (from then on nothing is owed to it) and hands its goodbye to the
//! pacer, behind every send it scheduled before.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use relay::protocol::event;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};
use wire::{Connection, Incoming, Transport, WireError};

use super::inbound::{parse_ack, parse_event};
use super::{BotSpec, Compose, Phase, Script, Shared, loopback_source, outgoing};
use crate::pacer::{Job, LEAD, Note, Slot, Work};
use crate::record::{AckOutcome, Observed, Record, SocketKey};
use crate::scenario::{BotRole, ThinkTime};

/// Runs one bot until the run closes.
pub async fn run(shared: Arc<Shared>, spec: BotSpec) {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut phase = shared.phase.clone();
    let mut script = super::script(&spec, &shared);
    let mut arrival = spec.arrival;
    let mut lives = if spec.group.lifetime.is_some() {
        spec.group.reconnects + 1
    } else {
        1
    };
    let reconnect = shared.reconnect;
    // after a lost connection: when it was lost, and the attempts made since
    let mut lost: Option<(Instant, u32)> = None;
    // each reconnection tries the next node, as a balancer would route to a survivor
    let mut shift = 0usize;
    // one browser for every connection of this bot: its TLS sessions and cookies persist
    let browser = shared.access.browser();
    while lives > 0 {
        tokio::select! {
            () = sleep_until(arrival) => {}
            _ = phase.wait_for(|p| *p != Phase::Sending) => return,
        }
        let key = shared.next_socket();
        let node = shared.node_for(spec.global, shift);
        let attempt = tokio::select! {
            // boxed: the handshake's state (2,000 bytes) lives only while connecting; inline,
            // it widened every bot's task for the whole run (3,192 bytes, boxed 2,920)
            conn = Box::pin(connect(&shared, (&spec, &browser), key, node, arrival, lost.is_none())) => conn,
            _ = phase.wait_for(|p| *p != Phase::Sending) => {
                shared.record(Record::ConnectUnfinished { socket: key });
                None
            }
        };
        let Some(conn) = attempt else {
            match lost {
                Some((since, tries)) if *phase.borrow() == Phase::Sending => {
                    shift += 1;
                    arrival = Instant::now() + reconnect.delay(tries, rng.random_range(0.0..1.0));
                    lost = Some((since, tries + 1));
                    continue;
                }
                _ => return,
            }
        };
        if let Some((since, _)) = lost.take() {
            let us = crate::metrics::micros(since.elapsed());
            shared.record(Record::Latency {
                path: crate::metrics::Path::Reconnect,
                intended_us: us,
                service_us: us,
            });
        }
        script.reset();
        let visitor = spec.group.role == BotRole::Client;
        let mut life = Life {
            shared: &shared,
            spec: &spec,
            key,
            node: u32::try_from(node).unwrap_or(u32::MAX),
            sender: conn.sender(),
            conn,
            rng: &mut rng,
            script: script.as_mut(),
            slot: Arc::default(),
            joined: false,
            confirming: false,
            final_list: false,
        };
        let end = life.session(&mut phase).await;
        shared.live.connected.fetch_sub(1, Ordering::Relaxed);
        if visitor {
            shared.live.visitors.fetch_sub(1, Ordering::Relaxed);
        }
        match end {
            End::Lifetime => {
                lives -= 1;
                arrival = Instant::now() + spec.group.offline;
            }
            End::Lost if reconnect.enabled => {
                shift += 1;
                lost = Some((Instant::now(), 1));
                arrival = Instant::now() + reconnect.delay(0, rng.random_range(0.0..1.0));
            }
            End::Closed | End::Lost => return,
        }
    }
}

/// Connects to endpoint `node`; a failure is recorded when `counted` (a failed
/// reconnection attempt is retried, not counted).
async fn connect(
    shared: &Shared,
    (spec, browser): (&BotSpec, &crate::access::Browser),
    key: SocketKey,
    node: usize,
    intended: Instant,
    counted: bool,
) -> Option<Connection> {
    let endpoint = &shared.endpoints[node];
    let source =
        (endpoint.addr.ip().is_loopback() && endpoint.addr.is_ipv4()).then(|| loopback_source(key));
    let auth = match &spec.operator {
        Some(who) => match shared.tokens.token(who) {
            Ok(token) => Some(json!({ "token": token }).to_string()),
            Err(error) => {
                if counted {
                    shared.record(Record::ConnectFailed {
                        socket: key,
                        error,
                        at: std::time::Instant::now(),
                    });
                }
                return None;
            }
        },
        None => None,
    };
    let options = browser.options(spec.group.transport, auth, source);
    match Connection::connect(endpoint, options).await {
        Ok(conn) => {
            if let Some(tls) = conn.tls_handshake() {
                let us = crate::metrics::micros(tls.took);
                shared.record(Record::Latency {
                    path: crate::metrics::Path::ConnectTls,
                    intended_us: us,
                    service_us: us,
                });
            }
            let us = crate::metrics::micros(Instant::now().saturating_duration_since(intended));
            shared.record(Record::Latency {
                path: crate::metrics::Path::Connect,
                intended_us: us,
                service_us: us,
            });
            shared.live.connected.fetch_add(1, Ordering::Relaxed);
            if spec.group.role == BotRole::Client {
                shared.live.visitors.fetch_add(1, Ordering::Relaxed);
            }
            Some(conn)
        }
        Err(e) => {
            session_unknown(shared, key, &e);
            if counted {
                shared.record(Record::ConnectFailed {
                    socket: key,
                    error: e.to_string(),
                    at: std::time::Instant::now(),
                });
            }
            None
        }
    }
}

/// Notes that `e` is a node's "Session ID unknown": a load balancer broke the session.
fn session_unknown(shared: &Shared, socket: SocketKey, e: &WireError) {
    if let WireError::Http { status: 400, body } = e
        && body.contains("Session ID unknown")
    {
        shared.record(Record::SessionUnknown {
            socket,
            at: std::time::Instant::now(),
        });
    }
}

enum End {
    /// The lifetime ran out: come back later.
    Lifetime,
    /// The run closed it.
    Closed,
    /// The server closed it.
    Lost,
}

struct Life<'a> {
    shared: &'a Shared,
    spec: &'a BotSpec,
    key: SocketKey,
    node: u32,
    conn: Connection,
    sender: wire::Sender,
    rng: &'a mut StdRng,
    script: &'a mut dyn Script,
    slot: Arc<Slot>,
    joined: bool,
    /// The operators list asked for to confirm the join is awaited (answers come in order).
    confirming: bool,
    /// The operators list asked for at the end is awaited.
    final_list: bool,
}

/// The next sends of a bot: its steady stream and its bursts, whichever comes first.
struct Schedule {
    regular: Option<Instant>,
    burst: Option<Instant>,
}

impl Schedule {
    fn next(&self) -> Option<Instant> {
        match (self.regular, self.burst) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl Life<'_> {
    async fn session(&mut self, phase: &mut watch::Receiver<Phase>) -> End {
        let group = &self.spec.group;
        let join = self.script.join(self.rng);
        self.shared.record(Record::Joining {
            socket: self.key,
            role: group.role,
            sid: self.conn.sid.clone(),
            operator: self
                .spec
                .operator
                .as_ref()
                .map(|o| (o.operator_id, o.name.clone())),
            node: self.node,
            ping_deadline: self.conn.ping_deadline(),
            at: std::time::Instant::now(),
        });
        // ack id 0 is the join's; operators also confirm it with the operators list
        self.confirming = self.script.confirms_with_list();
        if self.sender.emit(event::JOIN, &join, Some(0)).is_err()
            || (self.script.confirms_with_list()
                && self
                    .sender
                    .send(&outgoing::get_connected_operators())
                    .is_err())
        {
            return self.lost(Some(std::time::Instant::now())); // gone under the send
        }
        if group.transport == Transport::Upgrade {
            if let Err(e) = self.conn.upgrade().await {
                session_unknown(self.shared, self.key, &e);
                let since = broken(&e).then(std::time::Instant::now);
                return self.lost(since);
            }
            self.sender = self.conn.sender();
        }
        let now = Instant::now();
        let mut schedule = Schedule {
            regular: (group.messages_per_minute > 0.0).then(|| now + self.think()),
            burst: group
                .burst
                .map(|b| now + b.every.mul_f64(self.rng.random_range(0.0..1.0))),
        };
        let life_end = group
            .lifetime
            .map(|l| now + l.mul_f64(self.rng.random_range(0.8..1.2)));
        // timers live across iterations: re-arming one per received frame would cost more
        // than handling the frame; they come before reading, so a flood of deliveries does
        // not make this bot late with its own sends
        let far = now + Duration::from_secs(365 * 24 * 3600);
        let wake = |at: Option<Instant>| at.map_or(far, |t| t.checked_sub(LEAD).unwrap_or(t));
        let send_timer = sleep_until(wake(schedule.next()));
        let life_timer = sleep_until(life_end.unwrap_or(far));
        tokio::pin!(send_timer, life_timer);
        loop {
            let sending = *phase.borrow() == Phase::Sending;
            tokio::select! {
                biased;
                changed = phase.changed() => {
                    if changed.is_err() {
                        return self.leave().await;
                    }
                    let now = *phase.borrow();
                    let leaves = match group.role {
                        BotRole::Client => now >= Phase::VisitorsLeave,
                        _ => now >= Phase::OperatorsLeave,
                    };
                    if leaves {
                        return self.leave().await;
                    }
                    if now == Phase::Checking && self.spec.checks_list {
                        self.shared.record(Record::ListRequested {
                            socket: self.key,
                            at: std::time::Instant::now(),
                        });
                        self.final_list = true;
                        let _ = self.sender.send(&outgoing::get_connected_operators());
                    }
                }
                () = &mut send_timer, if sending && schedule.next().is_some() => {
                    self.send_next(&mut schedule);
                    send_timer.as_mut().reset(wake(schedule.next()));
                }
                () = &mut life_timer, if life_end.is_some() && sending => {
                    self.leave().await;
                    return End::Lifetime;
                }
                incoming = self.conn.next() => match incoming {
                    Ok(incoming) => {
                        if !self.handle(incoming) {
                            tracing::debug!(socket = self.key, "disconnected by the server");
                            return self.lost(None);
                        }
                    }
                    Err(e) => {
                        session_unknown(self.shared, self.key, &e);
                        tracing::debug!(socket = self.key, sid = %self.conn.sid, error = %e, silent_ms = self.conn.last_heard().elapsed().as_millis() as u64, "connection lost");
                        // a broken transport broke at the latest when it was last heard, or
                        // when it began a send it never saw taken (a long-polling POST)
                        let since = broken(&e).then(|| {
                            let heard = self.conn.last_heard();
                            self.conn
                                .unconfirmed_since()
                                .map_or(heard, |u| u.min(heard))
                                .into_std()
                        });
                        return self.lost(since);
                    }
                },
            }
        }
    }

    /// Hands the earliest scheduled send to the pacer and draws the one after it.
    fn send_next(&mut self, schedule: &mut Schedule) {
        let Some(intended) = schedule.next() else {
            return;
        };
        let group = &self.spec.group;
        let n = if schedule.burst == Some(intended) {
            let b = group.burst.map_or(1, |b| b.size);
            schedule.burst = group.burst.map(|b| intended + b.every);
            b
        } else {
            schedule.regular = Some(intended + self.think());
            1
        };
        let typing = self.rng.random_bool(group.typing_probability);
        let mut compose = Compose {
            group,
            images: &self.spec.images,
            rng: self.rng,
            shared: self.shared,
        };
        let Some((drafts, typing)) = self.script.compose(&mut compose, n, typing) else {
            return;
        };
        let mut packets = Vec::with_capacity(drafts.len() + 1);
        let mut notes = Vec::with_capacity(drafts.len() + 1);
        if let Some(t) = typing {
            packets.push(t.packet);
            notes.push(Note::Typing { to: t.to });
        }
        self.shared
            .live
            .sent
            .fetch_add(drafts.len() as u64, Ordering::Relaxed);
        for d in drafts {
            packets.push(d.packet);
            notes.push(Note::Message {
                msg: d.msg,
                kind: d.kind,
            });
        }
        self.shared.pacer.submit(Job {
            due: intended.into_std(),
            socket: self.key,
            sender: self.sender.clone(),
            slot: self.slot.clone(),
            work: Work::Send { packets, notes },
        });
    }

    fn think(&mut self) -> Duration {
        let group = &self.spec.group;
        let mean = 60.0 / group.messages_per_minute.max(1e-9);
        let secs = match group.think_time {
            ThinkTime::Constant => mean,
            ThinkTime::Uniform => mean * self.rng.random_range(0.5..1.5),
            ThinkTime::Exponential => -mean * (1.0 - self.rng.random_range(0.0..1.0f64)).ln(),
        };
        Duration::from_secs_f64(secs.min(3600.0))
    }

    /// Takes in what the server sent; false when it disconnected this socket.
    fn handle(&mut self, incoming: Incoming) -> bool {
        match incoming {
            Incoming::Event(frame) => self.on_event(frame.as_str()),
            Incoming::Ack(id, frame) => self.on_ack(id, frame.as_str()),
            Incoming::Disconnect => return false,
        }
        true
    }

    fn on_event(&mut self, frame: &str) {
        let at = std::time::Instant::now();
        let Some(observed) = parse_event(frame) else {
            return;
        };
        if let Observed::OperatorsList(ids) = &observed {
            if self.confirming {
                self.confirming = false;
                if !self.joined {
                    self.joined = true;
                    self.shared.record(Record::Joined {
                        socket: self.key,
                        at,
                    });
                }
            } else if self.final_list {
                self.final_list = false;
                self.shared.record(Record::FinalOperatorsList {
                    socket: self.key,
                    at,
                    ids: ids.clone(),
                });
            }
            return;
        }
        self.script.observe(&observed, &self.shared.visitors);
        self.shared.record(Record::Received {
            socket: self.key,
            at,
            what: observed,
        });
    }

    fn on_ack(&mut self, id: u64, frame: &str) {
        let at = std::time::Instant::now();
        let outcome = parse_ack(frame);
        if id == 0 {
            match outcome {
                Some(AckOutcome::Refused(code)) => {
                    self.shared.record(Record::JoinRefused {
                        socket: self.key,
                        at,
                        code,
                    });
                }
                _ if !self.joined => {
                    self.joined = true;
                    self.shared.record(Record::Joined {
                        socket: self.key,
                        at,
                    });
                }
                _ => {}
            }
            return;
        }
        if let Some(outcome) = outcome {
            self.shared.record(Record::Ack {
                socket: self.key,
                msg: id,
                outcome,
                at,
            });
        }
    }

    /// Reads what already arrived, stops listening, and leaves behind its scheduled sends.
    async fn leave(&mut self) -> End {
        // unconstrained: a spent cooperative budget must not make arrived frames look absent
        while let Ok(Ok(incoming)) =
            tokio::task::unconstrained(tokio::time::timeout(Duration::ZERO, self.conn.next())).await
        {
            if !self.handle(incoming) {
                break;
            }
        }
        let at = std::time::Instant::now();
        self.shared.record(Record::Leaving {
            socket: self.key,
            at,
        });
        self.shared.pacer.submit(Job {
            due: at,
            socket: self.key,
            sender: self.sender.clone(),
            slot: self.slot.clone(),
            work: Work::Leave,
        });
        self.shared.record(Record::Closed {
            socket: self.key,
            at,
            unexpected: false,
            broken: None,
            local: Vec::new(),
        });
        End::Closed
    }

    /// The connection is gone; `broken`: its transport failed, nothing arriving after then.
    fn lost(&mut self, broken: Option<std::time::Instant>) -> End {
        // the connection is gone: sends still queued at the pacer must not count as sent
        self.slot.abandon();
        self.shared.record(Record::Closed {
            socket: self.key,
            at: std::time::Instant::now(),
            unexpected: true,
            broken,
            local: self.conn.local_addrs(),
        });
        End::Lost
    }
}

/// True when the transport failed under Socket.IO rather than the server closing it: a
/// reset, an end without a close frame, or silence past the ping deadline. (Frames that
/// break the protocol are the server's doing, not the network's.)
fn broken(e: &WireError) -> bool {
    matches!(e, WireError::Io(_) | WireError::Timeout)
}
