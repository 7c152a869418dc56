//! Day-2 operations through the real binary on both engines: `access` explains a login,
//! `unlock` clears a lockout, `resend` sends a fresh set-password link; both are recorded.

use crate::common::http::{Behaviour, Endpoint};
use crate::common::{Env, STATUS, run};

crate::common::on_every_engine!(
    access_explains_a_login_that_can_log_in,
    access_names_each_condition_that_refuses,
    unlock_clears_a_lockout_and_is_recorded,
    resend_revokes_old_links_and_sends_a_fresh_one,
    each_object_names_the_apply_that_last_wrote_it,
    resend_delivers_only_that_logins_message,
    access_says_when_the_email_never_left,
);

fn account(url: &str) -> String {
    format!(
        "features: {{ customer_access: true, websites: true, two_factor_authentication: true }}
notifications:
  url: {url}
websites:
  - {{ id: store-eu, name: EU Store, url: https://eu.example.com }}
roles:
  - id: payers
    name: Payers
    permissions: {{ customer_payment: none, documents_and_files: view }}
    two_factor: required
customers:
  - id: CUST-0042
    name: Acme Ltd
    email: ap@acme.example
    access: {{ give_access: true, role: payers, website: store-eu, notify: true }}
    contacts:
      - {{ email: jane@acme.example, name: Jane Doe, access: true, notify: true }}
      - {{ email: off@acme.example, name: Off Line }}
"
    )
}

/// Applies and delivers the new-access notifications.
fn apply(env: &Env) {
    let mut cmd = env.portico(&["apply", "-f", "manifests", "--auto-approve"]);
    cmd.env_remove("PORTICO_NO_NOTIFY");
    let (code, _, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
}

/// A locked login with a password, as the customer center would leave it.
fn lock(env: &Env, email: &str) {
    env.sql(&format!(
        "UPDATE logins SET password_hash = 'x', failed_attempts = 5, locked_until = '2999-01-01T00:00:00Z', last_login_at = '2026-01-02T03:04:05Z' WHERE email = '{email}'"
    ));
}

fn access_explains_a_login_that_can_log_in(env: Env) {
    let endpoint = Endpoint::start(Behaviour::Ok);
    env.write("a.yaml", &account(&endpoint.url));
    apply(&env);
    env.sql("UPDATE logins SET password_hash = 'x', last_login_at = '2026-01-02T03:04:05Z' WHERE email = 'ap@acme.example'");
    let (code, out, err) = run(env.portico(&["access", "AP@acme.example"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("ap@acme.example: CAN log in  (live state)\n"),
        "{out}"
    );
    assert!(
        out.contains("role:             payers (Payers; custom role, copy of customer_center)"),
        "{out}"
    );
    assert!(out.contains("two-factor:       required"), "{out}");
    assert!(
        out.contains("website:          store-eu (EU Store, https://eu.example.com)"),
        "{out}"
    );
    assert!(
        out.contains("last login:       2026-01-02T03:04:05Z"),
        "{out}"
    );
    assert!(out.contains("last changed by:  apply 1 at "), "{out}");
    assert!(out.contains("notification:     sent"), "{out}");
    let line = |p: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(p))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        line("customer_payment"),
        "customer_payment none from role payers"
    );
    assert_eq!(
        line("documents_and_files"),
        "documents_and_files view from role payers"
    );
    assert_eq!(
        line("invoice"),
        "invoice view from base role customer_center"
    );
    // JSON for tools, valid against the published schema.
    let (code, out, _) = run(env.portico(&["access", "jane@acme.example", "--format", "json"]));
    assert_eq!(code, 0);
    let report = crate::common::schema::Schema::committed("access").assert_valid(&out);
    assert_eq!(report["can_log_in"], false, "jane has set no password yet");
    assert_eq!(
        report["role"]["id"], "payers",
        "a contact inherits the customer's role"
    );
    assert_eq!(report["login_kind"], "contact");
    // The manifests' intended state, no runtime.
    let (code, out, err) = run(env.portico(&["access", "ap@acme.example", "-f", "manifests"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("CAN log in  (manifests state)"), "{out}");
    assert!(!out.contains("last login"), "{out}");
}

fn access_names_each_condition_that_refuses(env: Env) {
    let endpoint = Endpoint::start(Behaviour::Ok);
    env.write("a.yaml", &account(&endpoint.url));
    apply(&env);
    lock(&env, "ap@acme.example");
    let (_, out, _) = run(env.portico(&["access", "ap@acme.example"]));
    assert!(out.contains("CANNOT log in"), "{out}");
    assert!(out.contains("refused: locked after 5 failed attempts until 2999-01-01T00:00:00Z (`portico unlock ap@acme.example` clears it)"), "{out}");
    let (_, out, _) = run(env.portico(&["access", "jane@acme.example"]));
    assert!(
        out.contains("refused: no password is set yet: a set-password link is waiting to be used"),
        "{out}"
    );
    let (_, out, _) = run(env.portico(&["access", "off@acme.example"]));
    assert!(
        out.contains("refused: access is not given to this login"),
        "{out}"
    );
    env.sql(&format!(
        "UPDATE features SET enabled = {} WHERE name = 'customer_access'",
        env.pick("0", "false")
    ));
    let (_, out, _) = run(env.portico(&["access", "jane@acme.example"]));
    assert!(
        out.contains("refused: the account's Customer Access feature (`customer_access`) is off"),
        "{out}"
    );
    // An unknown email says so and suggests near matches.
    let (code, _, err) = run(env.portico(&["access", "jane@acme.exmple"]));
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "no login has the email `jane@acme.exmple`; did you mean `jane@acme.example`?"
        ),
        "{err}"
    );
}

fn unlock_clears_a_lockout_and_is_recorded(env: Env) {
    let endpoint = Endpoint::start(Behaviour::Ok);
    env.write("a.yaml", &account(&endpoint.url));
    apply(&env);
    lock(&env, "ap@acme.example");
    let (code, out, err) = run(env.portico(&["unlock", "ap@acme.example", "--actor", "helpdesk"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Unlocked ap@acme.example"), "{out}");
    let state = env.rows("SELECT CAST(failed_attempts AS TEXT) || '|' || coalesce(locked_until, '-') || '|' || password_hash FROM logins WHERE email = 'ap@acme.example'");
    assert_eq!(state, ["0|-|x"], "lockout cleared, password kept");
    let (_, out, _) = run(env.portico(&["history"]));
    assert!(
        out.lines()
            .any(|l| l.contains("unlock") && l.contains("helpdesk")),
        "{out}"
    );
    let (_, out, _) = run(env.portico(&["history", "show", "2"]));
    assert!(out.contains("unlock 2"), "{out}");
    assert!(
        out.contains("lockout: locked until 2999-01-01T00:00:00Z, 5 failed attempts → cleared"),
        "{out}"
    );
    let (_, out, _) = run(env.portico(&["access", "ap@acme.example"]));
    assert!(out.contains("last changed by:  unlock 2"), "{out}");
    // The plan does not see the unlock as drift.
    let (code, _, _) = env.plan(&["--detailed-exitcode"]);
    assert_eq!(code, 0);
    // Unknown logins and logins without access are refused, changing nothing.
    let before = env.dump();
    let (code, _, err) = run(env.portico(&["unlock", "nobody@acme.example"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("no login has the email `nobody@acme.example`"),
        "{err}"
    );
    let (code, _, err) = run(env.portico(&["unlock", "off@acme.example"]));
    assert_eq!(code, 1);
    assert!(err.contains("off@acme.example has no access"), "{err}");
    assert_eq!(env.dump(), before);
}

fn resend_revokes_old_links_and_sends_a_fresh_one(env: Env) {
    let endpoint = Endpoint::start(Behaviour::Ok);
    env.write("a.yaml", &account(&endpoint.url));
    apply(&env);
    assert_eq!(
        endpoint.requests().len(),
        2,
        "ap and jane got their first message"
    );
    let mut cmd = env.portico(&["resend", "jane@acme.example"]);
    cmd.env_remove("PORTICO_NO_NOTIFY");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Notifications: 1 sent."), "{out}");
    let received = endpoint.requests();
    assert_eq!(received.len(), 3);
    let message = received[2].json();
    assert_eq!(message["email"], "jane@acme.example");
    assert!(
        message["set_password"]["url"]
            .as_str()
            .unwrap()
            .contains("token="),
        "{message}"
    );
    let tokens = env.rows("SELECT CASE WHEN revoked_at IS NULL THEN 'live' ELSE 'revoked' END FROM set_password_tokens WHERE contact = 'jane@acme.example' ORDER BY notification_id");
    assert_eq!(tokens, ["revoked", "live"], "the older link is revoked");
    let (_, out, _) = run(env.portico(&["history"]));
    assert!(out.lines().any(|l| l.contains("resend")), "{out}");
    // Unknown logins, logins without access: refused, nothing changes.
    let before = env.dump();
    let (code, _, err) = run(env.portico(&["resend", "off@acme.example"]));
    assert_eq!(code, 1);
    assert!(err.contains("off@acme.example has no access"), "{err}");
    let (code, _, err) = run(env.portico(&["resend", "ghost@acme.example"]));
    assert_eq!(code, 1);
    assert!(err.contains("no login has the email"), "{err}");
    assert_eq!(env.dump(), before);
    assert_eq!(endpoint.requests().len(), 3);
}

#[test]
fn day2_commands_never_create_a_database() {
    let env = Env::sqlite();
    for args in [
        ["unlock", "a@x.example"],
        ["resend", "a@x.example"],
        ["access", "a@x.example"],
    ] {
        let (code, _, err) = run(env.portico(&args));
        assert_eq!(code, 1, "{args:?}");
        assert!(err.contains("no database at"), "{args:?}: {err}");
    }
    assert!(!env.db_path().exists());
}

/// Each applied object records the apply that wrote it, with the rows it writes: a second
/// apply that changes one contact is named by that contact only.
fn each_object_names_the_apply_that_last_wrote_it(env: Env) {
    let endpoint = Endpoint::start(Behaviour::Ok);
    env.write("a.yaml", &account(&endpoint.url));
    apply(&env);
    env.write(
        "a.yaml",
        &account(&endpoint.url).replace("name: Jane Doe", "name: Jane Roe"),
    );
    apply(&env);
    let last = |email: &str| {
        let (code, out, err) = run(env.portico(&["access", email]));
        assert_eq!(code, 0, "{err}");
        out.lines()
            .find(|l| l.trim_start().starts_with("last changed by:"))
            .unwrap_or_else(|| panic!("{out}"))
            .split_whitespace()
            .take(5)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(last("jane@acme.example"), "last changed by: apply 2");
    assert_eq!(last("ap@acme.example"), "last changed by: apply 1");
}

fn resend_delivers_only_that_logins_message(env: Env) {
    let endpoint = Endpoint::start(Behaviour::Ok);
    env.write("a.yaml", &account(&endpoint.url));
    // Queued, not delivered (the tests' default): ap's and jane's messages wait.
    assert_eq!(
        run(env.portico(&["apply", "-f", "manifests", "--auto-approve"])).0,
        0
    );
    let mut cmd = env.portico(&["resend", "jane@acme.example"]);
    cmd.env_remove("PORTICO_NO_NOTIFY");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    let to: Vec<String> = endpoint
        .requests()
        .iter()
        .map(|r| r.json()["email"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(to, ["jane@acme.example"], "{out}{err}");
    assert_eq!(
        env.rows(&format!(
            "SELECT {STATUS} FROM notifications WHERE coalesce(email, contact) = 'ap@acme.example'"
        )),
        ["pending"],
        "another customer's message stays queued"
    );

    // A broken endpoint: a failure about jane only, and a non-zero exit.
    endpoint.set(Behaviour::Status(500));
    let mut cmd = env.portico(&["resend", "jane@acme.example"]);
    cmd.env_remove("PORTICO_NO_NOTIFY");
    let (code, out, err) = run(cmd);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("jane@acme.example"), "{err}");
    assert!(!err.contains("ap@acme.example"), "{err}");
    assert_eq!(endpoint.requests().len(), 2);
}

fn access_says_when_the_email_never_left(env: Env) {
    let endpoint = Endpoint::start(Behaviour::Status(503));
    env.write("a.yaml", &account(&endpoint.url));
    apply(&env);
    let (code, out, _) = run(env.portico(&["access", "jane@acme.example"]));
    assert_eq!(code, 0);
    assert!(
        out.contains("its new-access email was never delivered (pending after 1 attempt(s), last error: the endpoint answered 503"),
        "{out}"
    );
    assert!(!out.contains("waiting to be used"), "{out}");
    let (_, json, _) = run(env.portico(&["access", "jane@acme.example", "--format", "json"]));
    assert!(
        json.contains("last error: the endpoint answered 503"),
        "{json}"
    );
}
