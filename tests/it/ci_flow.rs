//! Plan on pull requests, apply on merge: saved plans, digests, read-only plans, locking,
//! the destroy guard, history, drift labels and machine-readable output.

use crate::common::{ACCOUNT, Env, b, read_bytes, run};

crate::common::on_every_engine!(
    a_stale_saved_plan_is_refused_and_changes_nothing,
    a_saved_plan_applies_exactly_and_holds_no_secret,
    an_unexpected_digest_is_refused,
    two_applies_started_together_serialize,
    the_guard_refuses_mass_deletion_unless_raised,
    history_records_every_apply,
    drift_is_labelled,
    json_plans_validate_against_the_schema,
    a_held_lock_times_out_naming_the_holder,
    a_write_between_a_plans_reads_plans_again_and_warns_once,
);

fn a_stale_saved_plan_is_refused_and_changes_nothing(env: Env) {
    env.write("account.yaml", ACCOUNT);
    env.apply();
    env.write("account.yaml", &ACCOUNT.replace("Acme Ltd", "Acme Limited"));
    let (code, _, err) = env.plan(&["--out", "plan.json"]);
    assert_eq!(code, 0, "{err}");
    // Someone changes the live database after the review.
    env.sql("UPDATE websites SET name = 'Edited' WHERE id = 'store-eu'");
    let before = env.dump();
    let (code, _, err) = run(env.portico(&["apply", "--plan", "plan.json", "--auto-approve"]));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("the live database changed since this plan was computed"),
        "{err}"
    );
    assert_eq!(before, env.dump());
}

fn a_saved_plan_applies_exactly_and_holds_no_secret(env: Env) {
    env.write("account.yaml", ACCOUNT);
    env.apply();
    env.write("account.yaml", &ACCOUNT.replace("Acme Ltd", "Acme Limited"));
    env.plan(&["--out", "plan.json"]);
    // The manifests move on after the review; the saved plan is still what gets applied.
    env.write(
        "account.yaml",
        &ACCOUNT.replace("Acme Ltd", "Something Else"),
    );
    let (code, out, err) = run(env.portico(&["apply", "--plan", "plan.json", "--auto-approve"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Acme Ltd → Acme Limited"), "{out}");
    assert_eq!(
        env.rows("SELECT name FROM customers WHERE id = 'CUST-0042'"),
        ["Acme Limited"]
    );
    let text = std::fs::read_to_string(env.path("plan.json")).unwrap();
    assert!(
        !text.contains("argon2") && !text.contains("password_hash"),
        "{text}"
    );
    // A damaged plan file is refused.
    std::fs::write(
        env.path("plan.json"),
        text.replace("Acme Limited", "Acme Evil"),
    )
    .unwrap();
    let (code, _, err) = run(env.portico(&["apply", "--plan", "plan.json", "--auto-approve"]));
    assert_eq!(code, 1);
    assert!(err.contains("does not match its digest"), "{err}");
}

fn digest_of(plan_text: &str) -> String {
    plan_text
        .lines()
        .find_map(|l| l.strip_prefix("Plan digest: "))
        .expect("a digest line")
        .to_string()
}

fn an_unexpected_digest_is_refused(env: Env) {
    env.write("account.yaml", ACCOUNT);
    let reviewed = digest_of(&env.plan(&[]).1);
    assert_eq!(reviewed.len(), 12);
    // A later commit changes the manifests: the merge-time plan is not the reviewed one.
    env.write("account.yaml", &ACCOUNT.replace("Beta GmbH", "Beta AG"));
    let args = [
        "apply",
        "-f",
        "manifests",
        "--auto-approve",
        "--expect-digest",
        &reviewed,
    ];
    let (code, _, err) = run(env.portico(&args));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(&format!("not the expected {reviewed}")),
        "{err}"
    );
    assert!(env.dump().is_empty());
    env.write("account.yaml", ACCOUNT);
    let (code, _, err) = run(env.portico(&args));
    assert_eq!(code, 0, "{err}");
}

fn two_applies_started_together_serialize(env: Env) {
    env.write("account.yaml", ACCOUNT);
    let spawn = || {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("portico"));
        cmd.current_dir(env.dir.path())
            .env("PORTICO_DATABASE_URL", &env.url)
            .env("NO_COLOR", "1")
            .env("PORTICO_NO_NOTIFY", "true")
            .args([
                "apply",
                "-f",
                "manifests",
                "--auto-approve",
                "--lock-timeout",
                "30",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd.spawn().unwrap()
    };
    let (first, second) = (spawn(), spawn());
    let outputs = [
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    ];
    for out in &outputs {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout: Vec<String> = outputs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .collect();
    assert_eq!(
        stdout
            .iter()
            .filter(|s| s.contains("Apply complete"))
            .count(),
        1,
        "{stdout:?}"
    );
    assert_eq!(
        stdout.iter().filter(|s| s.contains("No changes.")).count(),
        1,
        "{stdout:?}"
    );
    let single = if env.is_sqlite() {
        Env::sqlite()
    } else {
        Env::postgres()
    };
    single.write("account.yaml", ACCOUNT);
    single.apply();
    assert_eq!(env.dump(), single.dump());
    assert_eq!(
        env.rows("SELECT CAST(COUNT(*) AS TEXT) FROM applies"),
        ["1"]
    );
}

fn many_customers(count: usize) -> String {
    let mut text = String::from(
        "features: { customer_access: true }\nnotifications: { url: http://127.0.0.1:9/portico, login_url: https://c.example/login }\ncustomers:\n",
    );
    for i in 0..count {
        text.push_str(&format!("  - {{ id: C{i}, name: N{i}, email: c{i}@x.example, access: {{ give_access: true, notify: true }} }}\n"));
    }
    text
}

fn the_guard_refuses_mass_deletion_unless_raised(env: Env) {
    env.write("account.yaml", &many_customers(20));
    env.apply();
    env.write("account.yaml", &many_customers(8));
    let before = env.dump();
    let (code, _, err) = run(env.portico(&["apply", "-f", "manifests", "--auto-approve"]));
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("refusing to delete or revoke 12 objects (60% of 20 logins)"),
        "{err}"
    );
    assert_eq!(before, env.dump());
    let (code, _, err) = run(env.portico(&[
        "apply",
        "-f",
        "manifests",
        "--auto-approve",
        "--max-destroy",
        "5",
    ]));
    assert_eq!(code, 5, "{err}");
    let (code, _, err) = run(env.portico(&[
        "apply",
        "-f",
        "manifests",
        "--auto-approve",
        "--max-destroy-share",
        "0.75",
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        env.rows("SELECT CAST(COUNT(*) AS TEXT) FROM customers"),
        ["8"]
    );
}

fn history_records_every_apply(env: Env) {
    env.write("account.yaml", ACCOUNT);
    let digest = digest_of(&env.plan(&[]).1);
    let mut cmd = env.portico(&[
        "apply",
        "-f",
        "manifests",
        "--auto-approve",
        "--actor",
        "alice",
    ]);
    cmd.env("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Recorded as apply 1."), "{out}");
    env.write("account.yaml", &ACCOUNT.replace("Beta GmbH", "Beta AG"));
    let mut cmd = env.portico(&["apply", "-f", "manifests", "--auto-approve"]);
    cmd.env("GITHUB_ACTOR", "ci-bot").env_remove("GITHUB_SHA");
    assert_eq!(run(cmd).0, 0);

    let (code, out, _) = run(env.portico(&["history", "--format", "json"]));
    assert_eq!(code, 0);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["format_version"], 1);
    let records: Vec<portico::history::ApplyRecord> =
        serde_json::from_value(list["applies"].clone()).unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].id, 1);
    assert_eq!(records[0].actor, "alice");
    assert_eq!(
        records[0].git_commit.as_deref(),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
    assert_eq!(records[0].plan_digest, digest);
    assert_eq!(records[0].summary.create, 6);
    assert_eq!(records[0].manifests_digest.len(), 16);
    assert_eq!(records[1].actor, "ci-bot");
    assert!(
        records[0].applied_at.ends_with('Z') && records[0].applied_at.len() == 20,
        "{}",
        records[0].applied_at
    );

    let (_, out, _) = run(env.portico(&["history", "show", "2", "--format", "json"]));
    let second = apply_record(&out);
    assert_eq!(second.changes.len(), 1);
    assert_eq!(second.changes[0].address, "customer[\"CUST-0043\"]");
    assert_eq!(
        second.changes[0].fields[0].old.as_deref(),
        Some("Beta GmbH")
    );

    let (_, text, _) = run(env.portico(&["history"]));
    assert!(
        text.contains("alice") && text.contains("0123456789ab") && text.contains(&digest),
        "{text}"
    );
    let (_, text, _) = run(env.portico(&["history", "show", "2"]));
    assert!(text.contains("name: Beta GmbH → Beta AG"), "{text}");
    let (code, _, err) = run(env.portico(&["history", "show", "9"]));
    assert_eq!(code, 1);
    assert!(err.contains("no apply with id 9"), "{err}");
}

fn drift_is_labelled(env: Env) {
    env.write("account.yaml", ACCOUNT);
    env.apply();
    env.sql("UPDATE websites SET url = 'https://evil.example' WHERE id = 'store-eu'");
    env.write("account.yaml", &ACCOUNT.replace("Beta GmbH", "Beta AG"));
    let (_, out, _) = env.plan(&[]);
    assert!(
        out.contains("~ update website[\"store-eu\"]  (changed outside portico)"),
        "{out}"
    );
    assert!(out.contains("~ update customer[\"CUST-0043\"]\n"), "{out}");
    let (_, json, _) = env.plan(&["--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let origins: Vec<(&str, &str)> = doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["address"].as_str().unwrap(),
                c["origin"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        origins,
        [
            ("website[\"store-eu\"]", "outside"),
            ("customer[\"CUST-0043\"]", "manifests")
        ]
    );
    // A login created by hand is labelled too.
    env.sql(&format!(
        "INSERT INTO logins (customer_id, contact, email, access, role_id, notify) VALUES ('CUST-0043', 'x@x.example', 'x@x.example', {}, 'customer_center', {})",
        "true", "false"
    ));
    let (_, out, _) = env.plan(&[]);
    assert!(
        out.contains(
            "- delete customer[\"CUST-0043\"].contact[\"x@x.example\"]  (changed outside portico)"
        ),
        "{out}"
    );
    let _ = b;
}

fn json_plans_validate_against_the_schema(env: Env) {
    let validator = crate::common::schema::Schema::from_text(&portico::schema::plan_schema());
    env.write("account.yaml", ACCOUNT);
    let check = |json: &str| {
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        let errors = validator.errors(&value);
        assert!(errors.is_empty(), "{errors:?}\n{json}");
        let doc: portico::render::PlanDocument = serde_json::from_value(value).unwrap();
        doc
    };
    let doc = check(&env.plan(&["--format", "json"]).1);
    assert_eq!(doc.format_version, 1);
    assert_eq!(doc.summary.create, 6);
    env.apply();
    env.write(
        "account.yaml",
        &ACCOUNT
            .replace("invoice: view", "invoice: none")
            .replace("Beta GmbH", "Beta AG"),
    );
    let doc = check(&env.plan(&["--format", "json"]).1);
    assert_eq!(doc.changes.len(), 2);
    // The digests a plan leaves out when it is only shown are in every JSON form.
    assert_eq!(doc.live_fingerprint.len(), 64, "{}", doc.live_fingerprint);
    assert_eq!(doc.manifests_digest.len(), 16, "{}", doc.manifests_digest);
    let doc = check(&env.plan(&["--format", "json", "--out", "saved.json"]).1);
    assert_eq!(
        std::fs::read_to_string(env.path("saved.json")).unwrap(),
        serde_json::to_string_pretty(&doc).unwrap() + "\n"
    );
    let (code, _, err) = env.plan(&["--out", "from-text.json"]);
    assert_eq!(code, 0, "{err}");
    let saved = check(&std::fs::read_to_string(env.path("from-text.json")).unwrap());
    assert_eq!(saved.live_fingerprint, doc.live_fingerprint);
    assert_eq!(saved.manifests_digest, doc.manifests_digest);
}

fn a_held_lock_times_out_naming_the_holder(env: Env) {
    env.write("account.yaml", ACCOUNT);
    env.apply();
    env.write("account.yaml", &ACCOUNT.replace("Beta GmbH", "Beta AG"));
    let before = env.dump();
    let args = [
        "apply",
        "-f",
        "manifests",
        "--auto-approve",
        "--lock-timeout",
        "1",
    ];
    if env.is_sqlite() {
        let mut path = env.db_path().into_os_string();
        path.push(".lock");
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.lock().unwrap();
        // Holder lines are written over the old one and the file cut after: a kill between
        // the two leaves the old line's end after the new one, which is not shown.
        std::fs::write(&path, "bob (pid 4242)\nlonger holder (pid 1)\n").unwrap();
        let (code, _, err) = run(env.portico(&args));
        assert_eq!(code, 4, "{err}");
        assert!(
            err.contains("another apply holds the lock (bob (pid 4242))"),
            "{err}"
        );
        assert!(!err.contains("longer holder"), "{err}");
        drop(file);
    } else {
        crate::common::block_on(async {
            use sqlx::Connection;
            let mut holder = sqlx::PgConnection::connect(&env.url).await.unwrap();
            sqlx::query("SET application_name = 'portico apply by bob'")
                .execute(&mut holder)
                .await
                .unwrap();
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(portico::store::POSTGRES_APPLY_LOCK)
                .execute(&mut holder)
                .await
                .unwrap();
            let (code, _, err) = run(env.portico(&args));
            assert_eq!(code, 4, "{err}");
            assert!(
                err.contains("another apply holds the lock (portico apply by bob"),
                "{err}"
            );
        });
    }
    assert_eq!(before, env.dump());
    assert_eq!(run(env.portico(&args)).0, 0, "the lock is free again");
}

#[test]
fn plan_reads_a_read_only_sqlite_file_without_changing_it() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::sqlite();
    env.write("account.yaml", ACCOUNT);
    env.apply();
    env.write("account.yaml", &ACCOUNT.replace("Beta GmbH", "Beta AG"));
    std::fs::set_permissions(env.db_path(), std::fs::Permissions::from_mode(0o444)).unwrap();
    let before = read_bytes(&env.db_path());
    let modified = std::fs::metadata(env.db_path())
        .unwrap()
        .modified()
        .unwrap();
    let (code, out, err) = env.plan(&["--detailed-exitcode"]);
    assert_eq!(code, 2, "{err}");
    assert!(out.contains("Beta GmbH → Beta AG"), "{out}");
    assert!(before == read_bytes(&env.db_path()));
    assert_eq!(
        modified,
        std::fs::metadata(env.db_path())
            .unwrap()
            .modified()
            .unwrap()
    );
    let mut lock = env.db_path().into_os_string();
    lock.push(".lock");
    let lock = std::path::PathBuf::from(lock);
    let lock_before = std::fs::metadata(&lock).ok().map(|m| m.modified().unwrap());
    env.plan(&[]);
    assert_eq!(
        lock_before,
        std::fs::metadata(&lock).ok().map(|m| m.modified().unwrap()),
        "plan takes no lock"
    );
}

#[test]
fn markdown_stays_under_the_comment_limit_at_scale() {
    let env = Env::sqlite();
    env.write("account.yaml", &many_customers(3000));
    let (_, md, _) = env.plan(&["--format", "markdown"]);
    assert!(
        md.len() <= portico::render::markdown::LIMIT,
        "{} characters",
        md.len()
    );
    assert!(md.starts_with("<!-- portico-plan -->"), "{}", &md[..100]);
    assert!(md.contains("**Plan: 3001 to create, 1 to update, 0 to revoke, 0 to delete.**"));
    assert!(
        md.contains("more changes not listed"),
        "the table is elided with a note"
    );
    assert!(
        md.contains("more changes elided"),
        "details are elided with a note"
    );
    let digest = portico::render::markdown::digest_in(&md).unwrap();
    assert_eq!(digest.len(), 12);

    let small = Env::sqlite();
    small.write("account.yaml", ACCOUNT);
    let (_, md, _) = small.plan(&["--format", "markdown"]);
    assert!(
        md.contains(
            "| 🟢 | create | `customer[\"CUST-0042\"]` | manifests · sends a new-access email |"
        ),
        "{md}"
    );
    assert!(
        md.contains("<details><summary>create <code>customer[\"CUST-0042\"]</code></summary>"),
        "{md}"
    );
    assert!(!md.contains("elided"), "{md}");
}

/// Runs `portico` under a pseudo-terminal (util-linux `script`), typing `answer`.
fn on_a_terminal(env: &Env, args: &str, answer: &str) -> (i32, String) {
    let bin = assert_cmd::cargo::cargo_bin("portico");
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", &format!("{} {args}", bin.display()), "/dev/null"])
        .current_dir(env.dir.path())
        .env("PORTICO_DATABASE_URL", &env.url)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn apply_on_a_terminal_asks_and_only_yes_applies() {
    let env = Env::sqlite();
    env.write("account.yaml", ACCOUNT);
    let (code, out) = on_a_terminal(&env, "apply -f manifests", "no\n");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("Apply these changes? Only 'yes' will be accepted:"),
        "{out}"
    );
    assert!(
        out.contains("apply cancelled; nothing was changed"),
        "{out}"
    );
    assert!(env.dump().is_empty());
    let (code, out) = on_a_terminal(&env, "apply -f manifests", "yes\n");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Apply complete"), "{out}");
}

#[test]
fn history_falls_back_to_the_manifests_git_commit() {
    let env = Env::sqlite();
    env.write("account.yaml", ACCOUNT);
    let manifests = env.path("manifests");
    let git = |args: &[&str]| git_in(&manifests, args).trim().to_string();
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "access"]);
    let head = git(&["rev-parse", "HEAD"]);
    assert_eq!(run(apply_outside_ci(&env)).0, 0);
    let (_, out, _) = run(env.portico(&["history", "show", "1", "--format", "json"]));
    let record = apply_record(&out);
    assert_eq!(record.git_commit.as_deref(), Some(head.as_str()));
    // Applied from an edited tree: not that commit, and history says so. Where no user
    // variable is set (a container), git's author is the actor, never "unknown".
    let edited = ACCOUNT.replace("Acme Ltd", "Acme Limited");
    assert_ne!(edited, ACCOUNT);
    env.write("account.yaml", &edited);
    let mut cmd = apply_outside_ci(&env);
    for var in [
        "PORTICO_ACTOR",
        "GITHUB_ACTOR",
        "GITLAB_USER_LOGIN",
        "BUILDKITE_BUILD_CREATOR",
        "CIRCLE_USERNAME",
        "USER",
        "USERNAME",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("GIT_AUTHOR_NAME", "Ada Admin")
        .env("GIT_AUTHOR_EMAIL", "ada@acme.example");
    let (code, _, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run(env.portico(&["history", "show", "2", "--format", "json"]));
    let record = apply_record(&out);
    assert_eq!(
        record.git_commit.as_deref(),
        Some(format!("{head}-dirty").as_str())
    );
    assert_eq!(record.actor, "Ada Admin <ada@acme.example>");
}

/// Outside CI, the `-dirty` mark says what `git status` says of the manifest folder, and
/// git is asked for it only when the files differ from git's index: a clean work tree is
/// known so from the plan's own comparison (with two quick questions to git), without the
/// second reading of every file's `stat` data that `git status` makes.
#[test]
fn the_dirty_mark_is_git_status_s_answer() {
    let env = Env::sqlite();
    env.write("account.yaml", ACCOUNT);
    env.write("customers/more.yaml", "customers: []\n");
    let top = env.path("");
    let git = |args: &[&str]| git_in(&top, args);
    std::fs::write(top.join(".gitignore"), "live.db*\n*.log\n").unwrap();
    std::fs::write(env.path("manifests/README.md"), "Access.\n").unwrap();
    std::fs::create_dir_all(env.path("manifests/.github")).unwrap();
    std::fs::write(env.path("manifests/.github/ci.yml"), "on: push\n").unwrap();
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "access"]);
    let manifests = env.path("manifests");
    type Step = (&'static str, bool, fn(&std::path::Path));
    let steps: [Step; 12] = [
        ("as committed", false, |_| {}),
        ("a manifest touched, its bytes unchanged", false, |m| {
            let text = std::fs::read(m.join("account.yaml")).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
            std::fs::write(m.join("account.yaml"), text).unwrap();
        }),
        ("an ignored file", false, |m| {
            std::fs::write(m.join("apply.log"), "x").unwrap()
        }),
        ("an untracked file", true, |m| {
            std::fs::write(m.join("notes.txt"), "x").unwrap()
        }),
        ("an untracked manifest", true, |m| {
            std::fs::write(m.join("new.yaml"), "customers: []\n").unwrap();
        }),
        ("an untracked file in a hidden folder", true, |m| {
            std::fs::write(m.join(".github/new.yml"), "on: pull_request\n").unwrap();
        }),
        ("a repository inside the folder", true, |m| {
            std::fs::create_dir_all(m.join("vendor")).unwrap();
            std::fs::write(m.join("vendor/notes.txt"), "x").unwrap();
            git_in(&m.join("vendor"), &["init", "-q"]);
        }),
        ("an empty file only intended to be added", true, |m| {
            std::fs::write(m.join("empty.txt"), "").unwrap();
            git_in(m, &["add", "-N", "empty.txt"]);
        }),
        ("a tracked file edited", true, |m| {
            std::fs::write(m.join("README.md"), "Access, edited.\n").unwrap();
        }),
        ("a tracked file in a hidden folder edited", true, |m| {
            std::fs::write(m.join(".github/ci.yml"), "on: [push]\n").unwrap();
        }),
        ("a tracked file removed", true, |m| {
            std::fs::remove_file(m.join("customers/more.yaml")).unwrap();
        }),
        ("a change staged", true, |m| {
            std::fs::write(m.join("customers/more.yaml"), "customers: [] # staged\n").unwrap();
            git_in(m, &["add", "customers/more.yaml"]);
        }),
    ];
    for (at, (what, dirty, make)) in steps.into_iter().enumerate() {
        // Each apply has a change to make (else it records nothing): a committed edit.
        let name = format!("Acme {at}");
        env.write("account.yaml", &ACCOUNT.replace("Acme Ltd", &name));
        git(&["commit", "-qam", &name]);
        let head = git(&["rev-parse", "HEAD"]).trim().to_string();
        make(&manifests);
        let status = git(&["-C", "manifests", "status", "--porcelain", "--", "."]);
        assert_eq!(
            !status.is_empty(),
            dirty,
            "{what}: git status says {status:?}"
        );
        let mut cmd = apply_outside_ci(&env);
        cmd.env("PORTICO_TIMINGS", "1");
        let (code, _, err) = run(cmd);
        assert_eq!(code, 0, "{what}: {err}");
        let id = (at + 1).to_string();
        let (_, out, _) = run(env.portico(&["history", "show", &id, "--format", "json"]));
        let mark = if dirty { format!("{head}-dirty") } else { head };
        assert_eq!(apply_record(&out).git_commit, Some(mark), "{what}");
        if !dirty {
            assert!(
                !err.contains("timing: git status"),
                "{what}: git status was run\n{err}"
            );
        }
        // Back to a clean tree for the next step.
        git(&["reset", "-q", "--hard"]);
        git(&["clean", "-qffd"]);
    }
}

#[test]
fn history_shows_a_hostile_actor_escaped() {
    let env = Env::sqlite();
    env.write("a.yaml", "features: { customer_access: true }\n");
    let actor = "\u{1b}]0;pwned\u{7}bob\u{202e}evil\u{0}";
    let (code, _, err) = run(env.portico(&[
        "apply",
        "-f",
        "manifests",
        "--auto-approve",
        "--actor",
        &actor.replace('\u{0}', ""),
    ]));
    assert_eq!(code, 0, "{err}");
    for args in [&["history"][..], &["history", "show", "1"]] {
        let (code, out, err) = run(env.portico(args));
        assert_eq!(code, 0, "{err}");
        for raw in ['\u{1b}', '\u{7}', '\u{202e}'] {
            assert!(!out.contains(raw), "{raw:?} reached the terminal:\n{out:?}");
        }
        assert!(
            out.contains("\\u{1b}]0;pwned\\u{7}bob\\u{202e}evil"),
            "{out}"
        );
    }
}

/// `history show ID --format json`: the apply beside the output's version.
/// git's output of `args` run in `dir`, asserting success.
fn git_in(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `apply` as run outside CI: no variable names the commit.
fn apply_outside_ci(env: &Env) -> assert_cmd::Command {
    let mut cmd = env.portico(&["apply", "-f", "manifests", "--auto-approve"]);
    for var in [
        "GITHUB_SHA",
        "CI_COMMIT_SHA",
        "BUILDKITE_COMMIT",
        "CIRCLE_SHA1",
        "GIT_COMMIT",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn apply_record(out: &str) -> portico::history::ApplyRecord {
    let value: serde_json::Value = serde_json::from_str(out).unwrap();
    assert_eq!(value["format_version"], 1, "{out}");
    serde_json::from_value(value["apply"].clone()).unwrap()
}

/// A managed write landing between a full plan's two reads of the database (validation's,
/// then the whole state's) makes it plan again: the plan shown is the one after the write,
/// and the manifests' warnings are printed once, not once per attempt.
fn a_write_between_a_plans_reads_plans_again_and_warns_once(env: Env) {
    env.write("account.yaml", ACCOUNT);
    env.apply();
    // A role nobody uses: a warning.
    env.write(
        "account.yaml",
        &ACCOUNT.replace(
            "roles:\n",
            "roles:\n  - { id: unused-role, name: Unused }\n",
        ),
    );
    let marker = env.path("between-reads");
    let mut cmd = env.std_command(&["plan", "-f", "manifests", "--no-incremental", "--verbose"]);
    cmd.env("PORTICO_TEST_BETWEEN_READS", &marker)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let waited = std::time::Instant::now();
    while !marker.exists() {
        assert!(waited.elapsed().as_secs() < 60, "the plan never paused");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Outside portico: the customer renamed (the plan renames it back).
    env.sql("UPDATE customers SET name = 'Renamed outside' WHERE id = 'CUST-0042'");
    std::fs::remove_file(&marker).unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("The live database changed while it was read; planning again."),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("is not used by any login").count(),
        1,
        "{stderr}"
    );
    assert!(stdout.contains("Renamed outside"), "{stdout}");
    assert!(
        stdout.contains("Plan: 1 to create, 1 to update"),
        "{stdout}"
    );
}
