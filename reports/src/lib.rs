//! Run results of the chat load simulator: the one model every renderer reads
//! ([`model::RunResult`]), written by `sim run` as `result.json`, rendered as one
//! self-contained HTML page, compared and merged.
//!
//! `reports` never depends on `sim`: it only knows the result.

pub mod attacks;
pub mod capacity;
pub mod charts;
pub mod compare;
pub mod counters;
pub mod hdr;
pub mod html;
pub mod merge;
pub mod model;
