//! Passkeys in headless Chromium with ChromeDriver's virtual authenticator (WebDriver's
//! WebAuthn extension): register from the home page, sign out, sign in with the passkey
//! (no email, no password), a role requiring two-step sign-in satisfied, a signature counter
//! that goes backwards refused, `access` listing the passkey and `reset-2fa` removing it.

use std::time::{Duration, Instant};

use crate::common::browser::Browser;
use crate::common::web::{Server, free_port};
use crate::common::{Env, run};

crate::common::on_every_engine!(a_passkey_registers_signs_in_and_satisfies_a_two_factor_role);

const PW: &str = "correct-horse-battery";

fn account(port: u16, role: &str) -> String {
    format!(
        "features: {{ customer_access: true, websites: true, two_factor_authentication: true }}
login_policy:
  password: {{ min_length: 12 }}
websites:
  - {{ id: store, name: Acme Store, url: \"http://localhost:{port}\" }}
roles:
  - {{ id: secure, name: Secure, two_factor: required }}
customers:
  - id: C1
    name: Acme Ltd
    email: ap@acme.example
    access: {{ give_access: true, password: {{ env: PW }} }}
    contacts:
      - {{ email: jane@acme.example, name: Jane Doe, access: true, role: {role}, password: {{ env: PW }} }}
"
    )
}

fn apply(env: &Env) {
    let mut cmd = env.portico(&["apply", "-f", "manifests", "--auto-approve"]);
    cmd.env("PW", PW);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{out}{err}");
}

/// Waits until the page's text contains `wanted`.
fn wait_for(browser: &Browser, wanted: &str) {
    let started = Instant::now();
    loop {
        let text = browser.text();
        if text.contains(wanted) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never showed {wanted:?}: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sign_out(browser: &Browser) {
    browser.click_to_next_page("form[action='/logout'] button");
    assert_eq!(browser.path(), "/login");
}

fn a_passkey_registers_signs_in_and_satisfies_a_two_factor_role(env: Env) {
    let port = free_port();
    env.write("a.yaml", &account(port, "customer_center"));
    apply(&env);
    let server = Server::start_on(&env, port);
    let site = format!("http://localhost:{port}");
    let browser = Browser::start();
    let authenticator = browser.add_virtual_authenticator();
    // Signed in with the password, Jane adds a passkey from the home page.
    browser.visit(&format!("{site}/login"));
    browser.type_into("#email", "jane@acme.example");
    browser.type_into("#password", PW);
    browser.click_to_next_page("button[type=submit]");
    assert_eq!(browser.path(), "/");
    browser.type_into("#passkey-name", "Work laptop");
    browser.click("#passkey-add");
    wait_for(&browser, "Work laptop (added");
    browser.keep("passkey-home");
    let credentials = browser.virtual_credentials(&authenticator);
    assert_eq!(credentials.len(), 1, "{credentials:?}");
    assert_eq!(
        credentials[0]["isResidentCredential"], true,
        "a discoverable credential"
    );
    // `access` lists it.
    let (code, out, err) = run(env.portico(&["access", "jane@acme.example"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("  passkeys:\n    Work laptop  added "),
        "{out}"
    );
    // Signed out, the passkey alone signs her in (no email typed).
    sign_out(&browser);
    browser.keep("passkey-login");
    browser.click("#passkey-sign-in");
    wait_for(&browser, "Signed in as");
    assert!(browser.text().contains("jane@acme.example"));
    // The sign-in is recorded with the passkey's name.
    let (code, out, err) = run(env.portico(&["events", "jane@acme.example"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("with the passkey Work laptop"), "{out}");
    // Her role now requires two-step sign-in: the apply ends her session, and the passkey
    // (user verification required) satisfies it without a code.
    env.write("a.yaml", &account(port, "secure"));
    apply(&env);
    crate::common::web::past_the_cache();
    browser.visit(&format!("{site}/"));
    assert_eq!(
        browser.path(),
        "/login",
        "the session ended with the role's change"
    );
    browser.click("#passkey-sign-in");
    wait_for(&browser, "Signed in as");
    assert_eq!(browser.path(), "/", "no code asked for");
    sign_out(&browser);
    // A signature counter that goes backwards (a cloned authenticator) is refused.
    let bump = env.pick(
        "UPDATE passkeys SET passkey = json_set(passkey, '$.cred.counter', 1000000)",
        "UPDATE passkeys SET passkey = jsonb_set(passkey::jsonb, '{cred,counter}', '1000000')::text",
    );
    env.sql(bump);
    browser.click("#passkey-sign-in");
    wait_for(&browser, "did not sign you in");
    assert_eq!(browser.path(), "/login");
    // `reset-2fa` removes the passkeys with the rest.
    let (code, _, err) = run(env.portico(&["reset-2fa", "jane@acme.example"]));
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run(env.portico(&["access", "jane@acme.example"]));
    assert!(!out.contains("  passkeys:"), "{out}");
    drop(server);
}
