//! `portico serve`, run for real on 127.0.0.1 against SQLite and PostgreSQL and driven over
//! HTTP: sign-in, the lockout (also under 50 concurrent attempts), the set-password link,
//! forward auth, CSRF, sessions ending, and two instances sharing one database.

use crate::common::http::{Behaviour, Endpoint, token_of};
use crate::common::web::{Client, Server, past_the_cache, pyotp};
use crate::common::{Env, block_on, run};

crate::common::on_every_engine!(
    a_role_that_requires_two_factor_gets_totp_with_recovery_codes,
    the_whole_journey_in_a_real_browser,
    a_customer_signs_in_and_the_portal_sees_who,
    wrong_passwords_lock_and_unknown_emails_look_the_same,
    concurrent_wrong_passwords_never_get_more_tries_than_the_limit,
    the_emailed_link_sets_the_password_once,
    an_apply_that_revokes_access_ends_the_session,
    every_session_ending_change_ends_the_session_and_others_keep_it,
);

const PW: &str = "correct-horse-battery";

fn account(extra_contact: &str) -> String {
    format!(
        "features: {{ customer_access: true, websites: true }}
login_policy:
  lockout: {{ max_failed_attempts: 3, duration_minutes: 15 }}
  session_timeout_minutes: 30
  password: {{ min_length: 12 }}
websites:
  - {{ id: store, name: Acme Store, url: https://store.example.com }}
roles:
  - id: no-pay
    name: No Payments
    permissions: {{ customer_payment: none, invoice: view }}
customers:
  - id: C1
    name: Acme Ltd
    email: ap@acme.example
    access: {{ give_access: true, role: no-pay, password: {{ env: PW }} }}
    contacts:
      - {{ email: jane@acme.example, name: Jane Doe, access: true, password: {{ env: PW }} }}
{extra_contact}"
    )
}

fn apply(env: &Env) {
    let mut cmd = env.portico(&["apply", "-f", "manifests", "--auto-approve"]);
    cmd.env("PW", PW);
    let (code, _, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
}

fn a_customer_signs_in_and_the_portal_sees_who(env: Env) {
    env.write("a.yaml", &account(""));
    apply(&env);
    let server = Server::start(&env);
    let browser = Client::new(&server);
    block_on(async {
        // Signed out: the portal's check says so, the home page sends to sign in.
        let check = browser.get("/auth/request").await.unwrap();
        assert_eq!(check.status, 401);
        assert_eq!(check.header("location"), Some("/login"));
        let home = browser.get("/").await.unwrap();
        assert_eq!(
            (home.status, home.header("location")),
            (303, Some("/login"))
        );

        let page = browser.get("/login").await.unwrap();
        assert_eq!(page.status, 200);
        for field in [
            "name=\"email\"",
            "name=\"password\"",
            "<label for=\"email\">",
        ] {
            assert!(page.body.contains(field), "{field}: {}", page.body);
        }
        assert_eq!(page.header("x-frame-options"), Some("DENY"));
        assert!(
            page.header("content-security-policy")
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        assert_eq!(page.header("cache-control"), Some("no-store"));

        let signed = browser.sign_in("Jane@Acme.example", PW).await;
        assert_eq!(
            (signed.status, signed.header("location")),
            (303, Some("/")),
            "{}",
            signed.body
        );
        let cookie = signed.header("set-cookie").unwrap();
        assert!(cookie.starts_with("portico-session="), "{cookie}");
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
            "{cookie}"
        );
        let id = browser.cookie("portico-session").unwrap();
        assert_eq!(id.len(), 32, "128 random bits");

        let check = browser.get("/auth/request").await.unwrap();
        assert_eq!(check.status, 200);
        assert_eq!(check.header("remote-user"), Some("jane@acme.example"));
        assert_eq!(check.header("remote-name"), Some("Jane Doe"));
        assert_eq!(check.header("remote-customer"), Some("C1"));
        assert_eq!(check.header("remote-role"), Some("no-pay"));
        let permissions = check.header("remote-permissions").unwrap();
        assert!(permissions.contains("invoice=view"), "{permissions}");
        assert!(!permissions.contains("customer_payment"), "{permissions}");
        // The role grants cases (from customer_center), but Case Management is off.
        assert!(!permissions.contains("cases="), "{permissions}");
        assert!(permissions.contains("sales_order=edit"), "{permissions}");

        let home = browser.get("/").await.unwrap();
        assert_eq!(home.status, 200);
        assert!(home.body.contains("jane@acme.example") && home.body.contains("No Payments"));
        assert!(
            home.body.contains("<td>Customer Payment</td><td>none</td>"),
            "{}",
            home.body
        );
    });
    let id = browser.cookie("portico-session").unwrap();
    assert!(
        !env.rows("SELECT id_hash FROM sessions").contains(&id),
        "the session id is stored only hashed"
    );
    assert_eq!(
        env.rows("SELECT CASE WHEN last_login_at IS NULL THEN 'no' ELSE 'yes' END FROM logins WHERE email = 'jane@acme.example'"),
        ["yes"]
    );
    block_on(async {
        // Signing out ends the session on the server.
        let csrf = browser.csrf();
        let out = browser.post("/logout", &[("csrf", &csrf)]).await;
        assert_eq!(out.status, 303);
        browser.set_cookie("portico-session", &id);
        assert_eq!(browser.get("/auth/request").await.unwrap().status, 401);
    });
}

fn wrong_passwords_lock_and_unknown_emails_look_the_same(env: Env) {
    env.write("a.yaml", &account(""));
    apply(&env);
    let server = Server::start(&env);
    block_on(async {
        let normalise = |body: &str| {
            body.lines()
                .filter(|l| !l.contains("name=\"csrf\""))
                .map(|l| {
                    l.replace("nobody@acme.example", "EMAIL")
                        .replace("jane@acme.example", "EMAIL")
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let known = Client::new(&server);
        let unknown = Client::new(&server);
        let mut answers = Vec::new();
        for attempt in 0..3 {
            let k = known
                .sign_in("jane@acme.example", &format!("wrong-password-{attempt}"))
                .await;
            let u = unknown
                .sign_in("nobody@acme.example", &format!("wrong-password-{attempt}"))
                .await;
            assert_eq!(k.status, u.status);
            assert_eq!(
                normalise(&k.body),
                normalise(&u.body),
                "a failure tells nothing"
            );
            assert_eq!(
                k.header("set-cookie")
                    .map(|c| c.split('=').next().map(str::to_string)),
                u.header("set-cookie")
                    .map(|c| c.split('=').next().map(str::to_string)),
                "the same cookie shape"
            );
            answers.push(k.status);
        }
        assert_eq!(answers, [200, 200, 200]);
        // Locked: the right password is refused before it is checked, for both emails alike.
        let k = known.sign_in("jane@acme.example", PW).await;
        let u = unknown
            .sign_in("nobody@acme.example", "anything-at-all")
            .await;
        assert!(k.body.contains("Signing in is paused"), "{}", k.body);
        assert_eq!(normalise(&k.body), normalise(&u.body));
        assert_eq!(known.get("/auth/request").await.unwrap().status, 401);
        // `access` shows what happened, and from where.
        let (code, out, err) = run(env.portico(&["access", "jane@acme.example"]));
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("LOCKED until"), "{out}");
        assert!(out.contains("recent sign-in activity"), "{out}");
        assert!(out.contains("locked from 127.0.0.1 ("), "{out}");
        assert!(out.contains("signin_failed from 127.0.0.1"), "{out}");
        let (_, json, _) = run(env.portico(&["access", "jane@acme.example", "--format", "json"]));
        let report: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            report["runtime"]["recent_events"][0]["kind"], "refused_locked",
            "{json}"
        );
        // The administrator unlocks; the right password works again.
        let (code, _, err) = run(env.portico(&["unlock", "jane@acme.example"]));
        assert_eq!(code, 0, "{err}");
        let signed = known.sign_in("jane@acme.example", PW).await;
        assert_eq!(signed.status, 303, "{}", signed.body);
    });
    assert_eq!(
        env.rows(
            "SELECT kind FROM login_events WHERE email = 'jane@acme.example' AND kind = 'locked'"
        ),
        ["locked"]
    );
    // `portico events`: what happened, newest first, in text and in JSON of the committed
    // schema.
    let (code, out, err) = run(env.portico(&["events", "jane@acme.example"]));
    assert_eq!(code, 0, "{err}");
    let kinds: Vec<&str> = out
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"signed_in"), "{out}");
    assert!(
        kinds.contains(&"locked") && kinds.contains(&"refused_locked"),
        "{out}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "signin_failed").count(),
        3,
        "{out}"
    );
    assert!(
        !out.contains("nobody@acme.example"),
        "one login's events: {out}"
    );
    assert!(!out.contains(PW), "{out}");
    let (code, json, _) = run(env.portico(&["events", "--format", "json", "--limit", "2"]));
    assert_eq!(code, 0);
    let committed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/events.schema.json"),
    )
    .unwrap();
    let (_, fresh, _) = run(env.portico(&["schema", "events"]));
    assert_eq!(
        fresh.trim(),
        committed.trim(),
        "schemas/events.schema.json is stale"
    );
    let value = crate::common::schema::Schema::from_text(&committed).assert_valid(&json);
    assert_eq!(value["format_version"], 1);
    assert_eq!(value["events"].as_array().unwrap().len(), 2);
}

fn concurrent_wrong_passwords_never_get_more_tries_than_the_limit(env: Env) {
    env.write("a.yaml", &account(""));
    apply(&env);
    let server = Server::start(&env);
    let clients: Vec<Client> = (0..50).map(|_| Client::new(&server)).collect();
    let answers = block_on(async {
        for c in &clients {
            c.get("/login").await.unwrap();
        }
        let attempts = clients.iter().enumerate().map(|(i, c)| async move {
            let csrf = c.csrf();
            let password = format!("wrong-password-{i}");
            c.post(
                "/login",
                &[
                    ("email", "ap@acme.example"),
                    ("password", &password),
                    ("csrf", &csrf),
                ],
            )
            .await
        });
        futures_join_all(attempts).await
    });
    let checked = env.rows(
        "SELECT CAST(count(*) AS TEXT) FROM login_events WHERE email = 'ap@acme.example' AND kind IN ('signin_failed', 'signed_in')",
    );
    let checked: usize = checked[0].parse().unwrap();
    assert!(
        checked <= 3,
        "{checked} passwords were checked; the limit is 3"
    );
    let paused = answers
        .iter()
        .filter(|a| a.body.contains("Signing in is paused"))
        .count();
    assert_eq!(
        paused + checked,
        50,
        "every other attempt was refused unchecked"
    );
    assert_eq!(
        env.rows("SELECT CASE WHEN locked_until IS NULL THEN 'open' ELSE 'locked' END FROM logins WHERE email = 'ap@acme.example'"),
        ["locked"],
        "events: {:?}; statuses: {:?}; failed_attempts: {:?}",
        env.rows("SELECT kind || ' ' || coalesce(detail, '') FROM login_events ORDER BY id"),
        answers.iter().map(|a| a.status).collect::<Vec<_>>(),
        env.rows("SELECT CAST(failed_attempts AS TEXT) FROM logins WHERE email = 'ap@acme.example'"),
    );
    // The right password after the race is refused too: no more tries than the limit.
    let browser = Client::new(&server);
    let late = block_on(browser.sign_in("ap@acme.example", PW));
    assert!(late.body.contains("Signing in is paused"), "{}", late.body);
}

/// Runs futures at once on the current thread.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out = Vec::with_capacity(set.len());
    let mut pending: Vec<_> = set.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.extend(results.into_iter().map(Option::unwrap));
    out
}

fn the_emailed_link_sets_the_password_once(env: Env) {
    let endpoint = Endpoint::start(Behaviour::Ok);
    let notified =
        "      - { email: new@acme.example, name: New Person, access: true, notify: true }\n";
    let text = account(notified).replace(
        "customers:",
        &format!("notifications:\n  url: {}\n  login_url: https://customers.example.com/login\ncustomers:", endpoint.url),
    );
    env.write("a.yaml", &text);
    let mut cmd = env.portico(&["apply", "-f", "manifests", "--auto-approve"]);
    cmd.env("PW", PW).env_remove("PORTICO_NO_NOTIFY");
    let (code, _, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    let token = token_of(&endpoint, "new@acme.example");
    let server = Server::start(&env);
    let browser = Client::new(&server);
    block_on(async {
        // A GET (a mail scanner's pre-fetch) shows the form and leaves the link usable.
        for _ in 0..2 {
            let page = browser
                .get(&format!("/set-password?token={token}"))
                .await
                .unwrap();
            assert_eq!(page.status, 200);
            assert!(
                page.body.contains("name=\"password_confirm\""),
                "{}",
                page.body
            );
        }
        let csrf = browser.csrf();
        let form = |password: &'static str, confirm: &'static str| {
            vec![
                ("csrf", csrf.clone()),
                ("token", token.clone()),
                ("password", password.to_string()),
                ("password_confirm", confirm.to_string()),
            ]
        };
        let post = |fields: Vec<(&'static str, String)>| {
            let browser = &browser;
            async move {
                let pairs: Vec<(&str, &str)> =
                    fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
                browser.post("/set-password", &pairs).await
            }
        };
        let short = post(form("short", "short")).await;
        assert!(
            short.body.contains("at least 12 characters"),
            "{}",
            short.body
        );
        let differ = post(form("a-long-password-1", "a-long-password-2")).await;
        assert!(differ.body.contains("not the same"), "{}", differ.body);
        let set = post(form("a-long-password-1", "a-long-password-1")).await;
        assert_eq!(
            (set.status, set.header("location")),
            (303, Some("/")),
            "{}",
            set.body
        );
        let check = browser.get("/auth/request").await.unwrap();
        assert_eq!(check.header("remote-user"), Some("new@acme.example"));
        // The second use is refused.
        let again = post(form("a-long-password-3", "a-long-password-3")).await;
        assert!(
            again.body.contains("This link was already used"),
            "{}",
            again.body
        );
        assert_eq!(again.status, 410);
        // The new password signs in.
        let other = Client::new(&server);
        assert_eq!(
            other
                .sign_in("new@acme.example", "a-long-password-1")
                .await
                .status,
            303
        );
    });
    // Expired and revoked links are refused, and say so.
    for (token, expires, revoked, says) in [
        (
            "expired-token-1",
            "2020-01-01T00:00:00Z",
            "NULL",
            "This link has expired",
        ),
        (
            "revoked-token-1",
            "2999-01-01T00:00:00Z",
            "'2020-01-01T00:00:00Z'",
            "This link was revoked",
        ),
    ] {
        env.sql(&format!(
            "INSERT INTO set_password_tokens (token_hash, notification_id, customer_id, contact, expires_at, revoked_at)
             VALUES ('{}', 0, 'C1', 'new@acme.example', '{expires}', {revoked})",
            portico::notify::token_hash(token)
        ));
        block_on(async {
            let page = browser
                .get(&format!("/set-password?token={token}"))
                .await
                .unwrap();
            assert_eq!(page.status, 200, "a GET never judges the link");
            let csrf = browser.csrf();
            let pw = "a-long-password-9";
            let refused = browser
                .post(
                    "/set-password",
                    &[
                        ("csrf", &csrf),
                        ("token", token),
                        ("password", pw),
                        ("password_confirm", pw),
                    ],
                )
                .await;
            assert_eq!(refused.status, 410, "{}", refused.body);
            assert!(refused.body.contains(says), "{}", refused.body);
        });
    }
}

/// DESIGN §10.2: an apply that deletes a login, changes its email, website or role, or turns
/// on its role's second factor ends its sessions in the same transaction; a rename does not.
fn every_session_ending_change_ends_the_session_and_others_keep_it(env: Env) {
    let base = account("").replace(
        "features: { customer_access: true, websites: true }",
        "features: { customer_access: true, websites: true, two_factor_authentication: true }",
    );
    let jane =
        "      - { email: jane@acme.example, name: Jane Doe, access: true, password: { env: PW } }";
    let cases: [(&str, String, bool); 6] = [
        ("a rename", base.replace("Jane Doe", "Jane Roe"), false),
        (
            "an email change",
            base.replace(jane, &jane.replace("jane@", "jane.doe@")),
            true,
        ),
        (
            "a website change",
            base.replace(
                jane,
                &jane.replace("access: true", "access: true, website: store"),
            ),
            true,
        ),
        (
            "a role change",
            base.replace("role: no-pay,", "role: customer_center,"),
            true,
        ),
        (
            "its role's second factor",
            base.replace(
                "    name: No Payments\n",
                "    name: No Payments\n    two_factor: required\n",
            ),
            true,
        ),
        ("a delete", base.replace(&format!("{jane}\n"), ""), true),
    ];
    env.write("a.yaml", &base);
    apply(&env);
    let server = Server::start(&env);
    for (what, changed, ends) in cases {
        env.sql("DELETE FROM sessions");
        env.write("a.yaml", &base);
        apply(&env);
        let browser = Client::new(&server);
        block_on(async {
            assert_eq!(
                browser.sign_in("jane@acme.example", PW).await.status,
                303,
                "{what}"
            );
        });
        let before = env.rows("SELECT id_hash FROM sessions WHERE contact = 'jane@acme.example'");
        assert_eq!(before.len(), 1, "{what}");
        env.write("a.yaml", &changed);
        apply(&env);
        let after = env.rows("SELECT id_hash FROM sessions");
        assert_eq!(
            !after.contains(&before[0]),
            ends,
            "{what}: sessions {after:?}"
        );
        past_the_cache();
        let status = block_on(async { browser.get("/auth/request").await.unwrap().status });
        assert_eq!(status, if ends { 401 } else { 200 }, "{what}");
    }
}

fn an_apply_that_revokes_access_ends_the_session(env: Env) {
    env.write("a.yaml", &account(""));
    apply(&env);
    let server = Server::start(&env);
    let browser = Client::new(&server);
    block_on(async {
        assert_eq!(browser.sign_in("jane@acme.example", PW).await.status, 303);
        assert_eq!(browser.get("/auth/request").await.unwrap().status, 200);
    });
    assert_eq!(env.rows("SELECT customer_id FROM sessions"), ["C1"]);
    env.write(
        "a.yaml",
        &account("").replace(
            "name: Jane Doe, access: true",
            "name: Jane Doe, access: false",
        ),
    );
    apply(&env);
    assert!(
        env.rows("SELECT customer_id FROM sessions").is_empty(),
        "ended in the apply"
    );
    past_the_cache();
    block_on(async {
        assert_eq!(browser.get("/auth/request").await.unwrap().status, 401);
    });
}

#[test]
fn cross_origin_and_tokenless_posts_are_refused() {
    let env = Env::sqlite();
    env.write("a.yaml", &account(""));
    apply(&env);
    let server = Server::start(&env);
    let browser = Client::new(&server);
    block_on(async {
        browser.get("/login").await.unwrap();
        let csrf = browser.csrf();
        let form = [
            ("email", "jane@acme.example"),
            ("password", PW),
            ("csrf", csrf.as_str()),
        ];
        let cross = browser
            .post_from("/login", &form, "https://evil.example", "cross-site")
            .await;
        assert_eq!(cross.status, 403);
        let tokenless = browser
            .post(
                "/login",
                &[("email", "jane@acme.example"), ("password", PW)],
            )
            .await;
        assert_eq!(tokenless.status, 403);
        assert!(browser.cookie("portico-session").is_none());
    });
}

#[test]
fn sessions_end_when_idle_and_on_sign_out() {
    let env = Env::sqlite();
    env.write("a.yaml", &account(""));
    apply(&env);
    let server = Server::start(&env);
    let (one, two) = (Client::new(&server), Client::new(&server));
    block_on(async {
        assert_eq!(one.sign_in("jane@acme.example", PW).await.status, 303);
        assert_eq!(two.sign_in("jane@acme.example", PW).await.status, 303);
    });
    // In use, a session's last-seen time is written (batched, within a moment), so use keeps
    // it: twenty idle minutes of thirty, then a check.
    env.sql(
        "UPDATE sessions SET last_seen_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-20 minutes')",
    );
    let before = env.rows("SELECT last_seen_at FROM sessions");
    past_the_cache();
    block_on(async {
        assert_eq!(one.get("/auth/request").await.unwrap().status, 200);
        assert_eq!(two.get("/auth/request").await.unwrap().status, 200);
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    let after = env.rows("SELECT last_seen_at FROM sessions");
    for (was, is) in before.iter().zip(&after) {
        assert!(is > was, "not kept: {was:?} -> {is:?}");
    }
    // Idle past session_timeout_minutes (30): refused and ended.
    env.sql("UPDATE sessions SET last_seen_at = '2020-01-01T00:00:00Z' WHERE id_hash = (SELECT min(id_hash) FROM sessions)");
    past_the_cache();
    block_on(async {
        let statuses = [
            one.get("/auth/request").await.unwrap().status,
            two.get("/auth/request").await.unwrap().status,
        ];
        let mut sorted = statuses;
        sorted.sort();
        assert_eq!(sorted, [200, 401], "{statuses:?}");
    });
    assert_eq!(env.rows("SELECT customer_id FROM sessions").len(), 1);
    // "My account may be compromised": every session ends.
    let (code, out, err) = run(env.portico(&["sign-out", "jane@acme.example"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 session(s) ended"), "{out}");
    past_the_cache();
    block_on(async {
        assert_eq!(one.get("/auth/request").await.unwrap().status, 401);
        assert_eq!(two.get("/auth/request").await.unwrap().status, 401);
    });
    let (code, _, err) = run(env.portico(&["sign-out", "ghost@acme.example"]));
    assert_eq!(code, 1);
    assert!(err.contains("no login has the email"), "{err}");
}

#[test]
fn two_instances_share_one_postgresql() {
    let env = Env::postgres();
    env.write("a.yaml", &account(""));
    apply(&env);
    let (a, b) = (Server::start(&env), Server::start(&env));
    let (on_a, on_b) = (Client::new(&a), Client::new(&b));
    block_on(async {
        // Failures on both count toward one lockout.
        on_a.sign_in("jane@acme.example", "wrong-password-1").await;
        on_b.sign_in("jane@acme.example", "wrong-password-2").await;
        on_a.sign_in("jane@acme.example", "wrong-password-3").await;
        let refused = on_b.sign_in("jane@acme.example", PW).await;
        assert!(
            refused.body.contains("Signing in is paused"),
            "{}",
            refused.body
        );
    });
    let (code, _, err) = run(env.portico(&["unlock", "jane@acme.example"]));
    assert_eq!(code, 0, "{err}");
    block_on(async {
        // A session made on one works on the other.
        assert_eq!(on_a.sign_in("jane@acme.example", PW).await.status, 303);
        let id = on_a.cookie("portico-session").unwrap();
        on_b.set_cookie("portico-session", &id);
        let check = on_b.get("/auth/request").await.unwrap();
        assert_eq!(check.header("remote-user"), Some("jane@acme.example"));
    });
}

#[test]
fn insecure_cookies_are_refused_off_loopback() {
    let env = Env::sqlite();
    env.write("a.yaml", &account(""));
    apply(&env);
    let mut cmd = env.portico(&["serve", "--listen", "0.0.0.0:0", "--insecure-cookies"]);
    cmd.env("PORTICO_SECRET_KEY", crate::common::web::TEST_KEY);
    let (code, _, err) = run(cmd);
    assert_eq!(code, 1);
    assert!(
        err.contains("--insecure-cookies is for plain HTTP on this machine only"),
        "{err}"
    );
}

#[test]
fn a_login_with_a_website_signs_in_only_on_that_website() {
    let env = Env::sqlite();
    let contact = "      - { email: eu@acme.example, name: Jürgen Müller, access: true, website: store, password: { env: PW } }\n";
    env.write("a.yaml", &account(contact));
    apply(&env);
    let server = Server::start(&env);
    let elsewhere = Client::new(&server);
    let store = Client::on_host(&server, "store.example.com");
    block_on(async {
        let refused = elsewhere.sign_in("eu@acme.example", PW).await;
        assert_eq!(refused.status, 200, "refused like a wrong password");
        assert!(
            refused.body.contains("cannot sign in here"),
            "{}",
            refused.body
        );
        let page = store.get("/login").await.unwrap();
        assert!(
            page.body.contains("Acme Store"),
            "the page carries the website's name"
        );
        let signed = store.sign_in("eu@acme.example", PW).await;
        assert_eq!(signed.status, 303, "{}", signed.body);
        let check = store.get("/auth/request").await.unwrap();
        assert_eq!(check.header("remote-website"), Some("store"));
        let name = check
            .headers
            .get("remote-name")
            .map(|v| v.as_bytes().to_vec());
        assert_eq!(
            name.as_deref(),
            Some("Jürgen Müller".as_bytes()),
            "a non-ASCII name reaches the portal"
        );
        // The same session presented on another host is refused there.
        let id = store.cookie("portico-session").unwrap();
        elsewhere.set_cookie("portico-session", &id);
        assert_eq!(elsewhere.get("/auth/request").await.unwrap().status, 401);
    });
}

fn the_whole_journey_in_a_real_browser(env: Env) {
    // Real email: apply sends the new-access message to an SMTP server (aiosmtpd).
    let smtp = crate::common::smtp::SmtpServer::start(None, None);
    // The website is portico's own address here, as a proxy would make it.
    let port = crate::common::web::free_port();
    let notified =
        "      - { email: new@acme.example, name: New Person, access: true, notify: true }\n";
    let text = account(notified)
        .replace("https://store.example.com", &format!("http://127.0.0.1:{port}"))
        .replace(
            "customers:",
            &format!(
                "notifications:\n  smtp: {{ url: \"{}\" }}\n  from: \"Acme <no-reply@acme.example>\"\ncustomers:",
                crate::common::smtp::SmtpServer::url(smtp.port)
            ),
        )
        .replace(
            "  - id: no-pay\n    name: No Payments\n",
            "  - id: no-pay\n    name: No Payments\n    two_factor: required\n",
        )
        .replace(
            "features: { customer_access: true, websites: true }",
            "features: { customer_access: true, websites: true, two_factor_authentication: true }",
        )
        .replace(
            "      - { email: new@acme.example, name: New Person, access: true, notify: true }",
            "      - { email: new@acme.example, name: New Person, access: true, notify: true, website: store }",
        );
    env.write("a.yaml", &text);
    let mut cmd = env.portico(&["apply", "-f", "manifests", "--auto-approve"]);
    cmd.env("PW", PW).env_remove("PORTICO_NO_NOTIFY");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{out}{err}");
    let mails = smtp.mails();
    let mail = mails
        .iter()
        .find(|m| m["rcpt_tos"][0] == "new@acme.example")
        .unwrap_or_else(|| panic!("{mails:#?}"));
    let body = mail["text"].as_str().unwrap();
    let link = body
        .split_whitespace()
        .find(|w| w.contains("/set-password?token="))
        .unwrap_or_else(|| panic!("{body}"));
    assert!(
        link.starts_with(&format!("http://127.0.0.1:{port}/set-password?token=")),
        "{link}"
    );
    // The emailed link, opened in Chromium.
    let server = Server::start_on(&env, port);
    let browser = crate::common::browser::Browser::start();
    let on_store = |path: &str| format!("{}{path}", server.url);
    browser.visit(link);
    browser.keep("set-password");
    assert!(
        browser.text().contains("Set your password"),
        "{}",
        browser.text()
    );
    browser.type_into("#password", "a-long-password-1");
    browser.type_into("#password_confirm", "a-long-password-1");
    browser.click_to_next_page("button[type=submit]");
    // The role requires a second factor: enrolment, with a code from pyotp.
    assert_eq!(browser.path(), "/two-factor", "{}", browser.text());
    browser.keep("enrol");
    let qr = browser.eval(
        "const s = document.querySelector('figure.qr svg'); return s ? s.getBoundingClientRect().width : 0",
    );
    assert!(
        qr.as_f64().unwrap_or(0.0) >= 150.0,
        "the QR code is drawn: {qr}"
    );
    let secret = browser.eval("return document.getElementById('secret').textContent");
    let secret = secret.as_str().unwrap().to_string();
    // The QR code, read off the screen by a decoder nobody here wrote (zxing-cpp), holds the
    // same key for the authenticator app.
    let decoded = read_qr(&browser.screenshot());
    assert!(
        decoded.starts_with("otpauth://totp/Acme%20Store:new%40acme.example?")
            && decoded.contains(&format!("secret={secret}"))
            && decoded.contains("issuer=Acme%20Store"),
        "{decoded}"
    );
    let now = || jiff::Timestamp::now().as_second();
    while now() % 30 > 24 {
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    browser.type_into("#code", &pyotp(&secret, now()));
    browser.click_to_next_page("button[type=submit]");
    browser.keep("recovery-codes");
    assert!(
        browser.text().contains("Your recovery codes"),
        "{}",
        browser.text()
    );
    browser.click_to_next_page("a[href='/']");
    browser.keep("home");
    assert_eq!(browser.path(), "/");
    let home = browser.text();
    assert!(
        home.contains("new@acme.example") && home.contains("No Payments"),
        "{home}"
    );
    assert!(home.contains("Customer Payment\tnone"), "{home}");
    assert!(home.contains("Invoice\tview"), "{home}");
    // The profile: recent activity, two-step sign-in on.
    browser.click_to_next_page("a[href='/profile']");
    browser.keep("profile");
    let profile = browser.text();
    assert!(profile.contains("Recovery codes left: 10"), "{profile}");
    assert!(profile.contains("Signed in"), "{profile}");
    // Sign out, then in again through the form: a wrong password first.
    browser.visit(&on_store("/"));
    browser.click_to_next_page("form[action='/logout'] button");
    assert_eq!(browser.path(), "/login");
    browser.type_into("#email", "new@acme.example");
    browser.type_into("#password", "not-the-password");
    browser.click_to_next_page("button[type=submit]");
    browser.keep("login-failed");
    assert!(
        browser
            .text()
            .contains("The email or password is not right"),
        "{}",
        browser.text()
    );
    let focused = browser.eval("return document.activeElement && document.activeElement.id");
    assert_eq!(focused, "email", "the field to fix has the focus");
    browser.clear("#password");
    browser.type_into("#password", "a-long-password-1");
    browser.click_to_next_page("button[type=submit]");
    assert_eq!(browser.path(), "/two-factor");
    while now() % 30 > 24 {
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    // The next step's code (the enrolment used this one; each step is accepted once).
    browser.type_into("#code", &pyotp(&secret, now() + 30));
    browser.click_to_next_page("button[type=submit]");
    assert_eq!(browser.path(), "/", "{}", browser.text());
    // Idle past the timeout: signed out.
    env.sql("UPDATE sessions SET last_seen_at = '2020-01-01T00:00:00Z'");
    past_the_cache();
    browser.visit(&on_store("/"));
    assert_eq!(browser.path(), "/login", "{}", browser.text());
    // Forgot password, in the browser; the reset arrives by email from the server itself.
    browser.click_to_next_page("a[href='/forgot-password']");
    browser.keep("forgot");
    browser.type_into("#email", "new@acme.example");
    browser.click_to_next_page("button[type=submit]");
    browser.keep("forgot-sent");
    assert!(
        browser.text().contains("we have sent it a link"),
        "{}",
        browser.text()
    );
    let started = std::time::Instant::now();
    let reset =
        loop {
            if let Some(m) = smtp.mails().into_iter().find(|m| {
                crate::common::smtp::header(m, "Subject").starts_with("Reset your password")
            }) {
                break m;
            }
            assert!(
                started.elapsed().as_secs() < 20,
                "no reset email: {:#?}",
                smtp.mails()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
    let link = reset["text"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .find(|w| w.contains("/set-password?token="))
        .unwrap()
        .to_string();
    browser.visit(&link);
    browser.type_into("#password", "a-long-password-2");
    browser.type_into("#password_confirm", "a-long-password-2");
    browser.click_to_next_page("button[type=submit]");
    assert_eq!(
        browser.path(),
        "/two-factor",
        "a reset never skips the second factor"
    );
}

/// The text of the QR code in a PNG screenshot, read by zxing-cpp (PyPI).
fn read_qr(png: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("screen.png");
    std::fs::write(&path, png).unwrap();
    let python = std::env::var("PORTICO_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import sys, zxingcpp; from PIL import Image; print('\\n'.join(r.text for r in zxingcpp.read_barcodes(Image.open(sys.argv[1]))))",
        ])
        .arg(&path)
        .output()
        .expect("python3 with zxing-cpp and pillow: bash .ci/test installs them");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// nginx (Debian's) running the example configuration, stopped when dropped.
struct Nginx {
    child: std::process::Child,
    host: String,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An applied account, `serve`, a portal, a free port for the proxy and the proxy's
/// example configuration, for the forward-auth tests.
struct Proxied {
    env: Env,
    server: Server,
    portal: Endpoint,
    portal_host: String,
    port: u16,
    example: String,
}

impl Proxied {
    fn new(example: &str) -> Proxied {
        let env = Env::sqlite();
        env.write("a.yaml", &account(""));
        apply(&env);
        let server = Server::start(&env);
        let portal = Endpoint::start(Behaviour::Ok);
        let portal_host = portal
            .url
            .trim_start_matches("http://")
            .trim_end_matches("/hook")
            .to_string();
        let example =
            std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(example))
                .unwrap();
        Proxied {
            env,
            server,
            portal,
            portal_host,
            port: crate::common::web::free_port(),
            example,
        }
    }
}

#[test]
fn nginx_auth_request_hands_the_person_to_the_portal() {
    let Proxied {
        env,
        server,
        portal,
        portal_host,
        port,
        example,
    } = Proxied::new("examples/serve/nginx.conf");
    let conf = example
        .replace("127.0.0.1:8080", &server.host)
        .replace("127.0.0.1:3000", &portal_host)
        .replace("127.0.0.1:8000", &format!("127.0.0.1:{port}"));
    assert_ne!(conf, example);
    let prefix = env.path("nginx");
    std::fs::create_dir_all(prefix.join("logs")).unwrap();
    std::fs::write(prefix.join("nginx.conf"), conf).unwrap();
    let nginx = Nginx {
        child: std::process::Command::new("nginx")
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .spawn()
            .expect("nginx (Debian package) is installed: bash .ci/test installs it"),
        host: format!("127.0.0.1:{port}"),
    };
    let browser = Client::at(&nginx.host);
    the_portal_sees_who_portico_says(&env, &browser, &portal, 302);
    drop(nginx);
}

/// Through a proxy in front of `serve` and a portal: signed out, sent to sign in (with
/// `signed_out` as the status) and the portal sees nothing; signed in, the portal sees who
/// portico says, never a browser-sent `Remote-*`; after an apply revoking the login, the
/// next request is refused.
fn the_portal_sees_who_portico_says(
    env: &Env,
    browser: &Client,
    portal: &Endpoint,
    signed_out: u16,
) {
    let started = std::time::Instant::now();
    block_on(async {
        while browser.get("/assets/portico.css").await.is_err() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "the proxy did not start"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // Signed out: sent to sign in, and the portal sees nothing.
        let away = browser.get("/reports?year=2026").await.unwrap();
        assert_eq!(away.status, signed_out);
        let location = away.header("location").unwrap();
        assert!(
            location.ends_with("/login?return_to=/reports?year=2026")
                || location.ends_with("/login?return_to=%2Freports%3Fyear%3D2026"),
            "{location}"
        );
        assert!(portal.requests().is_empty());
        // Signed in through the proxy: the portal sees who, from portico alone.
        let signed = browser.sign_in("jane@acme.example", PW).await;
        assert_eq!(signed.status, 303, "{}", signed.body);
        let through = browser
            .get_forged(
                "/reports",
                &[
                    ("Remote-User", "admin@acme.example"),
                    ("Remote-Role", "finance"),
                ],
            )
            .await;
        assert_eq!(through.status, 200);
    });
    let seen = portal.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        seen[0].header("Remote-User"),
        Some("jane@acme.example"),
        "never the browser's"
    );
    assert_eq!(seen[0].header("Remote-Role"), Some("no-pay"));
    assert_eq!(seen[0].header("Remote-Customer"), Some("C1"));
    // An apply revoking the login: the next request is refused.
    env.write(
        "a.yaml",
        &account("").replace(
            "name: Jane Doe, access: true",
            "name: Jane Doe, access: false",
        ),
    );
    apply(env);
    past_the_cache();
    block_on(async {
        assert_eq!(browser.get("/reports").await.unwrap().status, signed_out);
    });
    assert_eq!(portal.requests().len(), 1);
}

/// The Caddy example (`examples/serve/Caddyfile`) through a real Caddy (Debian package):
/// `forward_auth` to `/auth/forward`, the same hand-over as nginx's.
#[test]
fn caddy_forward_auth_hands_the_person_to_the_portal() {
    let Proxied {
        env,
        server,
        portal,
        portal_host,
        port,
        example,
    } = Proxied::new("examples/serve/Caddyfile");
    // Plain HTTP on this machine instead of the example's certificate-managed site.
    let conf = example
        .replace(
            "portal.example.com {",
            &format!("{{\n\tadmin off\n\tauto_https off\n}}\n\nhttp://127.0.0.1:{port} {{"),
        )
        .replace("127.0.0.1:8080", &server.host)
        .replace("127.0.0.1:3000", &portal_host);
    assert_ne!(conf, example);
    let dir = env.path("caddy");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Caddyfile"), conf).unwrap();
    let caddy = Nginx {
        child: std::process::Command::new("caddy")
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(dir.join("Caddyfile"))
            .env("HOME", &dir)
            .env("XDG_DATA_HOME", &dir)
            .env("XDG_CONFIG_HOME", &dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("caddy (Debian package) is installed: bash .ci/test installs it"),
        host: format!("127.0.0.1:{port}"),
    };
    let browser = Client::at(&caddy.host);
    the_portal_sees_who_portico_says(&env, &browser, &portal, 303);
    drop(caddy);
}

fn a_role_that_requires_two_factor_gets_totp_with_recovery_codes(env: Env) {
    let text = account(
        "      - { email: boss@acme.example, access: true, role: secure, password: { env: PW } }\n",
    )
    .replace(
        "features: { customer_access: true, websites: true }",
        "features: { customer_access: true, websites: true, two_factor_authentication: true }",
    )
    .replace(
        "roles:\n",
        "roles:\n  - { id: secure, name: Secure, two_factor: required }\n",
    );
    env.write("a.yaml", &text);
    apply(&env);
    // Not across a 30-second step: the codes below are made for steps relative to now.
    let now = || jiff::Timestamp::now().as_second();
    while now() % 30 > 24 {
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let server = Server::start(&env);
    let first = Client::new(&server);
    let (secret, codes) = block_on(async {
        let signed = first.sign_in("boss@acme.example", PW).await;
        assert_eq!(
            signed.header("location"),
            Some("/two-factor"),
            "{}",
            signed.body
        );
        // The password alone is not enough anywhere.
        assert_eq!(first.get("/auth/request").await.unwrap().status, 401);
        let enrol = first.get("/two-factor").await.unwrap();
        assert!(
            enrol.body.contains("<svg")
                && enrol.body.contains("QR code for your authenticator app"),
            "a QR code, inline: {}",
            enrol.body
        );
        let secret = enrol
            .body
            .split("<code id=\"secret\">")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .to_string();
        let csrf = first.csrf();
        let t = now();
        // Two steps away: refused. One step away: accepted (clocks drift).
        let far = first
            .post(
                "/two-factor",
                &[("csrf", &csrf), ("code", &pyotp(&secret, t - 60))],
            )
            .await;
        assert!(far.body.contains("That code is not right"), "{}", far.body);
        let near = first
            .post(
                "/two-factor",
                &[("csrf", &csrf), ("code", &pyotp(&secret, t - 30))],
            )
            .await;
        assert_eq!(near.status, 200, "{}", near.body);
        assert!(near.body.contains("recovery codes"), "{}", near.body);
        let codes: Vec<String> = near
            .body
            .split("<li><code>")
            .skip(1)
            .map(|c| c.split('<').next().unwrap().to_string())
            .collect();
        assert_eq!(codes.len(), 10);
        let check = first.get("/auth/request").await.unwrap();
        assert_eq!(check.header("remote-user"), Some("boss@acme.example"));
        (secret, codes)
    });
    let stored = env.rows("SELECT secret_sealed FROM second_factors");
    assert!(!stored[0].contains(&secret), "the seed is stored sealed");
    assert!(
        !env.rows("SELECT code_hash FROM recovery_codes")
            .contains(&codes[0])
    );
    block_on(async {
        // A later sign-in asks for a code; the current one works once, never twice.
        let second = Client::new(&server);
        assert_eq!(
            second
                .sign_in("boss@acme.example", PW)
                .await
                .header("location"),
            Some("/two-factor")
        );
        let page = second.get("/two-factor").await.unwrap();
        assert!(!page.body.contains("data:image/png"), "no second enrolment");
        let csrf = second.csrf();
        let code = pyotp(&secret, now());
        let ok = second
            .post("/two-factor", &[("csrf", &csrf), ("code", &code)])
            .await;
        assert_eq!(
            (ok.status, ok.header("location")),
            (303, Some("/")),
            "{}",
            ok.body
        );
        let third = Client::new(&server);
        third.sign_in("boss@acme.example", PW).await;
        third.get("/two-factor").await.unwrap();
        let csrf = third.csrf();
        let replay = third
            .post("/two-factor", &[("csrf", &csrf), ("code", &code)])
            .await;
        assert!(
            replay.body.contains("That code is not right"),
            "a replayed code: {}",
            replay.body
        );
        // A recovery code, once.
        let recovered = third
            .post("/two-factor", &[("csrf", &csrf), ("code", &codes[3])])
            .await;
        assert_eq!(recovered.status, 303, "{}", recovered.body);
        let fourth = Client::new(&server);
        fourth.sign_in("boss@acme.example", PW).await;
        fourth.get("/two-factor").await.unwrap();
        let csrf = fourth.csrf();
        let again = fourth
            .post("/two-factor", &[("csrf", &csrf), ("code", &codes[3])])
            .await;
        assert!(
            again.body.contains("That code is not right"),
            "{}",
            again.body
        );
    });
    // A lost phone: reset-2fa ends the sessions; the next sign-in enrols again.
    let (code, out, err) = run(env.portico(&["reset-2fa", "boss@acme.example"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Removed the two-factor authenticator"),
        "{out}"
    );
    past_the_cache();
    block_on(async {
        assert_eq!(first.get("/auth/request").await.unwrap().status, 401);
        let fresh = Client::new(&server);
        fresh.sign_in("boss@acme.example", PW).await;
        let enrol = fresh.get("/two-factor").await.unwrap();
        assert!(enrol.body.contains("<svg"), "{}", enrol.body);
    });
}

crate::common::on_every_engine!(serve_refuses_a_database_no_apply_created);

fn serve_refuses_a_database_no_apply_created(env: Env) {
    let mut cmd = env.portico(&["serve", "--listen", "127.0.0.1:0", "--insecure-cookies"]);
    cmd.env("PORTICO_SECRET_KEY", crate::common::web::TEST_KEY);
    let (code, _, err) = run(cmd);
    assert_ne!(code, 0);
    assert!(
        err.contains("no applied account") || err.contains("no database at"),
        "a clear error: {err}"
    );
    assert!(
        !err.contains("relation"),
        "not the database's own words: {err}"
    );
    if env.is_sqlite() {
        assert!(!env.db_path().exists(), "nothing created");
    }
}
