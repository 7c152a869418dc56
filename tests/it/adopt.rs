//! Adopting an existing account: `export` round trips and `import-csv` edits manifests in
//! place, through the real binary on both engines.

use crate::common::{ACCOUNT, Env, STATUS, run};

crate::common::on_every_engine!(
    export_then_plan_shows_no_changes,
    export_reads_back_identically_in_meaning,
    import_csv_changes_customers_where_they_are_declared,
    import_csv_hashes_passwords_without_leaking_them,
    a_csv_no_cancels_a_queued_message,
    a_live_customer_no_manifest_declares_keeps_its_live_name,
    export_force_replaces_the_manifests_whole_and_keeps_the_rest,
);

/// Plans `dir` (relative to the env folder) with `--detailed-exitcode`.
fn plan_dir(env: &Env, dir: &str) -> (i32, String, String) {
    run(env.portico(&["plan", "-f", dir, "--detailed-exitcode"]))
}

fn export_then_plan_shows_no_changes(env: Env) {
    env.write(
        "account.yaml",
        &ACCOUNT.replace("notifications:\n  url: http://127.0.0.1:9/portico\n  login_url: https://customers.example.com/login\n", ""),
    );
    env.write(
        "more.yaml",
        "login_policy:\n  session_timeout_minutes: 30\nnotifications:\n  url: https://mail.example/hook\n  auth_header: { env: MAIL_TOKEN }\n  login_url: https://customers.example.com/login\n  token_ttl_hours: 48\n",
    );
    env.apply();
    // Drift made outside portico is part of the live account, so it is exported too.
    env.sql("UPDATE customers SET name = 'Acme Limited' WHERE id = 'CUST-0042'");
    let (code, out, err) = run(env.portico(&["export", "--out", "exported", "--per-file", "1"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Exported 2 customers (1 contacts), 1 roles and 1 websites"),
        "{out}"
    );
    for file in [
        "account.yaml",
        "websites.yaml",
        "roles.yaml",
        "customers/customers-0001.yaml",
        "customers/customers-0002.yaml",
        "manifest.schema.json",
    ] {
        assert!(env.path("exported").join(file).exists(), "{file}");
    }
    let customers =
        std::fs::read_to_string(env.path("exported/customers/customers-0001.yaml")).unwrap();
    assert!(
        customers.starts_with("# yaml-language-server: $schema=../manifest.schema.json\n"),
        "{customers}"
    );
    let (code, out, err) = plan_dir(&env, "exported");
    assert_eq!(
        code, 0,
        "export then plan must show no changes:\n{out}{err}"
    );
    assert!(out.contains("No changes"), "{out}");
    assert!(
        !err.contains("warning"),
        "no warnings for an exported account: {err}"
    );
    // validate, offline, accepts the export too.
    let (code, _, err) = run(env.portico(&["validate", "-f", "exported"]));
    assert_eq!(code, 0, "{err}");
    // A non-empty folder is refused unless --force, which replaces its manifests.
    let (code, _, err) = run(env.portico(&["export", "--out", "exported"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("is not empty") && err.contains("--force"),
        "{err}"
    );
    let (code, _, err) = run(env.portico(&["export", "--out", "exported", "--force"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        !env.path("exported/customers/customers-0002.yaml").exists(),
        "old files are replaced"
    );
    assert_eq!(plan_dir(&env, "exported").0, 0);
}

fn export_reads_back_identically_in_meaning(env: Env) {
    env.write("account.yaml", ACCOUNT);
    env.apply();
    let (code, _, err) = run(env.portico(&["export", "--out", "exported"]));
    assert_eq!(code, 0, "{err}");
    let meaning = |dir: &str| {
        let (set, diagnostics) = portico::manifest::load(&env.path(dir), Default::default());
        assert!(diagnostics.iter().all(|d| !d.is_error()), "{diagnostics:?}");
        portico::validate::validate(&set, None).0.state
    };
    assert_eq!(meaning("manifests"), meaning("exported"));
    // Shortest form: defaults and passwords are left out, roles list only overrides.
    let all: String = [
        "account.yaml",
        "roles.yaml",
        "customers/customers-0001.yaml",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(env.path("exported").join(f)).unwrap())
    .collect();
    for absent in [
        "give_access: false",
        "protect: false",
        "password",
        "base: customer_center",
        "two_factor: off",
        "websites: false",
    ] {
        assert!(
            !all.contains(absent),
            "{absent:?} should be left out:\n{all}"
        );
    }
    assert!(all.contains("customer_payment: none"), "{all}");
    assert!(
        !all.contains("invoice:"),
        "invoice is the base role's level: {all}"
    );
    // Only some sections.
    let (code, _, err) = run(env.portico(&[
        "export",
        "--out",
        "roles-only",
        "--sections",
        "roles,websites",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(env.path("roles-only/roles.yaml").exists());
    assert!(!env.path("roles-only/customers").exists());
    assert!(!env.path("roles-only/account.yaml").exists());
}

#[test]
fn export_of_a_missing_database_is_an_error() {
    let env = Env::sqlite();
    let (code, _, err) = run(env.portico(&["export", "--out", "x"]));
    assert_eq!(code, 1);
    assert!(err.contains("no database at"), "{err}");
    assert!(!env.db_path().exists(), "export never creates a database");
}

/// Manifests with comments that must survive byte for byte outside the changed customer.
const COMMENTED: &str = "\
# yaml-language-server: $schema=../schemas/manifest.schema.json
# Our EU customers. Keep sorted by id.
customers:
  # The big one.
  - id: CUST-0042
    name: Acme Ltd
    email: ap@acme.example
    access:
      give_access: true
      role: acme-center
      website: store-eu
      notify: true
    contacts:
      - email: jane@acme.example
        name: Jane Doe
        access: true
        notify: true

  # Small, but loyal.   (a comment with odd spacing)
  - id: CUST-0043
    name: Beta GmbH
    email: info@beta.example
    access: { give_access: true, notify: true }   # flow style inside a block entry
";

const BASE: &str = "\
features:
  customer_access: true
  websites: true
notifications:
  url: http://127.0.0.1:9/portico
  login_url: https://customers.example.com/login
websites:
  - id: store-eu
    name: EU Store
    url: https://eu.example.com
roles:
  - id: acme-center
    name: Customer Center (no payments)
    permissions:
      customer_payment: none
";

/// A NetSuite-style export: BOM, CRLF, a quoted comma, role and website by display name,
/// the contact sublist, Yes/No and T/F booleans, Excel's trailing empty columns.
const CSV: &str = "\u{feff}Internal ID,Company Name,Email,Give Access,Send New Access Notification Email,Role,Assigned Website,Contact Access 1 : Contact,Contact Access 1 : Email,Contact Access 1 : Access,Contact Access 1 : Notify,,\r\n\
CUST-0042,\"Acme, Ltd\",,,,Customer Center,EU Store,Raj Patel,raj@acme.example,T,T,,\r\n\
CUST-0099,New Co,buyer@new.example,Yes,Yes,Customer Center (no payments),,,,,,,\r\n";

fn import_csv_changes_customers_where_they_are_declared(env: Env) {
    env.write("base.yaml", BASE);
    env.write("customers/eu.yaml", COMMENTED);
    env.apply();
    std::fs::write(env.path("access.csv"), CSV).unwrap();
    let before = std::fs::read_to_string(env.path("manifests/customers/eu.yaml")).unwrap();
    // --dry-run prints the diff and writes nothing.
    let (code, out, err) =
        run(env.portico(&["import-csv", "access.csv", "-f", "manifests", "--dry-run"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("-    name: Acme Ltd\n+    name: Acme, Ltd\n"),
        "{out}"
    );
    assert!(
        out.contains("+++ b/manifests/customers/imported.yaml"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(env.path("manifests/customers/eu.yaml")).unwrap(),
        before
    );
    assert!(!env.path("manifests/customers/imported.yaml").exists());

    let (code, out, err) = run(env.portico(&["import-csv", "access.csv", "-f", "manifests"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Updated 1 customer in place and added 1 customer in a new file"),
        "{out}"
    );
    let after = std::fs::read_to_string(env.path("manifests/customers/eu.yaml")).unwrap();
    // Every byte outside the changed customer's block is as it was.
    let block = |text: &str| {
        let start = text.find("  - id: CUST-0042").unwrap();
        let end = text.find("\n\n  # Small").unwrap() + 1;
        (text[..start].to_string(), text[end..].to_string())
    };
    assert_eq!(block(&before), block(&after), "{after}");
    let new = std::fs::read_to_string(env.path("manifests/customers/imported.yaml")).unwrap();
    assert!(
        new.starts_with("# yaml-language-server: $schema=../schemas/manifest.schema.json\n"),
        "{new}"
    );

    let (code, _, err) = run(env.portico(&["validate", "-f", "manifests"]));
    assert_eq!(code, 0, "{err}");
    // The plan shows exactly the CSV's changes.
    let (code, out, err) = env.plan(&["--detailed-exitcode"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        out.contains("Plan: 2 to create, 1 to update, 0 to revoke, 0 to delete."),
        "{out}"
    );
    assert!(out.contains("customer[\"CUST-0042\"]"), "{out}");
    assert!(
        out.contains("name: \"Acme Ltd\" → \"Acme, Ltd\"") || out.contains("Acme, Ltd"),
        "{out}"
    );
    assert!(
        out.contains("role: \"acme-center\" → \"customer_center\"")
            || out.contains("customer_center"),
        "{out}"
    );
    assert!(
        out.contains("customer[\"CUST-0042\"].contact[\"raj@acme.example\"]"),
        "{out}"
    );
    assert!(out.contains("customer[\"CUST-0099\"]"), "{out}");
    assert!(
        !out.contains("jane@acme.example"),
        "jane is not in the CSV, so she is left as she is: {out}"
    );
    env.apply();
    let role = env.rows("SELECT role_id FROM logins WHERE email = 'buyer@new.example'");
    assert_eq!(role, ["acme-center"], "role given by display name");
    // Importing the same file again changes nothing.
    let (code, out, _) = run(env.portico(&["import-csv", "access.csv", "-f", "manifests"]));
    assert_eq!(code, 0);
    assert!(
        out.contains("Updated 0 customers in place and added 0 customers"),
        "{out}"
    );
}

fn import_csv_hashes_passwords_without_leaking_them(env: Env) {
    env.write("base.yaml", BASE);
    env.write("customers/eu.yaml", COMMENTED);
    env.apply();
    let secret = "Csv-Plaintext-Secret-77";
    let csv = format!(
        "Internal ID,Manually Assign or Change Password,Password,Confirm Password,Contact Access 1 : Email,Contact Access 1 : Access,Contact Access 1 : Password\n\
         CUST-0043,Yes,{secret},{secret},new@beta.example,Yes,{secret}-contact\n"
    );
    std::fs::write(env.path("pw.csv"), &csv).unwrap();
    // Without --passwords a password is an error that says so, and nothing is written.
    let before = std::fs::read_to_string(env.path("manifests/customers/eu.yaml")).unwrap();
    let (code, out, err) = run(env.portico(&["import-csv", "pw.csv", "-f", "manifests"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("pw.csv:2: column \"Password\": this row holds a plaintext password"),
        "{err}"
    );
    assert!(err.contains("--passwords hash"), "{err}");
    assert!(!format!("{out}{err}").contains(secret));
    assert_eq!(
        std::fs::read_to_string(env.path("manifests/customers/eu.yaml")).unwrap(),
        before
    );

    let mut cmd = env.portico(&[
        "import-csv",
        "pw.csv",
        "-f",
        "manifests",
        "--passwords",
        "hash",
    ]);
    cmd.env("RUST_LOG", "trace");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    assert!(
        !format!("{out}{err}").contains(secret),
        "no plaintext in the output"
    );
    let text = std::fs::read_to_string(env.path("manifests/customers/eu.yaml")).unwrap();
    assert!(!text.contains(secret), "no plaintext in the manifests");
    assert!(text.contains("argon2: $argon2id$"), "{text}");
    env.apply();
    let verifies = |email: &str, password: &str| {
        let hash = env.rows(&format!(
            "SELECT password_hash FROM logins WHERE email = '{email}'"
        ));
        let parsed = argon2::password_hash::phc::PasswordHash::new(&hash[0]).unwrap();
        use argon2::password_hash::PasswordVerifier;
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    };
    assert!(verifies("info@beta.example", secret));
    assert!(verifies("new@beta.example", &format!("{secret}-contact")));
    assert!(!env.dump().iter().any(|row| row.contains(secret)));
    // Sets CUST-0043's own password from a CSV and returns the manifest written.
    let import_password = |password: &str| {
        std::fs::write(
            env.path("pw2.csv"),
            format!("Internal ID,Password\nCUST-0043,{password}\n"),
        )
        .unwrap();
        let (code, _, err) = run(env.portico(&[
            "import-csv",
            "pw2.csv",
            "-f",
            "manifests",
            "--passwords",
            "hash",
        ]));
        assert_eq!(code, 0, "{err}");
        std::fs::read_to_string(env.path("manifests/customers/eu.yaml")).unwrap()
    };
    // Changing it again ("Manually Assign or Change Password") moves the reset marker, so
    // apply sets the new one over the one portico set before.
    let second = "Second-Csv-Secret-88";
    let text = import_password(second);
    assert!(text.contains("reset: 1"), "{text}");
    env.apply();
    assert!(verifies("info@beta.example", second));
    // A manifest that no longer names the password leaves the live one and its marker; a
    // new password from a CSV moves on from the live marker, or apply would keep the old.
    env.write("customers/eu.yaml", COMMENTED);
    env.apply();
    assert!(verifies("info@beta.example", second));
    let third = "Third-Csv-Secret-99";
    let text = import_password(third);
    assert!(text.contains("reset: 2"), "{text}");
    env.apply();
    assert!(verifies("info@beta.example", third));

    // --passwords notify drops the password and asks the user to set one.
    let csv = format!(
        "Internal ID,Contact Access 1 : Email,Contact Access 1 : Password\nCUST-0042,jane@acme.example,{secret}\n"
    );
    std::fs::write(env.path("notify.csv"), csv).unwrap();
    let (code, _, err) = run(env.portico(&[
        "import-csv",
        "notify.csv",
        "-f",
        "manifests",
        "--passwords",
        "notify",
    ]));
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(env.path("manifests/customers/eu.yaml")).unwrap();
    assert!(!text.contains(secret));
}

/// One folder, one CSV; asserts the import fails, writes nothing and reports `expected`
/// (each a substring of stderr).
#[track_caller]
fn refused(csv: &str, extra: &[&str], expected: &[&str]) {
    let env = Env::sqlite();
    env.write("base.yaml", BASE);
    env.write("customers/eu.yaml", COMMENTED);
    std::fs::write(env.path("bad.csv"), csv).unwrap();
    let mut args = vec!["import-csv", "bad.csv", "-f", "manifests"];
    args.extend_from_slice(extra);
    let (code, out, err) = run(env.portico(&args));
    assert_eq!(code, 1, "{out}{err}");
    for e in expected {
        assert!(err.contains(e), "expected {e:?} in:\n{err}");
    }
    assert_eq!(
        std::fs::read_to_string(env.path("manifests/customers/eu.yaml")).unwrap(),
        COMMENTED
    );
    assert!(!env.path("manifests/customers/imported.yaml").exists());
}

/// A NetSuite saved search of contacts, one row per contact (`Login Access`, `Access Role`),
/// the customer named by a join column: each row becomes one contact of its customer.
#[test]
fn a_one_row_per_contact_saved_search_imports_each_contact() {
    let env = Env::sqlite();
    env.write("base.yaml", BASE);
    env.write("customers/eu.yaml", COMMENTED);
    std::fs::write(
        env.path("contacts.csv"),
        "Internal ID,Customer : Internal ID,Contact,Email,Login Access,Access Role\n\
         901,CUST-0042,Jane Doe,jane@acme.example,No,\n\
         902,CUST-0042,Raj Patel,raj@acme.example,Yes,Customer Center (no payments)\n\
         903,CUST-0043,Olga Berg,olga@beta.example,Yes,\n",
    )
    .unwrap();
    // The contact's own `Internal ID` is known and not needed: contacts match by email.
    // Access without a password or a notification is refused at the contact's own row
    // and column, naming this file's columns.
    let (code, _, err) = run(env.portico(&["import-csv", "contacts.csv", "-f", "manifests"]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "contacts.csv:3: column \"Login Access\": this login gets access but no password"
        ),
        "{err}"
    );
    assert!(
        err.contains("contacts.csv:4: column \"Login Access\""),
        "{err}"
    );
    std::fs::write(
        env.path("contacts.csv"),
        "Internal ID,Customer : Internal ID,Contact,Email,Login Access,Access Role,Send Notification Email\n\
         901,CUST-0042,Jane Doe,jane@acme.example,No,,\n\
         902,CUST-0042,Raj Patel,raj@acme.example,Yes,Customer Center (no payments),Yes\n\
         903,CUST-0043,Olga Berg,olga@beta.example,Yes,,Yes\n",
    )
    .unwrap();
    let (code, out, err) = run(env.portico(&["import-csv", "contacts.csv", "-f", "manifests"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Updated 2 customers in place"), "{out}");
    let (code, _, err) = run(env.portico(&["validate", "-f", "manifests"]));
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = env.plan(&["--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let after = |address: &str| {
        plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["address"] == address)
            .map(|c| c["after"].clone())
            .unwrap_or_else(|| panic!("no change for {address}: {out}"))
    };
    let jane = after("customer[\"CUST-0042\"].contact[\"jane@acme.example\"]");
    assert_eq!(jane["access"], false, "{jane}");
    let raj = after("customer[\"CUST-0042\"].contact[\"raj@acme.example\"]");
    assert_eq!(
        (&raj["access"], &raj["name"]),
        (&serde_json::json!(true), &serde_json::json!("Raj Patel")),
        "{raj}"
    );
    assert_eq!(
        raj["role"], "acme-center",
        "role given by display name: {raj}"
    );
    let olga = after("customer[\"CUST-0043\"].contact[\"olga@beta.example\"]");
    assert_eq!(olga["access"], true, "{olga}");

    // Located errors: a contact listed twice, a customer named two ways, no customer id.
    refused(
        "Customer ID,Company Name,Email,Login Access\n\
         CUST-0042,Acme Ltd,raj@acme.example,Yes\n\
         CUST-0042,Acme Limited,RAJ@acme.example,Yes\n",
        &[],
        &[
            "bad.csv:3: column \"Company Name\": customer `CUST-0042` is named `Acme Ltd` in line 2",
            "bad.csv:3: column \"Email\": contact `RAJ@acme.example` of customer `CUST-0042` is already in line 2",
        ],
    );
    refused(
        "Internal ID,Email,Login Access\n901,raj@acme.example,Yes\n",
        &[],
        &[
            "no customer id column in a one-row-per-contact export",
            "Customer : Internal ID",
        ],
    );
}

#[test]
fn every_bad_row_is_reported_with_its_line_and_column() {
    let csv = "Internal ID,Company Name,Email,Give Access,Role,Assigned Website,Contact Access 1 : Access,Emial\n\
               CUST-0042,,not-an-email,maybe,Customer Centre,Nowhere,Yes,x\n\
               ,Nameless,a@x.example,,,,,\n\
               CUST-0100,,b@x.example,,,,,\n\
               CUST-0042,Again,,,,,,\n";
    refused(
        csv,
        &[],
        &[
            "bad.csv:1: column \"Emial\": unknown column",
            "did you mean \"Email\"?",
            "bad.csv:2: column \"Email\": `not-an-email` is not a valid email address",
            "bad.csv:2: column \"Give Access\": `maybe` is not a yes/no value",
            "bad.csv:2: column \"Role\": role `Customer Centre` is not defined",
            "did you mean `Customer Center`?",
            "bad.csv:2: column \"Assigned Website\": website `Nowhere` is not defined",
            "a contact entry has values but no email",
            "bad.csv:3: column \"Internal ID\": the customer id is empty",
            "bad.csv:4: column \"Company Name\": customer `CUST-0100` is new and has no name",
            "bad.csv:5: column \"Internal ID\": customer `CUST-0042` is already in line 2",
        ],
    );
    // The ignored column is skipped on purpose.
    refused(
        "ID,Emial\nCUST-0042,x\nCUST-0043,y\n,z\n",
        &["--ignore-column", "Emial"],
        &["bad.csv:4: column \"ID\": the customer id is empty"],
    );
}

#[test]
fn bad_passwords_are_refused_without_showing_them() {
    let secret = "Mismatched-Secret-123";
    let csv = format!(
        "ID,Password,Confirm Password\nCUST-0042,{secret},{secret}x\nCUST-0043,short,short\n"
    );
    refused(
        &csv,
        &["--passwords", "hash"],
        &[
            "bad.csv:2: column \"Password\": the password and its confirmation differ",
            "bad.csv:3: column \"Password\": the password is shorter than login_policy.password.min_length (10)",
        ],
    );
    let env = Env::sqlite();
    env.write("base.yaml", BASE);
    std::fs::write(env.path("bad.csv"), &csv).unwrap();
    let (_, out, err) = run(env.portico(&[
        "import-csv",
        "bad.csv",
        "-f",
        "manifests",
        "--passwords",
        "hash",
    ]));
    assert!(!format!("{out}{err}").contains("Mismatched"), "{err}");
    assert!(!format!("{out}{err}").contains("short,"), "{err}");
}

#[test]
fn semicolon_separated_files_and_flow_style_entries() {
    let env = Env::sqlite();
    env.write("base.yaml", BASE);
    env.write(
        "flow.yaml",
        "customers: [{ id: F1, name: Flow, email: f@x.example }]\n",
    );
    std::fs::write(
        env.path("semi.csv"),
        "Internal ID;Company Name\nF1;Flow Two\n",
    )
    .unwrap();
    let (code, _, err) = run(env.portico(&["import-csv", "semi.csv", "-f", "manifests"]));
    assert_eq!(code, 1, "a flow-style entry cannot be edited in place");
    assert!(
        err.contains("cannot edit customer `F1`") && err.contains("block-style"),
        "{err}"
    );
    env.write("flow.yaml", "customers:\n  - id: F1\n    name: Flow\n");
    let (code, _, err) = run(env.portico(&["import-csv", "semi.csv", "-f", "manifests"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(env.path("manifests/flow.yaml")).unwrap(),
        "customers:\n  - id: F1\n    name: Flow Two\n"
    );
}

#[test]
fn terminal_escapes_in_a_csv_are_shown_escaped() {
    let env = Env::sqlite();
    env.write("base.yaml", BASE);
    let hostile = "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{202e}evil\u{0}";
    std::fs::write(
        env.path("bad.csv"),
        format!("ID,Email,X{hostile}\nCUST-0042,{hostile}@x.example,1\n"),
    )
    .unwrap();
    let (code, out, err) = run(env.portico(&["import-csv", "bad.csv", "-f", "manifests"]));
    assert_eq!(code, 1, "{out}{err}");
    for raw in ['\u{1b}', '\u{7}', '\u{202e}', '\u{0}'] {
        assert!(!err.contains(raw), "{raw:?} reached the terminal:\n{err:?}");
        assert!(!out.contains(raw), "{raw:?} reached the terminal:\n{out:?}");
    }
    assert!(
        err.contains("\\u{1b}") && err.contains("\\u{202e}"),
        "{err}"
    );
}

#[test]
fn a_csv_that_would_lose_rows_or_point_wrong_is_refused_at_its_line() {
    // An unclosed quote would swallow the rows after it into one name.
    refused(
        "ID,Company Name,Email\nCUST-0042,\"Acme Ltd,ap@acme.example\nCUST-0043,Beta,info@beta.example\nCUST-0100,New,new@x.example\n",
        &[],
        &["bad.csv:2: a quote opened on this line is never closed"],
    );
    refused(
        "ID,Company Name,Email\nCUST-0042,\"Acme Ltd,ap@acme.example\nCUST-0043,Beta,info@beta.example\nCUST-0100,\"New\",new@x.example\n",
        &[],
        &[
            "bad.csv:2: a quoted value opened on this line runs across 1 line(s) that look like rows",
        ],
    );
    // CRLF (Excel's and NetSuite's default): the file's own line numbers.
    refused(
        "ID,Give Access\r\nCUST-0042,yes\r\nCUST-0043,maybe\r\n",
        &[],
        &["bad.csv:3: column \"Give Access\": `maybe` is not a yes/no value"],
    );
    // A confirmation alone; thousands of unknown columns are capped.
    refused(
        "ID,Confirm Password\nCUST-0042,secret-secret-1\n",
        &["--passwords", "hash"],
        &["bad.csv:2: column \"Confirm Password\": a confirmation without a password"],
    );
    let mut header = String::from("ID");
    for i in 0..2_000 {
        header.push_str(&format!(",Extra{i}"));
    }
    refused(
        &format!("{header}\nCUST-0042\n"),
        &[],
        &["and 1980 more unknown columns"],
    );
}

#[test]
fn import_csv_never_writes_manifests_that_validate_rejects() {
    // Another customer's email, in another case.
    refused(
        "ID,Email\nCUST-0043,AP@Acme.example\n",
        &[],
        &["bad.csv:2: column \"Email\":", "ap@acme.example"],
    );
    // An invisible character in a new customer's id.
    refused(
        "ID,Company Name,Email\nCUST\u{200b}9,New,new@x.example\n",
        &[],
        &["bad.csv:2: column \"Internal ID\":"],
    );
    // `notify` with no endpoint to send it.
    let env = Env::sqlite();
    env.write("base.yaml", "features: { customer_access: true }\n");
    env.write(
        "customers/eu.yaml",
        "customers:\n  - id: C1\n    name: One\n    email: one@x.example\n",
    );
    std::fs::write(
        env.path("n.csv"),
        "ID,Give Access,Send New Access Notification Email\nC1,Yes,Yes\n",
    )
    .unwrap();
    let (code, out, err) = run(env.portico(&["import-csv", "n.csv", "-f", "manifests"]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("n.csv:2: column"), "{err}");
    assert!(err.contains("notif"), "{err}");
    assert_eq!(
        std::fs::read_to_string(env.path("manifests/customers/eu.yaml")).unwrap(),
        "customers:\n  - id: C1\n    name: One\n    email: one@x.example\n"
    );
    // An entry with a YAML anchor another entry uses is not rewritten.
    let env = Env::sqlite();
    env.write("base.yaml", BASE);
    let anchored = "customers:\n  - id: CUST-0042\n    name: Acme Ltd\n    email: ap@acme.example\n    access: &std { give_access: true, notify: true }\n  - id: CUST-0043\n    name: Beta\n    email: info@beta.example\n    access: *std\n";
    env.write("customers/eu.yaml", anchored);
    std::fs::write(env.path("a.csv"), "ID,Company Name\nCUST-0042,Acme Two\n").unwrap();
    let (code, _, err) = run(env.portico(&["import-csv", "a.csv", "-f", "manifests"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("YAML anchor or alias `&std`"), "{err}");
    assert_eq!(
        std::fs::read_to_string(env.path("manifests/customers/eu.yaml")).unwrap(),
        anchored
    );
}

#[test]
fn a_role_name_two_roles_share_is_an_error_listing_both() {
    let env = Env::sqlite();
    env.write(
        "base.yaml",
        &format!("{BASE}  - id: acme-cc\n    name: Customer Center\n"),
    );
    env.write("customers/eu.yaml", COMMENTED);
    std::fs::write(env.path("r.csv"), "ID,Role\nCUST-0042,Customer Center\n").unwrap();
    let (code, _, err) = run(env.portico(&["import-csv", "r.csv", "-f", "manifests"]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("role name `Customer Center` is ambiguous: it is the name of `acme-cc`, `customer_center`"),
        "{err}"
    );
    // By id it is clear.
    std::fs::write(env.path("r.csv"), "ID,Role\nCUST-0042,acme-cc\n").unwrap();
    let (code, _, err) = run(env.portico(&["import-csv", "r.csv", "-f", "manifests"]));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn import_csv_keeps_comments_and_writes_through_no_planted_link() {
    let env = Env::sqlite();
    env.write("base.yaml", BASE);
    let commented = COMMENTED.replace(
        "    name: Acme Ltd\n",
        "    # Billing asked for this name.\n    name: Acme Ltd   # legal name\n",
    );
    env.write("customers/eu.yaml", &commented);
    // The old fixed temporary name, planted as a link to a file outside the folder.
    let victim = env.path("victim.txt");
    std::fs::write(&victim, "untouched").unwrap();
    std::os::unix::fs::symlink(&victim, env.path("manifests/customers/eu.yaml.portico-tmp"))
        .unwrap();
    std::fs::write(env.path("c.csv"), "ID,Give Access\nCUST-0042,No\n").unwrap();
    let (code, _, err) = run(env.portico(&["import-csv", "c.csv", "-f", "manifests"]));
    assert_eq!(code, 0, "{err}");
    let after = std::fs::read_to_string(env.path("manifests/customers/eu.yaml")).unwrap();
    for kept in [
        "# Billing asked for this name.",
        "name: Acme Ltd   # legal name",
        "# The big one.",
        "# Small, but loyal.",
    ] {
        assert!(after.contains(kept), "{kept} lost:\n{after}");
    }
    assert!(after.contains("give_access: false"), "{after}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    let (code, _, err) = run(env.portico(&["validate", "-f", "manifests"]));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn an_oversized_csv_is_refused_before_it_is_read() {
    let env = Env::sqlite();
    env.write("base.yaml", BASE);
    let mut text = String::from("ID,Company Name\n");
    while text.len() < 1_200_000 {
        text.push_str("CUST-0042,Acme Ltd\n");
    }
    std::fs::write(env.path("big.csv"), &text).unwrap();
    let (code, _, err) = run(env.portico(&[
        "import-csv",
        "big.csv",
        "-f",
        "manifests",
        "--max-file-size",
        "1",
    ]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("more than the limit of 1 MiB"), "{err}");
}

fn a_csv_no_cancels_a_queued_message(env: Env) {
    env.write("base.yaml", BASE);
    env.write("customers/eu.yaml", COMMENTED);
    env.apply(); // queued, not delivered (the tests never deliver by default)
    let queued = &format!(
        "SELECT {STATUS} FROM notifications WHERE coalesce(email, contact) = 'info@beta.example'"
    );
    assert_eq!(env.rows(queued), ["pending"]);
    std::fs::write(
        env.path("n.csv"),
        "ID,Send New Access Notification Email\nCUST-0043,No\n",
    )
    .unwrap();
    let (code, _, err) = run(env.portico(&["import-csv", "n.csv", "-f", "manifests"]));
    assert_eq!(code, 0, "{err}");
    env.apply();
    assert_eq!(env.rows(queued), ["cancelled"]);
}

fn a_live_customer_no_manifest_declares_keeps_its_live_name(env: Env) {
    env.write("base.yaml", BASE);
    env.write("customers/eu.yaml", COMMENTED);
    env.apply();
    // The customers are left unmanaged, so they stay live with no manifest naming them.
    std::fs::remove_file(env.path("manifests/customers/eu.yaml")).unwrap();
    std::fs::write(
        env.path("c.csv"),
        "Internal ID,Contact Access 1 : Email,Contact Access 1 : Access,Contact Access 1 : Notify\nCUST-0043,new@beta.example,Yes,Yes\n",
    )
    .unwrap();
    let (code, out, err) = run(env.portico(&["import-csv", "c.csv", "-f", "manifests"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("added 1 customer in a new file"), "{out}");
    let text = std::fs::read_to_string(env.path("manifests/imported.yaml")).unwrap();
    assert!(text.contains("name: Beta GmbH"), "{text}");
    assert!(text.contains("new@beta.example"), "{text}");
}

fn export_force_replaces_the_manifests_whole_and_keeps_the_rest(env: Env) {
    env.write("base.yaml", BASE);
    env.write("customers/eu.yaml", COMMENTED);
    env.apply();
    let out = env.path("exported");
    std::fs::create_dir_all(out.join(".git")).unwrap();
    std::fs::write(out.join(".git/HEAD"), "ref: refs/heads/main").unwrap();
    std::fs::write(out.join("README.md"), "ours").unwrap();
    std::fs::write(out.join("stale.yaml"), "customers: []\n").unwrap();
    let (code, _, err) = run(env.portico(&["export", "--out", "exported", "--force"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join(".git/HEAD")).unwrap(),
        "ref: refs/heads/main"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("README.md")).unwrap(),
        "ours"
    );
    assert!(!out.join("stale.yaml").exists(), "old manifests go");
    let leftovers: Vec<String> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".portico"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let (code, out, err) = plan_dir(&env, "exported");
    assert_eq!(code, 0, "export then plan shows no changes: {out}{err}");
}
