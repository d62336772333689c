//! Review: where proposed unit counts wait for a person. Today that is a GitHub pull request
//! ([`github`]); the git side (commits with git2, fetch and push through the `git` CLI) is in
//! [`git`].
//!
//! The [`Review`] trait is deliberately small — the five questions `propose` and `apply --gitops`
//! ask — so tests can hold it to exact calls and another forge could be added without touching
//! the commands.

pub mod git;
pub mod github;
pub mod lease;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::quantity::Quantity;

pub use github::{GitHub, GitHubConfig};

/// A pull request as unitsync needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub html_url: Option<String>,
}

/// The pull request a merge commit came from, and who merged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedPull {
    pub number: u64,
    pub merged_by: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("{0}")]
    Config(String),
    #[error("GitHub {operation}: {message}")]
    Api { operation: String, message: String },
}

/// The pull-request operations unitsync uses.
pub trait Review {
    /// The open pull request whose head is `branch`, if any.
    fn open_pull(
        &self,
        branch: &str,
    ) -> impl Future<Output = Result<Option<PullRequest>, ReviewError>> + Send;

    /// Opens a pull request from `branch` into `base`.
    fn create_pull(
        &self,
        branch: &str,
        base: &str,
        title: &str,
        body: &str,
    ) -> impl Future<Output = Result<PullRequest, ReviewError>> + Send;

    /// Replaces a pull request's title and body.
    fn update_pull(
        &self,
        number: u64,
        title: &str,
        body: &str,
    ) -> impl Future<Output = Result<PullRequest, ReviewError>> + Send;

    /// The most recently closed pull request from `branch` that was not merged (a rejection).
    fn last_closed_unmerged(
        &self,
        branch: &str,
    ) -> impl Future<Output = Result<Option<PullRequest>, ReviewError>> + Send;

    /// The merged pull request that produced commit `sha`, and who merged it.
    fn pull_for_commit(
        &self,
        sha: &str,
    ) -> impl Future<Output = Result<Option<MergedPull>, ReviewError>> + Send;
}

/// The start of the hidden marker in a pull-request body.
pub const MARKER_START: &str = "<!-- unitsync:proposal ";
const MARKER_END: &str = " -->";

/// What a proposal pull request proposed, machine-readable, hidden in its body as an HTML
/// comment. A closed-unmerged pull request's marker is how `propose` knows which values were
/// rejected.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProposalMarker {
    pub format_version: u32,
    /// Proposed units per mapping id: only the values that differ from the default branch's lock.
    pub units: BTreeMap<String, Quantity>,
    /// Set when not every proposed value fitted in the pull-request body; `units` then holds
    /// the first ones by id.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// The ids of the true-ups the pull request adds to `true-ups.yaml`: closing it unmerged
    /// rejects them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub true_ups: Vec<String>,
}

impl ProposalMarker {
    pub fn new(units: BTreeMap<String, Quantity>) -> Self {
        ProposalMarker {
            format_version: 1,
            units,
            truncated: false,
            true_ups: Vec::new(),
        }
    }

    /// [`to_comment`](Self::to_comment) in at most `max_chars` characters: when the whole marker
    /// is longer, entries are dropped from the end (by id) and `truncated` is set.
    pub fn to_comment_within(&self, max_chars: usize) -> String {
        let comment = self.to_comment();
        if comment.chars().count() <= max_chars {
            return comment;
        }
        let mut fitted = ProposalMarker {
            truncated: true,
            units: BTreeMap::new(),
            ..self.clone()
        };
        let mut used = fitted.to_comment().chars().count();
        for (id, units) in &self.units {
            // `"id":value,` with escaping: measure the entry as it will be written.
            let entry = serde_json::to_string(&BTreeMap::from([(id, units)]))
                .expect("markers serialise")
                .replace('>', "\\u003e")
                .replace("--", "-\\u002d")
                .chars()
                .count();
            if used + entry > max_chars {
                break;
            }
            used += entry;
            fitted.units.insert(id.clone(), *units);
        }
        fitted.to_comment()
    }

    /// The marker as an HTML comment on one line. `>` is escaped inside the JSON so no mapping
    /// id can end the comment early.
    pub fn to_comment(&self) -> String {
        let json = serde_json::to_string(self)
            .expect("markers serialise")
            .replace('>', "\\u003e")
            .replace("--", "-\\u002d");
        format!("{MARKER_START}{json}{MARKER_END}")
    }

    /// The marker in `body`, if it has a readable one.
    pub fn find(body: &str) -> Option<ProposalMarker> {
        let start = body.find(MARKER_START)? + MARKER_START.len();
        let rest = &body[start..];
        let end = rest.find(MARKER_END)?;
        serde_json::from_str(&rest[..end]).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_cannot_close_the_comment() {
        let marker = ProposalMarker::new(BTreeMap::from([
            (
                "bobs-dentistry/shadowprotect-desktop".into(),
                "4".parse().unwrap(),
            ),
            ("evil-->id".into(), "135.5".parse().unwrap()),
        ]));
        let comment = marker.to_comment();
        assert!(comment.starts_with(MARKER_START));
        assert_eq!(comment.matches("-->").count(), 1, "{comment}");
        let body = format!("## Plan\n\ntext\n\n{comment}\n");
        assert_eq!(ProposalMarker::find(&body), Some(marker));
        assert_eq!(ProposalMarker::find("no marker here"), None);

        let big = ProposalMarker::new(
            (0..1000)
                .map(|i| (format!("customer-{i:04}/backup"), "7".parse().unwrap()))
                .collect(),
        );
        let comment = big.to_comment_within(2_000);
        assert!(comment.chars().count() <= 2_000, "{}", comment.len());
        let read = ProposalMarker::find(&comment).unwrap();
        assert!(read.truncated);
        assert!(read.units.len() > 50 && read.units.len() < 1000);
        assert!(read.units.keys().all(|k| big.units.contains_key(k)));
        assert_eq!(big.to_comment_within(usize::MAX), big.to_comment());
    }
}
