//! The billing repo as a git repository: commits are made with git2, fetches and pushes go
//! through the `git` command.
//!
//! Why two tools: git2 makes commits precisely (a given parent, a given tree, a fixed author)
//! without touching the working tree or the index, and it is compiled without `https`/`ssh`, so
//! the binary carries no OpenSSL and no credential handling. Talking to the remote is left to the
//! `git` CLI, which already knows how to authenticate: in a GitHub Action, `actions/checkout` has
//! configured the token for it; on a workstation, the user's credential helper or SSH agent does.
//! unitsync never sees a git credential.

use std::path::{Path, PathBuf};
use std::process::Command;

use git2::{Oid, Repository, Signature};

/// The author and committer of every commit unitsync makes. `propose` recognises its own commits
/// on the proposal branch by this e-mail address.
pub const AUTHOR_NAME: &str = "unitsync";
pub const AUTHOR_EMAIL: &str = "unitsync@users.noreply.github.com";

/// The remote unitsync fetches from and pushes to.
pub const REMOTE: &str = "origin";

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("`git {command}` failed: {message}")]
    Command { command: String, message: String },
    #[error("{0}")]
    State(String),
}

/// The outcome of a push the remote may refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    Pushed,
    /// The remote refused (not a fast-forward, or the branch moved since it was read).
    Rejected(String),
}

/// A commit on a branch that unitsync did not make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignCommit {
    pub sha: String,
    pub author: String,
    pub summary: String,
}

/// A billing repo's git repository (with a working tree).
pub struct GitRepo {
    repo: Repository,
    workdir: PathBuf,
}

impl GitRepo {
    /// The repository containing `dir`.
    pub fn open(dir: &Path) -> Result<GitRepo, GitError> {
        let repo = Repository::discover(dir).map_err(|e| {
            GitError::State(format!(
                "{} is not inside a git repository ({})",
                dir.display(),
                e.message()
            ))
        })?;
        let workdir = repo
            .workdir()
            .ok_or_else(|| GitError::State("the billing repo is a bare repository".into()))?
            .to_path_buf();
        Ok(GitRepo { repo, workdir })
    }

    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// The short name of the branch HEAD is on, or `None` when HEAD is detached.
    pub fn head_branch(&self) -> Option<String> {
        let head = self.repo.head().ok()?;
        if !head.is_branch() {
            return None;
        }
        head.shorthand().ok().map(str::to_string)
    }

    pub fn head_commit(&self) -> Result<Oid, GitError> {
        Ok(self.repo.head()?.peel_to_commit()?.id())
    }

    /// The remote's default branch (`refs/remotes/origin/HEAD`, which `git clone` sets), else a
    /// local `main` or `master`, else the branch HEAD is on.
    pub fn default_branch(&self) -> Result<String, GitError> {
        if let Ok(reference) = self
            .repo
            .find_reference(&format!("refs/remotes/{REMOTE}/HEAD"))
            && let Ok(Some(target)) = reference.symbolic_target()
            && let Some(name) = target.strip_prefix(&format!("refs/remotes/{REMOTE}/"))
        {
            return Ok(name.to_string());
        }
        // No remote to ask (a repository made with `git init`): the conventional names first,
        // so that being on a feature branch does not make it the default.
        for name in ["main", "master"] {
            if self.repo.find_branch(name, git2::BranchType::Local).is_ok() {
                return Ok(name.to_string());
            }
        }
        self.head_branch().ok_or_else(|| {
            GitError::State(
                "cannot tell the default branch: HEAD is detached and origin/HEAD is not set \
                 (run `git remote set-head origin --auto`)"
                    .into(),
            )
        })
    }

    /// Whether tracked files outside the folder `except` (repo-relative, `/`-separated; `""`
    /// for none) have uncommitted changes. Untracked files do not count.
    pub fn has_uncommitted_changes_outside(&self, except: &str) -> Result<bool, GitError> {
        let mut options = git2::StatusOptions::new();
        options.include_untracked(false).include_ignored(false);
        let statuses = self.repo.statuses(Some(&mut options))?;
        let prefix = format!("{}/", except.trim_end_matches('/'));
        Ok(statuses
            .iter()
            .any(|s| except.is_empty() || !s.path().is_ok_and(|path| path.starts_with(&prefix))))
    }

    /// Paths under `dir` (repo-relative, `/`-separated) with staged, unstaged or untracked
    /// changes.
    pub fn changes_under(&self, dir: &str) -> Result<Vec<String>, GitError> {
        let mut options = git2::StatusOptions::new();
        options
            .include_untracked(true)
            .recurse_untracked_dirs(true)
            .include_ignored(false)
            .pathspec(format!("{dir}/").as_str());
        let statuses = self.repo.statuses(Some(&mut options))?;
        let prefix = format!("{dir}/");
        Ok(statuses
            .iter()
            .filter_map(|s| s.path().ok().map(str::to_string))
            .filter(|p| p.starts_with(&prefix))
            .collect())
    }

    /// Commits the removal of `paths` (repo-relative, tracked and unchanged) on the branch HEAD
    /// is on, then removes them from the index and the working tree. Only these paths change:
    /// other staged changes stay staged and uncommitted. The author is the user's git identity
    /// (`user.name`, `user.email`), else unitsync's.
    pub fn commit_removal_on_head(&self, paths: &[String], message: &str) -> Result<Oid, GitError> {
        let parent = self.repo.head()?.peel_to_commit()?;
        let mut tree = parent.tree()?;
        for path in paths {
            let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
            let id = self.remove(&tree, &parts)?.unwrap_or(self.empty_tree()?);
            tree = self.repo.find_tree(id)?;
        }
        let signature = self
            .repo
            .signature()
            .or_else(|_| Signature::now(AUTHOR_NAME, AUTHOR_EMAIL))?;
        let commit = self.repo.commit(
            Some("HEAD"),
            &signature,
            &signature,
            message,
            &tree,
            &[&parent],
        )?;
        let mut index = self.repo.index()?;
        for path in paths {
            index.remove_path(Path::new(path))?;
        }
        index.write()?;
        for path in paths {
            let file = self.workdir.join(path);
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(GitError::State(format!(
                        "committed, but cannot remove {}: {e}",
                        file.display()
                    )));
                }
            }
            // Empty month and year folders go too (remove_dir fails on non-empty ones).
            let mut dir = file.parent();
            while let Some(d) = dir {
                if d == self.workdir || std::fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
        }
        Ok(commit)
    }

    fn empty_tree(&self) -> Result<Oid, GitError> {
        Ok(self.repo.treebuilder(None)?.write()?)
    }

    /// `base` without the entry at `parts`; `None` when the tree is left empty.
    fn remove(&self, base: &git2::Tree<'_>, parts: &[&str]) -> Result<Option<Oid>, GitError> {
        let mut builder = self.repo.treebuilder(Some(base))?;
        match parts {
            [] => return Err(GitError::State("empty path".into())),
            [name] => {
                if builder.get(name)?.is_none() {
                    return Err(GitError::State(format!("{name} is not in the commit")));
                }
                builder.remove(name)?;
            }
            [dir, rest @ ..] => {
                let sub = match base.get_name(dir) {
                    Some(entry) if entry.kind() == Some(git2::ObjectType::Tree) => {
                        self.repo.find_tree(entry.id())?
                    }
                    _ => return Err(GitError::State(format!("{dir}/ is not in the commit"))),
                };
                match self.remove(&sub, rest)? {
                    Some(id) => {
                        builder.insert(dir, id, 0o040000)?;
                    }
                    None => builder.remove(dir)?,
                }
            }
        }
        if builder.is_empty() {
            Ok(None)
        } else {
            Ok(Some(builder.write()?))
        }
    }

    /// `git fetch --prune origin +refs/heads/*:refs/remotes/origin/*`.
    pub fn fetch(&self) -> Result<(), GitError> {
        self.git(&[
            "fetch",
            "--quiet",
            "--prune",
            REMOTE,
            &format!("+refs/heads/*:refs/remotes/{REMOTE}/*"),
        ])
        .map(|_| ())
    }

    /// Whether the repository has the remote unitsync pushes to.
    pub fn has_remote(&self) -> bool {
        self.repo.find_remote(REMOTE).is_ok()
    }

    /// The repository's git directory shared by all its worktrees (`.git`).
    pub fn common_dir(&self) -> &Path {
        self.repo.commondir()
    }

    /// Fetches the remote's `reference` (a full name, `refs/…`) and returns the commit it points
    /// at, or `None` when the remote has no such reference. The commit is kept locally under
    /// `refs/unitsync/fetched/…` so it can be read.
    pub fn fetch_ref(&self, reference: &str) -> Result<Option<Oid>, GitError> {
        let local = format!(
            "refs/unitsync/fetched/{}",
            reference.trim_start_matches("refs/")
        );
        let args = [
            "fetch",
            "--quiet",
            "--no-tags",
            REMOTE,
            &format!("+{reference}:{local}"),
        ];
        let output = self.run(&args)?;
        if !output.status.success() {
            let message = String::from_utf8_lossy(&output.stderr).trim().to_string();
            if message.contains("couldn't find remote ref") {
                return Ok(None);
            }
            return Err(GitError::Command {
                command: args.join(" "),
                message,
            });
        }
        Ok(Some(
            self.repo.find_reference(&local)?.peel_to_commit()?.id(),
        ))
    }

    /// The full message of `commit`.
    pub fn commit_message(&self, commit: Oid) -> Result<String, GitError> {
        Ok(String::from_utf8_lossy(self.repo.find_commit(commit)?.message_bytes()).into_owned())
    }

    /// The commit `origin/<branch>` points at (after a [`fetch`](Self::fetch)).
    pub fn remote_branch(&self, branch: &str) -> Option<Oid> {
        self.repo
            .find_reference(&format!("refs/remotes/{REMOTE}/{branch}"))
            .ok()?
            .peel_to_commit()
            .ok()
            .map(|c| c.id())
    }

    /// The text of `path` in `commit`, or `None` when the file does not exist there.
    pub fn read_file(&self, commit: Oid, path: &str) -> Result<Option<String>, GitError> {
        let tree = self.repo.find_commit(commit)?.tree()?;
        let entry = match tree.get_path(Path::new(path)) {
            Ok(entry) => entry,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let blob = entry.to_object(&self.repo)?.peel_to_blob()?;
        Ok(Some(String::from_utf8_lossy(blob.content()).into_owned()))
    }

    /// Makes a commit whose parent is `parent` and whose tree is `parent`'s with `files`
    /// (repo-relative path, contents) written in. No reference, index or working-tree file is
    /// touched; push the returned commit to publish it.
    pub fn commit_files(
        &self,
        parent: Oid,
        files: &[(String, Vec<u8>)],
        message: &str,
    ) -> Result<Oid, GitError> {
        let parent = self.repo.find_commit(parent)?;
        let mut tree = parent.tree()?.id();
        for (path, contents) in files {
            let blob = self.repo.blob(contents)?;
            let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
            let base = self.repo.find_tree(tree)?;
            tree = self.insert(Some(&base), &parts, blob)?;
        }
        let tree = self.repo.find_tree(tree)?;
        let signature = Signature::now(AUTHOR_NAME, AUTHOR_EMAIL)?;
        Ok(self
            .repo
            .commit(None, &signature, &signature, message, &tree, &[&parent])?)
    }

    fn insert(
        &self,
        base: Option<&git2::Tree<'_>>,
        parts: &[&str],
        blob: Oid,
    ) -> Result<Oid, GitError> {
        let mut builder = self.repo.treebuilder(base)?;
        match parts {
            [] => Err(GitError::State("empty path".into())),
            [name] => {
                builder.insert(name, blob, 0o100644)?;
                Ok(builder.write()?)
            }
            [dir, rest @ ..] => {
                let sub = match base.and_then(|t| t.get_name(dir)) {
                    Some(entry) if entry.kind() == Some(git2::ObjectType::Tree) => {
                        Some(self.repo.find_tree(entry.id())?)
                    }
                    _ => None,
                };
                let sub = self.insert(sub.as_ref(), rest, blob)?;
                builder.insert(dir, sub, 0o040000)?;
                Ok(builder.write()?)
            }
        }
    }

    /// Whether the file at `path` is the same in both commits.
    pub fn same_file(&self, a: Oid, b: Oid, path: &str) -> Result<bool, GitError> {
        Ok(self.read_file(a, path)? == self.read_file(b, path)?)
    }

    /// The commit's first parent.
    pub fn parent(&self, commit: Oid) -> Result<Option<Oid>, GitError> {
        Ok(self.repo.find_commit(commit)?.parent_ids().next())
    }

    /// Commits reachable from `tip` but not from `base` whose author is not unitsync: someone
    /// edited the branch.
    pub fn foreign_commits(&self, tip: Oid, base: Oid) -> Result<Vec<ForeignCommit>, GitError> {
        let mut walk = self.repo.revwalk()?;
        walk.push(tip)?;
        walk.hide(base)?;
        let mut foreign = Vec::new();
        for oid in walk {
            let commit = self.repo.find_commit(oid?)?;
            let author = commit.author();
            if author.email_bytes() != AUTHOR_EMAIL.as_bytes() {
                foreign.push(ForeignCommit {
                    sha: commit.id().to_string(),
                    author: String::from_utf8_lossy(author.name_bytes()).into_owned(),
                    summary: String::from_utf8_lossy(commit.summary_bytes().unwrap_or_default())
                        .into_owned(),
                });
            }
        }
        Ok(foreign)
    }

    /// Whether `ancestor` is `descendant` or one of its ancestors.
    pub fn is_ancestor(&self, ancestor: Oid, descendant: Oid) -> Result<bool, GitError> {
        Ok(ancestor == descendant || self.repo.graph_descendant_of(descendant, ancestor)?)
    }

    /// The paths (repo-relative, `/`-separated) whose contents differ between two commits.
    pub fn changed_paths(&self, a: Oid, b: Oid) -> Result<Vec<String>, GitError> {
        let a = self.repo.find_commit(a)?.tree()?;
        let b = self.repo.find_commit(b)?.tree()?;
        let diff = self.repo.diff_tree_to_tree(Some(&a), Some(&b), None)?;
        Ok(diff
            .deltas()
            .flat_map(|d| [d.old_file().path(), d.new_file().path()])
            .flatten()
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect())
    }

    /// Pushes `commit` to `refs/heads/<branch>` on the remote. With `lease`, the push replaces
    /// the branch only if it still points at that commit (`None` inside: only if it does not
    /// exist) — a force-push that cannot overwrite work it has not seen. Without `lease`, only
    /// a fast-forward is accepted.
    pub fn push(
        &self,
        commit: Oid,
        branch: &str,
        lease: Option<Option<Oid>>,
    ) -> Result<Push, GitError> {
        self.push_ref(Some(commit), &format!("refs/heads/{branch}"), lease)
    }

    /// Points the remote's `reference` (a full name, `refs/…`) at `commit`, or deletes it when
    /// `commit` is `None`, under the same `lease` rule as [`push`](Self::push). The remote checks
    /// the lease and updates the reference in one step, so of two pushes expecting the same old
    /// value only one succeeds.
    pub fn push_ref(
        &self,
        commit: Option<Oid>,
        reference: &str,
        lease: Option<Option<Oid>>,
    ) -> Result<Push, GitError> {
        let refspec = format!(
            "{}:{reference}",
            commit.map(|c| c.to_string()).unwrap_or_default()
        );
        let lease_arg = lease.map(|expected| {
            format!(
                "--force-with-lease={reference}:{}",
                expected.map(|o| o.to_string()).unwrap_or_default()
            )
        });
        let mut args = vec!["push", "--porcelain"];
        if let Some(arg) = &lease_arg {
            args.push(arg);
        }
        args.push(REMOTE);
        args.push(&refspec);
        let output = self.run(&args)?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if output.status.success() {
            return Ok(Push::Pushed);
        }
        let rejected = [
            "[rejected]",
            "non-fast-forward",
            "fetch first",
            "stale info",
            // Lost a race the remote settled while updating the reference.
            "cannot lock ref",
        ]
        .iter()
        .any(|needle| text.contains(needle));
        if rejected {
            Ok(Push::Rejected(text.trim().to_string()))
        } else {
            Err(GitError::Command {
                command: args.join(" "),
                message: text.trim().to_string(),
            })
        }
    }

    /// Points the current branch at `commit` and makes the index and working tree match it
    /// (after a history commit was pushed, so the checkout shows what the remote holds).
    pub fn reset_hard(&self, commit: Oid) -> Result<(), GitError> {
        let object = self.repo.find_object(commit, None)?;
        self.repo.reset(&object, git2::ResetType::Hard, None)?;
        Ok(())
    }

    fn git(&self, args: &[&str]) -> Result<String, GitError> {
        let output = self.run(args)?;
        if !output.status.success() {
            return Err(GitError::Command {
                command: args.join(" "),
                message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn run(&self, args: &[&str]) -> Result<std::process::Output, GitError> {
        tracing::debug!(?args, "git");
        Command::new("git")
            .arg("-C")
            .arg(&self.workdir)
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .map_err(|e| GitError::Command {
                command: args.join(" "),
                message: format!("cannot run git: {e} (is git installed?)"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_nested_files_without_touching_the_checkout() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let sig = Signature::now("t", "t@example.com").unwrap();
        let mut index = repo.index().unwrap();
        std::fs::write(dir.path().join("a.txt"), "a\n").unwrap();
        index.add_path(Path::new("a.txt")).unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let first = repo
            .commit(Some("HEAD"), &sig, &sig, "first", &tree, &[])
            .unwrap();

        let git = GitRepo::open(dir.path()).unwrap();
        let second = git
            .commit_files(
                first,
                &[
                    ("history/2026/11/x.yaml".into(), b"x\n".to_vec()),
                    ("history/2026/12/y.yaml".into(), b"y\n".to_vec()),
                    ("a.txt".into(), b"b\n".to_vec()),
                ],
                "msg",
            )
            .unwrap();
        assert_eq!(git.head_commit().unwrap(), first);
        assert_eq!(
            git.read_file(second, "a.txt").unwrap().as_deref(),
            Some("b\n")
        );
        assert_eq!(
            git.read_file(second, "history/2026/11/x.yaml")
                .unwrap()
                .as_deref(),
            Some("x\n")
        );
        assert_eq!(
            git.read_file(second, "history/2026/12/y.yaml")
                .unwrap()
                .as_deref(),
            Some("y\n")
        );
        assert_eq!(
            git.read_file(first, "history/2026/11/x.yaml").unwrap(),
            None
        );
        assert!(git.foreign_commits(second, first).unwrap().is_empty());
        assert_eq!(git.foreign_commits(first, second).unwrap().len(), 0);
        assert_eq!(git.parent(second).unwrap(), Some(first));
    }
}
