//! The relay as a server: Socket.IO namespace wiring, HTTP routes, serving and draining.

use std::convert::Infallible;
use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::serve::ListenerExt;
use socketioxide::SocketIo;
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::config::{Config, ConfigError};
use crate::http;
use crate::metrics::Metrics;
use crate::presence::{Presence, PresenceGauges};
use crate::protocol::HandshakeAuth;
use crate::session::{Session, SessionHandler};

/// How long connections get to close after shutdown before `serve` returns anyway.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames larger than this many times `MAX_PAYLOAD_BYTES` close the connection outright;
/// smaller oversized events get `relayError{code:"payload_too_large"}`.
pub const HARD_FRAME_FACTOR: usize = 4;

/// Initial capacity of each WebSocket's read buffer. tungstenite reads through a fixed
/// 4 KiB chunk and grows this buffer as a message needs, so a small start costs nothing
/// in throughput and saves memory on every idle socket (engineioxide's default is 4 KiB).
const WS_READ_BUFFER_BYTES: usize = 512;

/// Why the relay could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listener failed.
    #[error("serving HTTP failed: {0}")]
    Io(#[from] std::io::Error),
}

/// State shared by every handler of one relay.
pub struct Relay {
    /// The configuration it was started with.
    pub config: Config,
    /// JWT secret bytes; `None` only in insecure development mode.
    pub secret: Option<Vec<u8>>,
    /// Who is online.
    pub presence: Presence,
    /// Exported counters and gauges.
    pub metrics: Arc<Metrics>,
    /// Socket.IO handle for broadcasts.
    pub io: SocketIo,
    id_prefix: String,
    next_id: AtomicU64,
    started: std::time::Instant,
}

impl Relay {
    /// A new unique message id: a random per-process prefix and a counter.
    pub fn message_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.id_prefix)
    }

    /// The relay clock as ISO-8601 with milliseconds.
    pub fn timestamp(&self) -> String {
        humantime::format_rfc3339_millis(SystemTime::now()).to_string()
    }

    /// Time since start.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Serves the relay on `listener` until `shutdown` resolves, then disconnects every socket
/// and returns once connections have closed (or after [`DRAIN_TIMEOUT`]).
///
/// # Errors
/// An invalid `config`, or an I/O error from the listener.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    config.validate()?;
    if config.jwt_secret.is_none() {
        warn!("insecure development mode: operator identities are NOT verified");
    }
    if config.any_origin() {
        warn!("CORS_ORIGIN is not set: browsers from any origin may connect");
    }
    let hard_cap = config.max_payload_bytes.saturating_mul(HARD_FRAME_FACTOR);
    let (layer, io) = SocketIo::builder()
        .req_path(config.path.clone())
        .max_buffer_size(config.socket_buffer_packets)
        .max_payload(hard_cap as u64)
        .ws_max_message_size(hard_cap)
        .ws_max_frame_size(hard_cap)
        .ws_read_buffer_size(WS_READ_BUFFER_BYTES)
        .build_layer();

    let metrics = Arc::new(Metrics::new());
    let gauges = PresenceGauges {
        operators: metrics.operators.clone(),
        operator_sockets: metrics.operator_sockets.clone(),
        clients: metrics.clients.clone(),
    };
    let relay = Arc::new(Relay {
        secret: config.jwt_secret.as_ref().map(|s| s.as_bytes().to_vec()),
        presence: Presence::new(gauges),
        metrics,
        io: io.clone(),
        id_prefix: format!("{:08x}", rand::random::<u32>()),
        next_id: AtomicU64::new(1),
        started: std::time::Instant::now(),
        config,
    });
    register_namespace(&io, relay.clone());

    let app: Router = http::router(relay.clone()).layer(layer);
    let app = http::guard(app, &relay.config);
    let addr = listener.local_addr()?;
    info!(%addr, path = %relay.config.path, "relay listening");

    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            warn!(error = %e, "could not set TCP_NODELAY");
        }
    });
    let (fired_tx, fired_rx) = tokio::sync::oneshot::channel::<()>();
    let closing_io = io.clone();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            info!("shutting down: disconnecting sockets");
            let _ = fired_tx.send(());
            closing_io.close().await;
        })
        .into_future();
    tokio::select! {
        result = server => result?,
        () = async {
            if fired_rx.await.is_ok() {
                tokio::time::sleep(DRAIN_TIMEOUT).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => warn!("connections still open after the drain timeout"),
    }
    info!("relay stopped");
    Ok(())
}

/// Wires a socket before its connect answer is sent: its session, its ordered handler,
/// its disconnect handler and its own-id room. Registering here, not in the connect
/// handler, means no event sent right after the connect answer can miss a handler.
fn register_namespace(io: &SocketIo, relay: Arc<Relay>) {
    let wire = move |socket: SocketRef, TryData(auth): TryData<HandshakeAuth>| {
        let relay = relay.clone();
        async move {
            let token = auth.ok().and_then(|a| a.token);
            let session = Session::new(relay, token);
            socket.on_fallback(SessionHandler(session.clone()));
            socket.on_disconnect(SessionHandler(session));
            socket.join(socket.id.to_string());
            Ok::<(), Infallible>(())
        }
    };
    io.ns("/", (async || {}).with(wire));
}
