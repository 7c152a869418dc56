//! `portico serve` beyond signing in: "forgot password" through the outbox the server
//! delivers itself, the profile page (change the password, turn on two-step sign-in, new
//! recovery codes, recent activity), the absolute session limit, per-address throttling
//! with a trusted proxy, and the retention of sign-in events.

use std::time::{Duration, Instant};

use crate::common::http::{Behaviour, Endpoint, token_of};
use crate::common::web::{Client, Server, free_port, pyotp};
use crate::common::{Env, block_on, run};

crate::common::on_every_engine!(
    forgot_password_mails_a_link_that_clears_the_lockout_and_ends_other_sessions,
    the_profile_changes_the_password_and_turns_on_two_step_sign_in,
    a_session_ends_after_session_max_hours_however_busy,
    one_address_that_fails_too_often_waits_and_a_trusted_proxy_names_it,
);

const PW: &str = "correct-horse-battery";

fn account(notifications: &str, policy_extra: &str) -> String {
    format!(
        "features: {{ customer_access: true, websites: true }}
login_policy:
  lockout: {{ max_failed_attempts: 3, duration_minutes: 15 }}
  password: {{ min_length: 12 }}
{policy_extra}{notifications}websites:
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
"
    )
}

fn plan_of(env: &Env) -> (i32, String, String) {
    let mut cmd = env.portico(&["plan", "-f", "manifests"]);
    cmd.env("PW", PW);
    run(cmd)
}

fn apply(env: &Env) {
    let mut cmd = env.portico(&["apply", "-f", "manifests", "--auto-approve"]);
    cmd.env("PW", PW);
    let (code, _, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
}

/// The messages of this type the endpoint has received for `email`, waiting up to `wait`
/// for at least `at_least` of them.
fn messages(
    endpoint: &Endpoint,
    kind: &str,
    email: &str,
    at_least: usize,
    wait: Duration,
) -> usize {
    let started = Instant::now();
    loop {
        let n = endpoint
            .requests()
            .iter()
            .map(|r| r.json())
            .filter(|b| b["type"] == kind && b["email"] == email)
            .count();
        if n >= at_least || started.elapsed() > wait {
            return n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn forgot_password_mails_a_link_that_clears_the_lockout_and_ends_other_sessions(env: Env) {
    let endpoint = Endpoint::start(Behaviour::Ok);
    let notifications = format!(
        "notifications:\n  url: {}\n  login_url: https://customers.example.com/login\n  reset_ttl_minutes: 15\n",
        endpoint.url
    );
    env.write("a.yaml", &account(&notifications, ""));
    apply(&env);
    let server = Server::start(&env);
    let (signed_in, attacker, asker) = (
        Client::new(&server),
        Client::new(&server),
        Client::new(&server),
    );
    block_on(async {
        assert_eq!(signed_in.sign_in("jane@acme.example", PW).await.status, 303);
        // Locked after three wrong passwords; the right one is then refused.
        for _ in 0..3 {
            attacker
                .sign_in("jane@acme.example", "wrong-password-1")
                .await;
        }
        let locked = attacker.sign_in("jane@acme.example", PW).await;
        assert!(locked.body.contains("paused"), "{}", locked.body);
        assert!(
            locked.body.contains("/forgot-password"),
            "the locked page says what to do"
        );
        // The same answer for a login, an unknown email and one with no access.
        let form = asker.get("/forgot-password").await.unwrap();
        assert_eq!(form.status, 200);
        assert!(form.body.contains("name=\"email\""), "{}", form.body);
        let csrf = asker.csrf();
        let mut answers = Vec::new();
        for email in [
            "jane@acme.example",
            "nobody@acme.example",
            "JANE@acme.example",
        ] {
            let answer = asker
                .post("/forgot-password", &[("csrf", &csrf), ("email", email)])
                .await;
            answers.push((answer.status, answer.body));
        }
        assert_eq!(answers[0].0, 200);
        assert_eq!(
            answers[0], answers[1],
            "an unknown email gets the same page"
        );
        assert_eq!(answers[0], answers[2]);
    });
    // The server delivers the reset itself, once however often it was asked.
    assert_eq!(
        messages(
            &endpoint,
            "customer_center.password_reset",
            "jane@acme.example",
            1,
            Duration::from_secs(15)
        ),
        1,
        "{:?}",
        endpoint.requests()
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        messages(
            &endpoint,
            "customer_center.password_reset",
            "jane@acme.example",
            2,
            Duration::ZERO
        ),
        1,
        "one message for three requests"
    );
    assert_eq!(
        messages(
            &endpoint,
            "customer_center.password_reset",
            "nobody@acme.example",
            1,
            Duration::ZERO
        ),
        0
    );
    // A burst of requests for one login, each reset queued by a task of its own: one
    // message. (The store's own test, `store::serve::profile`, runs twenty at once.)
    block_on(async {
        let csrf = asker.csrf();
        for n in 0..12 {
            let email = if n % 2 == 0 {
                "ap@acme.example"
            } else {
                "AP@acme.example"
            };
            let answer = asker
                .post("/forgot-password", &[("csrf", &csrf), ("email", email)])
                .await;
            assert_eq!(answer.status, 200);
        }
    });
    let burst = |wait| {
        messages(
            &endpoint,
            "customer_center.password_reset",
            "ap@acme.example",
            2,
            wait,
        )
    };
    assert!(burst(Duration::from_secs(15)) >= 1, "delivered");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        burst(Duration::ZERO),
        1,
        "one message for twelve requests at once"
    );
    let body = endpoint
        .requests()
        .iter()
        .map(|r| r.json())
        .find(|b| b["type"] == "customer_center.password_reset")
        .unwrap();
    assert!(
        body["subject"]
            .as_str()
            .unwrap()
            .starts_with("Reset your customer center password"),
        "{body}"
    );
    let url = body["set_password"]["url"].as_str().unwrap();
    assert!(
        url.starts_with("https://customers.example.com/set-password?token="),
        "at the root of the login page's host: {url}"
    );
    // The link lives `reset_ttl_minutes`.
    let expires: jiff::Timestamp = body["set_password"]["expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let left = (expires - jiff::Timestamp::now()).as_secs();
    assert!((14 * 60..=15 * 60 + 5).contains(&left), "{left} s");
    let token = token_of(&endpoint, "jane@acme.example");
    assert!(
        !env.dump().join("\n").contains(&token),
        "the database holds only the token's hash"
    );
    let setter = Client::new(&server);
    block_on(async {
        setter
            .get(&format!("/set-password?token={token}"))
            .await
            .unwrap();
        let csrf = setter.csrf();
        let new = "a-brand-new-password";
        let set = setter
            .post(
                "/set-password",
                &[
                    ("csrf", &csrf),
                    ("token", &token),
                    ("password", new),
                    ("password_confirm", new),
                ],
            )
            .await;
        assert_eq!(
            (set.status, set.header("location")),
            (303, Some("/")),
            "{}",
            set.body
        );
        // The other session ended; the lockout is gone.
        assert_eq!(signed_in.get("/auth/request").await.unwrap().status, 401);
        assert_eq!(
            Client::new(&server)
                .sign_in("jane@acme.example", new)
                .await
                .status,
            303
        );
        assert_eq!(
            Client::new(&server)
                .sign_in("jane@acme.example", PW)
                .await
                .status,
            200
        );
    });
    let kinds = env.rows("SELECT kind FROM login_events WHERE email = 'jane@acme.example' AND address = '127.0.0.1' ORDER BY id");
    assert!(kinds.contains(&"reset_requested".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"password_set".to_string()), "{kinds:?}");
}

fn between(body: &str, start: &str, end: &str) -> String {
    body.split(start)
        .nth(1)
        .unwrap_or_else(|| panic!("{start} in {body}"))
        .split(end)
        .next()
        .unwrap()
        .to_string()
}

fn the_profile_changes_the_password_and_turns_on_two_step_sign_in(env: Env) {
    let endpoint = Endpoint::start(Behaviour::Ok);
    let notifications = format!("notifications:\n  url: {}\n", endpoint.url);
    env.write("a.yaml", &account(&notifications, ""));
    apply(&env);
    let now = || jiff::Timestamp::now().as_second();
    while now() % 30 > 22 {
        std::thread::sleep(Duration::from_millis(500));
    }
    let server = Server::start(&env);
    let (me, elsewhere) = (Client::new(&server), Client::new(&server));
    let new = "another-long-password";
    block_on(async {
        assert_eq!(
            Client::new(&server)
                .get("/profile")
                .await
                .unwrap()
                .header("location"),
            Some("/login?return_to=/profile")
        );
        me.sign_in("jane@acme.example", PW).await;
        elsewhere.sign_in("jane@acme.example", PW).await;
        let profile = me.get("/profile").await.unwrap();
        assert_eq!(profile.status, 200);
        assert!(profile.body.contains("Recent activity"), "{}", profile.body);
        assert!(
            profile
                .body
                .contains("<td>Signed in</td><td>127.0.0.1</td>"),
            "{}",
            profile.body
        );
        assert!(
            profile.body.contains("Turn on two-step sign-in"),
            "{}",
            profile.body
        );
        let csrf = me.csrf();
        // The current password is required, and a wrong one counts toward the lockout.
        let wrong = me
            .post(
                "/profile/password",
                &[
                    ("csrf", &csrf),
                    ("current_password", "not-it-at-all"),
                    ("password", new),
                    ("password_confirm", new),
                ],
            )
            .await;
        assert_eq!(wrong.status, 422);
        assert!(
            wrong.body.contains("current password is not right"),
            "{}",
            wrong.body
        );
        let short = me
            .post(
                "/profile/password",
                &[
                    ("csrf", &csrf),
                    ("current_password", PW),
                    ("password", "short"),
                    ("password_confirm", "short"),
                ],
            )
            .await;
        assert!(
            short.body.contains("at least 12 characters"),
            "{}",
            short.body
        );
        let changed = me
            .post(
                "/profile/password",
                &[
                    ("csrf", &csrf),
                    ("current_password", PW),
                    ("password", new),
                    ("password_confirm", new),
                ],
            )
            .await;
        assert_eq!(changed.status, 200, "{}", changed.body);
        assert!(
            changed.body.contains("other sessions were signed out"),
            "{}",
            changed.body
        );
        assert_eq!(
            elsewhere.get("/auth/request").await.unwrap().status,
            401,
            "other sessions end"
        );
        assert_eq!(
            me.get("/auth/request").await.unwrap().status,
            200,
            "this one stays"
        );
    });
    assert_eq!(
        env.rows(
            "SELECT CAST(failed_attempts AS TEXT) FROM logins WHERE email = 'jane@acme.example'"
        ),
        ["0"]
    );
    // Turning on two-step sign-in: the password again, a QR code, a code from the app.
    let (secret, codes) = block_on(async {
        let csrf = me.csrf();
        let before = me.cookie("portico-session").unwrap();
        let enrol = me
            .post(
                "/profile/two-factor",
                &[("csrf", &csrf), ("current_password", new)],
            )
            .await;
        assert_eq!(enrol.status, 200, "{}", enrol.body);
        assert!(enrol.body.contains("<svg"), "{}", enrol.body);
        assert!(
            enrol.body.contains("action=\"/profile/two-factor\""),
            "{}",
            enrol.body
        );
        let secret = between(&enrol.body, "<code id=\"secret\">", "<");
        let wrong = me
            .post(
                "/profile/two-factor",
                &[("csrf", &csrf), ("code", "000000")],
            )
            .await;
        assert!(
            wrong.body.contains("That code is not right"),
            "{}",
            wrong.body
        );
        let done = me
            .post(
                "/profile/two-factor",
                &[("csrf", &csrf), ("code", &pyotp(&secret, now()))],
            )
            .await;
        assert_eq!(done.status, 200, "{}", done.body);
        let codes: Vec<String> = done
            .body
            .split("<li><code>")
            .skip(1)
            .map(|c| c.split('<').next().unwrap().to_string())
            .collect();
        assert_eq!(codes.len(), 10, "{}", done.body);
        assert_ne!(
            me.cookie("portico-session").unwrap(),
            before,
            "a new session id after the second factor"
        );
        assert_eq!(me.get("/auth/request").await.unwrap().status, 200);
        let profile = me.get("/profile").await.unwrap();
        assert!(
            profile.body.contains("Recovery codes left: 10."),
            "{}",
            profile.body
        );
        (secret, codes)
    });
    // From now on every sign-in asks for it, though the role does not.
    block_on(async {
        let later = Client::new(&server);
        let signed = later.sign_in("jane@acme.example", new).await;
        assert_eq!(
            signed.header("location"),
            Some("/two-factor"),
            "{}",
            signed.body
        );
        assert_eq!(later.get("/auth/request").await.unwrap().status, 401);
        let csrf = later.csrf();
        let code = later
            .post("/two-factor", &[("csrf", &csrf), ("code", &codes[0])])
            .await;
        assert_eq!(code.header("location"), Some("/"), "{}", code.body);
        // New recovery codes replace the old ones.
        let renewed = later
            .post(
                "/profile/recovery-codes",
                &[("csrf", &csrf), ("current_password", new)],
            )
            .await;
        let fresh: Vec<String> = renewed
            .body
            .split("<li><code>")
            .skip(1)
            .map(|c| c.split('<').next().unwrap().to_string())
            .collect();
        assert_eq!(fresh.len(), 10, "{}", renewed.body);
        let again = Client::new(&server);
        again.sign_in("jane@acme.example", new).await;
        let csrf = again.csrf();
        let old = again
            .post("/two-factor", &[("csrf", &csrf), ("code", &codes[1])])
            .await;
        assert!(
            old.body.contains("That code is not right"),
            "an old code stopped working: {}",
            old.body
        );
        let _ = &secret;
    });
    // A reset never skips the second factor.
    block_on(async {
        let asker = Client::new(&server);
        asker.get("/forgot-password").await.unwrap();
        let csrf = asker.csrf();
        asker
            .post(
                "/forgot-password",
                &[("csrf", &csrf), ("email", "jane@acme.example")],
            )
            .await;
    });
    assert_eq!(
        messages(
            &endpoint,
            "customer_center.password_reset",
            "jane@acme.example",
            1,
            Duration::from_secs(15)
        ),
        1
    );
    let token = token_of(&endpoint, "jane@acme.example");
    block_on(async {
        let setter = Client::new(&server);
        setter
            .get(&format!("/set-password?token={token}"))
            .await
            .unwrap();
        let csrf = setter.csrf();
        let third = "a-third-long-password";
        let set = setter
            .post(
                "/set-password",
                &[
                    ("csrf", &csrf),
                    ("token", &token),
                    ("password", third),
                    ("password_confirm", third),
                ],
            )
            .await;
        assert_eq!(set.header("location"), Some("/two-factor"), "{}", set.body);
        assert_eq!(setter.get("/auth/request").await.unwrap().status, 401);
    });
    let kinds =
        env.rows("SELECT kind FROM login_events WHERE email = 'jane@acme.example' ORDER BY id");
    for kind in [
        "password_changed",
        "factor_enrolled",
        "recovery_code_used",
        "recovery_codes_renewed",
        "reset_requested",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
}

fn a_session_ends_after_session_max_hours_however_busy(env: Env) {
    env.write("a.yaml", &account("", "  session_max_hours: 2\n"));
    apply(&env);
    let (code, plan, _) = plan_of(&env);
    assert_eq!(code, 0, "{plan}");
    let server = Server::start(&env);
    let me = Client::new(&server);
    block_on(async {
        assert_eq!(me.sign_in("jane@acme.example", PW).await.status, 303);
    });
    let (created, expires) = {
        let rows = env.rows("SELECT created_at || ' ' || expires_at FROM sessions");
        let (a, b) = rows[0].split_once(' ').unwrap();
        (
            a.parse::<jiff::Timestamp>().unwrap(),
            b.parse::<jiff::Timestamp>().unwrap(),
        )
    };
    assert_eq!((expires - created).as_secs(), 2 * 3600);
    // Used a second ago, but past its absolute limit: over.
    env.sql("UPDATE sessions SET expires_at = '2020-01-01T00:00:00Z'");
    block_on(async {
        assert_eq!(me.get("/auth/request").await.unwrap().status, 401);
    });
    assert!(
        env.rows("SELECT id_hash FROM sessions").is_empty(),
        "ended, not just refused"
    );
    // The setting is planned like every other.
    env.write("a.yaml", &account("", "  session_max_hours: 8\n"));
    let (_, plan, _) = plan_of(&env);
    assert!(
        plan.contains("session_max_hours") && plan.contains("2 → 8"),
        "{plan}"
    );
    env.write("a.yaml", &account("", "  session_max_hours: 0\n"));
    let (code, _, err) = plan_of(&env);
    assert_ne!(code, 0);
    assert!(
        err.contains("session_max_hours") && err.contains("a.yaml:5:"),
        "{err}"
    );
}

fn one_address_that_fails_too_often_waits_and_a_trusted_proxy_names_it(env: Env) {
    env.write("a.yaml", &account("", ""));
    apply(&env);
    {
        let server = Server::start_with(&env, free_port(), &["--failures-per-address", "4"]);
        block_on(async {
            // A right password gives its attempt back: signing in more often than the
            // limit never blocks an address.
            for _ in 0..6 {
                let c = Client::new(&server);
                assert_eq!(c.sign_in("jane@acme.example", PW).await.status, 303);
            }
        });
        assert_eq!(
            env.rows("SELECT CAST(failures AS TEXT) FROM address_failures"),
            ["0"],
            "every right password refunded"
        );
        block_on(async {
            // Four wrong passwords for four different emails: no login is locked...
            for n in 0..4 {
                let c = Client::new(&server);
                assert_eq!(
                    c.sign_in(&format!("guess{n}@acme.example"), "wrong-password-x")
                        .await
                        .status,
                    200
                );
            }
            // ...but the address waits, even with the right password.
            let blocked = Client::new(&server).sign_in("jane@acme.example", PW).await;
            assert_eq!(blocked.status, 429, "{}", blocked.body);
            let retry: i64 = blocked.header("retry-after").unwrap().parse().unwrap();
            assert!((1..=3600).contains(&retry), "{retry}");
            assert!(
                blocked
                    .body
                    .contains("too many failed attempts from your network"),
                "{}",
                blocked.body
            );
            assert!(
                blocked
                    .body
                    .contains(r#"<a href="/login">Back to sign in</a>"#),
                "a way back: {}",
                blocked.body
            );
        });
        // A client's own X-Forwarded-For is not believed without --trusted-proxy.
        block_on(async {
            let c = Client::new(&server);
            c.get("/login").await.unwrap();
            let csrf = c.csrf();
            let spoofed = c
                .post_with(
                    "/login",
                    &[
                        ("email", "jane@acme.example"),
                        ("password", PW),
                        ("csrf", &csrf),
                    ],
                    &[("X-Forwarded-For", "203.0.113.9")],
                )
                .await;
            assert_eq!(spoofed.status, 429);
        });
    }
    env.sql("DELETE FROM address_failures");
    // Behind a trusted proxy, each client address has its own allowance.
    let server = Server::start_with(
        &env,
        free_port(),
        &[
            "--failures-per-address",
            "2",
            "--trusted-proxy",
            "127.0.0.0/8",
        ],
    );
    block_on(async {
        let c = Client::new(&server);
        c.get("/login").await.unwrap();
        let csrf = c.csrf();
        let attempt = |email: &'static str, password: &'static str, ip: &'static str| {
            let (c, csrf) = (&c, csrf.clone());
            async move {
                let form = [("email", email), ("password", password), ("csrf", &csrf)];
                c.post_with("/login", &form, &[("X-Forwarded-For", ip)])
                    .await
                    .status
            }
        };
        for _ in 0..2 {
            assert_eq!(
                attempt("x@acme.example", "wrong-password-x", "203.0.113.5").await,
                200
            );
        }
        assert_eq!(
            attempt("x@acme.example", "wrong-password-x", "203.0.113.5").await,
            429
        );
        assert_eq!(
            attempt("jane@acme.example", PW, "198.51.100.7").await,
            303,
            "another office is not held up"
        );
    });
    assert_eq!(
        env.rows(
            "SELECT address FROM login_events WHERE kind = 'refused_throttled' ORDER BY id DESC"
        )
        .first()
        .map(String::as_str),
        Some("203.0.113.5")
    );
    let signed_in = env.rows(
        "SELECT address FROM login_events WHERE kind = 'signed_in' AND email = 'jane@acme.example' ORDER BY id",
    );
    assert_eq!(signed_in.len(), 7, "{signed_in:?}");
    assert_eq!(signed_in[6], "198.51.100.7", "{signed_in:?}");
}

#[test]
fn old_sign_in_events_are_removed_after_the_retention() {
    let env = Env::sqlite();
    env.write("a.yaml", &account("", ""));
    apply(&env);
    env.sql("INSERT INTO login_events (at, email, kind, address) VALUES ('2020-01-01T00:00:00Z', 'old@acme.example', 'signed_in', '192.0.2.1')");
    let recent = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * 20);
    env.sql(&format!(
        "INSERT INTO login_events (at, email, kind, address) VALUES ('{}', 'recent@acme.example', 'signed_in', '192.0.2.1')",
        portico::clock::format(recent)
    ));
    let _server = Server::start_with(&env, free_port(), &["--events-days", "30"]);
    let started = Instant::now();
    while !env
        .rows("SELECT email FROM login_events WHERE email = 'old@acme.example'")
        .is_empty()
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the old event stays"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        env.rows("SELECT email FROM login_events WHERE email = 'recent@acme.example'"),
        ["recent@acme.example"]
    );
}
