//! Initial passwords, the login policy, new-access notifications and set-password links, on
//! both engines, with a real HTTP endpoint on 127.0.0.1.

use std::time::Duration;

use crate::common::http::{Behaviour, Endpoint, closed_port_url, token_of};
use crate::common::{Env, STATUS, run};
use argon2::password_hash::PasswordVerifier;
use argon2::password_hash::phc::PasswordHash;

crate::common::on_every_engine!(
    assigned_passwords_are_argon2id_set_once_and_reset_by_marker,
    login_policy_and_two_factor_are_stored,
    notifications_are_delivered_with_an_idempotency_key,
    failing_endpoints_never_fail_the_apply_and_nothing_is_lost,
    set_password_links_are_single_use_and_revoked_with_access,
    no_secret_is_ever_printed_or_stored,
    each_login_has_one_live_link_at_a_time,
    failed_messages_wait_between_runs_and_keep_notify_red,
    an_endpoint_down_stops_delivery_and_the_rest_wait_untried,
);

const PW: &str = "Initial-Passw0rd-For-Raj";

fn manifests(url: &str, reset: u32, raj_access: bool) -> String {
    format!(
        "features: {{ customer_access: true, websites: true, two_factor_authentication: true }}
login_policy:
  lockout: {{ max_failed_attempts: 3, duration_minutes: 15 }}
  session_timeout_minutes: 45
  password: {{ min_length: 12 }}
notifications:
  url: {url}
  auth_header: {{ env: PORTICO_TEST_MAIL_TOKEN }}
  login_url: https://portal.example/login
websites:
  - {{ id: store-eu, name: EU Store, url: https://eu.example.com }}
roles:
  - id: secure
    name: Secure Center
    two_factor: required
customers:
  - id: CUST-0042
    name: Acme Ltd
    email: ap@acme.example
    access: {{ give_access: true, role: secure, website: store-eu, notify: true }}
    contacts:
      - email: jane@acme.example
        name: Jane Doe
        access: true
        notify: true
      - email: raj@acme.example
        name: Raj Patel
        access: {raj_access}
        notify: true
        password: {{ env: PORTICO_TEST_RAJ_PW, reset: {reset} }}
"
    )
}

fn with_secrets(mut cmd: assert_cmd::Command) -> assert_cmd::Command {
    cmd.env_remove("PORTICO_NO_NOTIFY")
        .env("PORTICO_TEST_RAJ_PW", PW)
        .env("PORTICO_TEST_MAIL_TOKEN", "Bearer mail-api-token");
    cmd
}

fn apply(env: &Env, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "apply",
        "-f",
        "manifests",
        "--auto-approve",
        "--notify-timeout",
        "2",
    ];
    args.extend_from_slice(extra);
    run(with_secrets(env.portico(&args)))
}

fn hash_of(env: &Env, email: &str) -> String {
    env.rows(&format!(
        "SELECT coalesce(password_hash, '') FROM logins WHERE email = '{email}'"
    ))
    .pop()
    .unwrap_or_default()
}

fn verifies(hash: &str, password: &str) -> bool {
    let parsed = PasswordHash::new(hash).unwrap();
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

fn assigned_passwords_are_argon2id_set_once_and_reset_by_marker(env: Env) {
    let endpoint = Endpoint::start(Behaviour::Ok);
    env.write("a.yaml", &manifests(&endpoint.url, 0, true));
    let (_, plan, _) = run(with_secrets(env.portico(&["plan", "-f", "manifests"])));
    assert!(plan.contains("password = will be set"), "{plan}");
    assert!(!plan.contains(PW));
    let (code, _, err) = apply(&env, &[]);
    assert_eq!(code, 0, "{err}");
    let hash = hash_of(&env, "raj@acme.example");
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(verifies(&hash, PW));
    assert!(
        hash_of(&env, "jane@acme.example").is_empty(),
        "jane sets her own password"
    );

    // Raj changes his own password in the customer center: never drift, never reset.
    env.sql("UPDATE logins SET password_hash = 'raj-own-hash' WHERE email = 'raj@acme.example'");
    let (code, plan, _) = run(with_secrets(env.portico(&[
        "plan",
        "-f",
        "manifests",
        "--detailed-exitcode",
    ])));
    assert_eq!(code, 0, "{plan}");
    env.write(
        "a.yaml",
        &manifests(&endpoint.url, 0, true).replace("Jane Doe", "Jane Smith"),
    );
    assert_eq!(apply(&env, &[]).0, 0);
    assert_eq!(hash_of(&env, "raj@acme.example"), "raj-own-hash");

    // Changing the reset marker sets it again.
    env.write(
        "a.yaml",
        &manifests(&endpoint.url, 1, true).replace("Jane Doe", "Jane Smith"),
    );
    let (_, plan, _) = run(with_secrets(env.portico(&["plan", "-f", "manifests"])));
    assert!(plan.contains("password : (none) → will be reset"), "{plan}");
    assert_eq!(apply(&env, &[]).0, 0);
    let reset = hash_of(&env, "raj@acme.example");
    assert!(verifies(&reset, PW) && reset != hash, "a fresh salt");
}

fn login_policy_and_two_factor_are_stored(env: Env) {
    env.write("a.yaml", &manifests(&closed_port_url(), 0, true));
    let (code, out, err) = apply(&env, &["--no-notify"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("3 notification(s) queued by this apply; deliver them with `portico notify`."),
        "{out}"
    );
    let (_, status, _) = run(env.portico(&["notify", "--status"]));
    assert_eq!(
        status.matches("pending").count(),
        3,
        "--no-notify leaves messages queued: {status}"
    );
    assert!(status.contains("attempts 0"), "{status}");
    assert_eq!(
        env.rows("SELECT CAST(max_failed_attempts AS TEXT) || ' ' || CAST(lockout_minutes AS TEXT) || ' ' || CAST(session_timeout_minutes AS TEXT) || ' ' || CAST(password_min_length AS TEXT) FROM login_policy"),
        ["3 15 45 12"]
    );
    assert_eq!(
        env.rows("SELECT two_factor FROM roles WHERE id = 'secure'"),
        ["required"]
    );
    env.write(
        "a.yaml",
        &manifests(&closed_port_url(), 0, true)
            .replace("max_failed_attempts: 3", "max_failed_attempts: 4"),
    );
    let (_, plan, _) = run(with_secrets(env.portico(&["plan", "-f", "manifests"])));
    assert!(plan.contains("~ update login_policy"), "{plan}");
    assert!(
        plan.contains("lockout.max_failed_attempts : 3 → 4"),
        "{plan}"
    );
    // Another apply without delivery counts the messages still waiting from before.
    env.write(
        "a.yaml",
        &manifests(&closed_port_url(), 0, true).replace(
            "    contacts:\n",
            "    contacts:\n      - { email: new@acme.example, name: New One, access: true, notify: true }\n",
        ),
    );
    let (code, out, err) = apply(&env, &["--no-notify"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "1 notification(s) queued by this apply (3 older one(s) also pending); deliver them"
        ),
        "{out}"
    );
}

fn notifications_are_delivered_with_an_idempotency_key(env: Env) {
    let endpoint = Endpoint::start(Behaviour::Ok);
    env.write("a.yaml", &manifests(&endpoint.url, 0, true));
    let (code, out, err) = apply(&env, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Notifications: 3 sent."), "{out}");
    let requests = endpoint.requests();
    assert_eq!(requests.len(), 3);
    let mut keys = std::collections::BTreeSet::new();
    for r in &requests {
        assert_eq!(r.header("Authorization"), Some("Bearer mail-api-token"));
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        let key = r.header("Idempotency-Key").unwrap();
        assert_eq!(r.json()["idempotency_key"], key);
        assert_eq!(key.len(), 32);
        keys.insert(key.to_string());
    }
    assert_eq!(keys.len(), 3, "one key per message: {keys:?}");
    let jane = requests
        .iter()
        .map(|r| r.json())
        .find(|b| b["email"] == "jane@acme.example")
        .unwrap();
    assert_eq!(jane["type"], "customer_center.new_access");
    assert_eq!(jane["customer"]["name"], "Acme Ltd");
    assert_eq!(jane["role"]["id"], "secure");
    assert_eq!(jane["website"]["id"], "store-eu");
    assert_eq!(jane["login_url"], "https://eu.example.com/login");
    assert_eq!(jane["password"], "set_by_user");
    let link = jane["set_password"]["url"].as_str().unwrap();
    assert!(
        link.starts_with("https://eu.example.com/set-password?token="),
        "{link}"
    );
    let raj = requests
        .iter()
        .map(|r| r.json())
        .find(|b| b["email"] == "raj@acme.example")
        .unwrap();
    assert_eq!(raj["password"], "assigned");
    assert!(raj["set_password"].is_null());
    assert!(!requests.iter().any(|r| r.body.contains(PW)));
    // The body matches the published schema.
    let schema = crate::common::schema::Schema::from_text(&portico::schema::notification_schema());
    let bodies: Vec<serde_json::Value> = requests.iter().map(|r| r.json()).collect();
    for (errors, r) in schema.errors_each(&bodies).iter().zip(&requests) {
        assert!(errors.is_empty(), "{errors:?}: {}", r.body);
    }
    let (_, status, _) = run(env.portico(&["notify", "--status"]));
    assert_eq!(status.matches("sent").count(), 3, "{status}");
    // A second apply sends nothing new.
    assert_eq!(apply(&env, &[]).0, 0);
    assert_eq!(endpoint.requests().len(), 3);
}

fn failing_endpoints_never_fail_the_apply_and_nothing_is_lost(env: Env) {
    let endpoint = Endpoint::start(Behaviour::Status(500));
    env.write("a.yaml", &manifests(&endpoint.url, 0, true));
    let (code, _, err) = apply(&env, &["--notify-attempts", "2"]);
    assert_eq!(code, 0, "a delivery failure never fails the apply: {err}");
    assert!(
        err.contains("not delivered (the endpoint answered 500 Internal Server Error)"),
        "{err}"
    );
    assert_eq!(
        endpoint.requests().len(),
        6,
        "each of 3 messages tried twice"
    );
    let keys: Vec<String> = endpoint
        .requests()
        .iter()
        .map(|r| r.header("Idempotency-Key").unwrap().to_string())
        .collect();
    // Messages go out a few at once, so requests interleave: each key is sent twice.
    let mut distinct = keys.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{keys:?}");
    for key in &distinct {
        assert_eq!(
            keys.iter().filter(|k| *k == key).count(),
            2,
            "retries keep the idempotency key: {keys:?}"
        );
    }
    let (_, status, _) = run(env.portico(&["notify", "--status"]));
    assert_eq!(status.matches("pending").count(), 3, "{status}");
    assert!(status.contains("attempts 2"), "{status}");

    // Slow endpoint: timed out, retried, still pending.
    endpoint.set(Behaviour::Slow(Duration::from_millis(1500)));
    let (code, _, err) = run(with_secrets(env.portico(&[
        "notify",
        "--retry-now",
        "--notify-timeout",
        "0.3",
        "--notify-attempts",
        "1",
    ])));
    assert_eq!(code, 1);
    assert!(err.contains("no answer within"), "{err}");
    assert!(
        err.contains("3 notification(s) could not be delivered"),
        "{err}"
    );

    // Endpoint down: connection refused, still pending.
    let mut cmd = with_secrets(env.portico(&["notify", "--retry-now", "--notify-attempts", "1"]));
    let dead = closed_port_url();
    env.sql(&format!("UPDATE notification_settings SET url = '{dead}'"));
    let (code, _, err) = run({
        cmd.env("X", "1");
        cmd
    });
    assert_eq!(code, 1);
    assert!(err.contains("cannot connect to the endpoint"), "{err}");

    // Back up: `portico notify` delivers everything, with the original keys.
    env.sql(&format!(
        "UPDATE notification_settings SET url = '{}'",
        endpoint.url
    ));
    endpoint.set(Behaviour::Ok);
    let (code, out, err) = run(with_secrets(env.portico(&["notify", "--retry-now"])));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Notifications: 3 sent."), "{out}");
    let last = endpoint.requests();
    assert!(
        last.iter()
            .rev()
            .take(3)
            .any(|r| r.header("Idempotency-Key") == Some(keys[0].as_str()))
    );
    let (code, out, _) = run(with_secrets(env.portico(&["notify"])));
    assert_eq!(code, 0);
    assert!(out.contains("Nothing to deliver."), "{out}");
}

fn set_password(env: &Env, token: &str, password: &str) -> (i32, String, String) {
    let mut cmd = env.portico(&["set-password", "--token-stdin"]);
    cmd.write_stdin(format!("{token}\n{password}\n"));
    run(cmd)
}

fn set_password_links_are_single_use_and_revoked_with_access(env: Env) {
    let endpoint = Endpoint::start(Behaviour::Ok);
    env.write("a.yaml", &manifests(&endpoint.url, 0, true));
    assert_eq!(apply(&env, &[]).0, 0);
    let token = token_of(&endpoint, "jane@acme.example");
    let stored = env.rows("SELECT token_hash FROM set_password_tokens");
    assert_eq!(stored.len(), 2, "jane and the customer login");
    assert!(!stored.contains(&token), "only the hash is stored");

    let (code, _, err) = set_password(&env, &token, "short");
    assert_eq!(code, 1);
    assert!(
        err.contains("shorter than the login policy's minimum of 12"),
        "{err}"
    );
    let (code, out, err) = set_password(&env, &token, "Janes-Own-Password-1");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Password set for jane@acme.example."), "{out}");
    assert!(verifies(
        &hash_of(&env, "jane@acme.example"),
        "Janes-Own-Password-1"
    ));
    let (code, _, err) = set_password(&env, &token, "Another-Password-2");
    assert_eq!(code, 1);
    assert!(err.contains("already used"), "{err}");
    let (code, _, err) = set_password(&env, "not-a-token", "Another-Password-2");
    assert_eq!(code, 1);
    assert!(err.contains("not valid"), "{err}");

    // Revoking access invalidates the customer login's outstanding link.
    let customer_token = token_of(&endpoint, "ap@acme.example");
    let revoked = manifests(&endpoint.url, 0, true).replace(
        "give_access: true, role: secure",
        "give_access: false, role: secure",
    );
    env.write("a.yaml", &revoked);
    assert_eq!(apply(&env, &[]).0, 0);
    let (code, _, err) = set_password(&env, &customer_token, "Customer-Password-3");
    assert_eq!(code, 1);
    assert!(err.contains("revoked"), "{err}");

    // An expired link is refused.
    env.write("a.yaml", &manifests(&endpoint.url, 0, true));
    assert_eq!(apply(&env, &[]).0, 0);
    let again = token_of(&endpoint, "ap@acme.example");
    env.sql("UPDATE set_password_tokens SET expires_at = '2000-01-01T00:00:00Z'");
    let (code, _, err) = set_password(&env, &again, "Customer-Password-3");
    assert_eq!(code, 1);
    assert!(err.contains("expired"), "{err}");
}

fn no_secret_is_ever_printed_or_stored(env: Env) {
    let endpoint = Endpoint::start(Behaviour::Status(503));
    env.write("a.yaml", &manifests(&endpoint.url, 0, true));
    let mut outputs = Vec::new();
    let commands: [&[&str]; 8] = [
        &["validate", "-f", "manifests"],
        &["plan", "-f", "manifests", "--diff"],
        &[
            "plan",
            "-f",
            "manifests",
            "--format",
            "json",
            "--out",
            "plan.json",
        ],
        &["plan", "-f", "manifests", "--format", "markdown"],
        &[
            "apply",
            "-f",
            "manifests",
            "--auto-approve",
            "--notify-attempts",
            "1",
        ],
        &["history", "show", "1", "--format", "json"],
        &["notify", "--notify-attempts", "1"],
        &["notify", "--status"],
    ];
    for args in commands {
        let mut cmd = with_secrets(env.portico(args));
        cmd.env("RUST_LOG", "trace");
        let (_, out, err) = run(cmd);
        outputs.push(out);
        outputs.push(err);
    }
    outputs.push(std::fs::read_to_string(env.path("plan.json")).unwrap());
    let dump = env.dump();
    let everything = format!("{}\n{}", outputs.join("\n"), dump.join("\n"));
    for secret in [PW, "mail-api-token"] {
        assert!(!everything.contains(secret), "`{secret}` leaked");
    }
    let tokens: Vec<String> = endpoint
        .requests()
        .iter()
        .filter_map(|r| {
            r.json()["set_password"]["url"]
                .as_str()
                .map(|u| u.split("token=").nth(1).unwrap().to_string())
        })
        .collect();
    assert!(!tokens.is_empty());
    let stored = env
        .rows("SELECT token_hash FROM set_password_tokens")
        .join("\n");
    let outbox = env
        .rows(&format!(
            "SELECT coalesce({}, '') || coalesce(email, contact) FROM notifications",
            env.hex("idempotency_key")
        ))
        .join("\n");
    for token in tokens {
        assert!(
            !everything.contains(&token) && !stored.contains(&token) && !outbox.contains(&token)
        );
    }
}

#[test]
fn saved_plans_name_password_sources_but_never_carry_hashes() {
    let env = Env::sqlite();
    let hash = portico::passwords::hash("Pre-Hashed-Passw0rd").unwrap();
    let text = manifests(&closed_port_url(), 0, true).replace(
        "        password: { env: PORTICO_TEST_RAJ_PW, reset: 0 }\n",
        &format!("        password: {{ argon2: \"{hash}\" }}\n"),
    );
    env.write("a.yaml", &text);
    let (code, _, err) = run(with_secrets(env.portico(&[
        "plan",
        "-f",
        "manifests",
        "--out",
        "plan.json",
    ])));
    assert_eq!(code, 0, "{err}");
    let saved = std::fs::read_to_string(env.path("plan.json")).unwrap();
    assert!(
        !saved.contains(&hash) && !saved.contains("$argon2id$"),
        "{saved}"
    );
    let (code, _, err) = run(env.portico(&["apply", "--plan", "plan.json", "--auto-approve"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("pass -f DIR, the manifests it was computed from"),
        "{err}"
    );
    assert!(env.dump().is_empty());
    // Manifests other than the plan's are refused: the hash must be the reviewed one.
    let other = Env::sqlite();
    other.write("a.yaml", &text.replace("Raj Patel", "Raj P."));
    let elsewhere = other.path("manifests").display().to_string();
    let apply_saved = |dir: &str| {
        run(env.portico(&[
            "apply",
            "--plan",
            "plan.json",
            "-f",
            dir,
            "--auto-approve",
            "--no-notify",
        ]))
    };
    let (code, _, err) = apply_saved(&elsewhere);
    assert_eq!(code, 1);
    assert!(
        err.contains("are not the ones the plan was computed from"),
        "{err}"
    );
    assert!(env.dump().is_empty());
    // With its manifests, the saved plan applies and the pre-hashed value is stored as is.
    let (code, _, err) = apply_saved("manifests");
    assert_eq!(code, 0, "{err}");
    assert_eq!(hash_of(&env, "raj@acme.example"), hash);

    // An env source is named in the saved plan and read at apply time.
    let env = Env::sqlite();
    env.write("a.yaml", &manifests(&closed_port_url(), 0, true));
    run(with_secrets(env.portico(&[
        "plan",
        "-f",
        "manifests",
        "--out",
        "plan.json",
    ])));
    let saved = std::fs::read_to_string(env.path("plan.json")).unwrap();
    assert!(
        saved.contains("\"env\": \"PORTICO_TEST_RAJ_PW\""),
        "{saved}"
    );
    assert!(!saved.contains(PW));
    let (code, _, err) = run(with_secrets(env.portico(&[
        "apply",
        "--plan",
        "plan.json",
        "--auto-approve",
        "--no-notify",
    ])));
    assert_eq!(code, 0, "{err}");
    assert!(verifies(&hash_of(&env, "raj@acme.example"), PW));
}

#[test]
fn file_sources_give_the_same_digest_from_any_checkout_folder() {
    let plan_in = |checkout: &std::path::Path| {
        let env = Env::sqlite();
        let dir = env.path(checkout.to_str().unwrap()).join("access");
        std::fs::create_dir_all(dir.join("secrets")).unwrap();
        std::fs::write(dir.join("secrets/raj.txt"), format!("{PW}\n")).unwrap();
        let text = manifests("http://127.0.0.1:9/hook", 0, true).replace(
            "password: { env: PORTICO_TEST_RAJ_PW, reset: 0 }",
            "password: { file: secrets/raj.txt }",
        );
        std::fs::write(dir.join("a.yaml"), text).unwrap();
        let mut cmd = env.portico(&["plan", "-f", dir.to_str().unwrap(), "--out", "plan.json"]);
        cmd.env("PORTICO_TEST_MAIL_TOKEN", "x");
        let (code, out, err) = run(cmd);
        assert_eq!(code, 0, "{err}");
        let saved = std::fs::read_to_string(env.path("plan.json")).unwrap();
        assert!(
            saved.contains("\"file\": \"secrets/raj.txt\""),
            "relative to the manifests: {saved}"
        );
        let digest = out
            .lines()
            .find_map(|l| l.strip_prefix("Plan digest: "))
            .unwrap()
            .to_string();
        // The saved plan applies with its manifests, reading the file relative to them.
        let mut cmd = env.portico(&[
            "apply",
            "--plan",
            "plan.json",
            "-f",
            dir.to_str().unwrap(),
            "--auto-approve",
        ]);
        cmd.env("PORTICO_TEST_MAIL_TOKEN", "x");
        let (code, _, err) = run(cmd);
        assert_eq!(code, 0, "{err}");
        assert!(verifies(&hash_of(&env, "raj@acme.example"), PW));
        digest
    };
    let a = plan_in(std::path::Path::new("ci/runner-1/work"));
    let b = plan_in(std::path::Path::new("elsewhere"));
    assert_eq!(
        a, b,
        "the plan digest does not depend on the checkout folder"
    );
}

#[test]
fn a_webhook_redirect_is_never_followed() {
    let env = Env::sqlite();
    let elsewhere = Endpoint::start(Behaviour::Ok);
    let endpoint = Endpoint::start(Behaviour::Redirect(elsewhere.url.clone()));
    env.write("a.yaml", &manifests(&endpoint.url, 0, true));
    let (code, out, err) = apply(&env, &[]);
    assert_eq!(code, 0, "delivery never fails the apply: {err}");
    assert!(!endpoint.requests().is_empty(), "{out}{err}");
    assert!(
        elsewhere.requests().is_empty(),
        "the body (with its set-password link) was re-posted to the redirect's target"
    );
    assert!(err.contains("redirect"), "{out}{err}");
    assert!(
        env.rows(&format!("SELECT {STATUS} FROM notifications"))
            .iter()
            .all(|s| s != "sent"),
        "a redirected message is not sent"
    );
}

#[test]
fn webhook_urls_that_leak_or_reach_metadata_services_are_refused() {
    for (url, says) in [
        ("http://169.254.169.254/latest", "link-local"),
        ("http:///nohost", "no host"),
        ("https://example.com:99999/", "valid URL"),
        ("http://mail.example.com/hook", "plain `http://`"),
        (
            "https://user:hunter2-secret@mail.example.com/",
            "user name or password",
        ),
        (
            "https://mail.example.com/?api_token=hunter2-secret",
            "credential",
        ),
    ] {
        let env = Env::sqlite();
        env.write("a.yaml", &manifests(url, 0, true));
        let (code, out, err) = run(with_secrets(env.portico(&["plan", "-f", "manifests"])));
        assert_eq!(code, 1, "{url}: {out}{err}");
        assert!(err.contains("notifications.url"), "{url}: {err}");
        assert!(err.contains(says), "{url}: {err}");
        // The manifest line is quoted under the error (it is in git already); the message
        // itself never repeats a credential, and no plan is printed.
        let message = err
            .lines()
            .find(|l| l.contains("error"))
            .unwrap_or_default();
        assert!(
            !message.contains("hunter2") && !out.contains("hunter2"),
            "{url}: {err}"
        );
        assert!(!env.db_path().exists());
    }
}

fn each_login_has_one_live_link_at_a_time(env: Env) {
    let endpoint = Endpoint::start(Behaviour::Status(503));
    env.write("a.yaml", &manifests(&endpoint.url, 0, true));
    assert_eq!(apply(&env, &[]).0, 0);
    let notify = ["notify", "--notify-timeout", "2", "--retry-now"];
    run(with_secrets(env.portico(&notify)));
    endpoint.set(Behaviour::Ok);
    run(with_secrets(env.portico(&notify)));
    let live = "SELECT l.email FROM set_password_tokens t
        JOIN logins l ON l.customer_id = t.customer_id AND l.contact = t.contact
        WHERE t.used_at IS NULL AND t.revoked_at IS NULL ORDER BY l.email";
    let issued = env.rows("SELECT token_hash FROM set_password_tokens").len();
    assert!(issued > 2, "links were issued on each run ({issued})");
    assert_eq!(
        env.rows(live),
        ["ap@acme.example", "jane@acme.example"],
        "one valid link per login"
    );
    // The delivered one is the one that works.
    let token = token_of(&endpoint, "jane@acme.example");
    let (code, _, err) = set_password(&env, &token, "A-new-long-password-1");
    assert_eq!(code, 0, "{err}");
}

fn failed_messages_wait_between_runs_and_keep_notify_red(env: Env) {
    let endpoint = Endpoint::start(Behaviour::Status(503));
    env.write("a.yaml", &manifests(&endpoint.url, 0, true));
    assert_eq!(apply(&env, &[]).0, 0);
    assert_eq!(
        endpoint.requests().len(),
        3,
        "one attempt per message per run"
    );
    assert_eq!(
        env.rows(
            "SELECT CAST(count(*) AS TEXT) FROM notifications WHERE next_attempt_at IS NOT NULL"
        ),
        ["3"]
    );
    // A scheduled run right after: nothing is due, nothing is spent, and it is not green.
    let (code, out, err) = run(with_secrets(env.portico(&["notify"])));
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(endpoint.requests().len(), 3, "the wait is kept across runs");
    assert!(!out.contains("Nothing to deliver"), "{out}");
    assert!(err.contains("wait for their next attempt"), "{err}");
    // Refused for good (a 4xx): failed, and `notify` stays red while they are.
    endpoint.set(Behaviour::Status(400));
    let (code, _, _) = run(with_secrets(env.portico(&["notify", "--retry-now"])));
    assert_eq!(code, 1);
    assert_eq!(
        env.rows(&format!("SELECT DISTINCT {STATUS} FROM notifications")),
        ["failed"]
    );
    let (code, out, err) = run(with_secrets(env.portico(&["notify"])));
    assert_eq!(code, 1, "dead letters keep notify red: {out}{err}");
    assert!(!out.contains("Nothing to deliver"), "{out}");
    assert!(err.contains("3 notification(s) failed for good"), "{err}");
    endpoint.set(Behaviour::Ok);
    let (code, out, err) = run(with_secrets(env.portico(&["notify", "--retry-failed"])));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Notifications: 3 sent."), "{out}");
}

#[test]
fn a_missing_transport_secret_fails_an_apply_that_queues_mail() {
    let env = Env::sqlite();
    env.write(
        "a.yaml",
        &manifests("https://mail.example.com/hook", 0, true),
    );
    let mut cmd = env.portico(&["plan", "-f", "manifests"]);
    cmd.env("PORTICO_TEST_RAJ_PW", PW)
        .env_remove("PORTICO_TEST_MAIL_TOKEN");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "a plan only warns: {out}{err}");
    let problem =
        "notifications.auth_header: environment variable `PORTICO_TEST_MAIL_TOKEN` is not set";
    assert!(err.contains(&format!("warning: {problem}")), "{err}");
    let mut cmd = env.portico(&["apply", "-f", "manifests", "--auto-approve"]);
    cmd.env("PORTICO_TEST_RAJ_PW", PW)
        .env_remove("PORTICO_TEST_MAIL_TOKEN")
        .env_remove("PORTICO_NO_NOTIFY");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(&format!("error: {problem}")), "{err}");
    assert!(
        env.dump().is_empty() || env.rows("SELECT email FROM logins").is_empty(),
        "nothing applied"
    );
    // Queued only (`--no-notify`): the later `portico notify` needs the secret; a warning.
    let mut cmd = env.portico(&["apply", "-f", "manifests", "--auto-approve", "--no-notify"]);
    cmd.env("PORTICO_TEST_RAJ_PW", PW)
        .env_remove("PORTICO_TEST_MAIL_TOKEN");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains(&format!("warning: {problem}")), "{err}");
}

/// An endpoint that fails every message: the run stops after a few failures in a row (not
/// one try and one warning per message), the rest stay queued with no attempt spent, and
/// all of them go, each once, when it answers again.
fn an_endpoint_down_stops_delivery_and_the_rest_wait_untried(env: Env) {
    let endpoint = Endpoint::start(Behaviour::Status(503));
    let mut text = manifests(&endpoint.url, 0, true);
    for i in 0..40 {
        text.push_str(&format!(
            "  - {{ id: C-{i}, name: Customer {i}, email: c{i}@x.example, access: {{ give_access: true, notify: true }} }}\n"
        ));
    }
    env.write("a.yaml", &text);
    let (code, _, err) = apply(&env, &[]);
    assert_eq!(code, 0, "{err}");
    let tried = endpoint.requests().len();
    assert!(
        (8..=12).contains(&tried),
        "8 failures in a row, 4 at once: {tried} tried"
    );
    assert!(
        err.matches("warning: notification to").count() <= 10,
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "delivery stopped after 8 notifications in a row were not delivered: {} more stay queued, not tried",
            43 - tried
        )),
        "{err}"
    );
    let pending =
        format!("SELECT CAST(count(*) AS TEXT) FROM notifications WHERE {STATUS} = 'pending'");
    assert_eq!(env.rows(&pending), ["43"]);
    assert_eq!(
        env.rows("SELECT CAST(count(*) AS TEXT) FROM notifications WHERE attempts > 0"),
        [tried.to_string()],
        "only the messages tried have an attempt counted"
    );
    assert_eq!(
        env.rows("SELECT CAST(count(*) AS TEXT) FROM notifications WHERE next_attempt_at IS NULL"),
        [(43 - tried).to_string()],
        "the messages not tried wait for nothing"
    );
    // Still down: `notify` stops the same way, and stays red.
    let (code, _, err) = run(with_secrets(env.portico(&["notify", "--retry-now"])));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("delivery stopped after 8"), "{err}");
    let before = endpoint.requests().len();
    assert!(before - tried <= 12, "{before}");
    // Up again: every message goes, each once.
    endpoint.set(Behaviour::Ok);
    let (code, out, err) = run(with_secrets(env.portico(&["notify", "--retry-now"])));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Notifications: 43 sent."), "{out}");
    let sent = &endpoint.requests()[before..];
    let mut keys: Vec<&str> = sent
        .iter()
        .filter_map(|r| r.header("idempotency-key"))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!((sent.len(), keys.len()), (43, 43));
}
