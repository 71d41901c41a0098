//! Where attacks happen and are judged: two witnesses of the adversary's own (an operator
//! with a valid token and a visitor) log everything the target sends them; attackers
//! connect beside them; every attack payload carries a marker the witnesses look for.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use relay::auth::{OperatorIdentity, Signer};
use serde_json::{Value, json};
use tokio::time::Instant;
use wire::packet::split_event;
use wire::{Connection, Endpoint, Incoming, Options, Sender, Transport, WireError};

use crate::access::Access;
use crate::scenario::Limits;
use crate::tokens::Tokens;

/// Marks adversary visitors' names: the chat's operators leave them alone.
pub const ADVERSARY_TAG: &str = "#adversary#";

/// Message ids of attack payloads start here, far from every shard's own, so the chat's
/// checks count a delivered attack as foreign instead of accusing the target twice.
const MARKER_BASE: u64 = 1 << 62;

/// Operator ids of the adversary's identities start here.
pub const OPERATOR_BASE: u64 = 4_000_000_000;

/// How long a delivery gets to reach the witnesses after an attempt.
pub const SETTLE: Duration = Duration::from_millis(600);

/// Which witness saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The witness operator.
    Operator,
    /// The witness visitor.
    Visitor,
}

/// One event a witness got.
#[derive(Debug, Clone)]
pub struct Seen {
    /// When.
    pub at: Instant,
    /// Who got it.
    pub who: Who,
    /// Event name.
    pub event: String,
    /// Its data, as sent.
    pub data: String,
}

impl Seen {
    /// The data as JSON; `None` when it does not parse.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.data).ok()
    }

    /// Short description for an example.
    pub fn describe(&self) -> String {
        let who = match self.who {
            Who::Operator => "the witness operator",
            Who::Visitor => "the witness visitor",
        };
        let data: String = self.data.chars().take(160).collect();
        format!("{who} got {} {data}", self.event)
    }
}

/// The target as the adversary sees it.
pub struct Arena {
    /// Where attackers and witnesses connect.
    pub endpoint: Endpoint,
    /// The target's nodes, for `/health` and `/metrics`.
    pub nodes: Vec<SocketAddr>,
    /// The limits the target is expected to enforce.
    pub limits: Limits,
    tokens: Arc<Tokens>,
    /// A tokens file's identities left for the adversary (witness first); `None`: any.
    issued: Option<Vec<OperatorIdentity>>,
    /// TLS trust and headers of the run.
    access: Access,
    /// The witness operator's identity and socket id.
    pub operator: (OperatorIdentity, String),
    /// The witness visitor's socket id.
    pub visitor: String,
    log: Arc<Mutex<Vec<Seen>>>,
    witnesses: Mutex<Vec<(Sender, tokio::task::JoinHandle<()>)>>,
    next: AtomicU64,
}

impl Arena {
    /// Connects the witnesses: the operator first, then the visitor, and waits until the
    /// operator heard of the visitor (so every later attempt is seen by both).
    ///
    /// # Errors
    /// Why the witnesses could not be set up: nothing can be judged then.
    pub async fn open(
        endpoint: Endpoint,
        nodes: Vec<SocketAddr>,
        limits: Limits,
        tokens: Arc<Tokens>,
        issued: Option<Vec<OperatorIdentity>>,
        access: Access,
    ) -> Result<Self, String> {
        let log: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let who = issued
            .as_ref()
            .and_then(|w| w.first().cloned())
            .unwrap_or_else(|| OperatorIdentity {
                operator_id: OPERATOR_BASE,
                name: "Adversary Witness".into(),
            });
        let mut arena = Self {
            endpoint,
            nodes,
            limits,
            tokens,
            issued,
            access,
            operator: (who.clone(), String::new()),
            visitor: String::new(),
            log: log.clone(),
            witnesses: Mutex::default(),
            next: AtomicU64::new(0),
        };
        let op = arena
            .operator_socket(&who, Transport::Websocket)
            .await
            .map_err(|e| format!("the witness operator could not connect: {e}"))?;
        arena.operator.1 = op.sid.clone();
        arena.watch(op, Who::Operator);
        let started = Instant::now();
        let v = arena
            .visitor_socket("witness")
            .await
            .map_err(|e| format!("the witness visitor could not connect: {e}"))?;
        arena.visitor = v.sid.clone();
        arena.watch(v, Who::Visitor);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if !arena
                .events_since(started, Who::Operator, "newChat")
                .is_empty()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(arena)
    }

    fn watch(&mut self, mut conn: Connection, who: Who) {
        let log = self.log.clone();
        let sender = conn.sender();
        let task = tokio::spawn(async move {
            while let Ok(incoming) = conn.next().await {
                let Incoming::Event(frame) = incoming else {
                    continue;
                };
                let Some((event, data)) = split_event(frame.as_str()) else {
                    continue;
                };
                log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Seen {
                        at: Instant::now(),
                        who,
                        event: event.to_owned(),
                        data: data.to_owned(),
                    });
            }
        });
        self.witnesses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((sender, task));
    }

    /// Closes the witnesses (once; later calls do nothing).
    pub async fn close(&self) {
        let witnesses = std::mem::take(
            &mut *self
                .witnesses
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for (sender, task) in witnesses {
            let _ = sender.send("41");
            sender.close();
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        }
    }

    /// A fresh marker: `#sim<id>#` with an id no chat bot uses.
    pub fn marker(&self) -> String {
        format!(
            "#sim{}#",
            MARKER_BASE + self.next.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// A fresh operator identity of the adversary's own (with a tokens file, the next of
    /// its spare identities in turn).
    pub fn identity(&self) -> OperatorIdentity {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        match self.issued.as_deref() {
            Some([_witness, insiders @ ..]) if !insiders.is_empty() => {
                insiders[(n as usize) % insiders.len()].clone()
            }
            _ => OperatorIdentity {
                operator_id: OPERATOR_BASE + 1 + n,
                name: format!("Adversary {n}"),
            },
        }
    }

    /// A valid token for `who`.
    ///
    /// # Errors
    /// None could be had (a tokens file without it, a failing command): `Io` with why.
    pub fn token(&self, who: &OperatorIdentity) -> Result<String, WireError> {
        self.tokens.token(who).map_err(WireError::Io)
    }

    /// What signs valid tokens here, if the simulator signs them itself.
    pub fn signer(&self) -> Option<&Signer> {
        self.tokens.signer()
    }

    /// A connection with `options`, through the run's TLS trust and headers, with a
    /// browser's own cookie jar unless `options` bring theirs.
    ///
    /// # Errors
    /// What the wire says.
    pub async fn connect(&self, mut options: Options) -> Result<Connection, WireError> {
        let browser = self.access.browser().options(options.transport, None, None);
        options.tls = options.tls.or(browser.tls);
        options.cookies = options.cookies.or(browser.cookies);
        if options.headers.is_empty() {
            options.headers = browser.headers;
        }
        Connection::connect(&self.endpoint, options).await
    }

    /// A visitor of the adversary's, joined as `name` (tagged so chat bots ignore it).
    ///
    /// # Errors
    /// What the wire says.
    pub async fn visitor_socket(&self, name: &str) -> Result<Connection, WireError> {
        let conn = self.connect(Options::default()).await?;
        let name = format!("{ADVERSARY_TAG} {name}");
        conn.emit(
            "join",
            &json!({"role": "client", "name": name, "username": name}),
            None,
        )?;
        Ok(conn)
    }

    /// An operator of the adversary's with a valid token in the handshake.
    ///
    /// # Errors
    /// What the wire says.
    pub async fn operator_socket(
        &self,
        who: &OperatorIdentity,
        transport: Transport,
    ) -> Result<Connection, WireError> {
        let token = self.token(who)?;
        self.operator_with_token(who, &token, transport).await
    }

    /// A fresh operator of the adversary's own, joined with a valid token: an insider.
    ///
    /// # Errors
    /// What the wire says, as text.
    pub async fn insider(&self) -> Result<(OperatorIdentity, Connection), String> {
        let who = self.identity();
        let conn = self
            .operator_socket(&who, Transport::Websocket)
            .await
            .map_err(|e| e.to_string())?;
        Ok((who, conn))
    }

    /// An operator joining as `who` with `token` (in the handshake and the join).
    ///
    /// # Errors
    /// What the wire says; a refusal of the token at the handshake is `Refused`.
    pub async fn operator_with_token(
        &self,
        who: &OperatorIdentity,
        token: &str,
        transport: Transport,
    ) -> Result<Connection, WireError> {
        let conn = self
            .connect(Options {
                transport,
                auth: Some(json!({ "token": token }).to_string()),
                ..Options::default()
            })
            .await?;
        conn.emit(
            "join",
            &json!({"role": "operator", "name": who.name, "operatorId": who.operator_id,
                    "token": token}),
            None,
        )?;
        Ok(conn)
    }

    /// Waits for deliveries to land.
    pub async fn settle(&self) {
        tokio::time::sleep(SETTLE).await;
    }

    /// Every event the witnesses got whose data contains `marker`.
    pub fn with_marker(&self, marker: &str) -> Vec<Seen> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|s| s.data.contains(marker))
            .cloned()
            .collect()
    }

    /// The first event carrying `marker`, described: the evidence of a success.
    pub fn delivered(&self, marker: &str) -> Option<String> {
        self.with_marker(marker).first().map(Seen::describe)
    }

    /// Events named `event` that `who` got at or after `since`.
    pub fn events_since(&self, since: Instant, who: Who, event: &str) -> Vec<Seen> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|s| s.at >= since && s.who == who && s.event == event)
            .cloned()
            .collect()
    }

    /// True when the target still takes a new connection: three tries of 3 s each, so
    /// one slow handshake on a busy machine is not taken for a downed target.
    pub async fn alive(&self) -> bool {
        for _ in 0..3 {
            let options = Options::default();
            if let Ok(Ok(conn)) =
                tokio::time::timeout(Duration::from_secs(3), self.connect(options)).await
            {
                conn.close().await;
                return true;
            }
        }
        false
    }

    /// True while both witnesses are still connected (what they do not hear cannot be
    /// judged).
    pub fn witnesses_listening(&self) -> bool {
        let w = self
            .witnesses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        w.len() == 2 && w.iter().all(|(_, task)| !task.is_finished())
    }
}

/// What `data` (a JSON object) holds at `field` as a string.
pub fn field<'a>(data: &'a Value, field: &str) -> Option<&'a str> {
    data.get(field).and_then(Value::as_str)
}
