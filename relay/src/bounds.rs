//! The protocol's time bounds (`docs/PROTOCOL.md`, "Timing bounds"): how long a backend may
//! take before being slow is itself a fault. The simulator's windows of "either answer is
//! right" never exceed them, and an event later than its bound is a violation of its own.

use std::time::Duration;

/// Every owed delivery of a message arrives within this of its send.
pub const DELIVERY: Duration = Duration::from_secs(10);

/// `newChat`, `chatEnded`, `operatorConnected` and `operatorDisconnected` arrive within
/// this of the join or the clean leave (a close the backend saw) that caused them.
pub const PRESENCE: Duration = Duration::from_secs(10);

/// A node that dies has its operators' and visitors' departures announced by a survivor
/// within this of its death.
pub const DEAD_NODE: Duration = Duration::from_secs(10);

/// The rate limit's rolling window, counted on the backend's clock as messages arrive.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);
