//! The CLI in its ecosystem: completions, man page, help, version, color, saved-plan
//! review, JSON everywhere (validated against the committed schemas), summaries of huge
//! plans, broken pipes, clear words on common mistakes, and what the package ships.

use std::io::Write as _;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;

use crate::common::{ACCOUNT, Env, run};

const SUBCOMMANDS: &[&str] = &[
    "validate",
    "plan",
    "apply",
    "history",
    "notify",
    "set-password",
    "export",
    "import-csv",
    "access",
    "unlock",
    "resend",
    "serve",
    "sign-out",
    "reset-2fa",
    "events",
    "init",
    "schema",
    "show",
    "completions",
    "man",
];

fn schema(name: &str) -> crate::common::schema::Schema {
    crate::common::schema::Schema::committed(name)
}

fn assert_valid(schema: &crate::common::schema::Schema, json: &str) -> serde_json::Value {
    schema.assert_valid(json)
}

#[test]
fn completions_cover_every_subcommand_flag_and_format_value() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let (code, out, err) = run(env.portico(&["completions", shell]));
        assert_eq!(code, 0, "{shell}: {err}");
        for sub in SUBCOMMANDS {
            assert!(out.contains(sub), "{shell} completion lacks `{sub}`");
        }
        for word in ["detailed-exitcode", "format", "markdown", "auto-approve"] {
            assert!(out.contains(word), "{shell} completion lacks `{word}`");
        }
    }
    // bash itself accepts the script.
    let (_, script, _) = run(env.portico(&["completions", "bash"]));
    let status = std::process::Command::new("bash")
        .args(["-n", "-c", &script])
        .status()
        .unwrap();
    assert!(status.success(), "bash -n rejects the completion script");
}

#[test]
fn the_man_page_renders_with_man() {
    let env = Env::new();
    let (code, page, _) = run(env.portico(&["man"]));
    assert_eq!(code, 0);
    assert!(
        page.starts_with(".ie") || page.contains(".TH portico"),
        "{page}"
    );
    let mut man = std::process::Command::new("man")
        .args(["-l", "-"])
        .env("MANWIDTH", "100")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`man` is installed (`bash .ci/test` installs man-db when missing)");
    man.stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = man.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("NAME") && text.contains("portico"), "{text}");
    for sub in SUBCOMMANDS {
        assert!(text.contains(sub), "man page lacks `{sub}`: {text}");
    }
    assert!(
        !text.contains(".TH"),
        "roff was rendered, not printed: {text}"
    );
}

#[test]
fn every_subcommand_help_ends_with_examples_and_says_nothing_untrue() {
    let env = Env::new();
    for sub in SUBCOMMANDS {
        let (code, help, _) = run(env.portico(&[sub, "--help"]));
        assert_eq!(code, 0, "{sub}");
        assert!(
            help.contains("Example"),
            "`{sub} --help` has no example:\n{help}"
        );
        assert!(
            help.contains(&format!("portico {sub}")),
            "`{sub} --help` examples do not run `portico {sub}`:\n{help}"
        );
    }
    let (_, plan, _) = run(env.portico(&["plan", "--help"]));
    assert!(plan.contains("2 there are changes"), "{plan}");
    assert!(!plan.contains("created when missing"), "{plan}");
    let (_, apply, _) = run(env.portico(&["apply", "--help"]));
    for code in ["3 refused", "4 another apply", "5 the destroy guard"] {
        assert!(apply.contains(code), "{apply}");
    }
}

#[test]
fn version_names_the_commit_and_build_date_in_a_checkout() {
    let env = Env::new();
    let (code, out, _) = run(env.portico(&["--version"]));
    assert_eq!(code, 0);
    assert!(
        out.starts_with(&format!("portico {}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    if Path::new(env!("CARGO_MANIFEST_DIR")).join(".git").exists() {
        let commit = std::process::Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let commit = String::from_utf8_lossy(&commit.stdout).trim().to_string();
        assert!(out.contains(&format!("commit {commit}")), "{out}");
        assert!(out.contains(", built 20"), "{out}");
    }
}

#[test]
fn color_flag_beats_the_environment() {
    let env = Env::new();
    env.write("account.yaml", ACCOUNT);
    let mut always = env.portico(&["plan", "-f", "manifests", "--color", "always"]);
    always.env("NO_COLOR", "1");
    let (_, out, _) = run(always);
    assert!(
        out.contains("\u{1b}["),
        "--color always colors a pipe: {out}"
    );
    let mut never = env.portico(&["plan", "-f", "manifests", "--color", "never"]);
    never.env_remove("NO_COLOR").env("CLICOLOR_FORCE", "1");
    let (_, out, err) = run(never);
    assert!(
        !out.contains('\u{1b}') && !err.contains('\u{1b}'),
        "{out}{err}"
    );
    let (code, _, err) = run(env.portico(&["plan", "-f", "manifests", "--color", "sometimes"]));
    assert_eq!(code, 64, "{err}");
}

#[test]
fn show_renders_a_saved_plan_exactly_as_plan_did() {
    let env = Env::new();
    env.write("account.yaml", ACCOUNT);
    for (format, extra) in [
        ("text", &[][..]),
        ("text", &["--diff"][..]),
        ("markdown", &[][..]),
        ("json", &[][..]),
    ] {
        let mut args = vec![
            "plan",
            "-f",
            "manifests",
            "--out",
            "saved.json",
            "--format",
            format,
        ];
        args.extend_from_slice(extra);
        let (_, planned, err) = run(env.portico(&args));
        assert!(!planned.is_empty(), "{err}");
        let mut args = vec!["show", "saved.json", "--format", format];
        args.extend_from_slice(extra);
        let mut show = env.portico(&args);
        // No database is needed, or touched.
        show.env("PORTICO_DATABASE_URL", "postgres://nobody@127.0.0.1:9/none");
        let (code, shown, err) = run(show);
        assert_eq!(code, 0, "{err}");
        assert_eq!(planned, shown, "show --format {format} {extra:?}");
    }
    assert!(!env.db_path().exists());
    let (code, _, err) = run(env.portico(&["show", "missing.json"]));
    assert_eq!(code, 1);
    assert!(err.contains("cannot use plan file missing.json"), "{err}");
}

/// An account with `n` customers, each with one contact.
fn big_account(n: usize) -> String {
    let mut text = String::from("features: { customer_access: true }\ncustomers:\n");
    for i in 0..n {
        text.push_str(&format!(
            "  - id: C{i:05}\n    name: Customer {i}\n    contacts:\n      - {{ email: c{i}@example.com, access: true, password: {{ env: PW }} }}\n"
        ));
    }
    text
}

#[test]
fn huge_plans_are_summarised_unless_asked_for_in_full() {
    let env = Env::new();
    env.write("account.yaml", &big_account(600));
    let plan = |extra: &[&str]| {
        let mut args = vec!["plan", "-f", "manifests"];
        args.extend_from_slice(extra);
        let mut cmd = env.portico(&args);
        cmd.env("PW", "a-long-enough-password");
        run(cmd)
    };
    let (code, out, err) = plan(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("portico will make 1201 changes. Summary"),
        "{out}"
    );
    assert!(out.lines().count() < 200, "{} lines", out.lines().count());
    assert!(out.contains("  customer             600"), "{out}");
    assert!(out.contains("  contact              600"), "{out}");
    assert!(
        out.contains("… and 590 more customer changes to create"),
        "{out}"
    );
    assert!(
        out.contains("… and 590 more contact changes to create"),
        "{out}"
    );
    assert!(
        out.contains("create customer[\"C00009\"].contact[\"c9@example.com\"]"),
        "{out}"
    );
    assert!(!out.contains("C00010"), "{out}");
    assert!(out.contains("Plan: 1200 to create, 1 to update"), "{out}");
    assert!(out.contains("Plan digest:"), "{out}");
    let (_, full, _) = plan(&["--full"]);
    assert!(
        full.lines().count() > 3000,
        "{} lines",
        full.lines().count()
    );
    assert!(full.contains("customer[\"C00599\"]"));
    let (_, summary, _) = plan(&["--summary", "--full"]);
    assert!(summary.is_empty(), "--summary and --full conflict");

    // A small plan asks for its summary.
    let small = Env::new();
    small.write("account.yaml", ACCOUNT);
    let (_, out, _) = small.plan(&["--summary"]);
    assert!(
        out.contains("Summary (the first 10 changes of each kind"),
        "{out}"
    );
}

#[test]
fn json_outputs_follow_their_committed_schemas() {
    let env = Env::new();
    // validate: valid and invalid.
    env.write("account.yaml", ACCOUNT);
    let (code, out, _) = run(env.portico(&["validate", "-f", "manifests", "--format", "json"]));
    assert_eq!(code, 0);
    let report = assert_valid(&schema("validate"), &out);
    assert_eq!(report["valid"], true);
    assert_eq!(report["format_version"], 1);
    assert_eq!(report["counts"]["customers"], 2);
    env.write(
        "bad.yaml",
        "customers:\n  - id: X1\n    name: X\n    email: not-an-email\n    protect: maybe\n",
    );
    let (code, out, err) = run(env.portico(&["validate", "-f", "manifests", "--format", "json"]));
    assert_eq!(code, 1);
    assert!(err.is_empty(), "the report is the output: {err}");
    let report = assert_valid(&schema("validate"), &out);
    assert_eq!(report["valid"], false);
    let first = &report["diagnostics"][0];
    assert_eq!(first["severity"], "error");
    assert!(
        first["file"].as_str().unwrap().ends_with("bad.yaml"),
        "{first}"
    );
    assert!(first["line"].as_u64().unwrap() >= 1, "{first}");
    assert!(first["column"].as_u64().unwrap() >= 1, "{first}");
    assert!(
        first["path"].as_str().unwrap().starts_with("customers[0]"),
        "{first}"
    );
    env.remove("bad.yaml");

    // history (list and one) and notify --status, after an apply that queued messages.
    env.apply();
    let (code, out, _) = run(env.portico(&["history", "--format", "json"]));
    assert_eq!(code, 0);
    let list = assert_valid(&schema("history"), &out);
    assert_eq!(list["format_version"], 1);
    assert_eq!(list["applies"].as_array().unwrap().len(), 1);
    let (code, out, _) = run(env.portico(&["history", "show", "1", "--format", "json"]));
    assert_eq!(code, 0);
    let one = assert_valid(&schema("history"), &out);
    assert_eq!(
        (one["apply"]["id"].as_i64(), one["format_version"].as_i64()),
        (Some(1), Some(1))
    );
    let (code, out, _) = run(env.portico(&["notify", "--status", "--format", "json"]));
    assert_eq!(code, 0);
    let outbox = assert_valid(&schema("outbox"), &out);
    assert_eq!(outbox["format_version"], 1);
    assert!(!outbox["messages"].as_array().unwrap().is_empty(), "{out}");
    assert_eq!(outbox["messages"][0]["status"], "pending");
    let (code, out, _) = run(env.portico(&["access", "jane@acme.example", "--format", "json"]));
    assert_eq!(code, 0);
    assert_eq!(assert_valid(&schema("access"), &out)["format_version"], 1);
}

#[test]
fn a_reader_that_closes_early_never_makes_portico_panic() {
    let env = Env::new();
    env.write("account.yaml", &big_account(300));
    let mut apply = env.portico(&["apply", "-f", "manifests", "--auto-approve"]);
    apply.env("PW", "a-long-enough-password");
    assert_eq!(run(apply).0, 0);
    env.write("more.yaml", "");
    let commands: &[&[&str]] = &[
        &["history"],
        &["history", "show", "1"],
        &["history", "--format", "json"],
        &["notify", "--status"],
        &["notify", "--status", "--format", "json"],
        &["plan", "-f", "manifests", "--full"],
        &["plan", "-f", "manifests", "--format", "json"],
        &["validate", "-f", "manifests", "--format", "json"],
        &["access", "c1@example.com"],
        &["schema"],
        &["man"],
        &["completions", "zsh"],
        &["--help"],
    ];
    for args in commands {
        let mut cmd = env.std_command(args);
        let mut child = cmd
            .env("PW", "a-long-enough-password")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Like `| head -c 1`: read one byte, then close the pipe.
        let mut stdout = child.stdout.take().unwrap();
        let _ = std::io::Read::read(&mut stdout, &mut [0u8; 1]);
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            out.status.success() || out.status.signal() == Some(13),
            "{args:?} ended with {:?}: {err}",
            out.status
        );
    }
}

#[test]
fn long_work_reports_progress_in_plain_lines_without_a_terminal() {
    let env = Env::new();
    let mut text = String::from("features: { customer_access: true }\ncustomers:\n");
    for i in 0..12 {
        text.push_str(&format!(
            "  - {{ id: C{i}, name: C{i}, email: c{i}@example.com, access: {{ give_access: true, password: {{ env: PW }} }} }}\n"
        ));
    }
    env.write("account.yaml", &text);
    let mut apply = env.portico(&["apply", "-f", "manifests", "--auto-approve"]);
    apply
        .env("PW", "a-long-enough-password")
        .env("PORTICO_PROGRESS_SECONDS", "0.001");
    let (code, _, err) = run(apply);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("hashing passwords: "))
        .collect();
    assert!(!lines.is_empty(), "no progress line: {err}");
    assert!(lines.iter().all(|l| l.contains("/12 after ")), "{lines:?}");
    assert!(
        !err.contains('\r') && !err.contains('\u{1b}'),
        "no bar in a log: {err:?}"
    );
}

#[test]
fn common_mistakes_get_clear_words() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("empty")).unwrap();
    let (code, _, err) = run(env.portico(&["validate", "-f", "empty"]));
    assert_eq!(code, 1);
    assert!(err.contains("empty is an empty folder"), "{err}");

    std::fs::create_dir_all(env.path("notes")).unwrap();
    std::fs::write(env.path("notes/account.yaml.txt"), "x").unwrap();
    let (_, _, err) = run(env.portico(&["validate", "-f", "notes"]));
    assert!(
        err.contains(
            "manifests end in .yaml or .yml, and it holds only other files (account.yaml.txt)"
        ),
        "{err}"
    );

    let (_, _, err) = run(env.portico(&["validate", "-f", "nowhere"]));
    assert!(
        err.contains("nowhere does not exist (a relative path; from the current folder that is"),
        "{err}"
    );

    env.write("account.yaml", ACCOUNT);
    let (code, _, err) =
        run(env.portico(&["plan", "-f", "manifests", "--database", "mysql://db/x"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("unsupported database URL `mysql://db/x`: use sqlite://FILE or postgres://"),
        "{err}"
    );

    let (_, _, err) =
        run(env.portico(&["plan", "-f", "manifests", "--database", "sqlite://rel.db"]));
    let absolute = env.dir.path().canonicalize().unwrap().join("rel.db");
    assert!(
        err.contains(&format!(
            "no database at rel.db (a relative path; from the current folder that is {}",
            absolute.display()
        )),
        "{err}"
    );
    let (_, _, err) = run(env.portico(&["history", "--database", "sqlite://rel.db"]));
    assert!(err.contains("from the current folder that is"), "{err}");
}

#[test]
fn malformed_emails_are_refused() {
    let env = Env::new();
    for bad in [
        "jane@acme..example",
        "<jane@acme.example>",
        "jane@-acme.example",
    ] {
        env.write(
            "account.yaml",
            &format!(
                "customers:\n  - id: X1\n    name: X\n    contacts:\n      - email: \"{bad}\"\n"
            ),
        );
        let (code, _, err) = run(env.portico(&["validate", "-f", "manifests"]));
        assert_eq!(code, 1, "{bad} was accepted");
        assert!(err.contains("account.yaml:5:"), "{bad}: {err}");
    }
}

#[test]
fn the_package_ships_what_the_binary_needs_and_nothing_else() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["package", "--list", "--allow-dirty", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needed in [
        "Cargo.lock",
        "src/build.rs",
        "src/message/templates/reset.txt",
        "src/serve/templates/login.html",
        "README.md",
        "LICENSE-MIT",
        "LICENSE-APACHE",
        "src/main.rs",
        "migrations/sqlite/0001_init.sql",
        "migrations/postgres/0001_init.sql",
        "schemas/manifest.schema.json",
        "schemas/plan.schema.json",
        "src/message/templates/access.txt",
        "examples/account/account.yaml",
    ] {
        assert!(
            list.lines().any(|l| l == needed),
            "missing {needed}:\n{list}"
        );
    }
    for line in list.lines() {
        assert!(
            !(line.starts_with("tests/")
                || line.starts_with("target/")
                || line.starts_with(".ci/")
                || line.starts_with("benches/")
                || line.ends_with(".db")
                || line.contains(".env")
                || line.ends_with(".pem")
                || line.ends_with(".key")),
            "the package must not ship {line}"
        );
    }
}

/// `portico man --out DIR` writes the main page and one per subcommand, so every
/// `portico-…(1)` the main page refers to exists, and each renders with `man`.
#[test]
fn man_writes_a_page_for_every_subcommand_the_main_page_names() {
    let env = Env::new();
    let dir = env.path("man1");
    let (code, _, err) = run(env.portico(&["man", "--out", dir.to_str().unwrap()]));
    assert_eq!(code, 0, "{err}");
    let main = std::fs::read_to_string(dir.join("portico.1")).unwrap();
    let main = main.replace("\\-", "-");
    let named: Vec<&str> = main
        .split(|c: char| c.is_whitespace() || c == '"')
        .filter_map(|w| w.strip_suffix("(1)"))
        .filter(|w| w.starts_with("portico-"))
        .collect();
    assert!(
        named.len() >= 10,
        "the main page names its subcommands' pages: {named:?}"
    );
    for sub in SUBCOMMANDS {
        let page = dir.join(format!("portico-{sub}.1"));
        assert!(page.exists(), "no page for {sub}");
    }
    for name in &named {
        let clean: String = name
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == '-')
            .collect();
        if clean.is_empty() || clean == "portico" {
            continue;
        }
        assert!(
            dir.join(format!("{clean}.1")).exists(),
            "portico.1 names {clean}(1), which is missing"
        );
    }
    let out = std::process::Command::new("man")
        .args(["-l"])
        .arg(dir.join("portico-plan.1"))
        .env("MANWIDTH", "100")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output()
        .expect("man");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("--detailed-exitcode"),
        "{text}"
    );
}
