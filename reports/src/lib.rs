//! Run results of the chat load simulator: the one model every renderer reads
//! ([`model::RunResult`]), written by `sim run` as `result.json`.
//!
//! `reports` never depends on `sim`: it only knows the result.

pub mod model;
