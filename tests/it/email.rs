//! New-access notifications as real email, against a real SMTP server on 127.0.0.1
//! (aiosmtpd): headers, parts, links, authentication, faults, dead letters, templates, and
//! the apply lock being free while mail goes out.

use std::time::Duration;

use crate::common::smtp::{SmtpServer, header};
use crate::common::{Env, STATUS, run};

crate::common::on_every_engine!(
    email_has_the_right_headers_parts_and_links_and_no_secret,
    server_down_then_up_loses_nothing_and_sends_nothing_twice,
    deferred_mail_is_retried_and_refused_mail_is_dead_lettered,
    delivery_never_holds_the_apply_lock,
    more_messages_than_a_batch_each_go_once_with_their_own_link,
);

const PW: &str = "Initial-Passw0rd-For-Raj";
const SMTP_PW: &str = "smtp-secret-Xq9";

/// An account whose notifications go by email to `port`, with `extra` lines under
/// `notifications:` and the customer named `customer`.
fn manifests(port: u16, extra: &str, customer: &str) -> String {
    format!(
        "features: {{ customer_access: true, websites: true }}
notifications:
  smtp:
    url: {url}
    username: portico
    password: {{ env: PORTICO_TEST_SMTP_PW }}
  from: \"Acme Customer Center <no-reply@acme.example>\"
  reply_to: \"Acme Admin <admin@acme.example>\"
  login_url: https://customers.example.com/login
{extra}websites:
  - {{ id: store-eu, name: EU Store, url: https://eu.example.com }}
customers:
  - id: CUST-0042
    name: {customer}
    email: ap@acme.example
    access: {{ give_access: true, website: store-eu, notify: true }}
    contacts:
      - email: jane@acme.example
        name: Jane Doe
        access: true
        notify: true
      - email: raj@acme.example
        name: Raj Patel
        access: true
        notify: true
        password: {{ env: PORTICO_TEST_RAJ_PW }}
",
        url = SmtpServer::url(port)
    )
}

fn delivering(env: &Env, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = env.portico(args);
    cmd.env_remove("PORTICO_NO_NOTIFY")
        .env("PORTICO_TEST_RAJ_PW", PW)
        .env("PORTICO_TEST_SMTP_PW", SMTP_PW);
    cmd
}

fn text_of(mail: &crate::common::smtp::Mail) -> String {
    mail["text"].as_str().unwrap_or_default().to_string()
}

fn apply(env: &Env, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "apply",
        "-f",
        "manifests",
        "--auto-approve",
        "--notify-timeout",
        "3",
    ];
    args.extend_from_slice(extra);
    run(delivering(env, &args))
}

fn statuses(env: &Env) -> Vec<String> {
    env.rows(&format!(
        "SELECT coalesce(email, contact) || ' ' || {STATUS} || ' ' || CAST(attempts AS TEXT) FROM notifications ORDER BY coalesce(email, contact)"
    ))
}

fn mail_to<'a>(mails: &'a [serde_json::Value], email: &str) -> &'a serde_json::Value {
    mails
        .iter()
        .find(|m| header(m, "To").contains(email))
        .unwrap_or_else(|| panic!("no mail to {email}: {mails:#?}"))
}

fn email_has_the_right_headers_parts_and_links_and_no_secret(env: Env) {
    let server = SmtpServer::start(None, Some(("portico", SMTP_PW)));
    env.write("a.yaml", &manifests(server.port, "", "Acme Ltd"));
    let (code, out, err) = apply(&env, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Notifications: 3 sent."), "{out}{err}");
    let mails = server.mails();
    assert_eq!(mails.len(), 3, "{mails:#?}");

    let jane = mail_to(&mails, "jane@acme.example");
    assert_eq!(
        header(jane, "From"),
        "Acme Customer Center <no-reply@acme.example>"
    );
    assert_eq!(header(jane, "Reply-To"), "Acme Admin <admin@acme.example>");
    assert_eq!(header(jane, "To"), "Jane Doe <jane@acme.example>");
    // The company's center, by its website's name (not "the Acme Ltd customer center").
    assert_eq!(header(jane, "Subject"), "Your access to EU Store");
    assert_eq!(
        jane["auth_user"], "portico",
        "authenticated with the env password"
    );
    assert_eq!(jane["rcpt_tos"][0], "jane@acme.example");
    // The key the outbox shows for her message (derived from the store and the message).
    let listed = crate::common::outbox_message(&env, "email", "jane@acme.example");
    let key = listed["idempotency_key"].as_str().unwrap();
    assert_eq!(key.len(), 32, "{key}");
    assert_eq!(header(jane, "Message-ID"), format!("<{key}@portico>"));
    let text = jane["text"].as_str().unwrap();
    // Links are written plainly (no `&#x2f;`, which spam filters flag).
    let html = jane["html"].as_str().unwrap().to_string();
    assert!(!html.contains("&#x2f;"), "{html}");
    // The link's expiry for people, with its zone.
    let expiry = text_of(jane);
    assert!(
        expiry.contains(" UTC)") && !expiry.contains("Z):"),
        "{expiry}"
    );
    assert!(
        text.contains("https://eu.example.com/set-password?token="),
        "{text}"
    );
    assert!(
        html.contains("https://eu.example.com/set-password?token="),
        "{html}"
    );
    assert!(
        text.contains("Log in at: https://eu.example.com/login"),
        "{text}"
    );
    assert!(text.contains("admin@acme.example"), "{text}");

    // The link works once, for Jane.
    let token = text
        .split("token=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let mut set = env.portico(&["set-password", "--token-stdin"]);
    set.write_stdin(format!("{token}\nJane-Chose-This-1\n"));
    let (code, out, err) = run(set);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("jane@acme.example"), "{out}");

    // Raj was assigned a password: no link, and the password is nowhere.
    let raj = mail_to(&mails, "raj@acme.example");
    let raj_text = raj["text"].as_str().unwrap();
    assert!(!raj_text.contains("set-password"), "{raj_text}");
    assert!(raj_text.contains("initial password"), "{raj_text}");
    for mail in &mails {
        let raw = mail["raw"].as_str().unwrap();
        assert!(!raw.contains(PW) && !raw.contains(SMTP_PW), "{raw}");
    }
    for row in env.dump() {
        assert!(!row.contains(PW) && !row.contains(SMTP_PW), "{row}");
    }
    assert_eq!(
        statuses(&env),
        [
            "ap@acme.example sent 1",
            "jane@acme.example sent 1",
            "raj@acme.example sent 1"
        ]
    );
}

fn server_down_then_up_loses_nothing_and_sends_nothing_twice(env: Env) {
    let port = SmtpServer::free_port();
    env.write("a.yaml", &manifests(port, "", "Acme Ltd"));
    let (code, out, err) = apply(&env, &["--notify-attempts", "1"]);
    assert_eq!(
        code, 0,
        "a delivery failure never fails the apply: {out}{err}"
    );
    assert!(err.contains("stays queued"), "{err}");
    assert_eq!(
        statuses(&env),
        [
            "ap@acme.example pending 1",
            "jane@acme.example pending 1",
            "raj@acme.example pending 1"
        ]
    );

    let server = SmtpServer::start(Some(port), Some(("portico", SMTP_PW)));
    let (code, out, err) = run(delivering(&env, &["notify", "--retry-now"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("3 sent"), "{out}");
    let (code, out, _) = run(delivering(&env, &["notify"]));
    assert_eq!(code, 0);
    assert!(out.contains("Nothing to deliver"), "{out}");
    let mails = server.mails();
    assert_eq!(mails.len(), 3, "each message exactly once: {mails:#?}");
    for email in ["ap@acme.example", "jane@acme.example", "raj@acme.example"] {
        mail_to(&mails, email);
    }
}

fn deferred_mail_is_retried_and_refused_mail_is_dead_lettered(env: Env) {
    let server = SmtpServer::start(None, None);
    let port = server.port;
    // No auth on this server: drop the credentials.
    let text = manifests(port, "  max_attempts: 3\n", "Acme Ltd")
        .replace("    username: portico\n", "")
        .replace("    password: { env: PORTICO_TEST_SMTP_PW }\n", "");
    env.write("a.yaml", &text);

    // 4xx: retried (two attempts this run), still pending.
    server.answer("4xx");
    let (code, _, err) = apply(&env, &["--notify-attempts", "2"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("deferred"), "{err}");
    assert_eq!(
        statuses(&env),
        [
            "ap@acme.example pending 2",
            "jane@acme.example pending 2",
            "raj@acme.example pending 2"
        ]
    );

    // Out of attempts (max_attempts: 3): failed, listed, and `notify` says so.
    let (code, _, err) = run(delivering(
        &env,
        &["notify", "--retry-now", "--notify-attempts", "5"],
    ));
    assert_ne!(code, 0);
    assert!(err.contains("gave up after 3 attempt(s)"), "{err}");
    assert!(err.contains("--retry-failed"), "{err}");
    let (_, out, _) = run(delivering(&env, &["notify", "--status"]));
    assert_eq!(out.matches("failed").count(), 3, "{out}");

    // Re-queued and refused for good (5xx): failed after one attempt.
    server.answer("5xx");
    let (code, out, err) = run(delivering(&env, &["notify", "--retry-failed"]));
    assert_ne!(code, 0);
    assert!(
        out.contains("3 failed notification(s) queued again"),
        "{out}"
    );
    assert!(err.contains("refused it") && err.contains("550"), "{err}");
    assert_eq!(
        statuses(&env),
        [
            "ap@acme.example failed 1",
            "jane@acme.example failed 1",
            "raj@acme.example failed 1"
        ]
    );
    assert!(server.mails().is_empty());

    // Fixed: re-queued and sent, once each.
    server.answer("ok");
    let (code, out, err) = run(delivering(&env, &["notify", "--retry-failed"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("3 sent"), "{out}");
    assert_eq!(server.mails().len(), 3);
}

fn delivery_never_holds_the_apply_lock(env: Env) {
    let server = SmtpServer::start(None, Some(("portico", SMTP_PW)));
    server.answer("delay:4");
    env.write("a.yaml", &manifests(server.port, "", "Acme Ltd"));
    #[allow(deprecated)]
    let apply = std::process::Command::new(assert_cmd::cargo::cargo_bin("portico"))
        .current_dir(env.dir.path())
        .env("PORTICO_DATABASE_URL", &env.url)
        .env("PORTICO_TEST_RAJ_PW", PW)
        .env("PORTICO_TEST_SMTP_PW", SMTP_PW)
        .env_remove("PORTICO_NO_NOTIFY")
        .args([
            "apply",
            "-f",
            "manifests",
            "--auto-approve",
            "--notify-parallel",
            "1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        server.wait_for_data(Duration::from_secs(60)),
        "the apply never started delivering"
    );
    // While the apply is sending mail, another command takes the lock at once.
    let (code, out, err) =
        run(env.portico(&["unlock", "jane@acme.example", "--lock-timeout", "0"]));
    assert_eq!(code, 0, "the lock is free during delivery: {out}{err}");
    let done = apply.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(String::from_utf8_lossy(&done.stdout).contains("3 sent"));
}

#[test]
fn templates_are_checked_at_plan_time_with_file_and_line() {
    let env = Env::sqlite();
    let template = "  template: { subject: templates/s.txt, text: templates/body.txt, html: templates/body.html }\n";
    env.write("a.yaml", &manifests(2525, template, "Acme Ltd"));
    env.write("templates/s.txt", "Welcome, {{ name }}");
    env.write(
        "templates/body.txt",
        "Hello {{ name }},\n\nyour login: {{ emial }}\n",
    );
    env.write("templates/body.html", "<p>{% if email %}unclosed</p>\n");
    let (code, _, err) = run(delivering(&env, &["plan", "-f", "manifests"]));
    assert_ne!(code, 0);
    assert!(
        err.contains("templates/body.txt:3: unknown variable `emial` (did you mean `email`?)"),
        "{err}"
    );
    assert!(err.contains("templates/body.html:"), "{err}");
    assert!(
        err.contains("a.yaml:"),
        "the error points into the manifest: {err}"
    );
    assert!(!env.db_path().exists(), "plan created nothing");

    env.write("templates/body.txt", "Hello {{ name }}, {{ email }}\n");
    env.write("templates/body.html", "<p>{{ customer }}</p>\n");
    env.remove("templates/s.txt");
    let (code, _, err) = run(delivering(&env, &["validate", "-f", "manifests"]));
    assert_ne!(code, 0);
    assert!(
        err.contains("cannot read template `templates/s.txt`"),
        "{err}"
    );
}

/// A server that closes each connection after one message (as servers limiting messages per
/// connection do): a kept connection found closed is replaced at once, so one connection and
/// one attempt each still deliver every message, once.
#[test]
fn a_server_closing_connections_costs_no_attempt() {
    let env = Env::new();
    let server = SmtpServer::start(None, Some(("portico", SMTP_PW)));
    server.answer("close");
    env.write("a.yaml", &manifests(server.port, "", "Acme Ltd"));
    let (code, out, err) = apply(&env, &["--notify-attempts", "1", "--notify-parallel", "1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Notifications: 3 sent."), "{out}{err}");
    let mails = server.mails();
    assert_eq!(mails.len(), 3, "each once: {mails:#?}");
    for email in ["ap@acme.example", "jane@acme.example", "raj@acme.example"] {
        mail_to(&mails, email);
    }
}

/// Both encrypted transports, against a server with a certificate from a CA of its own:
/// trusted through `PORTICO_SMTP_CA_FILE`, mail goes (and AUTH, which the server allows only
/// over TLS, works); not trusted, nothing goes, the message stays queued with the reason, and
/// nothing is ever sent in plain text instead. A STARTTLS URL never falls back to plain text.
#[test]
fn tls_and_starttls_check_the_certificate_and_never_fall_back() {
    for (mode, scheme) in [("starttls", "smtp"), ("implicit", "smtps")] {
        let env = Env::new();
        let server = SmtpServer::start_tls(mode, Some(("portico", SMTP_PW)));
        let url = format!("{scheme}://localhost:{}", server.port);
        env.write(
            "a.yaml",
            &manifests(server.port, "", "Acme Ltd").replace(&SmtpServer::url(server.port), &url),
        );
        let (code, out, err) = apply(&env, &["--notify-attempts", "1"]);
        assert_eq!(code, 0, "{mode}: {out}{err}");
        assert!(err.contains("stays queued"), "{mode}: {out}{err}");
        assert!(
            err.contains("certificate") || err.contains("Certificate"),
            "{mode}: the reason is the untrusted certificate: {err}"
        );
        assert!(server.mails().is_empty(), "{mode}: nothing sent");

        let mut notify = delivering(&env, &["notify", "--retry-now"]);
        notify.env("PORTICO_SMTP_CA_FILE", server.ca_file());
        let (code, out, err) = run(notify);
        assert_eq!(code, 0, "{mode}: {out}{err}");
        assert!(out.contains("3 sent"), "{mode}: {out}{err}");
        let mails = server.mails();
        assert_eq!(mails.len(), 3, "{mode}: {mails:#?}");
        assert_eq!(mail_to(&mails, "jane@acme.example")["auth_user"], "portico");
        for mail in &mails {
            let raw = mail["raw"].as_str().unwrap();
            assert!(!raw.contains(PW) && !raw.contains(SMTP_PW), "{raw}");
        }
    }

    // A plain server behind an `smtp://` URL: STARTTLS is required, so nothing goes.
    let env = Env::new();
    let server = SmtpServer::start(None, None);
    env.write(
        "a.yaml",
        &manifests(server.port, "", "Acme Ltd").replace(
            &SmtpServer::url(server.port),
            &format!("smtp://localhost:{}", server.port),
        ),
    );
    let (code, out, err) = apply(&env, &["--notify-attempts", "1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("STARTTLS"), "{err}");
    assert!(server.mails().is_empty());

    // A CA file that is not one blocks delivery with the file named.
    let bad = env.path("not-a-ca.pem");
    std::fs::write(&bad, "hello").unwrap();
    let mut notify = delivering(&env, &["notify", "--retry-now"]);
    notify.env("PORTICO_SMTP_CA_FILE", &bad);
    let (code, out, err) = run(notify);
    assert!(
        format!("{out}{err}").contains("PORTICO_SMTP_CA_FILE"),
        "{code} {out}{err}"
    );
    assert!(server.mails().is_empty());
}

#[test]
fn bad_transports_are_refused_with_their_place() {
    let env = Env::sqlite();
    for (notifications, says) in [
        (
            "  smtp: { url: \"smtp://mail.example.com:25?tls=none\" }\n  from: a@acme.example\n",
            "plain-text SMTP (`tls=none`) is refused to `mail.example.com`",
        ),
        (
            "  smtp: { url: \"smtps://mail.example.com\" }\n  url: https://hook.example\n  from: a@acme.example\n",
            "not both",
        ),
        (
            "  smtp: { url: \"smtps://mail.example.com\" }\n",
            "email needs a sender",
        ),
        (
            "  smtp: { url: \"smtps://mail.example.com\" }\n  from: \"not an address\"\n",
            "`not an address` is not an email address",
        ),
        ("  login_url: https://x.example\n", "needs a transport"),
    ] {
        env.write(
            "a.yaml",
            &format!("features: {{ customer_access: true }}\nnotifications:\n{notifications}"),
        );
        let (code, _, err) = run(env.portico(&["validate", "-f", "manifests"]));
        assert_ne!(code, 0, "{notifications}");
        assert!(err.contains(says), "{notifications}: {err}");
        assert!(err.contains("a.yaml:"), "{err}");
    }
}

#[test]
fn html_is_escaped_preview_shows_the_message_and_template_changes_are_planned() {
    let env = Env::sqlite();
    let server = SmtpServer::start(None, Some(("portico", SMTP_PW)));
    let template =
        "  template: { subject: templates/s.txt, text: templates/t.txt, html: templates/h.html }\n";
    let customer = "\"<script>alert(1)</script> & Co\"";
    env.write("a.yaml", &manifests(server.port, template, customer));
    env.write("templates/s.txt", "Access for {{ customer }}");
    env.write(
        "templates/t.txt",
        "Hi {{ name }} of {{ customer }}\n{% if set_password_url %}Link: {{ set_password_url }}{% endif %}\n",
    );
    env.write(
        "templates/h.html",
        "<p>{{ customer }}</p><a href=\"{{ set_password_url }}\">set</a>\n",
    );

    // Preview from the manifests, before anything exists.
    let (code, out, err) = run(delivering(
        &env,
        &[
            "notify",
            "--preview",
            "Jane@Acme.example",
            "-f",
            "manifests",
        ],
    ));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Subject: Access for <script>alert(1)</script> & Co"),
        "{out}"
    );
    assert!(out.contains("Link: <link>"), "{out}");
    assert!(
        out.contains("<p>&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co</p>"),
        "{out}"
    );
    let (_, out, _) = run(delivering(
        &env,
        &["notify", "--preview", "raj@acme.example", "-f", "manifests"],
    ));
    assert!(
        !out.contains("Link:"),
        "an assigned password gets no link: {out}"
    );

    let (code, _, err) = apply(&env, &[]);
    assert_eq!(code, 0, "{err}");
    let mails = server.mails();
    let jane = mail_to(&mails, "jane@acme.example");
    let html = jane["html"].as_str().unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;"), "{html}");
    assert!(
        jane["text"]
            .as_str()
            .unwrap()
            .contains("of <script>alert(1)</script> & Co")
    );

    // A template edit is a change of `notifications`, shown line by line.
    env.write("templates/t.txt", "Hello {{ name }} of {{ customer }}\n");
    let (code, out, _) = run(delivering(
        &env,
        &["plan", "-f", "manifests", "--detailed-exitcode"],
    ));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("notifications"), "{out}");
    assert!(out.contains("template.text"), "{out}");
    assert!(out.contains("Hello {{ name }}"), "{out}");
    let (code, out, _) = run(delivering(
        &env,
        &["notify", "--preview", "jane@acme.example"],
    ));
    assert_eq!(code, 0);
    assert!(
        out.contains("Hi Jane Doe"),
        "the live template is still the applied one: {out}"
    );
}

#[test]
fn templates_and_password_files_are_read_only_from_inside_the_manifests() {
    let canary = "CANARY-ci-secret-4711";
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), canary).unwrap();
    let cases: Vec<(String, &str)> = vec![
        ("/proc/self/environ".into(), "outside the manifest folder"),
        ("/etc/hostname".into(), "outside the manifest folder"),
        ("../x.txt".into(), "outside the manifest folder"),
        ("link.txt".into(), "outside the manifest folder"),
        ("/dev/zero".into(), "outside the manifest folder"),
        ("fifo".into(), "not a regular file"),
    ];
    for (path, says) in cases {
        let env = Env::sqlite();
        std::fs::write(env.path("x.txt"), canary).unwrap();
        env.write("body.txt", "ok");
        std::os::unix::fs::symlink(
            outside.path().join("secret.txt"),
            env.path("manifests/link.txt"),
        )
        .unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(env.path("manifests/fifo"))
            .status()
            .unwrap();
        assert!(status.success());
        let template = format!("  template: {{ subject: body.txt, text: '{path}' }}\n");
        env.write("a.yaml", &manifests(2525, &template, "Acme Ltd"));
        for command in ["validate", "plan"] {
            let mut cmd = delivering(&env, &[command, "-f", "manifests"]);
            cmd.env("CANARY", canary)
                .timeout(std::time::Duration::from_secs(30));
            let (code, out, err) = run(cmd);
            assert_eq!(code, 1, "{path}: {out}{err}");
            assert!(err.contains(says), "{path}: {err}");
            assert!(err.contains("notifications.template.text"), "{path}: {err}");
            assert!(
                !out.contains(canary) && !err.contains(canary),
                "{path} printed what it read:\n{out}{err}"
            );
        }
    }
    // A password file: the same rule, and a device is never read to the end.
    let env = Env::sqlite();
    env.write(
        "a.yaml",
        &manifests(2525, "", "Acme Ltd").replace(
            "password: { env: PORTICO_TEST_RAJ_PW }",
            "password: { file: /dev/zero }",
        ),
    );
    let mut cmd = delivering(&env, &["plan", "-f", "manifests"]);
    cmd.timeout(std::time::Duration::from_secs(30));
    let (code, out, err) = run(cmd);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("password file `/dev/zero` is outside the manifest folder"),
        "{err}"
    );
}

/// Delivery claims, links and records messages in batches of 64: 150 messages (three
/// batches, the last one partial) each reach the server once, each with a link of its own
/// that works, and each is recorded as sent.
fn more_messages_than_a_batch_each_go_once_with_their_own_link(env: Env) {
    let server = SmtpServer::start(None, None);
    let mut text = format!(
        "features: {{ customer_access: true }}
notifications:
  smtp: {{ url: \"{}\" }}
  from: no-reply@acme.example
  login_url: https://customers.example.com/login
customers:
",
        SmtpServer::url(server.port)
    );
    for i in 0..150 {
        text.push_str(&format!(
            "  - {{ id: C{i:03}, name: Customer {i}, email: c{i}@acme.example, access: {{ give_access: true, notify: true }} }}\n"
        ));
    }
    env.write("a.yaml", &text);
    let (code, out, err) = apply(&env, &["--no-notify"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(delivering(&env, &["notify"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("150 sent"), "{out}");
    let mails = server.mails();
    assert_eq!(mails.len(), 150);
    let mut recipients: Vec<String> = mails.iter().map(|m| header(m, "To").to_string()).collect();
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), 150, "each login once");
    let mut links: Vec<String> = mails
        .iter()
        .map(|m| {
            let text = text_of(m);
            let at = text.find("/set-password?token=").expect("a link");
            text[at..at + 20 + 64].to_string()
        })
        .collect();
    links.sort();
    links.dedup();
    assert_eq!(links.len(), 150, "a link each");
    assert_eq!(
        env.rows(&format!(
            "SELECT {STATUS} || ' ' || CAST(count(*) AS TEXT) FROM notifications GROUP BY status"
        )),
        ["sent 150"]
    );
    assert_eq!(
        env.rows("SELECT CAST(count(*) AS TEXT) FROM set_password_tokens WHERE revoked_at IS NULL"),
        ["150"]
    );
    let (_, out, _) = run(delivering(&env, &["notify"]));
    assert!(out.contains("Nothing to deliver"), "{out}");
}
