//! A program that prints JSON usage records on its standard output.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::json::{JsonDocument, parse_json_records};
use super::{BoxFuture, SourceError, UsageSource, truncate_chars};
use crate::config::CommandSource;
use crate::plan::UsageRecord;

const DEFAULT_TIMEOUT_SECONDS: u32 = 300;

/// unitsync's own secrets, kept from the vendor's program: it needs its own credentials, never
/// the PSA's keys or the token that can push to the billing repo.
pub const WITHHELD_VARIABLES: &[&str] = &[
    "UNITSYNC_CW_PUBLIC_KEY",
    "UNITSYNC_CW_PRIVATE_KEY",
    "UNITSYNC_CW_CLIENT_ID",
    "UNITSYNC_AT_USERNAME",
    "UNITSYNC_AT_SECRET",
    "UNITSYNC_AT_INTEGRATION_CODE",
    "UNITSYNC_SMTP_USERNAME",
    "UNITSYNC_SMTP_PASSWORD",
    "GITHUB_TOKEN",
];
/// Most characters of a failed program's stderr carried in the error.
const STDERR_CHARS: usize = 2000;

/// Runs `source.command.program` with `args` in the billing repo and reads its stdout as JSON.
#[derive(Debug, Clone)]
pub struct CommandUsageSource {
    settings: CommandSource,
    root: PathBuf,
}

impl CommandUsageSource {
    pub fn new(settings: CommandSource, root: &Path) -> CommandUsageSource {
        CommandUsageSource {
            settings,
            root: root.to_path_buf(),
        }
    }

    /// What is executed: a bare name is looked up on `PATH`; a relative path (`scripts/usage.sh`)
    /// is relative to the billing repo.
    fn executable(&self) -> PathBuf {
        let program = Path::new(&self.settings.program);
        if program.is_relative() && program.components().count() > 1 {
            self.root.join(program)
        } else {
            program.to_path_buf()
        }
    }

    async fn run(&self) -> Result<Vec<UsageRecord>, SourceError> {
        let program = self.settings.program.clone();
        let seconds = match self.settings.timeout_seconds {
            None => DEFAULT_TIMEOUT_SECONDS,
            Some(0) => {
                return Err(SourceError::InvalidSettings {
                    setting: "source.command.timeout_seconds".into(),
                    problem: "must be at least 1".into(),
                });
            }
            Some(n) => n,
        };
        let mut command = tokio::process::Command::new(self.executable());
        for name in WITHHELD_VARIABLES {
            command.env_remove(name);
        }
        command
            .args(&self.settings.args)
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // A script written an instant ago can still be open for writing in a process forked
        // meanwhile (any program this process starts), and Linux refuses to run it until that
        // process has exec'd ("text file busy"): a moment later it runs.
        let mut spawned = command.spawn();
        for _ in 0..20 {
            match &spawned {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                    spawned = command.spawn();
                }
                _ => break,
            }
        }
        let mut child = spawned
            .map_err(|source| SourceError::CommandSpawn {
                program: program.clone(),
                hint: match source.kind() {
                    std::io::ErrorKind::NotFound => {
                        "install it or check source.command.program (a bare name is looked up on PATH, a path is relative to the billing repo)"
                    }
                    std::io::ErrorKind::PermissionDenied => {
                        "make it executable (chmod +x) or check source.command.program"
                    }
                    _ => "check source.command.program",
                },
                source,
            })?;
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");

        let finished = tokio::time::timeout(Duration::from_secs(seconds.into()), async {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let (out_read, err_read, status) = tokio::join!(
                stdout.read_to_end(&mut out),
                stderr.read_to_end(&mut err),
                child.wait()
            );
            (out_read.and(err_read).and(status), out, err)
        })
        .await;
        let (status, out, err) = match finished {
            Ok(done) => done,
            Err(_elapsed) => {
                let _ = child.kill().await;
                return Err(SourceError::CommandTimeout {
                    program,
                    seconds: seconds.into(),
                });
            }
        };
        let status = status.map_err(|source| SourceError::CommandSpawn {
            program: program.clone(),
            source,
            hint: "check source.command.program",
        })?;
        let stderr_text = String::from_utf8_lossy(&err);
        if !status.success() {
            return Err(SourceError::CommandFailed {
                program,
                status: describe_status(status),
                code: status.code(),
                stderr: truncate_chars(stderr_text.trim(), STDERR_CHARS),
            });
        }
        if !stderr_text.trim().is_empty() {
            tracing::debug!(program = %program, stderr = %truncate_chars(stderr_text.trim(), STDERR_CHARS), "usage command wrote to stderr");
        }
        parse_json_records(
            &out,
            &format!("output of `{program}`"),
            JsonDocument::Command,
            self.settings.records.as_deref(),
            &self.settings.fields,
        )
    }
}

fn describe_status(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit code {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("killed by signal {signal}");
        }
    }
    status.to_string()
}

impl UsageSource for CommandUsageSource {
    fn describe(&self) -> String {
        let mut text = format!("command `{}", self.settings.program);
        for arg in &self.settings.args {
            text.push(' ');
            text.push_str(arg);
        }
        text.push('`');
        text
    }

    fn fetch(&self) -> BoxFuture<'_, Result<Vec<UsageRecord>, SourceError>> {
        Box::pin(self.run())
    }
}
