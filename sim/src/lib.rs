//! The chat load and correctness simulator: scripted operator and visitor bots from TOML
//! scenarios, checked delivery by delivery, with HDR latency per path.

pub mod access;
pub mod adversary;
pub mod bots;
pub mod capacity;
pub mod cli;
pub mod commands;
pub mod ledger;
pub mod metrics;
pub mod network;
pub mod pacer;
pub mod phases;
pub mod preflight;
pub mod procfs;
pub mod progress;
pub mod record;
pub mod relay_process;
pub mod result;
pub mod run;
pub mod scenario;
pub mod target;
pub mod tokens;
pub mod watch;
