//! The CI flow under real conditions: schemas an independent validator accepts, exit codes
//! a workflow can trust, no implicit databases, hostile names shown as they are, and the
//! GitHub ergonomics (annotations, job summary). The scripts in `examples/ci/` run for real.

use std::path::{Path, PathBuf};

use crate::common::schema::Schema;
use crate::common::{ACCOUNT, Env, run};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn validator(name: &str) -> Schema {
    Schema::committed(name)
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

#[test]
fn every_example_and_fixture_manifest_passes_the_committed_schema_on_its_own() {
    let schema = validator("manifest");
    let mut files = Vec::new();
    yaml_files(&repo("examples/account"), &mut files);
    assert!(files.len() >= 5, "{files:?}");
    let mut texts: Vec<(String, String)> = files
        .iter()
        .map(|f| (f.display().to_string(), std::fs::read_to_string(f).unwrap()))
        .collect();
    texts.push(("ACCOUNT".into(), ACCOUNT.into()));
    texts.push((
        "features only".into(),
        "features: { customer_access: true }\n".into(),
    ));
    texts.push(("customers only".into(), "customers: []\n".into()));
    let mut documents = Vec::new();
    for (name, text) in texts {
        for document in serde_yaml::Deserializer::from_str(&text) {
            use serde::Deserialize;
            documents.push((
                name.clone(),
                serde_json::Value::deserialize(document).unwrap(),
            ));
        }
    }
    let values: Vec<serde_json::Value> = documents.iter().map(|d| d.1.clone()).collect();
    for (errors, (name, _)) in schema.errors_each(&values).iter().zip(&documents) {
        assert!(errors.is_empty(), "{name}: {errors:?}");
    }
}

#[test]
fn json_plans_with_every_password_source_pass_the_committed_schema() {
    let schema = validator("plan");
    let env = Env::sqlite();
    let hash = portico::passwords::hash("Pre-Hashed-Passw0rd").unwrap();
    std::fs::create_dir_all(env.path("manifests")).unwrap();
    std::fs::write(env.path("manifests/pw.txt"), "File-Passw0rd-123\n").unwrap();
    env.write(
        "a.yaml",
        &format!(
            "{ACCOUNT}  - id: C3\n    name: Three\n    email: three@x.example\n    access: {{ give_access: true, password: {{ argon2: \"{hash}\" }} }}\n    contacts:\n      - {{ email: f@x.example, access: true, password: {{ file: pw.txt }} }}\n      - {{ email: e@x.example, access: true, password: {{ env: CI_PW, reset: 2 }} }}\n"
        ),
    );
    let mut cmd = env.portico(&[
        "plan",
        "-f",
        "manifests",
        "--format",
        "json",
        "--out",
        "plan.json",
    ]);
    cmd.env("CI_PW", "Env-Passw0rd-1234");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    for text in [out, std::fs::read_to_string(env.path("plan.json")).unwrap()] {
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let errors = schema.errors(&value);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(!text.contains("$argon2id$"), "no hash in a plan");
        assert!(
            text.contains("{\n        \"argon2\": {}\n      }") || text.contains("\"argon2\": {}"),
            "{text}"
        );
    }
}

#[test]
fn usage_errors_exit_64_never_2() {
    let env = Env::sqlite();
    env.write("a.yaml", ACCOUNT);
    let (code, _, err) = run(env.portico(&["plan", "-f", "manifests", "--detailed-exitcod"]));
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("unexpected argument"), "{err}");
    assert_eq!(run(env.portico(&["plna"])).0, 64);
    assert_eq!(run(env.portico(&["plan", "--help"])).0, 0);
    assert_eq!(run(env.portico(&["--version"])).0, 0);
}

/// The shell of the example workflow's plan step, run with a stand-in `portico` that exits
/// with `code`: only 0 and 2 may pass.
#[test]
fn the_example_workflow_passes_exactly_0_and_2() {
    let workflow: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo("examples/ci/github-actions.yml")).unwrap(),
    )
    .unwrap();
    let step = workflow["jobs"]["plan"]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| s["name"].as_str() == Some("Plan"))
        .unwrap();
    let script = step["run"].as_str().unwrap();
    let bin = tempfile::tempdir().unwrap();
    for (code, passes) in [(0, true), (2, true), (1, false), (3, false), (64, false)] {
        let stub = bin.path().join("portico");
        std::fs::write(&stub, format!("#!/bin/sh\nexit {code}\n")).unwrap();
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(&stub)
            .status()
            .unwrap();
        let path = format!(
            "{}:{}",
            bin.path().display(),
            std::env::var("PATH").unwrap()
        );
        let status = std::process::Command::new("bash")
            .args(["-e", "-c", script])
            .env("PATH", path)
            .env("FROM_FORK", "false")
            .status()
            .unwrap();
        assert_eq!(status.success(), passes, "exit {code}");
    }
}

/// The example workflow and the release workflow: valid against GitHub's workflow schema
/// (check-jsonschema's vendored copy) and clean under zizmor's security audits (actions
/// pinned by SHA, no credentials kept by checkouts, no template injection, least
/// permissions). `.ci/test` installs both tools.
#[test]
fn the_workflows_are_valid_and_zizmor_clean() {
    let workflows = [
        repo("examples/ci/github-actions.yml"),
        repo(".github/workflows/release.yml"),
    ];
    let schema = std::process::Command::new("check-jsonschema")
        .args(["--builtin-schema", "vendor.github-workflows"])
        .args(&workflows)
        .output()
        .expect("check-jsonschema is installed (.ci/test installs it)");
    assert!(
        schema.status.success(),
        "{}{}",
        String::from_utf8_lossy(&schema.stdout),
        String::from_utf8_lossy(&schema.stderr)
    );
    let audit = std::process::Command::new("zizmor")
        .arg("--offline")
        .args(&workflows)
        .output()
        .expect("zizmor is installed (.ci/test installs it)");
    let said = String::from_utf8_lossy(&audit.stdout);
    assert!(
        audit.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    assert!(said.contains("No findings to report"), "{said}");
}

/// A release archive as `.ci/release` (the release workflow's step) packages it, served over
/// real HTTP, installed by the example workflow's install step: the right checksum installs
/// a working binary, a wrong one installs nothing.
#[test]
fn the_example_workflow_installs_a_release_archive_only_with_its_checksum() {
    let work = tempfile::tempdir().unwrap();
    let version = env!("CARGO_PKG_VERSION");
    let dist = work.path().join("releases").join(format!("v{version}"));
    let out = std::process::Command::new("bash")
        .arg(repo(".ci/release"))
        .arg(&dist)
        .arg(env!("CARGO_BIN_EXE_portico"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let host = String::from_utf8(
        std::process::Command::new("rustc")
            .arg("-vV")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .lines()
    .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
    .unwrap();
    let name = format!("portico-{version}-{host}");
    let archive = dist.join(format!("{name}.tar.gz"));
    // What the archive holds, listed by tar itself.
    let listing = String::from_utf8(
        std::process::Command::new("tar")
            .arg("-tzf")
            .arg(&archive)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for part in [
        "portico",
        "man/portico.1",
        "man/portico-plan.1",
        "completions/portico.bash",
        "LICENSE-MIT",
        "LICENSE-APACHE",
        "README.md",
    ] {
        assert!(
            listing.contains(&format!("{name}/{part}\n")),
            "{part} in {listing}"
        );
    }
    // Its .sha256 verifies with sha256sum.
    let check = std::process::Command::new("sha256sum")
        .args(["--check", "--strict", &format!("{name}.tar.gz.sha256")])
        .current_dir(&dist)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let sha = std::fs::read_to_string(dist.join(format!("{name}.tar.gz.sha256"))).unwrap();
    let sha = sha.split_whitespace().next().unwrap().to_string();

    // The install step (it names the x86_64 archive: GitHub's ubuntu-latest runners).
    if host != "x86_64-unknown-linux-gnu" {
        return;
    }
    let workflow: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo("examples/ci/github-actions.yml")).unwrap(),
    )
    .unwrap();
    let step = workflow["jobs"]["build"]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| s["name"].as_str() == Some("Install portico"))
        .unwrap();
    let script = step["run"].as_str().unwrap().to_string();
    let mut server = std::process::Command::new("python3")
        .args([
            "-u",
            "-m",
            "http.server",
            "0",
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(work.path().join("releases"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let port = {
        use std::io::BufRead as _;
        let mut line = String::new();
        std::io::BufReader::new(server.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port 43123 (http://127.0.0.1:43123/) ..."
        line.split(" port ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_string()
    };
    let install = |sha: &str| {
        let job = tempfile::tempdir().unwrap();
        let temp = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("bash")
            .args(["-c", &script])
            .current_dir(job.path())
            .env("PORTICO_VERSION", version)
            .env("PORTICO_SHA256", sha)
            .env("PORTICO_RELEASES", format!("http://127.0.0.1:{port}"))
            .env("RUNNER_TEMP", temp.path())
            .output()
            .unwrap();
        let installed = job.path().join("bin/portico");
        (out, installed.exists(), job)
    };
    let (out, installed, job) = install(&sha);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(installed);
    let version_out = std::process::Command::new(job.path().join("bin/portico"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&version_out.stdout).starts_with(&format!("portico {version}"))
    );
    let wrong = format!("{}0", &sha[..63]);
    let (out, installed, _job) =
        install(if wrong == sha { "0".repeat(64) } else { wrong }.as_str());
    assert!(!out.status.success(), "a wrong checksum must fail");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("FAILED"), "{said}");
    assert!(
        !installed,
        "nothing is installed from an archive that failed its checksum"
    );
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn apply_never_creates_a_database_nobody_named() {
    let env = Env::sqlite();
    env.write("a.yaml", ACCOUNT);
    let mut cmd = env.portico(&["apply", "-f", "manifests", "--auto-approve"]);
    cmd.env_remove("PORTICO_DATABASE_URL");
    let (code, _, err) = run(cmd);
    assert_eq!(code, 1);
    assert!(
        err.contains("none was named: apply never creates one implicitly"),
        "{err}"
    );
    assert!(!env.path("portico.db").exists());
    // Plan against the missing default says loudly that the account is empty.
    let mut cmd = env.portico(&["plan", "-f", "manifests"]);
    cmd.env_remove("PORTICO_DATABASE_URL");
    let (code, _, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("planning against an EMPTY account"), "{err}");
    assert!(!env.path("portico.db").exists());
    // Named explicitly, the file is created.
    let mut cmd = env.portico(&[
        "apply",
        "-f",
        "manifests",
        "--auto-approve",
        "--database",
        "sqlite://portico.db",
    ]);
    cmd.env_remove("PORTICO_DATABASE_URL");
    let (code, _, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    assert!(env.path("portico.db").exists());
}

#[test]
fn invisible_characters_are_shown_escaped_and_warned_about() {
    let env = Env::sqlite();
    env.write(
        "a.yaml",
        &ACCOUNT.replace("name: Beta GmbH", "name: \"Beta \\u202EHbmG\""),
    );
    let (code, out, _) = env.plan(&[]);
    assert_eq!(code, 0);
    assert!(out.contains("= \"Beta \\u{202e}HbmG\""), "{out}");
    assert!(
        !out.contains('\u{202E}'),
        "the raw override never reaches the terminal"
    );
    let (_, md, _) = env.plan(&["--format", "markdown"]);
    assert!(md.contains("Beta \\u{202e}HbmG"), "{md}");
    assert!(!md.contains('\u{202E}'));
    let (code, _, err) = run(env.portico(&["validate", "-f", "manifests"]));
    assert_eq!(code, 0, "a name is only warned about: {err}");
    assert!(
        err.contains("warning: `name` contains the invisible character U+202E"),
        "{err}"
    );
    // In an id or an email it is an error: keys must be what they look like.
    env.write(
        "a.yaml",
        &ACCOUNT.replace("id: CUST-0043", "id: \"CUST-0043\\u200B\""),
    );
    let (code, _, err) = run(env.portico(&["validate", "-f", "manifests"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("`id` contains the invisible character U+200B"),
        "{err}"
    );
}

#[test]
fn notify_without_an_endpoint_is_refused() {
    let env = Env::sqlite();
    env.write(
        "a.yaml",
        &ACCOUNT.replace("notifications:\n  url: http://127.0.0.1:9/portico\n  login_url: https://customers.example.com/login\n", ""),
    );
    let (code, _, err) = env.plan(&[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no `notifications:` endpoint is configured"),
        "{err}"
    );
    assert!(err.contains("manifests/a.yaml:"), "located: {err}");
    assert!(env.dump().is_empty());
}

#[test]
fn github_actions_gets_annotations_and_a_job_summary() {
    let env = Env::sqlite();
    env.write(
        "a.yaml",
        &ACCOUNT.replace("role: acme-center", "role: acme-centre"),
    );
    let mut cmd = env.portico(&["validate", "-f", "manifests"]);
    cmd.env("GITHUB_ACTIONS", "true");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 1);
    assert!(
        err.contains("::error file=manifests/a.yaml,line=24,col=13,title=portico::role `acme-centre` is not defined (help: did you mean `acme-center`?)"),
        "{err}"
    );
    assert!(
        !out.contains("::error"),
        "standard output stays clean: {out}"
    );
    // An empty value is named as empty, not shown as an empty code span.
    env.write(
        "a.yaml",
        &ACCOUNT.replace(
            "login_url: https://customers.example.com/login",
            "login_url: \"\"",
        ),
    );
    let mut cmd = env.portico(&["validate", "-f", "manifests"]);
    cmd.env("GITHUB_ACTIONS", "true");
    let (code, _, err) = run(cmd);
    assert_eq!(code, 1);
    assert!(err.contains("title=portico::`login_url` is empty"), "{err}");
    assert!(!err.contains("``"), "{err}");
    // A warning (a role nobody uses) never corrupts the JSON plan on standard output.
    env.write(
        "a.yaml",
        &ACCOUNT.replace(
            "roles:\n",
            "roles:\n  - { id: unused-role, name: Unused }\n",
        ),
    );
    let mut cmd = env.portico(&["plan", "-f", "manifests", "--format", "json"]);
    cmd.env("GITHUB_ACTIONS", "true");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<serde_json::Value>(&out).expect("standard output is only the JSON plan");
    assert!(err.contains("::warning"), "{err}");
    env.write("a.yaml", ACCOUNT);
    let summary = env.path("summary.md");
    let mut cmd = env.portico(&["plan", "-f", "manifests"]);
    cmd.env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary);
    assert_eq!(run(cmd).0, 0);
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(text.contains("### portico plan"), "{text}");
    assert!(text.contains("Plan: 6 to create, 2 to update"), "{text}");
    let mut cmd = env.portico(&["apply", "-f", "manifests", "--auto-approve"]);
    cmd.env("GITHUB_STEP_SUMMARY", &summary);
    assert_eq!(run(cmd).0, 0);
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(text.contains("### portico apply 1"), "{text}");
}

/// `examples/ci/other-ci.sh` end to end on the example account (pre-hashed passwords and
/// all): review saves the plan, merge applies exactly that plan.
#[test]
fn the_plain_ci_script_reviews_and_merges_the_example_account() {
    let env = Env::sqlite();
    let work = env.path("job");
    std::fs::create_dir_all(&work).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_portico")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let script = |stage: &str| {
        let out = std::process::Command::new("bash")
            .arg(repo("examples/ci/other-ci.sh"))
            .arg(stage)
            .current_dir(&work)
            .env("PATH", &path)
            .env("PORTICO_DATABASE_URL", &env.url)
            .env("PORTICO_MANIFESTS", repo("examples/account"))
            .env("PORTICO_NO_NOTIFY", "true")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = script("review");
    assert!(ok, "{text}");
    assert!(work.join("plan.json").exists() && work.join("plan.md").exists());
    let (ok, text) = script("merge");
    assert!(ok, "{text}");
    assert!(text.contains("Apply complete"), "{text}");
    let hashes = env.rows("SELECT password_hash FROM logins WHERE password_hash IS NOT NULL");
    assert_eq!(hashes.len(), 1, "the pre-hashed password was applied");
    assert!(hashes[0].starts_with("$argon2id$"));
    // Planning again: nothing left to do.
    let (ok, text) = script("review");
    assert!(ok && text.contains("No changes"), "{text}");
}
