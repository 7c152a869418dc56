//! The real binary on real SQLite files in temp folders.

use crate::common::{ACCOUNT, Env, b, read_bytes, run};

crate::common::on_every_engine!(
    plan_apply_plan_again_is_empty_and_second_apply_changes_nothing,
    drift_made_with_sql_shows_in_plan_and_apply_reverts_it,
    runtime_login_data_is_not_drift_and_survives_apply,
    revoke_and_delete_and_prune_only_managed_sections,
    protected_customers_are_never_deleted,
    features_switch_on_first_and_off_last,
    emails_can_move_between_logins_in_one_apply,
    a_failing_apply_leaves_the_database_byte_for_byte_unchanged,
    apply_without_a_terminal_needs_auto_approve,
    plan_diff_shows_a_unified_diff,
    color_only_when_asked,
    database_url_comes_from_flag_or_environment,
    init_creates_the_schema_and_standard_roles,
    examples_are_valid_and_plan_cleanly,
    the_live_state_is_read_whole_in_small_pages,
);

fn plan_apply_plan_again_is_empty_and_second_apply_changes_nothing(env: Env) {
    env.write("account.yaml", ACCOUNT);
    let (code, out, _) = env.plan(&["--detailed-exitcode"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("Plan: 6 to create, 2 to update, 0 to revoke, 0 to delete."),
        "{out}"
    );
    assert!(env.dump().is_empty(), "plan must not create anything");

    let applied = env.apply();
    assert!(
        applied.contains("Apply complete: 6 created, 2 updated, 0 revoked, 0 deleted."),
        "{applied}"
    );
    assert_eq!(
        env.rows(&format!("SELECT email || ' ' || {} || ' ' || role_id || ' ' || coalesce(website_id, '-') FROM logins ORDER BY email", b("access"))),
        ["ap@acme.example 1 acme-center store-eu", "info@beta.example 1 customer_center -", "jane@acme.example 1 acme-center store-eu"]
    );
    assert_eq!(
        env.rows("SELECT permission || '=' || level FROM role_permissions WHERE role_id = 'acme-center' AND permission IN ('customer_payment', 'invoice', 'sales_order') ORDER BY 1"),
        ["invoice=view", "sales_order=edit"]
    );

    let (code, out, _) = env.plan(&["--detailed-exitcode"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("No changes."), "{out}");

    let before = env.dump();
    let bytes = env.is_sqlite().then(|| read_bytes(&env.db_path()));
    let again = env.apply();
    assert!(again.contains("No changes."), "{again}");
    assert_eq!(before, env.dump(), "a second apply must not write");
    if let Some(bytes) = bytes {
        assert!(
            bytes == read_bytes(&env.db_path()),
            "a second apply must not touch the file"
        );
    }
}

fn drift_made_with_sql_shows_in_plan_and_apply_reverts_it(env: Env) {
    env.write("account.yaml", ACCOUNT);
    env.apply();
    env.sql("UPDATE logins SET role_id = 'customer_center', access = false WHERE email = 'jane@acme.example';
             UPDATE websites SET url = 'https://evil.example' WHERE id = 'store-eu';
             INSERT INTO customers (id, name, protect) VALUES ('ROGUE', 'Added by hand', false);");
    let (code, out, _) = env.plan(&["--detailed-exitcode"]);
    assert_eq!(code, 2);
    assert!(out.contains("~ update website[\"store-eu\"]"), "{out}");
    assert!(
        out.contains("url : https://evil.example → https://eu.example.com"),
        "{out}"
    );
    assert!(
        out.contains("customer[\"CUST-0042\"].contact[\"jane@acme.example\"]"),
        "{out}"
    );
    assert!(
        out.contains("role   : customer_center → acme-center"),
        "{out}"
    );
    assert!(out.contains("access : false → true"), "{out}");
    assert!(out.contains("- delete customer[\"ROGUE\"]"), "{out}");
    env.apply();
    assert_eq!(
        env.rows("SELECT role_id FROM logins WHERE email = 'jane@acme.example'"),
        ["acme-center"]
    );
    assert_eq!(
        env.rows("SELECT id FROM customers ORDER BY id"),
        ["CUST-0042", "CUST-0043"]
    );
    assert_eq!(env.plan(&["--detailed-exitcode"]).0, 0);
}

fn runtime_login_data_is_not_drift_and_survives_apply(env: Env) {
    env.write("account.yaml", ACCOUNT);
    env.apply();
    env.sql(
        "UPDATE logins SET password_hash = '$argon2id$v=19$user-set', failed_attempts = 3,
             locked_until = '2026-01-01T00:00:00Z', last_login_at = '2025-12-31T00:00:00Z'
             WHERE email = 'jane@acme.example'",
    );
    assert_eq!(env.plan(&["--detailed-exitcode"]).0, 0);
    env.write(
        "account.yaml",
        &ACCOUNT.replace("name: Jane Doe", "name: Jane Smith"),
    );
    env.apply();
    assert_eq!(
        env.rows("SELECT name || ' ' || password_hash || ' ' || failed_attempts || ' ' || locked_until FROM logins WHERE email = 'jane@acme.example'"),
        ["Jane Smith $argon2id$v=19$user-set 3 2026-01-01T00:00:00Z"]
    );
}

fn revoke_and_delete_and_prune_only_managed_sections(env: Env) {
    env.write("account.yaml", ACCOUNT);
    env.apply();
    // Jane loses access; Beta is no longer declared; roles/websites sections are dropped.
    let next = ACCOUNT
        .replace("        access: true\n        notify: true\n", "        access: false\n")
        .replace("  - id: CUST-0043\n    name: Beta GmbH\n    email: info@beta.example\n    access:\n      give_access: true\n      notify: true\n", "");
    env.write("account.yaml", &next);
    let (_, out, _) = env.plan(&[]);
    assert!(
        out.contains("! revoke customer[\"CUST-0042\"].contact[\"jane@acme.example\"]"),
        "{out}"
    );
    assert!(out.contains("- delete customer[\"CUST-0043\"]"), "{out}");
    assert!(
        out.contains("Plan: 0 to create, 0 to update, 1 to revoke, 1 to delete."),
        "{out}"
    );
    env.apply();
    assert_eq!(
        env.rows(&format!(
            "SELECT email || ' ' || {} FROM logins ORDER BY email",
            b("access")
        )),
        ["ap@acme.example 1", "jane@acme.example 0"]
    );

    // Without a customers section, customers are unmanaged: nothing is pruned, with a warning.
    env.write(
        "account.yaml",
        "features:\n  customer_access: true\n  websites: true\n",
    );
    let (_, out, err) = env.plan(&[]);
    assert!(err.contains("no `customers:` section"), "{err}");
    assert!(!out.contains("customer["), "{out}");
    // The role and website are still used by unmanaged logins, so they are kept.
    env.write(
        "account.yaml",
        "features:\n  customer_access: true\n  websites: true\nroles: []\nwebsites: []\n",
    );
    let (_, out, _) = env.plan(&[]);
    assert!(
        out.contains(
            "role[\"acme-center\"] is not deleted: customer[\"CUST-0042\"] still uses this role"
        ),
        "{out}"
    );
    assert!(!out.contains("- delete"), "{out}");

    // `customers: []` deletes every customer; --no-prune keeps them.
    env.write("account.yaml", "customers: []\n");
    let (_, out, _) = env.plan(&["--no-prune"]);
    assert!(out.contains("No changes."), "{out}");
    env.apply();
    assert!(env.rows("SELECT id FROM customers").is_empty());
}

fn protected_customers_are_never_deleted(env: Env) {
    env.write(
        "account.yaml",
        &ACCOUNT.replace(
            "    name: Acme Ltd\n",
            "    name: Acme Ltd\n    protect: true\n",
        ),
    );
    env.apply();
    env.write("account.yaml", "customers: []\n");
    let (_, out, _) = env.plan(&[]);
    assert!(
        out.contains("warning: customer[\"CUST-0042\"] is protected: kept"),
        "{out}"
    );
    assert!(out.contains("- delete customer[\"CUST-0043\"]"), "{out}");
    assert!(!out.contains("delete customer[\"CUST-0042\"]"), "{out}");
    env.apply();
    assert_eq!(env.rows("SELECT id FROM customers"), ["CUST-0042"]);
}

fn features_switch_on_first_and_off_last(env: Env) {
    env.write("account.yaml", ACCOUNT);
    let (_, out, _) = env.plan(&[]);
    let feature = out.find("feature[\"customer_access\"]").unwrap();
    let login = out.find("customer[\"CUST-0042\"]").unwrap();
    assert!(
        feature < login,
        "features are switched on before logins get access:\n{out}"
    );
    env.apply();

    env.write(
        "account.yaml",
        "features: {}\ncustomers: []\nroles: []\nwebsites: []\n",
    );
    let (_, out, _) = env.plan(&[]);
    let revoke = out.find("delete customer[\"CUST-0042\"]").unwrap();
    let off = out.find("feature[\"customer_access\"]").unwrap();
    assert!(
        revoke < off,
        "logins go before features are switched off:\n{out}"
    );
    env.apply();
    assert_eq!(
        env.rows(&format!(
            "SELECT name || '=' || {} FROM features ORDER BY name",
            b("enabled")
        )),
        ["customer_access=0", "websites=0"]
    );
    assert_eq!(env.plan(&["--detailed-exitcode"]).0, 0);
}

fn emails_can_move_between_logins_in_one_apply(env: Env) {
    env.write("account.yaml", ACCOUNT);
    env.apply();
    // Swap the two customers' emails and move Jane to Beta.
    let swapped = ACCOUNT
        .replace("ap@acme.example", "TMP")
        .replace("info@beta.example", "ap@acme.example")
        .replace("TMP", "info@beta.example");
    let moved = swapped.replace(
        "    contacts:\n      - email: jane@acme.example\n        name: Jane Doe\n        access: true\n        notify: true\n",
        "",
    ) + "    contacts:\n      - email: Jane@Acme.example\n        access: true\n        notify: true\n";
    env.write("account.yaml", &moved);
    env.apply();
    assert_eq!(
        env.rows("SELECT customer_id || ' ' || email FROM logins ORDER BY email"),
        [
            "CUST-0042 ap@acme.example".replace("CUST-0042", "CUST-0043"),
            "CUST-0042 info@beta.example".into(),
            "CUST-0043 jane@acme.example".into()
        ]
    );
    assert_eq!(env.plan(&["--detailed-exitcode"]).0, 0);
}

fn a_failing_apply_leaves_the_database_byte_for_byte_unchanged(env: Env) {
    env.write("account.yaml", ACCOUNT);
    env.apply();
    // A trigger makes the last batch of the apply fail, after earlier batches have run.
    env.sql(env.pick(
        "CREATE TRIGGER boom BEFORE INSERT ON logins WHEN NEW.email = 'new@beta.example'
         BEGIN SELECT RAISE(ABORT, 'forced failure'); END;",
        "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.email = 'new@beta.example' THEN RAISE EXCEPTION 'forced failure'; END IF; RETURN NEW; END $$;
         CREATE TRIGGER boom BEFORE INSERT ON logins FOR EACH ROW EXECUTE FUNCTION boom();",
    ));
    let bytes = env.is_sqlite().then(|| read_bytes(&env.db_path()));
    let dump = env.dump();
    let next = ACCOUNT
        .replace(
            "features:\n",
            "features:\n  two_factor_authentication: true\n",
        )
        .replace("name: Acme Ltd", "name: Acme Limited")
        + "    contacts:\n      - email: new@beta.example\n        access: true\n        notify: true\n";
    env.write("account.yaml", &next);
    let out = env
        .portico(&["apply", "-f", "manifests", "--auto-approve"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("forced failure"), "{stderr}");
    assert_eq!(dump, env.dump(), "every row must be exactly as before");
    if let Some(bytes) = bytes {
        assert!(
            bytes == read_bytes(&env.db_path()),
            "the SQLite file must be byte-for-byte as before"
        );
    }
}

fn apply_without_a_terminal_needs_auto_approve(env: Env) {
    env.write("account.yaml", ACCOUNT);
    let (code, _, err) = crate::common::run(env.portico(&["apply", "-f", "manifests"]));
    assert_eq!(code, 1);
    assert!(err.contains("pass --auto-approve"), "{err}");
    assert!(env.dump().is_empty(), "a refused apply creates nothing");
}

fn plan_diff_shows_a_unified_diff(env: Env) {
    env.write("account.yaml", ACCOUNT);
    env.apply();
    env.write(
        "account.yaml",
        &ACCOUNT.replace("name: EU Store", "name: Europe Store"),
    );
    let (_, out, _) = env.plan(&["--diff"]);
    assert!(out.contains("--- live website[\"store-eu\"]"), "{out}");
    assert!(out.contains("+++ desired website[\"store-eu\"]"), "{out}");
    assert!(out.contains("-name: EU Store"), "{out}");
    assert!(out.contains("+name: Europe Store"), "{out}");
    assert!(out.contains(" url: https://eu.example.com"), "{out}");
}

fn color_only_when_asked(env: Env) {
    env.write("account.yaml", ACCOUNT);
    let (_, plain, _) = env.plan(&[]);
    assert!(!plain.contains('\u{1b}'), "piped output is plain");
    let mut cmd = env.portico(&["plan", "-f", "manifests"]);
    cmd.env_remove("NO_COLOR").env("CLICOLOR_FORCE", "1");
    let (_, colored, _) = crate::common::run(cmd);
    assert!(colored.contains("\u{1b}["), "forced color is colored");
}

fn database_url_comes_from_flag_or_environment(env: Env) {
    env.write("account.yaml", ACCOUNT);
    let other = format!("sqlite://{}", env.path("other.db").display());
    let mut cmd = env.portico(&[
        "apply",
        "-f",
        "manifests",
        "--auto-approve",
        "--database",
        &other,
    ]);
    cmd.assert().success();
    assert!(env.path("other.db").exists());
    assert!(
        env.dump().is_empty(),
        "--database wins over PORTICO_DATABASE_URL"
    );
    env.apply();
    assert!(!env.dump().is_empty());
    let (code, _, err) =
        crate::common::run(env.portico(&["plan", "-f", "manifests", "--database", "mysql://x"]));
    assert_eq!(code, 1);
    assert!(err.contains("unsupported database URL"), "{err}");
}

fn init_creates_the_schema_and_standard_roles(env: Env) {
    env.portico(&["init"]).assert().success();
    assert_eq!(
        env.rows(&format!("SELECT id || ' ' || {} FROM roles", b("standard"))),
        ["customer_center 1"]
    );
    assert_eq!(
        env.rows("SELECT permission || '=' || level FROM role_permissions WHERE role_id = 'customer_center' AND permission IN ('estimate', 'sales_order', 'customer_payment', 'return_authorization') ORDER BY 1"),
        ["customer_payment=edit", "estimate=view", "return_authorization=create", "sales_order=edit"]
    );
}

fn examples_are_valid_and_plan_cleanly(env: Env) {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/account");
    let examples = examples.to_str().unwrap();
    env.portico(&["validate", "-f", examples])
        .assert()
        .success();
    env.portico(&["apply", "-f", examples, "--auto-approve"])
        .assert()
        .success();
    let (code, out, _) =
        crate::common::run(env.portico(&["plan", "-f", examples, "--detailed-exitcode"]));
    assert_eq!(code, 0, "{out}");
    for file in std::fs::read_dir(std::path::Path::new(examples).join("customers")).unwrap() {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
        assert!(text.starts_with("# yaml-language-server: $schema="));
    }
}

#[test]
fn the_live_state_is_read_whole_in_small_pages_under_an_icu_collation() {
    the_live_state_is_read_whole_in_small_pages(Env::postgres_icu());
}

/// SQLite reads the logins in pages, each starting after the greatest key (by bytes) of the
/// one before; PostgreSQL streams them in the table's own order, under any collation. Ids
/// whose byte order differs from a locale's order (case, accents, punctuation) and own logins
/// (empty contact) beside contacts, read one to five rows at a time, still give the whole
/// state, in the same order (a skipped login would show as a create, and the export would
/// lack it).
fn the_live_state_is_read_whole_in_small_pages(env: Env) {
    let ids = [
        "a", "B", "c", "_x", "Zed", "zed2", "Äpfel", "ä1", "0", "a-b", "a_b", "A", "ß", "é",
    ];
    let mut text = String::from(
        "features:\n  customer_access: true\nnotifications:\n  url: http://127.0.0.1:9/portico\n  \
         login_url: https://customers.example.com/login\ncustomers:\n",
    );
    for (i, id) in ids.iter().enumerate() {
        text.push_str(&format!(
            "  - id: \"{id}\"\n    name: Customer {i}\n    email: own{i}@x.example\n    \
             access: {{ give_access: true, notify: true }}\n    contacts:\n      \
             - {{ email: Z{i}@x.example, access: true, notify: true }}\n      \
             - {{ email: a.{i}@x.example }}\n      - {{ email: _{i}@x.example }}\n"
        ));
    }
    env.write("account.yaml", &text);
    env.apply();
    // Every exported file, in path order.
    let export = |page: &str| {
        let out = env.path(&format!("export-{page}"));
        let mut cmd = env.portico(&["export", "--out", out.to_str().unwrap()]);
        cmd.env("PORTICO_READ_PAGE_ROWS", page).assert().success();
        let mut files = Vec::new();
        let mut folders = vec![out];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    folders.push(path);
                } else if path.extension().is_some_and(|e| e == "yaml") {
                    files.push(path);
                }
            }
        }
        files.sort();
        files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect::<String>()
    };
    let whole = export("100000");
    assert_eq!(
        whole.matches("@x.example").count(),
        ids.len() * 4,
        "{whole}"
    );
    for page in ["1", "2", "3", "5"] {
        let mut cmd = env.portico(&[
            "plan",
            "-f",
            "manifests",
            "--detailed-exitcode",
            "--no-incremental",
        ]);
        cmd.env("PORTICO_READ_PAGE_ROWS", page);
        let (code, out, err) = run(cmd);
        assert_eq!(code, 0, "pages of {page}: {out}{err}");
        assert!(out.contains("No changes."), "pages of {page}: {out}");
        assert_eq!(export(page), whole, "pages of {page}");
    }
}

/// Flags work where people type them: `--database` after a nested subcommand, and
/// `--lock-timeout` as seconds or as a duration (`10s`, `2m`, `1m30s`), as Terraform takes it.
#[test]
fn database_after_a_nested_subcommand_and_lock_timeouts_as_durations() {
    let env = Env::sqlite();
    env.write("account.yaml", ACCOUNT);
    for timeout in ["10", "10s", "2m", "1m30s", "500ms"] {
        let (code, _, err) = run(env.portico(&[
            "apply",
            "-f",
            "manifests",
            "--auto-approve",
            "--lock-timeout",
            timeout,
        ]));
        assert_eq!(code, 0, "{timeout}: {err}");
    }
    for bad in ["abc", "-3", "10 parsecs"] {
        let (code, _, err) = run(env.portico(&[
            "apply",
            "-f",
            "manifests",
            "--auto-approve",
            &format!("--lock-timeout={bad}"),
        ]));
        assert_eq!(code, 64, "{bad}: {err}");
        assert!(err.contains("--lock-timeout"), "{err}");
    }
    // `history show 1 --database URL`: the global flag after the nested subcommand.
    let url = env.url.clone();
    let mut cmd = env.portico(&["history", "show", "1", "--database", &url]);
    cmd.env_remove("PORTICO_DATABASE_URL");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("apply 1"), "{out}");
    // Flags about reading manifests belong to the commands that read them: elsewhere they
    // are refused, never silently ignored.
    for args in [
        &["history", "--max-file-size", "1"][..],
        &["serve", "--policy-warn-only"],
        &["sign-out", "a@b.example", "--max-file-size", "1"],
    ] {
        let (code, _, err) = run(env.portico(args));
        assert_eq!(code, 64, "{args:?}: {err}");
        assert!(err.contains("unexpected argument"), "{args:?}: {err}");
    }
    let (code, _, err) = run(env.portico(&["validate", "-f", "manifests", "--policy-warn-only"]));
    assert_eq!(code, 0, "{err}");
}

/// `portico` and a pipe.
fn piped(env: &Env, args: &[&str], input: &[u8]) -> (i32, String, String) {
    use std::io::Write as _;
    let mut child = env
        .std_command(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `-` for standard input and output (clig.dev): `plan --out -` pipes the saved plan to
/// `show -` and `apply --plan -`, and `import-csv -` reads the CSV from a pipe. No file
/// named `-` is ever written.
#[test]
fn a_dash_is_standard_input_or_output() {
    let env = Env::sqlite();
    env.write("account.yaml", ACCOUNT);
    let (code, saved, err) = run(env.portico(&["plan", "-f", "manifests", "--out", "-"]));
    assert_eq!(code, 0, "{err}");
    let document: serde_json::Value = serde_json::from_str(&saved).expect("only the plan's JSON");
    assert_eq!(document["format_version"], 1);
    assert!(err.contains("to create"), "the summary on stderr: {err}");
    assert!(!env.path("-").exists(), "no file named -");
    let (code, shown, err) = piped(&env, &["show", "-"], saved.as_bytes());
    assert_eq!(code, 0, "{err}");
    assert!(shown.contains("portico will make these changes"), "{shown}");
    let (code, _, err) = piped(
        &env,
        &["apply", "--plan", "-", "--auto-approve", "--no-notify"],
        saved.as_bytes(),
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = env.plan(&[]);
    assert_eq!(code, 0);
    assert!(out.contains("No changes"), "{out}");
    // import-csv from a pipe.
    let csv = "Customer ID,Email,Give Access\nCUST-0042,new-ap@acme.example,Yes\n";
    let (code, out, err) = piped(
        &env,
        &["import-csv", "-", "-f", "manifests", "--dry-run"],
        csv.as_bytes(),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("new-ap@acme.example"), "{out}");
}
