//! The error type at the command-line edge: what went wrong, what kind of failure it is (which
//! decides the exit code), and hints on what to do next.

use std::fmt;

/// Broad failure classes, each with its own exit code so that a script can tell where to look:
/// "your input is wrong" (the command line or the billing repo: fix it; running again unchanged
/// fails the same way) from "a system unitsync talks to failed or refused" (the PSA, the vendor
/// source, git or GitHub: down, rate-limited, moved on meanwhile, or refusing the credentials;
/// the message says which, and whether running again later may work) from "unitsync is wrong"
/// (report it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad arguments, bad billing-repo files, a credential variable that is not set, a checkout
    /// in the wrong state (not a git clone, uncommitted changes, the wrong branch).
    User,
    /// A PSA, vendor source, git or GitHub failed or refused, or a file unitsync writes for
    /// itself (a history record, a lock, `$GITHUB_OUTPUT`) could not be written.
    External,
    /// A bug: an invariant that does not hold.
    Internal,
}

impl ErrorKind {
    /// The exit code of a command that failed this way.
    ///
    /// `User` keeps 1 because it is what clap's usage errors exit with here too (see
    /// [`parse`](super::parse)) and what every failure exited with before the kinds had codes, so
    /// a script that checks for 1 still catches a typo or a bad file. 2 (`plan
    /// --detailed-exitcode`: changes) and 3 (`due`: not due) are successes, so the failures take
    /// the next free codes: 4 for `External`, 5 for `Internal`. Small numbers read well in a
    /// shell `case`, and they stay clear of the codes that mean something else already: 101 (a
    /// Rust panic, also a bug), 126 and 127 (the shell could not run the program), 128 + N (killed
    /// by signal N), and 64–78 (`sysexits.h`, which unitsync does not follow).
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::User => 1,
            ErrorKind::External => 4,
            ErrorKind::Internal => 5,
        }
    }
}

#[derive(Debug)]
pub struct CommandError {
    pub kind: ErrorKind,
    pub message: String,
    pub hints: Vec<String>,
    /// Set when the details were already printed (e.g. `validate`'s diagnostics).
    pub already_reported: bool,
    /// The error this one was made from, for `Error::source` (logs, `-vv`, tests).
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl CommandError {
    pub fn user(message: impl Into<String>) -> Self {
        CommandError {
            kind: ErrorKind::User,
            message: message.into(),
            hints: Vec::new(),
            already_reported: false,
            source: None,
        }
    }

    pub fn external(message: impl Into<String>) -> Self {
        CommandError {
            kind: ErrorKind::External,
            ..CommandError::user(message)
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        CommandError {
            kind: ErrorKind::Internal,
            ..CommandError::user(message)
        }
    }

    pub fn hinted(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    /// Keeps `source` as the cause.
    pub fn caused_by(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub fn reported(mut self) -> Self {
        self.already_reported = true;
        self
    }

    pub fn exit_code(&self) -> u8 {
        self.kind.exit_code()
    }

    pub fn report(&self) {
        if !self.already_reported {
            eprintln!("{self}");
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        for hint in &self.hints {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CommandError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

// Each layer's error becomes a command error here, and only here: its kind (and so the exit code)
// is decided by what failed, and the error is kept as the source.

/// A setting or credential that is missing or wrong is the user's to fix; anything the PSA
/// answered (or did not) is external.
impl From<crate::psa::PsaError> for CommandError {
    fn from(e: crate::psa::PsaError) -> Self {
        use crate::psa::PsaError;
        let message = e.to_string();
        let error = match e {
            PsaError::MissingCredential(..)
            | PsaError::InvalidSite { .. }
            | PsaError::UnsupportedRef { .. }
            | PsaError::Journal { .. } => CommandError::user(message),
            _ => CommandError::external(message),
        };
        error.caused_by(e)
    }
}

/// An operation's error maps as the layer's error it carries; an unreadable history record is
/// the user's (it must stay as unitsync wrote it), an unwritable run marker external.
impl From<crate::ops::OpsError> for CommandError {
    fn from(e: crate::ops::OpsError) -> Self {
        use crate::ops::OpsError;
        match e {
            OpsError::Psa(e) => e.into(),
            OpsError::Source(e) => e.into(),
            OpsError::History(e) => CommandError::user(e.to_string())
                .hinted("history records must stay as unitsync wrote them")
                .caused_by(e),
            OpsError::RunMarker(e) => CommandError::external(e.to_string()).caused_by(e),
        }
    }
}

/// A source that failed or refused is external; one whose answer does not fit the settings
/// (see `SourceError::is_external`) is the user's.
impl From<crate::source::SourceError> for CommandError {
    fn from(e: crate::source::SourceError) -> Self {
        let message = format!("vendor source: {e}");
        let error = if e.is_external() {
            CommandError::external(message)
        } else {
            CommandError::user(message)
        };
        error.caused_by(e)
    }
}

impl From<crate::review::git::GitError> for CommandError {
    fn from(e: crate::review::git::GitError) -> Self {
        CommandError::external(e.to_string()).caused_by(e)
    }
}

/// GitHub settings that cannot work are the user's; GitHub failing or refusing is external.
impl From<crate::review::ReviewError> for CommandError {
    fn from(e: crate::review::ReviewError) -> Self {
        let error = match &e {
            crate::review::ReviewError::Config(message) => CommandError::user(message.clone()),
            other => CommandError::external(other.to_string()),
        };
        error.caused_by(e)
    }
}

/// A step summary or output that could not be written for GitHub Actions. The file is the
/// runner's (`$GITHUB_OUTPUT`, `$GITHUB_STEP_SUMMARY`); the output names are unitsync's own, so
/// a refused name is a bug.
impl From<crate::ci_env::CiEnvError> for CommandError {
    fn from(e: crate::ci_env::CiEnvError) -> Self {
        let error = match &e {
            crate::ci_env::CiEnvError::Io { .. } => CommandError::external(e.to_string()),
            crate::ci_env::CiEnvError::BadName(_) => CommandError::internal(e.to_string()),
        };
        error.caused_by(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_own_code_apart_from_the_successes() {
        let codes = [ErrorKind::User, ErrorKind::External, ErrorKind::Internal].map(|kind| {
            CommandError {
                kind,
                ..CommandError::user("x")
            }
            .exit_code()
        });
        assert_eq!(codes, [1, 4, 5]);
        // 0 done, 2 `--detailed-exitcode` changes, 3 `due` not due.
        assert!(codes.iter().all(|c| ![0, 2, 3].contains(c)));
    }

    #[test]
    fn a_psa_error_keeps_its_source_and_its_kind_decides_the_code() {
        use std::error::Error as _;
        let missing = CommandError::from(crate::psa::PsaError::MissingCredential(
            "UNITSYNC_AT_SECRET",
            "set it",
        ));
        assert_eq!(missing.exit_code(), 1);
        let down = CommandError::from(crate::psa::PsaError::Conflict {
            what: "contract 1".into(),
            reason: "closed".into(),
        });
        assert_eq!(down.exit_code(), 4);
        assert_eq!(down.message, "contract 1: closed");
        assert_eq!(down.source().unwrap().to_string(), "contract 1: closed");
    }
}
