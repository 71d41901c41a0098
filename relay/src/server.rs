//! The relay as a server: one node or a cluster member, Socket.IO namespace wiring, serving
//! and draining.

use std::convert::Infallible;
use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::serve::ListenerExt;
use socketioxide::adapter::{Adapter, Emitter};
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::{SocketIo, SocketIoBuilder};
use socketioxide_core::adapter::DefinedAdapter;
use socketioxide_redis::{CustomRedisAdapter, RedisAdapterConfig, RedisAdapterCtr};
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::cluster::{Bus, ClusterError, Link, redact};
use crate::config::{Config, ConfigError};
use crate::http;
use crate::inbox::{Inbox, SessionHandler};
use crate::metrics::Metrics;
use crate::presence::redis::RedisPresence;
use crate::presence::{LocalPresence, PresenceGauges};
use crate::protocol::HandshakeAuth;
use crate::state::Relay;
use crate::upkeep;

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
    /// `REDIS_URL` is set but the cluster cannot be joined.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// socketioxide-redis could not subscribe the namespace.
    #[error("cannot subscribe to the cluster's channels: {0}")]
    Subscribe(String),
    /// An operator-token key file cannot be used.
    #[error("operator token keys: {0}")]
    Keys(String),
    /// The TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The listener failed.
    #[error("serving HTTP failed: {0}")]
    Io(#[from] std::io::Error),
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
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(crate::tls::acceptor(cert, key)?),
        _ => None,
    };
    let verifier = config
        .verifier()
        .map_err(|e| ServeError::Keys(e.to_string()))?;
    if let Some(v) = &verifier {
        info!(algorithms = %v.algorithms(), "operator tokens verified");
    } else {
        warn!("insecure development mode: operator identities are NOT verified");
    }
    if config.any_origin() {
        warn!("CORS_ORIGIN is not set: browsers from any origin may connect");
    }
    let metrics = Arc::new(Metrics::new());
    let gauges = PresenceGauges {
        operators: metrics.operators.clone(),
        operator_sockets: metrics.operator_sockets.clone(),
        clients: metrics.clients.clone(),
    };
    let Some(url) = config.redis_url.clone() else {
        let presence = Arc::new(LocalPresence::new(gauges));
        let relay = Arc::new(Relay::new(config, verifier, presence, metrics, None));
        let (layer, io) = socket_io(&relay.config).build_layer();
        register_namespace(&io, relay.clone());
        return run((listener, tls), relay, layer, io, shutdown).await;
    };
    let link = Link::connect(&url, &config.redis_prefix, &metrics).await?;
    let presence = Arc::new(RedisPresence::new(gauges, link.clone()));
    presence
        .heartbeat()
        .await
        .map_err(|source| ClusterError::Unreachable {
            url: redact(&url),
            source,
        })?;
    info!(node = %link.node, redis = %redact(&url), "joined the cluster");
    let adapter_config = RedisAdapterConfig::new()
        .with_prefix(format!("{}-sio", link.prefix))
        .with_stream_buffer(config.redis_stream_buffer);
    let ctr = RedisAdapterCtr::new_with_driver(link.bus.clone(), adapter_config);
    let relay = Arc::new(Relay::new(
        config,
        verifier,
        presence.clone(),
        metrics.clone(),
        Some(link.health.clone()),
    ));
    let (layer, io) = socket_io(&relay.config)
        .with_adapter::<CustomRedisAdapter<Emitter, Bus>>(ctr)
        .build_layer();
    register_namespace(&io, relay.clone())
        .await
        .map_err(|e| ServeError::Subscribe(e.to_string()))?;
    let upkeep = tokio::spawn(upkeep::run(io.clone(), presence.clone(), link, metrics));
    let served = run((listener, tls), relay, layer, io, shutdown).await;
    upkeep.abort();
    if let Err(e) = presence.leave().await {
        warn!(error = %e, "could not take this node out of the cluster");
    }
    served
}

/// socketioxide configured from `config`, on the local adapter until told otherwise.
fn socket_io(config: &Config) -> SocketIoBuilder {
    let hard_cap = config.max_payload_bytes.saturating_mul(HARD_FRAME_FACTOR);
    SocketIo::builder()
        .req_path(config.path.clone())
        .max_buffer_size(config.socket_buffer_packets)
        .max_payload(hard_cap as u64)
        .ws_max_message_size(hard_cap)
        .ws_max_frame_size(hard_cap)
        .ws_read_buffer_size(WS_READ_BUFFER_BYTES)
}

/// Serves HTTP and Socket.IO until `shutdown`, then disconnects every socket and drains.
async fn run<A: Adapter>(
    (listener, tls): (TcpListener, Option<tokio_rustls::TlsAcceptor>),
    relay: Arc<Relay>,
    layer: SocketIoLayer<A>,
    io: SocketIo<A>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let app: Router = http::router(relay.clone()).layer(layer);
    let app = http::guard(app, &relay.config);
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    info!(%addr, %scheme, path = %relay.config.path, "relay listening");
    let (fired_tx, fired_rx) = tokio::sync::oneshot::channel::<()>();
    let closing_io = io.clone();
    let closing = async move {
        shutdown.await;
        info!("shutting down: disconnecting sockets");
        let _ = fired_tx.send(());
        closing_io.close().await;
    };
    let server: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> = match tls {
        Some(acceptor) => Box::pin(
            axum::serve(crate::tls::TlsListener::new(listener, acceptor)?, app)
                .with_graceful_shutdown(closing)
                .into_future(),
        ),
        None => {
            let listener = listener.tap_io(|tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    warn!(error = %e, "could not set TCP_NODELAY");
                }
            });
            Box::pin(
                axum::serve(listener, app)
                    .with_graceful_shutdown(closing)
                    .into_future(),
            )
        }
    };
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

/// Wires a socket before its connect answer is sent: its inbox, its ordered handler,
/// its disconnect handler and its own-id room. Registering here, not in the connect
/// handler, means no event sent right after the connect answer can miss a handler.
fn register_namespace<A: DefinedAdapter + Adapter>(
    io: &SocketIo<A>,
    relay: Arc<Relay>,
) -> A::InitRes {
    let wire = move |socket: SocketRef<A>, TryData(auth): TryData<HandshakeAuth>| {
        let relay = relay.clone();
        async move {
            let token = auth.ok().and_then(|a| a.token);
            let inbox = Inbox::new(relay, token);
            socket.on_fallback(SessionHandler(inbox.clone()));
            socket.on_disconnect(SessionHandler(inbox));
            socket.join(socket.id.to_string());
            Ok::<(), Infallible>(())
        }
    };
    io.ns("/", (async || {}).with(wire))
}
