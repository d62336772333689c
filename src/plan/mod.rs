//! The pure plan engine: (mappings, vendor usage, PSA snapshot, lock, last applied) → [`Plan`].
//!
//! This module does no I/O and imports no adapter. Everything that decides a number on an invoice
//! lives here, where it can be tested exhaustively without a network.

mod engine;
mod model;
mod proposal;
pub mod true_up;

pub use engine::{plan, source_accounts};
pub use model::*;
pub use proposal::{drop_rejected, lock_change_count, lock_changes};

#[cfg(test)]
mod tests;
