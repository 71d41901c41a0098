//! One socket's session state: what it joined as, its budgets, and its handshake token.

use crate::auth::OperatorIdentity;
use crate::bounds::RATE_WINDOW;
use crate::config::Config;
use crate::ratelimit::SlidingWindow;

/// What a socket has joined as.
#[derive(Debug, Clone)]
pub(crate) enum Role {
    /// Nothing yet: only `join` is allowed.
    Unjoined,
    /// An authenticated operator.
    Operator(OperatorIdentity),
    /// A visitor.
    Client,
}

/// State only the socket's drain task touches.
#[derive(Debug)]
pub(crate) struct SessionState {
    pub role: Role,
    pub messages: SlidingWindow,
    pub typing: SlidingWindow,
    /// Token from the handshake `auth` object, verified at `join`.
    pub handshake_token: Option<String>,
}

impl SessionState {
    pub fn new(config: &Config, handshake_token: Option<String>) -> Self {
        Self {
            role: Role::Unjoined,
            messages: SlidingWindow::new(config.rate_limit_per_minute, RATE_WINDOW),
            typing: SlidingWindow::new(config.typing_rate_limit_per_minute, RATE_WINDOW),
            handshake_token,
        }
    }
}
