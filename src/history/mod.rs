//! Sync history: one YAML record per apply under `history/YYYY/MM/`, never rewritten.
//!
//! History is the audit trail (who approved what, when, from → to) and also an input to planning:
//! the value unitsync last wrote to each line tells a vendor change from a hand edit in the PSA
//! (drift).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::HISTORY_DIR;
use crate::quantity::Quantity;

/// One apply run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryRecord {
    /// When the run started, RFC 3339 UTC.
    pub run: String,
    /// The billing-repo commit whose lock was applied, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<u64>,
    /// Who approved: the merger of the pull request, or `local:<user>` for a confirmed local apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    pub lines: Vec<HistoryLine>,
    /// The approved true-ups this run wrote, or tried to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub true_ups: Vec<HistoryTrueUp>,
}

/// What happened to one approved true-up (an entry of `true-ups.yaml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryTrueUp {
    pub id: String,
    pub mapping: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<u64>,
    /// The units charged once (negative: credited).
    pub quantity: Quantity,
    pub outcome: LineOutcome,
    /// The PSA record that carries it: the ConnectWise addition or the Autotask contract charge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<u64>,
    /// Why it failed, or that an earlier, interrupted run had already written it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What happened to one PSA line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryLine {
    pub mapping: String,
    pub account: String,
    pub license_type: String,
    pub company: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    pub product: String,
    pub from: Quantity,
    pub to: Quantity,
    pub outcome: LineOutcome,
    /// For cancel-and-re-add: the line that replaced `line`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_line: Option<u64>,
    /// Why the line failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The reviewer's note on the approved value's lock line (its trailing comment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The first day the applied change bills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective: Option<jiff::civil::Date>,
    /// The day the change was due to bill from when an invoiced period moved it to
    /// `effective` (a dated write rolled forward, or an in-place edit the PSA bills from its next
    /// invoice): the days between were invoiced at `from`, which a true-up corrects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<jiff::civil::Date>,
}

/// `lines` with the reviewer's note of each lock line whose approved value is the line's `to`: a
/// note explains the value it was written beside, so a note left from another value is not
/// carried onto this change.
pub fn with_notes(
    mut lines: Vec<HistoryLine>,
    lock: &crate::config::Lock,
    notes: &std::collections::BTreeMap<String, String>,
) -> Vec<HistoryLine> {
    for line in &mut lines {
        if line.note.is_none() && lock.units.get(&line.mapping) == Some(&line.to) {
            line.note = notes.get(&line.mapping).cloned();
        }
    }
    lines
}

impl HistoryLine {
    /// The same line, noting the line that replaced it (cancel-and-re-add).
    pub fn with_new_line(mut self, new_line: Option<u64>) -> HistoryLine {
        self.new_line = new_line;
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LineOutcome {
    /// The PSA now holds `to`.
    Applied,
    /// The PSA refused or could not be reached; retried next run.
    Failed,
    /// The PSA no longer held `from` when unitsync came to write: someone changed it since the plan.
    Stale,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a history record: {message}")]
    Parse { path: PathBuf, message: String },
}

impl HistoryRecord {
    /// Writes the record as `history/YYYY/MM/<run>.yaml` under `root` (never overwriting an
    /// existing record) and returns the path written, relative to `root`.
    pub fn write(&self, root: &Path) -> Result<PathBuf, HistoryError> {
        let stamp = self.run.replace([':', '-'], "");
        // `20261125T093000Z` → year and month folders.
        let (year, month) = (
            &stamp[..4.min(stamp.len())],
            &stamp[4.min(stamp.len())..6.min(stamp.len())],
        );
        let dir = Path::new(HISTORY_DIR).join(year).join(month);
        std::fs::create_dir_all(root.join(&dir)).map_err(|source| HistoryError::Write {
            path: root.join(&dir),
            source,
        })?;
        let base = self.run.replace(':', "");
        // A record appears whole or not at all: a run killed while writing must not leave half
        // a record for the next run to trip over (or to commit). So the text goes to a temporary
        // file first, reaches the disk, and is then linked under its name — a link, unlike a
        // rename, fails rather than replace a record that is already there.
        let temp = root
            .join(&dir)
            .join(format!(".{base}.{}.tmp", std::process::id()));
        let write_temp = || -> std::io::Result<()> {
            use std::io::Write;
            let mut file = std::fs::File::create(&temp)?;
            file.write_all(self.to_yaml().as_bytes())?;
            file.sync_all()
        };
        write_temp().map_err(|source| HistoryError::Write {
            path: temp.clone(),
            source,
        })?;
        let result = (1..)
            .map(|n| {
                let name = if n == 1 {
                    format!("{base}.yaml")
                } else {
                    format!("{base}-{n}.yaml")
                };
                dir.join(name)
            })
            .find_map(|relative| {
                let path = root.join(&relative);
                match std::fs::hard_link(&temp, &path) {
                    Ok(()) => Some(Ok(relative)),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                    Err(source) => Some(Err(HistoryError::Write { path, source })),
                }
            })
            .expect("an unbounded range always yields a free name");
        let _ = std::fs::remove_file(&temp);
        result
    }

    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).expect("history records serialise")
    }
}

/// Every record under `root/history`, oldest first (file names sort by time).
pub fn read_all(root: &Path) -> Result<Vec<(PathBuf, HistoryRecord)>, HistoryError> {
    let mut files = Vec::new();
    collect_yaml(&root.join(HISTORY_DIR), &mut files)?;
    files.sort_by_cached_key(|path| order_key(path));
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).map_err(|source| HistoryError::Read {
                path: path.clone(),
                source,
            })?;
            let record = parse_record(&path, &text)?;
            Ok((path, record))
        })
        .collect()
}

/// Reads one history record's text (`path` is only for messages).
pub fn parse_record(path: &Path, text: &str) -> Result<HistoryRecord, HistoryError> {
    serde_saphyr::from_str::<HistoryRecord>(text).map_err(|e| HistoryError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Orders `…/2026-11-25T093000Z.yaml` before `…/2026-11-25T093000Z-2.yaml` (a second run in
/// the same second), which plain string order gets wrong.
fn order_key(path: &Path) -> (PathBuf, String, u32) {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (base, n) = match stem.rsplit_once('-') {
        Some((base, n)) if base.ends_with('Z') => (base.to_string(), n.parse().unwrap_or(0)),
        _ => (stem, 1),
    };
    (
        path.parent().map(Path::to_path_buf).unwrap_or_default(),
        base,
        n,
    )
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), HistoryError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(HistoryError::Read {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    for entry in entries {
        let entry = entry.map_err(|source| HistoryError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path.is_dir() {
            collect_yaml(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

/// The units unitsync last wrote to each mapping's line, from applied history lines.
pub fn last_applied(records: &[(PathBuf, HistoryRecord)]) -> BTreeMap<String, Quantity> {
    let mut values = BTreeMap::new();
    for (_, record) in records {
        for line in &record.lines {
            if line.outcome == LineOutcome::Applied {
                values.insert(line.mapping.clone(), line.to);
            }
        }
    }
    values
}

/// The applied changes that billed later than they were due (an invoiced period moved them):
/// what true-ups correct.
pub fn late_changes(records: &[(PathBuf, HistoryRecord)]) -> Vec<crate::plan::true_up::LateChange> {
    records
        .iter()
        .flat_map(|(_, record)| &record.lines)
        .filter(|line| line.outcome == LineOutcome::Applied)
        .filter_map(|line| {
            Some(crate::plan::true_up::LateChange {
                mapping: line.mapping.clone(),
                due: line.due?,
                effective: line.effective?,
                from: line.from,
                to: line.to,
            })
        })
        .collect()
}

/// The ids of the true-ups history records as written.
pub fn written_true_ups(
    records: &[(PathBuf, HistoryRecord)],
) -> std::collections::BTreeSet<String> {
    records
        .iter()
        .flat_map(|(_, record)| &record.true_ups)
        .filter(|t| t.outcome == LineOutcome::Applied)
        .map(|t| t.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(run: &str, to: &str, outcome: LineOutcome) -> HistoryRecord {
        HistoryRecord {
            run: run.into(),
            commit: Some("3f2c1e0".into()),
            pull_request: Some(42),
            approved_by: Some("jdoe".into()),
            lines: vec![HistoryLine {
                effective: None,
                due: None,
                mapping: "bobs-dentistry/shadowprotect-desktop".into(),
                account: "Bob's Dentistry".into(),
                license_type: "ShadowProtect Desktop".into(),
                company: "BobsDentistry".into(),
                contract: Some(1001),
                line: Some(5001),
                product: "SP-DESKTOP".into(),
                from: "3".parse().unwrap(),
                to: to.parse().unwrap(),
                outcome,
                new_line: None,
                reason: None,
                note: None,
            }],
            true_ups: Vec::new(),
        }
    }

    #[test]
    fn records_round_trip_and_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let first = record("2026-11-25T09:30:00Z", "4", LineOutcome::Applied);
        let path = first.write(dir.path()).unwrap();
        assert_eq!(path, Path::new("history/2026/11/2026-11-25T093000Z.yaml"));
        let second = record("2026-11-25T09:30:00Z", "5", LineOutcome::Failed);
        assert_eq!(
            second.write(dir.path()).unwrap(),
            Path::new("history/2026/11/2026-11-25T093000Z-2.yaml")
        );
        let all = read_all(dir.path()).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].1, first);
        assert_eq!(all[1].1, second);
        // The failed line does not count as written.
        assert_eq!(
            last_applied(&all),
            BTreeMap::from([(
                "bobs-dentistry/shadowprotect-desktop".to_string(),
                "4".parse().unwrap()
            )])
        );
    }
}
