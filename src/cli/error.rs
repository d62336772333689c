//! The error type at the command-line edge: what went wrong, what kind of failure it is (which
//! decides the exit code), and hints on what to do next.

use std::fmt;

/// Broad failure classes; all map to exit code 1 today, but keeping them apart lets scripts and
/// future codes distinguish "your files are wrong" from "the PSA is down".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad arguments or bad billing-repo files.
    User,
    /// A PSA, vendor source, git or GitHub failed.
    External,
    /// A bug.
    Internal,
}

#[derive(Debug)]
pub struct CommandError {
    pub kind: ErrorKind,
    pub message: String,
    pub hints: Vec<String>,
    /// Set when the details were already printed (e.g. `validate`'s diagnostics).
    pub already_reported: bool,
}

impl CommandError {
    pub fn user(message: impl Into<String>) -> Self {
        CommandError {
            kind: ErrorKind::User,
            message: message.into(),
            hints: Vec::new(),
            already_reported: false,
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

    pub fn reported(mut self) -> Self {
        self.already_reported = true;
        self
    }

    pub fn exit_code(&self) -> u8 {
        1
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

impl std::error::Error for CommandError {}
