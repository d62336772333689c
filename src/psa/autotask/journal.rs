//! The adjustment journal: an append-only JSON-lines file that makes the non-idempotent
//! `ContractServiceAdjustments` POST safe to retry across crashes.
//!
//! Before each POST an `intent` line is appended and fsynced; after it, a `posted` line with
//! Autotask's `itemId` (or `failed` when Autotask refused it, or `resolved` when a later run
//! settled an interrupted intent by re-reading the units). An intent with no later line for its
//! `id` is *pending*: the POST may or may not have happened, and the next run re-reads the units
//! to find out rather than posting again.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::psa::PsaError;

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Entry {
    Intent(Intent),
    /// Autotask created the adjustment.
    Posted {
        id: String,
        item_id: Option<u64>,
        at: String,
    },
    /// Autotask refused the adjustment: nothing was created.
    Failed {
        id: String,
        reason: String,
        at: String,
    },
    /// A later run settled an interrupted intent from the units it read.
    Resolved {
        id: String,
        /// `applied` (the units show the change) or `not-posted` (they do not).
        outcome: String,
        units: i64,
        at: String,
    },
}

/// An adjustment about to be posted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    pub id: String,
    pub mapping: String,
    pub contract_id: u64,
    pub contract_service_id: u64,
    pub service_id: u64,
    pub effective: jiff::civil::Date,
    pub from: i64,
    pub to: i64,
    pub unit_change: i64,
    pub at: String,
}

pub(crate) struct Journal {
    path: PathBuf,
    /// Pending intents by id, loaded on first use.
    state: Mutex<Option<BTreeMap<String, Intent>>>,
}

impl Journal {
    pub fn new(path: PathBuf) -> Journal {
        Journal {
            path,
            state: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, reason: impl std::fmt::Display) -> PsaError {
        PsaError::Journal {
            path: self.path.display().to_string(),
            reason: reason.to_string(),
        }
    }

    fn load(&self) -> Result<BTreeMap<String, Intent>, PsaError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(self.error(format!("cannot read it: {e}"))),
        };
        let mut pending = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Entry>(line) {
                Ok(Entry::Intent(intent)) => {
                    pending.insert(intent.id.clone(), intent);
                }
                Ok(
                    Entry::Posted { id, .. }
                    | Entry::Failed { id, .. }
                    | Entry::Resolved { id, .. },
                ) => {
                    pending.remove(&id);
                }
                // A line cut short by a crash mid-write: the intent it began was never followed
                // by a POST (the POST waits for the fsync), so it is safe to ignore.
                Err(e) => tracing::warn!(
                    "{}:{}: ignoring an unreadable journal line: {e}",
                    self.path.display(),
                    n + 1
                ),
            }
        }
        Ok(pending)
    }

    fn append(&self, entry: &Entry) -> Result<(), PsaError> {
        if let Some(dir) = self.path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| self.error(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut line = serde_json::to_string(entry).expect("a journal entry serialises");
        line.push('\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| self.error(format!("cannot open it for appending: {e}")))?;
        // A previous crash may have left a partial last line: start on a fresh line.
        if file.metadata().map(|m| m.len()).unwrap_or(0) > 0
            && std::fs::read(&self.path)
                .ok()
                .and_then(|b| b.last().copied())
                .is_some_and(|b| b != b'\n')
        {
            line.insert(0, '\n');
        }
        file.write_all(line.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| self.error(format!("cannot write it: {e}")))
    }

    /// Pending intents for one contract service.
    pub async fn pending_for(&self, contract_service_id: u64) -> Result<Vec<Intent>, PsaError> {
        let mut state = self.state.lock().await;
        if state.is_none() {
            *state = Some(self.load()?);
        }
        Ok(state
            .as_ref()
            .expect("loaded")
            .values()
            .filter(|i| i.contract_service_id == contract_service_id)
            .cloned()
            .collect())
    }

    /// Records `entry`, durably, and updates the pending set.
    pub async fn record(&self, entry: Entry) -> Result<(), PsaError> {
        let mut state = self.state.lock().await;
        if state.is_none() {
            *state = Some(self.load()?);
        }
        self.append(&entry)?;
        let pending = state.as_mut().expect("loaded");
        match entry {
            Entry::Intent(intent) => {
                pending.insert(intent.id.clone(), intent);
            }
            Entry::Posted { id, .. } | Entry::Failed { id, .. } | Entry::Resolved { id, .. } => {
                pending.remove(&id);
            }
        }
        Ok(())
    }
}

pub(crate) fn now() -> String {
    crate::clock::now().to_string()
}
