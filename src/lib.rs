//! unitsync keeps the unit counts on PSA agreement lines equal to the licence counts vendors bill,
//! with every change reviewed as a git pull request.
//!
//! The crate is organised like the flow it implements: [`config`] reads the billing repo,
//! [`source`] reads vendor usage, [`psa`] reads and writes the PSA, [`plan`] (pure, no I/O) decides
//! what to change, and [`render`] shows it. The binary in `main.rs` only wires these together.

#![forbid(unsafe_code)]

pub mod apply;
pub mod ci_env;
pub mod cli;
pub mod clock;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod history;
pub mod money;
pub mod notify;
pub mod ops;
pub mod plan;
pub mod progress;
pub mod psa;
pub mod quantity;
mod redact;
pub mod render;
pub mod review;
pub mod sandbox;
pub mod schedule;
pub mod source;
mod stable_hash;
