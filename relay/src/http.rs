//! HTTP beside Socket.IO: `/health` (this node's and the cluster's counts), `/metrics`,
//! CORS, and the `Origin` check on upgrades.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::Config;
use crate::presence::Counts;
use crate::state::Relay;

/// `/health` body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `"ok"`, or `"degraded"` while a cluster node cannot reach Redis (it still serves its
    /// own sockets).
    pub status: &'static str,
    /// Why the node is degraded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Relay version.
    pub version: &'static str,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Sockets connected.
    pub sockets: i64,
    /// Distinct operators online.
    pub operators: usize,
    /// Operator sockets online.
    pub operator_sockets: usize,
    /// Visitors online.
    pub clients: usize,
    /// The whole cluster's counts (a cluster node that reaches Redis only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Counts>,
}

/// Routes served beside the Socket.IO endpoint.
pub(crate) fn router(relay: Arc<Relay>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(relay)
}

/// Wraps the app in CORS and, when origins are configured, refuses requests (WebSocket
/// upgrades included, which CORS does not cover) whose `Origin` is not one of them.
pub(crate) fn guard(app: Router, config: &Config) -> Router {
    let methods = [Method::GET, Method::POST, Method::OPTIONS];
    if config.any_origin() {
        return app.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::mirror_request())
                .allow_methods(methods)
                .allow_credentials(true),
        );
    }
    let origins: Vec<HeaderValue> = config
        .cors_origin
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let allowed = Arc::new(origins.clone());
    app.layer(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods(methods)
            .allow_credentials(true),
    )
    .layer(middleware::from_fn_with_state(allowed, check_origin))
}

async fn check_origin(
    State(allowed): State<Arc<Vec<HeaderValue>>>,
    req: Request,
    next: Next,
) -> Response {
    match req.headers().get(header::ORIGIN) {
        Some(origin) if !allowed.contains(origin) => {
            (StatusCode::FORBIDDEN, "origin not allowed").into_response()
        }
        _ => next.run(req).await,
    }
}

async fn health(State(relay): State<Arc<Relay>>) -> Response {
    let here = relay.presence.local().counts();
    let reason = relay.cluster.as_ref().and_then(|h| h.reason());
    let body = Health {
        status: if reason.is_some() { "degraded" } else { "ok" },
        reason,
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: relay.uptime().as_secs(),
        sockets: relay.metrics.sockets.get(),
        operators: here.operators,
        operator_sockets: here.operator_sockets,
        clients: here.clients,
        cluster: relay.presence.cluster_counts().await,
    };
    let json = serde_json::to_string(&body).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], json).into_response()
}

async fn metrics(State(relay): State<Arc<Relay>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        relay.metrics.render(),
    )
        .into_response()
}
