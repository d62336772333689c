//! [`Review`] on GitHub, through octocrab.
//!
//! The API base comes from `GITHUB_API_URL` (set by GitHub Actions, also on GitHub Enterprise
//! Server; default `https://api.github.com`), the token from `GITHUB_TOKEN`, and the repository
//! from `github.repository` in `unitsync.yaml` or `GITHUB_REPOSITORY`.
//!
//! Responses are read into small local structs through octocrab's generic `get`/`post`/`patch`
//! rather than octocrab's full models: those require every URL field of every user object, and
//! unitsync reads five fields. The token is a [`SecretString`]: it is never printed and octocrab
//! sends it only to the configured API base.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::{MergedPull, PullRequest, Review, ReviewError};
use crate::config::GitHubSettings;
use crate::redact::Redactor;

pub const ENV_API_URL: &str = "GITHUB_API_URL";
pub const ENV_TOKEN: &str = "GITHUB_TOKEN";
pub const ENV_REPOSITORY: &str = "GITHUB_REPOSITORY";
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// Where and as whom to talk to GitHub.
#[derive(Clone)]
pub struct GitHubConfig {
    pub api_url: String,
    pub token: SecretString,
    pub owner: String,
    pub repo: String,
}

impl std::fmt::Debug for GitHubConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubConfig")
            .field("api_url", &self.api_url)
            .field("token", &"[redacted]")
            .field("owner", &self.owner)
            .field("repo", &self.repo)
            .finish()
    }
}

impl GitHubConfig {
    /// From the settings and the environment. `Ok(None)` when no token is set (GitHub is then
    /// not used); an error when a token is set but the repository is unknown or malformed.
    pub fn from_env(
        settings: Option<&GitHubSettings>,
    ) -> Result<Option<GitHubConfig>, ReviewError> {
        let token = match std::env::var(ENV_TOKEN) {
            Ok(token) if !token.trim().is_empty() => SecretString::from(token.trim().to_string()),
            _ => return Ok(None),
        };
        let repository = settings
            .map(|s| s.repository.clone())
            .or_else(|| std::env::var(ENV_REPOSITORY).ok())
            .filter(|r| !r.trim().is_empty())
            .ok_or_else(|| {
                ReviewError::Config(format!(
                    "no GitHub repository: set `github: {{ repository: owner/name }}` in unitsync.yaml or {ENV_REPOSITORY}"
                ))
            })?;
        let Some((owner, repo)) = repository
            .trim()
            .split_once('/')
            .filter(|(o, r)| !o.is_empty() && !r.is_empty() && !r.contains('/'))
        else {
            return Err(ReviewError::Config(format!(
                "GitHub repository {repository:?} is not of the form owner/name"
            )));
        };
        let api_url = std::env::var(ENV_API_URL)
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_API_URL.to_string());
        Ok(Some(GitHubConfig {
            api_url: api_url.trim_end_matches('/').to_string(),
            token,
            owner: owner.to_string(),
            repo: repo.to_string(),
        }))
    }
}

/// GitHub pull requests for one repository.
pub struct GitHub {
    crab: octocrab::Octocrab,
    owner: String,
    repo: String,
    /// Removes the token from anything GitHub (or a proxy in between) sends back.
    redactor: Redactor,
}

/// The fields of a GitHub pull-request object unitsync reads.
#[derive(Debug, Deserialize)]
struct WirePull {
    number: u64,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    merged_at: Option<String>,
    #[serde(default)]
    merge_commit_sha: Option<String>,
    #[serde(default)]
    merged_by: Option<WireUser>,
}

#[derive(Debug, Deserialize)]
struct WireUser {
    login: String,
}

impl From<WirePull> for PullRequest {
    fn from(p: WirePull) -> Self {
        PullRequest {
            number: p.number,
            title: p.title.unwrap_or_default(),
            body: p.body.unwrap_or_default(),
            html_url: p.html_url,
        }
    }
}

#[derive(Serialize)]
struct ListQuery<'a> {
    state: &'a str,
    head: String,
    sort: &'a str,
    direction: &'a str,
    per_page: u32,
}

impl GitHub {
    pub fn new(config: &GitHubConfig) -> Result<GitHub, ReviewError> {
        // Only ring is compiled in; installing it is harmless when already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let crab = octocrab::Octocrab::builder()
            .base_uri(config.api_url.as_str())
            .map_err(|e| {
                ReviewError::Config(format!(
                    "{ENV_API_URL}={:?} is not a URL: {e}",
                    config.api_url
                ))
            })?
            .personal_token(config.token.clone())
            .set_connect_timeout(Some(std::time::Duration::from_secs(10)))
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .build()
            .map_err(|e| ReviewError::Config(format!("cannot start the GitHub client: {e}")))?;
        Ok(GitHub {
            crab,
            owner: config.owner.clone(),
            repo: config.repo.clone(),
            redactor: Redactor::new(vec![config.token.clone()]),
        })
    }

    fn pulls_route(&self) -> String {
        format!("/repos/{}/{}/pulls", self.owner, self.repo)
    }

    fn list_query<'a>(&self, state: &'a str, branch: &str) -> ListQuery<'a> {
        ListQuery {
            state,
            head: format!("{}:{branch}", self.owner),
            sort: "updated",
            direction: "desc",
            per_page: 30,
        }
    }

    async fn list(&self, state: &str, branch: &str) -> Result<Vec<WirePull>, ReviewError> {
        self.crab
            .get(self.pulls_route(), Some(&self.list_query(state, branch)))
            .await
            .map_err(|e| self.api_error(&format!("list {state} pull requests for {branch}"), e))
    }

    /// The error of one API call: what unitsync was doing, GitHub's message (redacted: a server
    /// may echo the request's `Authorization` header) and its HTTP status, with a hint.
    fn api_error(&self, operation: &str, e: octocrab::Error) -> ReviewError {
        let message = match &e {
            octocrab::Error::GitHub { source, .. } => {
                let status = source.status_code.as_u16();
                let hint = match status {
                    401 => "; check GITHUB_TOKEN",
                    403 | 404 => {
                        "; check the repository name and that the token may write contents and pull requests \
                         (in an Action: `permissions: { contents: write, pull-requests: write }` and the setting \
                         \"Allow GitHub Actions to create and approve pull requests\")"
                    }
                    _ => "",
                };
                format!(
                    "{} (HTTP {status}){hint}",
                    self.redactor.redact(&source.message)
                )
            }
            other => self.redactor.redact(&other.to_string()),
        };
        ReviewError::Api {
            operation: operation.to_string(),
            message,
        }
    }
}

impl Review for GitHub {
    async fn open_pull(&self, branch: &str) -> Result<Option<PullRequest>, ReviewError> {
        Ok(self
            .list("open", branch)
            .await?
            .into_iter()
            .next()
            .map(PullRequest::from))
    }

    async fn create_pull(
        &self,
        branch: &str,
        base: &str,
        title: &str,
        body: &str,
    ) -> Result<PullRequest, ReviewError> {
        let request = serde_json::json!({
            "title": title,
            "head": branch,
            "base": base,
            "body": body,
        });
        let pull: WirePull = self
            .crab
            .post(self.pulls_route(), Some(&request))
            .await
            .map_err(|e| self.api_error("create a pull request", e))?;
        Ok(pull.into())
    }

    async fn update_pull(
        &self,
        number: u64,
        title: &str,
        body: &str,
    ) -> Result<PullRequest, ReviewError> {
        let request = serde_json::json!({ "title": title, "body": body });
        let pull: WirePull = self
            .crab
            .patch(format!("{}/{number}", self.pulls_route()), Some(&request))
            .await
            .map_err(|e| self.api_error(&format!("update pull request #{number}"), e))?;
        Ok(pull.into())
    }

    async fn last_closed_unmerged(&self, branch: &str) -> Result<Option<PullRequest>, ReviewError> {
        Ok(self
            .list("closed", branch)
            .await?
            .into_iter()
            .find(|p| p.merged_at.is_none())
            .map(PullRequest::from))
    }

    async fn pull_for_commit(&self, sha: &str) -> Result<Option<MergedPull>, ReviewError> {
        let route = format!("/repos/{}/{}/commits/{sha}/pulls", self.owner, self.repo);
        let pulls: Vec<WirePull> =
            self.crab.get(route, None::<&()>).await.map_err(|e| {
                self.api_error(&format!("find the pull request of commit {sha}"), e)
            })?;
        // Prefer the pull request this commit is the merge of; else any merged one containing it.
        let Some(pull) = pulls
            .iter()
            .find(|p| p.merged_at.is_some() && p.merge_commit_sha.as_deref() == Some(sha))
            .or_else(|| pulls.iter().find(|p| p.merged_at.is_some()))
        else {
            return Ok(None);
        };
        // The list gives "simple" pull requests, which do not say who merged: ask for the one.
        let full: WirePull = self
            .crab
            .get(
                format!("{}/{}", self.pulls_route(), pull.number),
                None::<&()>,
            )
            .await
            .map_err(|e| self.api_error(&format!("read pull request #{}", pull.number), e))?;
        Ok(Some(MergedPull {
            number: full.number,
            merged_by: full.merged_by.map(|u| u.login),
        }))
    }
}
