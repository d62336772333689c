//! The run lock: at most one apply writes to the PSA at a time.
//!
//! Two applies at once would both read the same PSA value and both write it: harmless for an
//! absolute quantity, a double charge for a cancel-and-re-add or an Autotask adjustment (which
//! adds). So every apply holds a lock from before it reads the PSA until its history is recorded.
//!
//! On one machine the lock is an operating-system file lock (`flock`), which the kernel releases
//! when the process ends however it ends, so a killed run never leaves it behind. Across machines
//! (two GitHub Action runs, or a workstation and an Action) the lock is a lease held on the
//! billing repo's remote; see [`crate::review::lease`].

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Who holds a lock, and for how long, as written into it for whoever finds it taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// `user@host pid 1234`.
    pub who: String,
    /// The GitHub Actions run, when the holder is one.
    pub run: Option<String>,
    pub acquired: jiff::Timestamp,
    /// After this moment the lock may be taken over; the holder stops starting PSA writes before
    /// it (see [`Holder::write_deadline`]).
    pub expires: jiff::Timestamp,
}

impl Holder {
    /// This process, holding a lock for `ttl` from now.
    pub fn this_process(ttl: std::time::Duration) -> Holder {
        let now = crate::clock::now();
        let acquired = now.round(jiff::Unit::Second).unwrap_or(now);
        let ttl = jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::MAX);
        Holder {
            who: format!(
                "{}@{} pid {}",
                std::env::var("USER")
                    .or_else(|_| std::env::var("USERNAME"))
                    .unwrap_or_else(|_| "unknown".into()),
                hostname(),
                std::process::id()
            ),
            run: actions_run_url(),
            acquired,
            expires: acquired.saturating_add(ttl).unwrap_or(acquired),
        }
    }

    /// The last moment this holder may start a PSA write: a safety margin (a quarter of the
    /// lease, at most two minutes) before it expires, so a write in flight has finished before
    /// anyone can take the lock over.
    pub fn write_deadline(&self) -> jiff::Timestamp {
        let lease = self.expires.duration_since(self.acquired);
        let margin = (lease / 4).min(jiff::SignedDuration::from_secs(120));
        self.expires.saturating_sub(margin).unwrap_or(self.acquired)
    }

    /// The lines written into a lock: `Key: value`, one per line.
    pub fn to_text(&self) -> String {
        let mut text = format!("Holder: {}\n", self.who);
        if let Some(run) = &self.run {
            text.push_str(&format!("Run: {run}\n"));
        }
        text.push_str(&format!(
            "Acquired: {}\nExpires: {}\n",
            self.acquired, self.expires
        ));
        text
    }

    /// Reads what [`to_text`](Self::to_text) wrote, ignoring other lines.
    pub fn parse(text: &str) -> Option<Holder> {
        let field = |key: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix(": "))
                .map(str::trim)
        };
        Some(Holder {
            who: field("Holder")?.to_string(),
            run: field("Run").map(str::to_string),
            acquired: field("Acquired")?.parse().ok()?,
            expires: field("Expires")?.parse().ok()?,
        })
    }

    /// `user@host pid 1234 (run URL) since 13:05:00Z`.
    pub fn describe(&self) -> String {
        format!(
            "{}{}, since {}",
            self.who,
            self.run
                .as_deref()
                .map_or_else(String::new, |run| format!(" ({run})")),
            self.acquired
        )
    }
}

/// The machine's name, for telling people which machine holds a lock.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

/// The GitHub Actions run this process belongs to, from the variables Actions sets.
fn actions_run_url() -> Option<String> {
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    Some(format!(
        "{}/{}/actions/runs/{}",
        var("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into()),
        var("GITHUB_REPOSITORY")?,
        var("GITHUB_RUN_ID")?
    ))
}

/// Whether `path` still names the open `file`.
#[cfg(unix)]
fn still_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
    }
}

/// Elsewhere the file is never removed (see [`LocalLock`]'s `Drop`), so it is always the same.
#[cfg(not(unix))]
fn still_at(_file: &File, _path: &Path) -> bool {
    true
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another unitsync apply is running on this machine ({holder}); nothing was changed")]
    Held { path: PathBuf, holder: String },
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The lock file of one billing repo on this machine, held until dropped (or the process ends).
#[derive(Debug)]
pub struct LocalLock {
    _file: File,
    path: PathBuf,
}

impl LocalLock {
    /// The file name of the lock, in the git directory or else the billing repo's folder.
    pub const FILE_NAME: &str = "unitsync-apply.lock";

    /// Takes the lock at `path` without waiting, writing `holder` into it.
    pub fn acquire(path: &Path, holder: &Holder) -> Result<LocalLock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        // The file is removed when the lock is released. A run that opened it just before
        // that removal may then lock a file no longer at `path`; it notices (the path names
        // another file, or none) and starts over, so two runs never hold two different files.
        loop {
            // Never truncate on open: the file is only rewritten once the lock is ours, so a
            // holder's details stay readable for the run that finds the lock taken.
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(io)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let mut text = String::new();
                    let _ = file.read_to_string(&mut text);
                    return Err(LockError::Held {
                        path: path.to_path_buf(),
                        holder: Holder::parse(&text)
                            .map_or_else(|| "holder unknown".into(), |h| h.describe()),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
            if !still_at(&file, path) {
                continue;
            }
            file.set_len(0).map_err(io)?;
            file.rewind().map_err(io)?;
            file.write_all(holder.to_text().as_bytes()).map_err(io)?;
            file.flush().map_err(io)?;
            return Ok(LocalLock {
                _file: file,
                path: path.to_path_buf(),
            });
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LocalLock {
    /// Removes the file while still holding the lock, so no lock file is left behind. (Not on
    /// Windows, where an open file cannot be removed; the file stays there, unlocked.)
    fn drop(&mut self) {
        if cfg!(unix) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_holder_text_round_trips() {
        let holder = Holder {
            who: "ci@runner pid 7".into(),
            run: Some("https://github.com/msp/billing/actions/runs/42".into()),
            acquired: "2026-11-25T13:00:00Z".parse().unwrap(),
            expires: "2026-11-25T14:00:00Z".parse().unwrap(),
        };
        let text = format!("unitsync apply lock\n\n{}", holder.to_text());
        assert_eq!(Holder::parse(&text), Some(holder.clone()));
        assert_eq!(
            holder.describe(),
            "ci@runner pid 7 (https://github.com/msp/billing/actions/runs/42), since 2026-11-25T13:00:00Z"
        );
        assert_eq!(Holder::parse("Holder: x\nAcquired: nonsense\n"), None);
    }

    #[test]
    fn writes_stop_well_before_the_lease_expires() {
        let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        let hour = Holder {
            expires: at("2026-11-25T14:00:00Z"),
            ..Holder::this_process(Duration::ZERO)
        };
        let hour = Holder {
            acquired: at("2026-11-25T13:00:00Z"),
            ..hour
        };
        // Two minutes at most for an hour-long lease...
        assert_eq!(hour.write_deadline(), at("2026-11-25T13:58:00Z"));
        // ...a quarter of a short one.
        let short = Holder {
            expires: at("2026-11-25T13:00:08Z"),
            ..hour
        };
        assert_eq!(short.write_deadline(), at("2026-11-25T13:00:06Z"));
    }

    #[test]
    fn a_second_lock_on_the_same_file_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LocalLock::FILE_NAME);
        let holder = Holder::this_process(Duration::from_secs(60));
        let first = LocalLock::acquire(&path, &holder).unwrap();
        let refused = LocalLock::acquire(&path, &holder).unwrap_err();
        match &refused {
            LockError::Held { holder: who, .. } => assert_eq!(*who, holder.describe()),
            other => panic!("{other:?}"),
        }
        assert!(
            refused
                .to_string()
                .starts_with("another unitsync apply is running on this machine (")
        );
        drop(first);
        // Released on drop, and the file is gone: the next run takes it anew.
        assert!(!path.exists());
        LocalLock::acquire(&path, &holder).unwrap();
    }
}
