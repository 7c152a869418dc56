//! The OpenID Connect provider, checked by a relying party nobody here wrote (Python's
//! authlib, `tests/it/oidc/relying_party.py`) through headless Chromium, and by hand-made
//! requests for each refusal the specifications name.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha2::Digest as _;

use crate::common::browser::Browser;
use crate::common::web::{Client, Server, free_port};
use crate::common::{Env, block_on, run};

crate::common::on_every_engine!(
    authlib_signs_in_through_chromium_and_verifies_the_id_token,
    each_refusal_has_the_error_the_specifications_name,
    removing_a_client_or_revoking_a_login_in_git_ends_what_was_granted,
    a_code_presented_again_while_its_token_is_made_leaves_no_token,
);

const PW: &str = "correct-horse-battery";
const SECRET: &str = "billing-secret-0123456789-abcdefghij";

fn account(rp_port: u16) -> String {
    format!(
        "features: {{ customer_access: true, websites: true, two_factor_authentication: true }}
login_policy:
  password: {{ min_length: 12 }}
websites:
  - {{ id: store, name: Acme Store, url: https://store.example.com }}
roles:
  - {{ id: no-pay, name: No Payments, permissions: {{ customer_payment: none, invoice: view }} }}
  - {{ id: secure, name: Secure, two_factor: required }}
customers:
  - id: C1
    name: Acme Ltd
    email: ap@acme.example
    access: {{ give_access: true, role: no-pay, password: {{ env: PW }} }}
    contacts:
      - {{ email: jane@acme.example, name: Jane Doe, access: true, password: {{ env: PW }} }}
      - {{ email: boss@acme.example, access: true, role: secure, password: {{ env: PW }} }}
oidc_clients:
  - id: billing
    name: Billing portal
    redirect_uris: [\"http://127.0.0.1:{rp_port}/callback\"]
    post_logout_redirect_uris: [\"http://127.0.0.1:{rp_port}/\"]
    secret: {{ env: BILLING_SECRET }}
"
    )
}

fn apply(env: &Env) -> (i32, String, String) {
    let mut cmd = env.portico(&["apply", "-f", "manifests", "--auto-approve"]);
    cmd.env("PW", PW).env("BILLING_SECRET", SECRET);
    run(cmd)
}

/// The authlib relying party, stopped when dropped.
struct RelyingParty {
    child: Child,
    port: u16,
    result: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl RelyingParty {
    fn start(env: &Env, issuer: &str, port: u16) -> RelyingParty {
        let python = std::env::var("PORTICO_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/it/oidc/relying_party.py"
        );
        let result = env.path("rp.json");
        let log = std::fs::File::create(env.path("rp.log")).unwrap();
        let child = Command::new(python)
            .args([script, issuer, "billing", SECRET, &port.to_string()])
            .arg(&result)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("python3 with authlib: bash .ci/test installs it");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the relying party did not start: {}",
                std::fs::read_to_string(env.path("rp.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        RelyingParty {
            child,
            port,
            result,
            log: env.path("rp.log"),
        }
    }

    /// What the last sign-in gave (or the error it met). Waited for up to a minute: a run
    /// of the whole suite on two cores once took longer than 20 s (a browser, argon2 and
    /// the relying party all sharing them); on a timeout the relying party's log and where
    /// the browser is say where it stopped.
    fn result(&self, browser: &Browser) -> serde_json::Value {
        let started = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&self.result) {
                let _ = std::fs::remove_file(&self.result);
                return serde_json::from_str(&text).unwrap();
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no result after 60 s; the browser is at {} showing {:?}; the relying party's log:\n{}",
                browser.path(),
                browser.text().chars().take(500).collect::<String>(),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for RelyingParty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Signs in at portico's page in the browser, wherever the relying party sent it.
fn sign_in(browser: &Browser, email: &str) {
    browser.type_into("#email", email);
    browser.type_into("#password", PW);
    browser.click_to_next_page("button[type=submit]");
}

fn authlib_signs_in_through_chromium_and_verifies_the_id_token(env: Env) {
    let rp_port = free_port();
    env.write("a.yaml", &account(rp_port));
    let (code, out, err) = apply(&env);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        !out.contains(SECRET) && !err.contains(SECRET),
        "the secret is never printed"
    );
    let server = Server::start(&env);
    let rp = RelyingParty::start(&env, &server.url, rp_port);
    let browser = Browser::start();
    browser.visit(&format!("http://127.0.0.1:{}/login", rp.port));
    assert_eq!(browser.path(), "/login", "portico asks to sign in first");
    sign_in(&browser, "jane@acme.example");
    let first = rp.result(&browser);
    assert!(first.get("error").is_none(), "{first:#}");
    assert!(
        browser.text().contains("signed in as jane@acme.example"),
        "{}",
        browser.text()
    );
    let claims = &first["claims"];
    assert_eq!(claims["iss"], server.url.as_str());
    assert_eq!(claims["aud"], serde_json::json!(["billing"]));
    assert_eq!(claims["email"], "jane@acme.example");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["name"], "Jane Doe");
    assert_eq!(claims["customer"], "C1");
    assert_eq!(claims["role"], "no-pay");
    assert_eq!(claims["permissions"]["invoice"], "view");
    assert!(
        claims["permissions"].get("customer_payment").is_none(),
        "none is not listed"
    );
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    let sub = claims["sub"].as_str().unwrap().to_string();
    assert!(
        !sub.contains('@') && sub.len() >= 32,
        "a random subject, not the email: {sub}"
    );
    assert_eq!(first["userinfo"]["sub"], sub.as_str());
    assert_eq!(first["userinfo"]["email"], "jane@acme.example");
    assert_eq!(first["header"]["alg"], "RS256");
    // Signed in already: the next sign-in of the relying party needs no password, and the
    // subject is the same.
    browser.visit(&format!("http://127.0.0.1:{}/login", rp.port));
    let again = rp.result(&browser);
    assert_eq!(again["claims"]["sub"], sub.as_str(), "{again:#}");
    // Rotation: tokens signed before it keep verifying (the old key stays published).
    let old_token = again["token"]["id_token"].as_str().unwrap().to_string();
    let mut rotate = env.portico(&["keys", "rotate"]);
    rotate.env("PORTICO_SECRET_KEY", crate::common::web::TEST_KEY);
    let (code, out, err) = run(rotate);
    assert_eq!(code, 0, "{out}{err}");
    let jwks_url = format!("{}/oidc/jwks", server.url);
    let started = Instant::now();
    let keys = loop {
        let keys: serde_json::Value =
            block_on(async { reqwest::get(&jwks_url).await.unwrap().json().await.unwrap() });
        if keys["keys"].as_array().unwrap().len() == 2 {
            break keys;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{keys}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        verify_with_authlib(&old_token, &keys),
        "ok",
        "a token signed before rotation verifies"
    );
    // The key set changed, the new key signs: wait until the server reads it, sign in again.
    std::thread::sleep(Duration::from_secs(10));
    browser.visit(&format!("http://127.0.0.1:{}/login", rp.port));
    let rotated = rp.result(&browser);
    assert_ne!(
        rotated["header"]["kid"], again["header"]["kid"],
        "{rotated:#}"
    );
    // RP-initiated logout: confirmed on portico's page, then back to the registered URI.
    browser.visit(&format!("http://127.0.0.1:{}/logout", rp.port));
    assert_eq!(browser.path(), "/oidc/logout");
    assert!(
        browser
            .text()
            .contains("Billing portal asks to sign you out"),
        "{}",
        browser.text()
    );
    browser.click_to_next_page("button[type=submit]");
    assert!(
        browser.text().contains("home state=bye"),
        "{}",
        browser.text()
    );
    browser.visit(&format!("http://127.0.0.1:{}/login", rp.port));
    assert_eq!(
        browser.path(),
        "/login",
        "signed out: asked to sign in again"
    );
}

/// Verifies an ID token's signature against a key set with authlib.
fn verify_with_authlib(token: &str, keys: &serde_json::Value) -> String {
    let python = std::env::var("PORTICO_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .args([
            "-W",
            "ignore",
            "-c",
            "import json, sys\nfrom authlib.jose import JsonWebKey, jwt\nkeys = JsonWebKey.import_key_set(json.loads(sys.argv[2]))\njwt.decode(sys.argv[1], keys)\nprint('ok')",
            token,
            &keys.to_string(),
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if said == "ok" {
        said
    } else {
        format!("{said}{}", String::from_utf8_lossy(&out.stderr))
    }
}

/// A PKCE pair: (verifier, S256 challenge).
fn pkce() -> (String, String) {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).unwrap();
    let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The authorization request's path.
fn authorize_path(redirect: &str, challenge: Option<&str>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("response_type", "code");
    query.append_pair("client_id", "billing");
    query.append_pair("redirect_uri", redirect);
    query.append_pair("scope", "openid email");
    query.append_pair("state", "s1");
    if let Some(challenge) = challenge {
        query.append_pair("code_challenge", challenge);
        query.append_pair("code_challenge_method", "S256");
    }
    format!("/oidc/authorize?{}", query.finish())
}

/// A code for the signed-in browser, and its verifier.
async fn code(browser: &Client, redirect: &str) -> (String, String) {
    let (verifier, challenge) = pkce();
    let answer = browser
        .get(&authorize_path(redirect, Some(&challenge)))
        .await
        .unwrap();
    let location = answer.header("location").unwrap_or_default().to_string();
    let url = url::Url::parse(&location).unwrap_or_else(|_| panic!("{answer:?}"));
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap_or_else(|| panic!("{location}"))
        .1
        .into_owned();
    (code, verifier)
}

/// A token request with HTTP Basic client authentication: (status, JSON body, headers).
async fn token(
    server: &Server,
    secret: &str,
    form: &[(&str, &str)],
) -> (u16, serde_json::Value, reqwest::header::HeaderMap) {
    let response = reqwest::Client::new()
        .post(format!("{}/oidc/token", server.url))
        .basic_auth("billing", Some(secret))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish(),
        )
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, response.json().await.unwrap(), headers)
}

/// The authorization code exchanged as the billing client does it (its secret, the
/// registered redirect URI).
async fn redeem(
    server: &Server,
    code: &str,
    verifier: &str,
    redirect: &str,
) -> (u16, serde_json::Value, reqwest::header::HeaderMap) {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("code_verifier", verifier),
        ("redirect_uri", redirect),
    ];
    token(server, SECRET, &form).await
}

async fn userinfo(server: &Server, access_token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{}/oidc/userinfo", server.url))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn each_refusal_has_the_error_the_specifications_name(env: Env) {
    let rp_port = free_port();
    let redirect = format!("http://127.0.0.1:{rp_port}/callback");
    env.write("a.yaml", &account(rp_port));
    assert_eq!(apply(&env).0, 0);
    let server = Server::start(&env);
    let browser = Client::new(&server);
    let expired = block_on(async {
        browser.sign_in("jane@acme.example", PW).await;
        // Unknown client, unregistered redirect URI: an error page, never a redirect.
        for path in [
            authorize_path(&redirect, Some("x")).replace("client_id=billing", "client_id=nope"),
            authorize_path("http://127.0.0.1:1/evil", Some(&pkce().1)),
        ] {
            let answer = browser.get(&path).await.unwrap();
            assert_eq!(answer.status, 400, "{path}");
            assert!(answer.header("location").is_none());
        }
        // No PKCE: back to the client with invalid_request and its state.
        let answer = browser.get(&authorize_path(&redirect, None)).await.unwrap();
        let location = answer.header("location").unwrap();
        assert!(
            location.starts_with(&redirect)
                && location.contains("error=invalid_request")
                && location.contains("state=s1"),
            "{location}"
        );
        // A state or nonce past 512 characters: refused, and not echoed back.
        for (name, long) in [("state", "s".repeat(513)), ("nonce", "n".repeat(513))] {
            let path = format!(
                "{}&{name}={long}",
                authorize_path(&redirect, Some(&pkce().1))
            )
            .replace("state=s1&", "");
            let answer = browser.get(&path).await.unwrap();
            let location = answer.header("location").unwrap();
            assert!(
                location.starts_with(&redirect)
                    && location.contains("error=invalid_request")
                    && !location.contains(&long),
                "{name}: {location}"
            );
        }
        let grant = |code: &str, verifier: &str, redirect: &str| {
            vec![
                ("grant_type", "authorization_code".to_string()),
                ("code", code.to_string()),
                ("code_verifier", verifier.to_string()),
                ("redirect_uri", redirect.to_string()),
            ]
        };
        async fn send(
            server: &Server,
            secret: &str,
            pairs: &[(&str, String)],
        ) -> (u16, serde_json::Value, reqwest::header::HeaderMap) {
            let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            token(server, secret, &borrowed).await
        }
        // A wrong redirect URI.
        let (code1, verifier1) = code(&browser, &redirect).await;
        let (status, body, _) = send(
            &server,
            SECRET,
            &grant(&code1, &verifier1, "http://127.0.0.1:1/other"),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{body}"
        );
        // A missing verifier.
        let (code2, _) = code(&browser, &redirect).await;
        let mut pairs = grant(&code2, "", &redirect);
        pairs.retain(|(k, _)| *k != "code_verifier");
        let (status, body, _) = send(&server, SECRET, &pairs).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{body}"
        );
        // A wrong verifier.
        let (code3, _) = code(&browser, &redirect).await;
        let wrong = pkce().0;
        let (status, body, _) = send(&server, SECRET, &grant(&code3, &wrong, &redirect)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{body}"
        );
        // A wrong secret.
        let (code4, verifier4) = code(&browser, &redirect).await;
        let (status, body, headers) = send(
            &server,
            "wrong-secret-wrong-secret-wrong-secret",
            &grant(&code4, &verifier4, &redirect),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{body}"
        );
        assert!(headers.get("www-authenticate").is_some());
        // The right one, then the same code again: refused, and what it gave is revoked.
        let (status, body, _) = send(&server, SECRET, &grant(&code4, &verifier4, &redirect)).await;
        assert_eq!(status, 200, "{body}");
        let access = body["access_token"].as_str().unwrap().to_string();
        assert_eq!(userinfo(&server, &access).await, 200);
        let (status, body, _) = send(&server, SECRET, &grant(&code4, &verifier4, &redirect)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{body}"
        );
        assert_eq!(
            userinfo(&server, &access).await,
            401,
            "a replayed code revokes its tokens"
        );
        // An expired code (older than 60 seconds).
        let (code5, verifier5) = code(&browser, &redirect).await;
        (code5, verifier5, access, code4)
    });
    let (code5, verifier5, access, code4) = expired;
    env.sql("UPDATE oidc_codes SET expires_at = '2000-01-01T00:00:00Z' WHERE used_at IS NULL");
    let (status, body, _) = block_on(redeem(&server, &code5, &verifier5, &redirect));
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    // Nothing issued is stored in plaintext.
    let stored = env.dump().join("\n");
    assert!(!stored.contains(&access) && !stored.contains(&code4) && !stored.contains(SECRET));
}

fn removing_a_client_or_revoking_a_login_in_git_ends_what_was_granted(env: Env) {
    let rp_port = free_port();
    let redirect = format!("http://127.0.0.1:{rp_port}/callback");
    env.write("a.yaml", &account(rp_port));
    assert_eq!(apply(&env).0, 0);
    let server = Server::start(&env);
    let browser = Client::new(&server);
    let exchange = |code: String, verifier: String| {
        let (server, redirect) = (&server, redirect.clone());
        async move { redeem(server, &code, &verifier, &redirect).await }
    };
    block_on(async {
        browser.sign_in("jane@acme.example", PW).await;
        let (c, v) = code(&browser, &redirect).await;
        let (status, body, _) = exchange(c, v).await;
        assert_eq!(status, 200, "{body}");
        let access = body["access_token"].as_str().unwrap().to_string();
        // Jane's access is revoked in git: her next userinfo is refused.
        env.write(
            "a.yaml",
            &account(rp_port).replace(
                "{ email: jane@acme.example, name: Jane Doe, access: true,",
                "{ email: jane@acme.example, name: Jane Doe, access: false,",
            ),
        );
        let started = Instant::now();
        assert_eq!(apply(&env).0, 0);
        let applied = started.elapsed();
        assert_eq!(userinfo(&server, &access).await, 401);
        eprintln!(
            "figure: revoke in git → apply → userinfo refused: {:.0} ms (the apply {:.0} ms)",
            started.elapsed().as_secs_f64() * 1000.0,
            applied.as_secs_f64() * 1000.0
        );
        // The customer's own login keeps access; the client goes: its codes and tokens too.
        let owner = Client::new(&server);
        owner.sign_in("ap@acme.example", PW).await;
        let (c, v) = code(&owner, &redirect).await;
        let (status, body, _) = exchange(c.clone(), v.clone()).await;
        assert_eq!(status, 200, "{body}");
        let access = body["access_token"].as_str().unwrap().to_string();
        let (pending, pending_verifier) = code(&owner, &redirect).await;
        let text = account(rp_port);
        let without = &text[..text.find("oidc_clients:").unwrap()];
        env.write("a.yaml", &format!("{without}oidc_clients: []\n"));
        assert_eq!(apply(&env).0, 0);
        assert_eq!(userinfo(&server, &access).await, 401);
        crate::common::web::past_the_cache();
        let (status, body, _) = exchange(pending, pending_verifier).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{body}"
        );
        let answer = owner
            .get(&authorize_path(&redirect, Some(&pkce().1)))
            .await
            .unwrap();
        assert_eq!(answer.status, 400, "an unknown client now");
    });
}

/// A role that requires a second factor gets a code only after it, and `amr` says so.
#[test]
fn a_two_factor_role_gets_a_code_only_after_the_second_factor() {
    let env = Env::sqlite();
    let rp_port = free_port();
    let redirect = format!("http://127.0.0.1:{rp_port}/callback");
    env.write("a.yaml", &account(rp_port));
    assert_eq!(apply(&env).0, 0);
    let server = Server::start(&env);
    let browser = Client::new(&server);
    block_on(async {
        let (verifier, challenge) = pkce();
        let path = authorize_path(&redirect, Some(&challenge));
        let to_login = browser.get(&path).await.unwrap();
        let location = to_login.header("location").unwrap().to_string();
        assert!(location.starts_with("/login?return_to="), "{location}");
        browser.get(&location).await.unwrap();
        let csrf = browser.csrf();
        let return_to = url::Url::parse(&format!("http://x{location}"))
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "return_to")
            .unwrap()
            .1
            .into_owned();
        let signed = browser
            .post(
                "/login",
                &[
                    ("email", "boss@acme.example"),
                    ("password", PW),
                    ("csrf", &csrf),
                    ("return_to", &return_to),
                ],
            )
            .await;
        let next = signed.header("location").unwrap().to_string();
        assert!(next.starts_with("/two-factor?return_to="), "{next}");
        // The password alone gives no code.
        let early = browser.get(&path).await.unwrap();
        assert!(
            early.header("location").unwrap().starts_with("/login"),
            "{early:?}"
        );
        let page = browser.get(&next).await.unwrap();
        let secret = page
            .body
            .split("<code id=\"secret\">")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .to_string();
        let now = jiff::Timestamp::now().as_second();
        let code_now = crate::common::web::pyotp(&secret, now);
        let csrf = browser.csrf();
        let passed = browser
            .post(
                "/two-factor",
                &[
                    ("code", &code_now),
                    ("csrf", &csrf),
                    ("return_to", &return_to),
                ],
            )
            .await;
        assert_eq!(passed.status, 200, "the recovery codes page");
        assert!(
            passed.body.contains("authorize?client_id=billing"),
            "continue returns to the application: {}",
            passed.body
        );
        let answer = browser.get(&return_to).await.unwrap();
        let location = answer.header("location").unwrap_or_default().to_string();
        let code = url::Url::parse(&location)
            .unwrap_or_else(|_| panic!("{answer:?}"))
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        let (status, body, _) = redeem(&server, &code, &verifier, &redirect).await;
        assert_eq!(status, 200, "{body}");
        let id_token = body["id_token"].as_str().unwrap();
        let payload = id_token.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp"]));
    });
}

/// `prompt=none` never shows a page; `prompt=login` and `max_age` ask for a fresh sign-in
/// even when one exists, once.
#[test]
fn prompt_and_max_age_are_honoured() {
    let env = Env::sqlite();
    let rp_port = free_port();
    let redirect = format!("http://127.0.0.1:{rp_port}/callback");
    env.write("a.yaml", &account(rp_port));
    assert_eq!(apply(&env).0, 0);
    let server = Server::start(&env);
    let browser = Client::new(&server);
    block_on(async {
        let (_, challenge) = pkce();
        let path = authorize_path(&redirect, Some(&challenge));
        // Not signed in: `prompt=none` answers login_required to the client at once.
        let answer = browser.get(&format!("{path}&prompt=none")).await.unwrap();
        let location = answer.header("location").unwrap();
        assert!(
            location.starts_with(&redirect) && location.contains("error=login_required"),
            "{location}"
        );
        browser.sign_in("jane@acme.example", PW).await;
        // Signed in: a code at once, without a page.
        let answer = browser.get(&path).await.unwrap();
        assert!(
            answer.header("location").unwrap().contains("code="),
            "{answer:?}"
        );
        for fresh in ["&prompt=login", "&max_age=0"] {
            // Asked to sign in again, however recent the session…
            std::thread::sleep(Duration::from_millis(1100));
            let answer = browser.get(&format!("{path}{fresh}")).await.unwrap();
            let location = answer.header("location").unwrap().to_string();
            assert!(
                location.starts_with("/login?return_to="),
                "{fresh}: {location}"
            );
            let return_to = url::Url::parse(&format!("http://x{location}"))
                .unwrap()
                .query_pairs()
                .find(|(k, _)| k == "return_to")
                .unwrap()
                .1
                .into_owned();
            assert!(return_to.contains("signed_in_after="), "{return_to}");
            // …and the old session does not pass for the fresh sign-in…
            let again = browser.get(&return_to).await.unwrap();
            assert!(
                again.header("location").unwrap().starts_with("/login"),
                "{again:?}"
            );
            // …a new one does, once.
            browser.get("/login").await.unwrap();
            let csrf = browser.csrf();
            let signed = browser
                .post(
                    "/login",
                    &[
                        ("email", "jane@acme.example"),
                        ("password", PW),
                        ("csrf", &csrf),
                        ("return_to", &return_to),
                    ],
                )
                .await;
            assert_eq!(signed.header("location"), Some(return_to.as_str()));
            let answer = browser.get(&return_to).await.unwrap();
            assert!(
                answer.header("location").unwrap().contains("code="),
                "{fresh}: {answer:?}"
            );
        }
    });
}

/// A client with a `website` admits only that website's logins (and those without one); a
/// public client exchanges its code with PKCE alone, and may not send a secret.
#[test]
fn a_website_client_admits_its_logins_and_a_public_client_needs_no_secret() {
    let env = Env::sqlite();
    let rp_port = free_port();
    let redirect = format!("http://127.0.0.1:{rp_port}/callback");
    let text = account(rp_port)
        .replace(
            "websites:\n",
            "websites:\n  - { id: other, name: Other Store, url: https://other.example.com }\n",
        )
        .replace(
            "{ email: jane@acme.example, name: Jane Doe, access: true,",
            "{ email: jane@acme.example, name: Jane Doe, access: true, website: other,",
        )
        .replace(
            "    secret: { env: BILLING_SECRET }\n",
            "    website: store\n    public: true\n",
        );
    env.write("a.yaml", &text);
    let (status, out, err) = apply(&env);
    assert_eq!(status, 0, "{out}{err}");
    let server = Server::start(&env);
    block_on(async {
        // Jane belongs to the other website: refused, back at the client.
        let jane = Client::on_host(&server, "other.example.com");
        jane.sign_in("jane@acme.example", PW).await;
        let answer = jane
            .get(&authorize_path(&redirect, Some(&pkce().1)))
            .await
            .unwrap();
        let location = answer.header("location").unwrap_or_default();
        assert!(location.contains("error=access_denied"), "{answer:?}");
        // The customer's own login has no website: admitted.
        let owner = Client::new(&server);
        owner.sign_in("ap@acme.example", PW).await;
        let (code, verifier) = code(&owner, &redirect).await;
        let exchange = |secret: Option<&'static str>| {
            let form = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("code_verifier", verifier.as_str()),
                    ("redirect_uri", redirect.as_str()),
                    ("client_id", "billing"),
                ])
                .extend_pairs(secret.map(|s| ("client_secret", s)))
                .finish();
            let url = format!("{}/oidc/token", server.url);
            async move {
                let response = reqwest::Client::new()
                    .post(url)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(form)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                (status, response.json::<serde_json::Value>().await.unwrap())
            }
        };
        let (status, body) = exchange(Some("a-secret-a-public-client-cannot-have")).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{body}"
        );
        let (status, body) = exchange(None).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["id_token"].is_string() && body["access_token"].is_string());
    });
}

/// RFC 6749 §4.1.2 at the store, in both orders a replay can meet a token being issued: a
/// token stored before the replay is revoked by it; one stored after the replay's mark is not
/// stored at all (the token endpoint then answers `invalid_grant`).
fn a_code_presented_again_while_its_token_is_made_leaves_no_token(env: Env) {
    use portico::store::serve::{CodeRow, Redeemed, ServeStore, TokenRow};
    env.write("a.yaml", &account(free_port()));
    assert_eq!(apply(&env).0, 0);
    let code = CodeRow {
        client_id: "billing".into(),
        customer_id: "C1".into(),
        contact: "jane@acme.example".into(),
        redirect_uri: "http://127.0.0.1:1/callback".into(),
        code_challenge: "c".into(),
        scope: "openid".into(),
        nonce: None,
        auth_time: "2026-01-01T00:00:00Z".into(),
        amr: "pwd".into(),
        expires_at: "2999-01-01T00:00:00Z".into(),
    };
    let token = TokenRow {
        client_id: "billing".into(),
        customer_id: "C1".into(),
        contact: "jane@acme.example".into(),
        scope: "openid".into(),
        amr: "pwd".into(),
        auth_time: "2026-01-01T00:00:00Z".into(),
        expires_at: "2999-01-01T00:00:00Z".into(),
    };
    let now = "2026-06-01T00:00:00Z";
    block_on(async {
        let store = ServeStore::open(&env.url, 2).await.unwrap();
        // Issued, then replayed: the replay revokes the token.
        store.issue_code("code-1", &code).await.unwrap();
        assert!(matches!(
            store.redeem_code("code-1", now).await.unwrap(),
            Redeemed::Fresh(_)
        ));
        assert!(
            store
                .issue_token("token-1", "code-1", &token)
                .await
                .unwrap()
        );
        assert!(store.access_token("token-1", now).await.unwrap().is_some());
        assert!(matches!(
            store.redeem_code("code-1", now).await.unwrap(),
            Redeemed::Replayed
        ));
        assert!(store.access_token("token-1", now).await.unwrap().is_none());
        // Replayed before the token is stored: the token is refused, nothing outlives it.
        store.issue_code("code-2", &code).await.unwrap();
        assert!(matches!(
            store.redeem_code("code-2", now).await.unwrap(),
            Redeemed::Fresh(_)
        ));
        assert!(matches!(
            store.redeem_code("code-2", now).await.unwrap(),
            Redeemed::Replayed
        ));
        assert!(
            !store
                .issue_token("token-2", "code-2", &token)
                .await
                .unwrap()
        );
        assert!(store.access_token("token-2", now).await.unwrap().is_none());
        // An unknown code is neither fresh nor replayed.
        assert!(matches!(
            store.redeem_code("code-3", now).await.unwrap(),
            Redeemed::Unknown
        ));
    });
}
