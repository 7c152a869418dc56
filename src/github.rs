//! Pull-request comments through the GitHub REST API: post or update portico's one plan
//! comment, and read back the digest a merged pull request's comment showed.

use std::time::Duration;

use serde::Deserialize;

use crate::render::markdown::{MARKER, digest_in};

/// What can go wrong talking to GitHub. Messages never include the token.
#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    /// A setting the Actions environment normally provides is missing.
    #[error("{0}")]
    Missing(String),
    /// The request failed or GitHub answered with an error.
    #[error("GitHub API {what}: {reason}")]
    Api {
        /// Which call.
        what: String,
        /// Status or transport error.
        reason: String,
    },
    /// No plan comment was found where one was expected.
    #[error("{0}")]
    NotFound(String),
}

/// A repository on a GitHub API endpoint, with a token.
pub struct GitHub {
    api: String,
    repository: String,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct Comment {
    id: u64,
    body: Option<String>,
    user: Option<User>,
}

#[derive(Deserialize)]
struct User {
    login: String,
}

#[derive(Deserialize)]
struct PullRequest {
    number: u64,
    merged_at: Option<String>,
    merge_commit_sha: Option<String>,
}

/// Who writes with the `GITHUB_TOKEN` of GitHub Actions: its installation token cannot ask
/// `GET /user`, and its comments are signed by this bot.
pub const ACTIONS_BOT: &str = "github-actions[bot]";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl GitHub {
    /// Reads the API URL (`GITHUB_API_URL`, default `https://api.github.com`), the repository
    /// (`GITHUB_REPOSITORY`) and the token (`GITHUB_TOKEN`) from the environment.
    ///
    /// # Errors
    /// [`GitHubError::Missing`] naming what to set.
    pub fn from_env() -> Result<GitHub, GitHubError> {
        let token = env("GITHUB_TOKEN")
            .ok_or_else(|| GitHubError::Missing("GITHUB_TOKEN is not set: give the job a token (`env: GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}`)".into()))?;
        let repository = env("GITHUB_REPOSITORY").ok_or_else(|| {
            GitHubError::Missing("GITHUB_REPOSITORY is not set (owner/name)".into())
        })?;
        let api = env("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".into());
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut headers = reqwest::header::HeaderMap::new();
        let mut auth =
            reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                GitHubError::Missing("GITHUB_TOKEN holds characters a header cannot carry".into())
            })?;
        auth.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, auth);
        headers.insert(
            reqwest::header::ACCEPT,
            "application/vnd.github+json".parse().expect("static"),
        );
        headers.insert(
            "X-GitHub-Api-Version",
            "2022-11-28".parse().expect("static"),
        );
        let client = reqwest::Client::builder()
            .user_agent(concat!("portico/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| GitHubError::Api {
                what: "client".into(),
                reason: e.to_string(),
            })?;
        Ok(GitHub {
            api: api.trim_end_matches('/').to_string(),
            repository,
            client,
        })
    }

    async fn get<T: for<'de> Deserialize<'de>>(
        &self,
        what: &str,
        path: &str,
    ) -> Result<T, GitHubError> {
        let url = format!("{}/repos/{}{path}", self.api, self.repository);
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| api_error(what, &e))?;
        check(what, response)
            .await?
            .json()
            .await
            .map_err(|e| api_error(what, &e))
    }

    /// The login comments made with this token carry: `GET /user`, or the Actions bot when
    /// the token may not ask (an Actions installation token).
    async fn identity(&self) -> String {
        let response = self.client.get(format!("{}/user", self.api)).send().await;
        let user = match response {
            Ok(r) if r.status().is_success() => r.json::<User>().await.ok(),
            _ => None,
        };
        user.map_or_else(|| ACTIONS_BOT.to_string(), |u| u.login)
    }

    /// portico's plan comments on `pr` written by this token's identity, oldest first.
    /// Anyone can post a comment with the marker; only ours count.
    async fn own_plan_comments(&self, pr: u64) -> Result<Vec<Comment>, GitHubError> {
        let me = self.identity().await;
        Ok(self
            .comments(pr)
            .await?
            .into_iter()
            .filter(|c| c.user.as_ref().is_some_and(|u| u.login == me))
            .filter(|c| c.body.as_deref().is_some_and(|b| b.contains(MARKER)))
            .collect())
    }

    /// The pull request that merged `commit` (merged, with `commit` as its merge commit).
    async fn merged_pr(&self, commit: &str) -> Result<u64, GitHubError> {
        let pulls: Vec<PullRequest> = self
            .get(
                "finding the pull request",
                &format!("/commits/{commit}/pulls"),
            )
            .await?;
        pulls
            .iter()
            .find(|p| {
                p.merged_at.is_some()
                    && p.merge_commit_sha.as_deref().is_none_or(|sha| sha == commit)
            })
            .map(|p| p.number)
            .ok_or_else(|| {
                GitHubError::NotFound(format!(
                    "no merged pull request has commit {commit} as its merge commit; refusing to apply a plan nobody reviewed"
                ))
            })
    }

    /// Posts `body` as a new comment on the pull request that merged `commit` (the apply
    /// result). Returns the pull request number.
    ///
    /// # Errors
    /// [`GitHubError`] when no merged pull request is found or GitHub refuses.
    pub async fn comment_on_merged(&self, commit: &str, body: &str) -> Result<u64, GitHubError> {
        let pr = self.merged_pr(commit).await?;
        let what = "posting the apply result";
        let response = self
            .client
            .post(format!(
                "{}/repos/{}/issues/{pr}/comments",
                self.api, self.repository
            ))
            .json(&serde_json::json!({ "body": body }))
            .send()
            .await
            .map_err(|e| api_error(what, &e))?;
        check(what, response).await?;
        Ok(pr)
    }

    /// Every comment of a pull request (following pages).
    async fn comments(&self, pr: u64) -> Result<Vec<Comment>, GitHubError> {
        let mut all = Vec::new();
        for page in 1.. {
            let batch: Vec<Comment> = self
                .get(
                    "listing comments",
                    &format!("/issues/{pr}/comments?per_page=100&page={page}"),
                )
                .await?;
            let done = batch.len() < 100;
            all.extend(batch);
            if done {
                break;
            }
        }
        Ok(all)
    }

    /// Posts `body` on pull request `pr`, or updates portico's earlier comment there (found by
    /// its hidden marker). Returns the comment id.
    ///
    /// # Errors
    /// [`GitHubError::Api`] when GitHub refuses.
    pub async fn upsert_comment(&self, pr: u64, body: &str) -> Result<u64, GitHubError> {
        let existing = self.own_plan_comments(pr).await?.pop();
        let payload = serde_json::json!({ "body": body });
        let (what, request) = match &existing {
            Some(comment) => (
                "updating the plan comment",
                self.client.patch(format!(
                    "{}/repos/{}/issues/comments/{}",
                    self.api, self.repository, comment.id
                )),
            ),
            None => (
                "posting the plan comment",
                self.client.post(format!(
                    "{}/repos/{}/issues/{pr}/comments",
                    self.api, self.repository
                )),
            ),
        };
        let response = request
            .json(&payload)
            .send()
            .await
            .map_err(|e| api_error(what, &e))?;
        let comment: Comment = check(what, response)
            .await?
            .json()
            .await
            .map_err(|e| api_error(what, &e))?;
        Ok(comment.id)
    }

    /// The digest shown by portico's newest own plan comment on the pull request that
    /// merged `commit`. Comments by anyone else, and unmerged pull requests, never count.
    ///
    /// # Errors
    /// [`GitHubError::NotFound`] when no merged pull request or no plan comment is found.
    pub async fn digest_for_commit(&self, commit: &str) -> Result<(u64, String), GitHubError> {
        let pr = self.merged_pr(commit).await?;
        let digest = self
            .own_plan_comments(pr)
            .await?
            .into_iter()
            .rev()
            .filter_map(|c| c.body)
            .find_map(|b| digest_in(&b))
            .ok_or_else(|| {
                GitHubError::NotFound(format!(
                    "pull request #{pr} has no portico plan comment written by this token's identity"
                ))
            })?;
        Ok((pr, digest))
    }
}

fn api_error(what: &str, error: &reqwest::Error) -> GitHubError {
    // reqwest errors carry the URL, never headers, so the token cannot leak here.
    GitHubError::Api {
        what: what.into(),
        reason: error.without_url_ref().to_string(),
    }
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let mut text = self.to_string();
        if let Some(url) = self.url() {
            text = text.replace(url.as_str(), "");
        }
        text
    }
}

async fn check(what: &str, response: reqwest::Response) -> Result<reqwest::Response, GitHubError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or(body);
    Err(GitHubError::Api {
        what: what.into(),
        reason: format!("{status}: {message}"),
    })
}

/// The pull-request number of this CI run: `--pr`, else `PORTICO_PR_NUMBER`, else the
/// Actions event payload (`GITHUB_EVENT_PATH`), else `GITHUB_REF` (`refs/pull/N/merge`).
pub fn pr_number(flag: Option<u64>) -> Option<u64> {
    if flag.is_some() {
        return flag;
    }
    if let Some(n) = env("PORTICO_PR_NUMBER").and_then(|v| v.parse().ok()) {
        return Some(n);
    }
    let from_event = env("GITHUB_EVENT_PATH")
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|event| {
            event["pull_request"]["number"]
                .as_u64()
                .or(event["number"].as_u64())
        });
    from_event.or_else(|| {
        env("GITHUB_REF")?
            .strip_prefix("refs/pull/")?
            .split('/')
            .next()?
            .parse()
            .ok()
    })
}
