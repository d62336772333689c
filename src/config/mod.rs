//! The billing repo: `unitsync.yaml`, `mappings.yaml` (or `mappings/*.yaml`) and `units.lock.yaml`.
//!
//! Loading is strict (YAML 1.2 booleans, no duplicate keys, no unknown keys) and every problem is
//! reported with the file, line and column it comes from.

pub mod diagnostic;
mod humanize;
mod load;
mod model;
pub mod schema;
mod yaml;

pub use diagnostic::{Diagnostic, Pos, Severity};
pub(crate) use load::check_in_memory;
pub use load::{BillingRepo, LoadError, MappingSource, check, load, parse_true_ups};
pub use model::*;

/// File names inside a billing repo.
pub const SETTINGS_FILE: &str = "unitsync.yaml";
pub const MAPPINGS_FILE: &str = "mappings.yaml";
pub const MAPPINGS_DIR: &str = "mappings";
pub const LOCK_FILE: &str = "units.lock.yaml";
pub const TRUE_UPS_FILE: &str = "true-ups.yaml";
pub const HISTORY_DIR: &str = "history";
