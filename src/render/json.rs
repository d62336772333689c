//! The plan as JSON: the stable machine format, written by `plan --format json` and read back by
//! `apply --plan FILE`.
//!
//! ```json
//! { "format_version": 2, "summary": { ... }, "desired": "lock", "lines": [ ... ], "unmapped": [ ... ] }
//! ```
//!
//! `summary` is informational (recomputed from `lines` when read back). Fields may be added within
//! a format version; removing or changing the meaning of one bumps `format_version`.

use serde::Serialize;

use crate::plan::{Plan, Summary};

/// The `format_version` this build writes and reads.
pub const FORMAT_VERSION: u64 = 2;

#[derive(Serialize)]
struct Document<'a> {
    format_version: u64,
    summary: Summary,
    #[serde(flatten)]
    plan: &'a Plan,
}

/// Why a plan file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("the plan file is not valid JSON: {0}")]
    Syntax(#[source] serde_json::Error),
    #[error(
        "the plan file has no \"format_version\"; it was not written by `unitsync plan --format json`"
    )]
    MissingVersion,
    #[error(
        "the plan file has format_version {found}, but this unitsync reads version {FORMAT_VERSION}; \
         apply it with the unitsync version that wrote it, or plan again with this one"
    )]
    UnsupportedVersion { found: String },
    #[error("the plan file does not match format version {FORMAT_VERSION}: {0}")]
    Invalid(#[source] serde_json::Error),
}

/// Pretty-printed JSON for `plan`, ending in a newline.
pub fn json(plan: &Plan) -> String {
    let doc = Document {
        format_version: FORMAT_VERSION,
        summary: plan.summary(),
        plan,
    };
    let mut text = serde_json::to_string_pretty(&doc)
        .expect("a plan has string keys and finite numbers only, so it always serialises");
    text.push('\n');
    text
}

/// Reads a plan written by [`json`]. The version is checked before anything else, so a file from
/// a newer unitsync fails with a clear message rather than a confusing field error.
pub fn parse_json(text: &str) -> Result<Plan, PlanFileError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(PlanFileError::Syntax)?;
    match value.get("format_version") {
        None => return Err(PlanFileError::MissingVersion),
        Some(v) if v.as_u64() == Some(FORMAT_VERSION) => {}
        Some(v) => {
            return Err(PlanFileError::UnsupportedVersion {
                found: v.to_string(),
            });
        }
    }
    // Parsed again from the text (not the value) so errors carry a line and column.
    serde_json::from_str(text).map_err(PlanFileError::Invalid)
}
