//! GitHub Actions integration: the job summary and step outputs.
//!
//! A step's process reports back to the runner through files the runner names in environment
//! variables: Markdown appended to `$GITHUB_STEP_SUMMARY` shows on the run's summary page, and
//! `name=value` lines appended to `$GITHUB_OUTPUT` become `steps.<id>.outputs.<name>`. When a
//! variable is unset (not under GitHub Actions) the functions here do nothing, so commands may call
//! them unconditionally; commands still gate them on [`is_github_actions`] or a `--github` flag so
//! that a local run never writes to files named by a stray environment.
//!
//! Every function comes in two forms: one that reads the environment variable, and a `*_to` form
//! that takes the path (for tests, and for callers that resolved the path themselves).

use std::collections::hash_map::RandomState;
use std::fs::OpenOptions;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The variable naming the step's job-summary file.
pub const STEP_SUMMARY_VAR: &str = "GITHUB_STEP_SUMMARY";
/// The variable naming the step's output file.
pub const OUTPUT_VAR: &str = "GITHUB_OUTPUT";

/// GitHub refuses a step summary larger than 1 MiB ("supports content up to a size of 1024k") and
/// then shows none of it.
pub const STEP_SUMMARY_LIMIT_BYTES: usize = 1024 * 1024;

/// Most characters of Markdown a command should render for the step summary: a character is at
/// most 4 bytes in UTF-8, so this many always fit [`STEP_SUMMARY_LIMIT_BYTES`] with room left
/// for a second, smaller append in the same step.
pub const STEP_SUMMARY_MAX_CHARS: usize = STEP_SUMMARY_LIMIT_BYTES / 5;
// Even all 4-byte characters fit.
const _: () = assert!(STEP_SUMMARY_MAX_CHARS * 4 <= STEP_SUMMARY_LIMIT_BYTES);

/// What could go wrong writing to the runner's files.
#[derive(Debug, thiserror::Error)]
pub enum CiEnvError {
    #[error("cannot append to {} (${var}): {source}", path.display())]
    Io {
        var: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "`{0}` is not a usable step output name: use letters, digits, `-` and `_`, starting with a \
         letter or `_`"
    )]
    BadName(String),
}

/// Whether this process runs as a GitHub Actions step (the runner sets `GITHUB_ACTIONS=true`).
pub fn is_github_actions() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Appends `markdown` to the job summary (`$GITHUB_STEP_SUMMARY`). Returns whether anything was
/// written: `false` when the variable is unset.
pub fn append_step_summary(markdown: &str) -> Result<bool, CiEnvError> {
    match env_path(STEP_SUMMARY_VAR) {
        Some(path) => append_step_summary_to(&path, markdown).map(|()| true),
        None => Ok(false),
    }
}

/// Appends `markdown` to the summary file at `path`, ending it with a line break so a later
/// append starts a new block. When the file would grow past [`STEP_SUMMARY_LIMIT_BYTES`] (and so
/// GitHub would show nothing at all), a one-line note is appended instead.
pub fn append_step_summary_to(path: &Path, markdown: &str) -> Result<(), CiEnvError> {
    let io = |source| CiEnvError::Io {
        var: STEP_SUMMARY_VAR,
        path: path.to_path_buf(),
        source,
    };
    let existing = match std::fs::metadata(path) {
        Ok(meta) => usize::try_from(meta.len()).unwrap_or(usize::MAX),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(io(e)),
    };
    let mut text = markdown.to_owned();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    if existing.saturating_add(text.len()) > STEP_SUMMARY_LIMIT_BYTES {
        text = format!(
            "\n> [!WARNING]\n> unitsync left out {} bytes of Markdown here: the job summary is \
             limited to 1 MiB. See the job log for the full output.\n",
            markdown.len()
        );
    }
    append(path, &text).map_err(io)
}

fn append(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(text.as_bytes())?;
    file.flush()
}

/// Sets the step output `name` to `value` (appends to `$GITHUB_OUTPUT`). Returns whether anything
/// was written: `false` when the variable is unset. The name is checked either way.
pub fn set_output(name: &str, value: &str) -> Result<bool, CiEnvError> {
    check_name(name)?;
    match env_path(OUTPUT_VAR) {
        Some(path) => set_output_to(&path, name, value).map(|()| true),
        None => Ok(false),
    }
}

/// Appends the output `name` = `value` to the output file at `path`.
pub fn set_output_to(path: &Path, name: &str, value: &str) -> Result<(), CiEnvError> {
    let text = output_entry(name, value)?;
    append(path, &text).map_err(|source| CiEnvError::Io {
        var: OUTPUT_VAR,
        path: path.to_path_buf(),
        source,
    })
}

/// The text that sets output `name` to `value`: `name=value` for a one-line value, else the
/// heredoc form
///
/// ```text
/// name<<ghadelimiter_<random hex>
/// value
/// ghadelimiter_<random hex>
/// ```
///
/// with a delimiter chosen at random and checked not to occur anywhere in `value`, so no value
/// can end the heredoc early and smuggle in other outputs.
pub fn output_entry(name: &str, value: &str) -> Result<String, CiEnvError> {
    check_name(name)?;
    if !value.contains(['\n', '\r']) {
        return Ok(format!("{name}={value}\n"));
    }
    let delimiter = delimiter_for(value);
    Ok(format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"))
}

/// A delimiter that does not occur in `value`: 128 random bits (from std's randomly keyed hasher),
/// drawn again in the astronomically unlikely case that they do.
fn delimiter_for(value: &str) -> String {
    loop {
        let random = |salt: u64| {
            let mut h = RandomState::new().build_hasher();
            h.write_u64(salt);
            h.write_u64(crate::clock::unique_bits());
            h.finish()
        };
        let delimiter = format!("ghadelimiter_{:016x}{:016x}", random(1), random(2));
        if !value.contains(&delimiter) {
            return delimiter;
        }
    }
}

fn check_name(name: &str) -> Result<(), CiEnvError> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(CiEnvError::BadName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses an output file the way the runner does (`name=value`, or `name<<DELIM` ... `DELIM`).
    fn parse_outputs(text: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut lines = text.split('\n');
        while let Some(line) = lines.next() {
            if line.is_empty() {
                continue;
            }
            let heredoc = line.find("<<");
            let equals = line.find('=');
            match (heredoc, equals) {
                (Some(h), e) if e.is_none_or(|e| h < e) => {
                    let (name, delim) = (&line[..h], &line[h + 2..]);
                    let mut value = Vec::new();
                    for inner in lines.by_ref() {
                        if inner == delim {
                            break;
                        }
                        value.push(inner);
                    }
                    out.push((name.to_owned(), value.join("\n")));
                }
                (_, Some(e)) => out.push((line[..e].to_owned(), line[e + 1..].to_owned())),
                _ => panic!("unparseable output line {line:?}"),
            }
        }
        out
    }

    #[test]
    fn one_line_values_use_name_equals_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output");
        set_output_to(&path, "changes", "true").unwrap();
        set_output_to(&path, "summary", "Plan: 1 to update (+1 units), a=b.").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "changes=true\nsummary=Plan: 1 to update (+1 units), a=b.\n"
        );
        assert_eq!(
            parse_outputs(&text),
            [
                ("changes".to_owned(), "true".to_owned()),
                (
                    "summary".to_owned(),
                    "Plan: 1 to update (+1 units), a=b.".to_owned()
                )
            ]
        );
    }

    #[test]
    fn multi_line_values_use_a_heredoc_that_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output");
        let value = "line one\nEOF\nchanges=false\n\nlast";
        set_output_to(&path, "plan", value).unwrap();
        set_output_to(&path, "after", "x").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("plan<<ghadelimiter_"), "{text}");
        assert_eq!(
            parse_outputs(&text),
            [
                ("plan".to_owned(), value.to_owned()),
                ("after".to_owned(), "x".to_owned())
            ]
        );
    }

    #[test]
    fn a_value_cannot_end_the_heredoc_early() {
        // A value that contains an earlier delimiter, and one made of delimiter-looking lines.
        let first = output_entry("a", "x\ny").unwrap();
        let used = first.lines().next().unwrap().trim_start_matches("a<<");
        let hostile = format!("{used}\ninjected=1\n{used}");
        let entry = output_entry("a", &hostile).unwrap();
        let delimiter = entry.lines().next().unwrap().trim_start_matches("a<<");
        assert_ne!(delimiter, used);
        assert!(!hostile.contains(delimiter));
        assert_eq!(parse_outputs(&entry), [("a".to_owned(), hostile)]);
    }

    #[test]
    fn delimiters_differ_between_calls() {
        let a = output_entry("a", "1\n2").unwrap();
        let b = output_entry("a", "1\n2").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn carriage_returns_also_use_the_heredoc() {
        let entry = output_entry("a", "1\r2").unwrap();
        assert!(entry.starts_with("a<<ghadelimiter_"), "{entry}");
    }

    #[test]
    fn bad_output_names_are_refused() {
        for name in ["", "a=b", "a<<b", "a\nb", "1st", "a b"] {
            assert!(
                matches!(output_entry(name, "v"), Err(CiEnvError::BadName(_))),
                "{name:?}"
            );
        }
        for name in ["changes", "pr-number", "_x", "A1_b-c"] {
            assert!(output_entry(name, "v").is_ok(), "{name:?}");
        }
    }

    #[test]
    fn step_summary_appends_with_line_breaks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.md");
        append_step_summary_to(&path, "## Plan\n\nno changes").unwrap();
        append_step_summary_to(&path, "second\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "## Plan\n\nno changes\nsecond\n"
        );
    }

    #[test]
    fn step_summary_over_the_limit_becomes_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.md");
        append_step_summary_to(&path, "kept\n").unwrap();
        let huge = "x".repeat(STEP_SUMMARY_LIMIT_BYTES);
        append_step_summary_to(&path, &huge).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("kept\n"));
        assert!(text.contains("left out 1048576 bytes"), "{text}");
        assert!(text.len() < 1000);
    }

    #[test]
    fn an_unwritable_path_is_an_error_naming_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("out");
        let err = set_output_to(&path, "a", "b").unwrap_err();
        assert!(err.to_string().contains("$GITHUB_OUTPUT"), "{err}");
        let err = append_step_summary_to(&path, "x").unwrap_err();
        assert!(err.to_string().contains("$GITHUB_STEP_SUMMARY"), "{err}");
    }
}
