//! `plan --github-comment` and `apply --expect-digest-from-pr` against a real HTTP server on
//! 127.0.0.1 that plays the GitHub REST API.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::common::{ACCOUNT, Env, run};

const TOKEN: &str = "ghs_test_token_never_printed";
/// A token like Actions' installation token: `GET /user` is refused, comments are signed by
/// `github-actions[bot]`.
const ACTIONS_TOKEN: &str = "ghs_actions_installation_token";

#[derive(Default)]
struct Fake {
    /// (id, body, author)
    comments: Vec<(u64, String, String)>,
    authorizations: Vec<String>,
    requests: Vec<String>,
}

/// A fake GitHub API for repository `acme/access`, pull request 7 merged as commit `abc123`.
struct Server {
    url: String,
    state: Arc<Mutex<Fake>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start() -> Server {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let url = format!("http://{}", server.server_addr().to_ip().unwrap());
        let state = Arc::new(Mutex::new(Fake::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                let Ok(Some(mut request)) = server.recv_timeout(Duration::from_millis(50)) else {
                    continue;
                };
                let mut body = String::new();
                request.as_reader().read_to_string(&mut body).unwrap();
                let (status, reply) = handle(&s, &request, &body);
                crate::common::http::respond_closing(request, status, &[], &reply);
            }
        });
        Server {
            url,
            state,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn handle(state: &Mutex<Fake>, request: &tiny_http::Request, body: &str) -> (u16, String) {
    let mut fake = state.lock().unwrap();
    let auth = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .map(|h| h.value.to_string())
        .unwrap_or_default();
    fake.authorizations.push(auth.clone());
    let url = request.url().to_string();
    fake.requests.push(format!("{} {url}", request.method()));
    let path = url.split('?').next().unwrap().to_string();
    let page = url.contains("page=1");
    let author = if auth == format!("Bearer {ACTIONS_TOKEN}") {
        "github-actions[bot]"
    } else {
        "portico-bot"
    };
    let json_body = || {
        serde_json::from_str::<serde_json::Value>(body).unwrap()["body"]
            .as_str()
            .unwrap()
            .to_string()
    };
    match (request.method(), path.as_str()) {
        (tiny_http::Method::Get, "/repos/acme/access/issues/7/comments") => {
            let list: Vec<_> = if page {
                fake.comments
                    .iter()
                    .map(|(id, b, who)| serde_json::json!({ "id": id, "body": b, "user": { "login": who } }))
                    .collect()
            } else {
                Vec::new()
            };
            (200, serde_json::to_string(&list).unwrap())
        }
        (tiny_http::Method::Post, "/repos/acme/access/issues/7/comments") => {
            let id = 100 + fake.comments.len() as u64;
            fake.comments.push((id, json_body(), author.to_string()));
            (
                201,
                serde_json::json!({ "id": id, "body": json_body() }).to_string(),
            )
        }
        (tiny_http::Method::Patch, p) if p.starts_with("/repos/acme/access/issues/comments/") => {
            let id: u64 = p.rsplit('/').next().unwrap().parse().unwrap();
            let new = json_body();
            let comment = fake.comments.iter_mut().find(|(i, _, _)| *i == id).unwrap();
            if comment.2 != author {
                return (
                    403,
                    r#"{"message": "Resource not accessible by integration"}"#.into(),
                );
            }
            comment.1 = new.clone();
            (
                200,
                serde_json::json!({ "id": id, "body": new }).to_string(),
            )
        }
        (tiny_http::Method::Get, "/user") if author == "portico-bot" => {
            (200, r#"{"login": "portico-bot"}"#.to_string())
        }
        (tiny_http::Method::Get, "/user") => (
            403,
            r#"{"message": "Resource not accessible by integration"}"#.to_string(),
        ),
        (tiny_http::Method::Get, "/repos/acme/access/commits/abc123/pulls") => (
            200,
            r#"[{"number": 7, "merged_at": "2026-11-23T10:00:00Z", "merge_commit_sha": "abc123"}]"#
                .to_string(),
        ),
        // A commit that is only on an open (unmerged) pull request.
        (tiny_http::Method::Get, "/repos/acme/access/commits/def456/pulls") => (
            200,
            r#"[{"number": 7, "merged_at": null, "merge_commit_sha": "zzz"}]"#.to_string(),
        ),
        _ => (404, r#"{"message": "Not Found"}"#.to_string()),
    }
}

/// `apply --expect-digest-from-pr` as the push-to-main job runs it for merge commit `abc123`.
fn merge_apply(env: &Env, server: &Server) -> assert_cmd::Command {
    let mut cmd = env.portico(&[
        "apply",
        "-f",
        "manifests",
        "--auto-approve",
        "--expect-digest-from-pr",
    ]);
    github_env(&mut cmd, server);
    cmd.env("GITHUB_SHA", "abc123");
    cmd
}

fn github_env(cmd: &mut assert_cmd::Command, server: &Server) {
    cmd.env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_API_URL", &server.url)
        .env("GITHUB_REPOSITORY", "acme/access")
        .env("PORTICO_PR_NUMBER", "7");
}

#[test]
fn plan_comments_once_and_updates_the_same_comment() {
    let server = Server::start();
    let env = Env::sqlite();
    env.write("account.yaml", ACCOUNT);
    let mut cmd = env.portico(&["plan", "-f", "manifests", "--github-comment"]);
    github_env(&mut cmd, &server);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Plan posted on pull request #7"), "{err}");
    {
        let fake = server.state.lock().unwrap();
        assert_eq!(fake.comments.len(), 1);
        assert!(fake.comments[0].1.starts_with("<!-- portico-plan -->"));
        assert_eq!(fake.comments[0].2, "portico-bot");
        assert!(fake.comments[0].1.contains("Plan: 6 to create"));
        assert!(
            fake.authorizations
                .iter()
                .all(|a| a == &format!("Bearer {TOKEN}"))
        );
    }
    // A new push to the pull request updates the same comment.
    env.write("account.yaml", &ACCOUNT.replace("Beta GmbH", "Beta AG"));
    let mut cmd = env.portico(&["plan", "-f", "manifests", "--github-comment"]);
    github_env(&mut cmd, &server);
    let (code, out2, err2) = run(cmd);
    assert_eq!(code, 0, "{err2}");
    let fake = server.state.lock().unwrap();
    assert_eq!(fake.comments.len(), 1, "{:?}", fake.requests);
    assert!(fake.comments[0].1.contains("Beta AG"));
    assert!(
        fake.requests
            .iter()
            .any(|r| r.starts_with("PATCH /repos/acme/access/issues/comments/100")),
        "{:?}",
        fake.requests
    );
    for text in [&out, &err, &out2, &err2] {
        assert!(!text.contains(TOKEN));
    }
}

#[test]
fn apply_reads_the_reviewed_digest_from_the_merged_pull_request() {
    let server = Server::start();
    let env = Env::sqlite();
    env.write("account.yaml", ACCOUNT);
    let mut cmd = env.portico(&["plan", "-f", "manifests", "--github-comment"]);
    github_env(&mut cmd, &server);
    assert_eq!(run(cmd).0, 0);

    // The merge commit brings a change nobody reviewed: refused, nothing applied.
    env.write("account.yaml", &ACCOUNT.replace("Beta GmbH", "Beta AG"));
    let cmd = merge_apply(&env, &server);
    let (code, _, err) = run(cmd);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("as reviewed on pull request #7"), "{err}");
    assert!(env.dump().is_empty());

    env.write("account.yaml", ACCOUNT);
    let mut cmd = merge_apply(&env, &server);
    cmd.arg("--github-comment");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Apply complete"), "{out}");
    assert!(!out.contains(TOKEN) && !err.contains(TOKEN));
    // The result is posted back on the merged pull request.
    assert!(
        err.contains("Apply result posted on pull request #7"),
        "{err}"
    );
    let fake = server.state.lock().unwrap();
    assert!(
        fake.comments
            .iter()
            .any(|(_, body, _)| body.contains("### portico apply 1") && body.contains("6 created")),
        "{:?}",
        fake.comments
    );
}

#[test]
fn github_errors_are_clear() {
    let env = Env::sqlite();
    env.write("account.yaml", ACCOUNT);
    let mut cmd = env.portico(&["plan", "-f", "manifests", "--github-comment", "--pr", "7"]);
    cmd.env_remove("GITHUB_TOKEN");
    let (code, _, err) = run(cmd);
    assert_eq!(code, 1);
    assert!(err.contains("GITHUB_TOKEN is not set"), "{err}");

    let server = Server::start();
    let mut cmd = env.portico(&["plan", "-f", "manifests", "--github-comment"]);
    github_env(&mut cmd, &server);
    cmd.env("GITHUB_REPOSITORY", "acme/unknown");
    let (code, _, err) = run(cmd);
    assert_eq!(code, 1);
    assert!(err.contains("404 Not Found: Not Found"), "{err}");
    assert!(!err.contains(TOKEN), "{err}");
}

/// Somebody else's comment with portico's marker and the digest of a plan nobody reviewed,
/// listed first (as an older comment would be).
fn forge(server: &Server, digest: &str) {
    let mut fake = server.state.lock().unwrap();
    let body = format!("<!-- portico-plan -->\n<!-- portico-digest: {digest} -->\nlooks good");
    fake.comments.insert(0, (99, body, "mallory".into()));
}

#[test]
fn a_forged_plan_comment_never_counts() {
    let server = Server::start();
    let env = Env::sqlite();
    env.write("account.yaml", ACCOUNT);
    let mut cmd = env.portico(&["plan", "-f", "manifests", "--github-comment"]);
    github_env(&mut cmd, &server);
    assert_eq!(run(cmd).0, 0);
    // A later push changes the manifests; mallory posts that plan's digest under the marker.
    env.write("account.yaml", &ACCOUNT.replace("Beta GmbH", "Evil AG"));
    let (_, out, _) = env.plan(&[]);
    let unreviewed = out
        .lines()
        .find_map(|l| l.strip_prefix("Plan digest: "))
        .unwrap()
        .to_string();
    forge(&server, &unreviewed);
    let (code, _, err) = run(merge_apply(&env, &server));
    assert_eq!(code, 3, "the forged digest must not be trusted: {err}");
    assert!(env.dump().is_empty(), "nothing applied");
    // plan --github-comment never edits mallory's comment: it updates its own.
    let mut cmd = env.portico(&["plan", "-f", "manifests", "--github-comment"]);
    github_env(&mut cmd, &server);
    let (code, _, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    let fake = server.state.lock().unwrap();
    assert!(
        fake.comments
            .iter()
            .any(|(_, b, who)| who == "mallory" && b.contains("looks good"))
    );
    assert_eq!(
        fake.comments
            .iter()
            .filter(|(_, _, who)| who == "portico-bot")
            .count(),
        1
    );
}

#[test]
fn only_a_merged_pull_request_counts() {
    let server = Server::start();
    let env = Env::sqlite();
    env.write("account.yaml", ACCOUNT);
    let mut cmd = env.portico(&["plan", "-f", "manifests", "--github-comment"]);
    github_env(&mut cmd, &server);
    assert_eq!(run(cmd).0, 0);
    let mut cmd = merge_apply(&env, &server);
    cmd.env("GITHUB_SHA", "def456");
    let (code, _, err) = run(cmd);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no merged pull request has commit def456"),
        "{err}"
    );
    assert!(env.dump().is_empty());
}

#[test]
fn an_actions_token_comments_as_the_actions_bot() {
    let server = Server::start();
    let env = Env::sqlite();
    env.write("account.yaml", ACCOUNT);
    for _ in 0..2 {
        let mut cmd = env.portico(&["plan", "-f", "manifests", "--github-comment"]);
        github_env(&mut cmd, &server);
        cmd.env("GITHUB_TOKEN", ACTIONS_TOKEN);
        assert_eq!(run(cmd).0, 0);
    }
    {
        let fake = server.state.lock().unwrap();
        assert_eq!(
            fake.comments.len(),
            1,
            "updated, not posted twice: {:?}",
            fake.requests
        );
        assert_eq!(fake.comments[0].2, "github-actions[bot]");
    }
    let mut cmd = merge_apply(&env, &server);
    cmd.env("GITHUB_TOKEN", ACTIONS_TOKEN);
    let (code, _, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
}

/// The pull-request comment read by GitHub's own Markdown renderer (cmark-gfm, through the
/// `cmarkgfm` wheel): ids that hold backticks stay inside their code span, `@name` and
/// `#123` in warnings reach no one, and the comment says which changes send an email.
#[test]
fn the_markdown_plan_pings_nobody_and_keeps_ids_in_their_code_spans() {
    let env = Env::sqlite();
    // An expiry two days away gives a warning that names the email: `@octocat` in it.
    let soon = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(50))
        .strftime("%Y-%m-%d")
        .to_string();
    env.write(
        "a.yaml",
        &format!(
            "features: {{ customer_access: true }}
notifications: {{ url: \"https://mail.example/hook\", login_url: \"https://c.example/login\" }}
roles:
  - {{ id: \"unused @octocat #123\", name: Unused }}
customers:
  - id: \"C`1 @octocat\"
    name: Acme
    email: ap@octocat.example
    access: {{ give_access: true, notify: true, expires: {soon} }}
"
        ),
    );
    let (code, markdown, err) = env.plan(&["--format", "markdown"]);
    assert_eq!(code, 0, "{err}");
    let python = std::env::var("PORTICO_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = std::process::Command::new(python)
        .args([
            "-c",
            "import sys, cmarkgfm; print(cmarkgfm.github_flavored_markdown_to_html(sys.stdin.read()))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with cmarkgfm: bash .ci/test installs it");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(markdown.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = String::from_utf8(out.stdout).unwrap();
    assert!(
        html.contains("<code>customer[&quot;C`1 @octocat&quot;]</code>"),
        "the id whole in one code span: {html}"
    );
    // Outside code, no sign is directly followed by a name or a number.
    let outside_code: String = html
        .split("<code>")
        .map(|part| part.split_once("</code>").map_or(part, |(_, rest)| rest))
        .collect();
    assert!(!outside_code.contains("@octocat"), "{outside_code}");
    assert!(!outside_code.contains("#123"), "{outside_code}");
    assert!(
        outside_code.contains("@\u{2060}octocat"),
        "still readable: {outside_code}"
    );
    assert!(html.contains("sends a new-access email"), "{html}");
    assert!(
        html.contains("A new-access email will be sent to this login."),
        "{html}"
    );
}
