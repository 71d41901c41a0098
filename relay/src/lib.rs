//! Reference relay for multi-operator support chat: a Socket.IO v4 server implementing
//! `docs/PROTOCOL.md`, secure by default (JWT operators, scoped fan-out, rate limits,
//! sanitizing, size limits), with per-socket ordering and Prometheus metrics.
//!
//! Embed it with [`serve`]; the `relay` binary wraps it with flags and signals.

pub mod auth;
pub mod bounds;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod embedded;
mod handlers;
mod http;
pub mod images;
mod inbox;
pub mod metrics;
pub mod presence;
pub mod process;
pub mod protocol;
pub mod ratelimit;
pub mod sanitize;
mod server;
mod session;
pub mod state;
pub mod tls;
mod upkeep;

pub use config::{Config, ConfigError};
pub use http::Health;
pub use inbox::MAX_QUEUED_EVENTS;
pub use server::{DRAIN_TIMEOUT, HARD_FRAME_FACTOR, ServeError, serve};
pub use state::Relay;
