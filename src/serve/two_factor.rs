//! Two-factor sign-in (DESIGN §10.2): TOTP (RFC 6238, SHA-1, 6 digits, 30 s, ±1 step, a
//! code never accepted twice) with enrolment at the next sign-in and ten single-use recovery
//! codes. Seeds are sealed with ChaCha20-Poly1305 under the server's key, bound to the login.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use minijinja::context;
use serde::Deserialize;

use super::pages::page;
use super::session::{self, hash_id, site_name, text};
use super::{App, Client};
use crate::store::serve::{Claim, LockKey, ServeLogin};

/// The server's 32-byte key for secrets at rest.
pub struct SecretKey(ChaCha20Poly1305);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(…)")
    }
}

impl SecretKey {
    /// Reads a key: 32 bytes, written in base64 (`openssl rand -base64 32`).
    ///
    /// # Errors
    /// What is wrong with it (never the key).
    pub fn from_base64(text: &str) -> Result<SecretKey, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| "the secret key is not base64".to_string())?;
        if bytes.len() != 32 {
            return Err(format!(
                "the secret key has {} bytes; it needs 32 (`openssl rand -base64 32`)",
                bytes.len()
            ));
        }
        ChaCha20Poly1305::new_from_slice(&bytes)
            .map(SecretKey)
            .map_err(|_| "the secret key has the wrong length".to_string())
    }

    /// Seals a seed for one login: a random nonce, then the ciphertext, in base64.
    pub(super) fn seal(&self, login: &ServeLogin, seed: &[u8]) -> String {
        self.seal_for(
            &format!("{}\u{0}{}", login.customer_id, login.contact),
            seed,
        )
    }

    /// Opens a sealed seed; `None` under another key or for another login.
    pub(super) fn open(&self, login: &ServeLogin, sealed: &str) -> Option<Vec<u8>> {
        self.open_for(
            &format!("{}\u{0}{}", login.customer_id, login.contact),
            sealed,
        )
    }

    /// Seals a secret bound to `purpose` (authenticated, not encrypted: a sealed secret opens
    /// only for the purpose it was sealed for): a random nonce, then the ciphertext, in base64.
    pub(crate) fn seal_for(&self, purpose: &str, secret: &[u8]) -> String {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).expect("the system's random source");
        let sealed = self
            .0
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: secret,
                    aad: purpose.as_bytes(),
                },
            )
            .expect("sealing cannot fail");
        let mut out = nonce.to_vec();
        out.extend(sealed);
        base64::engine::general_purpose::STANDARD.encode(out)
    }

    /// Opens what [`SecretKey::seal_for`] sealed; `None` under another key or purpose.
    pub(crate) fn open_for(&self, purpose: &str, sealed: &str) -> Option<Vec<u8>> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .ok()?;
        if bytes.len() < 12 {
            return None;
        }
        let nonce: [u8; 12] = bytes[..12].try_into().ok()?;
        self.0
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &bytes[12..],
                    aad: purpose.as_bytes(),
                },
            )
            .ok()
    }
}

pub(super) fn totp(seed: Vec<u8>, site: &str, email: &str) -> Option<totp_rs::Totp> {
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(seed)
        .with_issuer(Some(site.replace(':', " ")))
        .with_account_name(email.to_string())
        .build()
        .ok()
}

/// What an enrolment page shows for `seed`: the otpauth QR code as inline SVG, and the key
/// in base32 for typing.
pub(super) fn enrolment(seed: Vec<u8>, site: &str, email: &str) -> Option<(String, String)> {
    let totp = totp(seed, site, email)?;
    let qr = qr_svg(&totp.to_url().ok()?)?;
    Some((qr, totp.secret().to_base32()))
}

/// A QR code as an SVG image: one path of dark modules on white, with the quiet zone.
fn qr_svg(text: &str) -> Option<String> {
    use std::fmt::Write as _;
    let code = qrcodegen::QrCode::encode_text(text, qrcodegen::QrCodeEcc::Medium).ok()?;
    let border = 4;
    let size = code.size() + 2 * border;
    let mut path = String::new();
    // One rectangle per horizontal run of dark modules.
    for y in 0..code.size() {
        let mut x = 0;
        while x < code.size() {
            if !code.get_module(x, y) {
                x += 1;
                continue;
            }
            let start = x;
            while x < code.size() && code.get_module(x, y) {
                x += 1;
            }
            let run = x - start;
            let _ = write!(path, "M{},{}h{run}v1h-{run}z", start + border, y + border);
        }
    }
    Some(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" width=\"200\" height=\"200\" role=\"img\" aria-label=\"QR code for your authenticator app\" shape-rendering=\"crispEdges\"><rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>"
    ))
}

fn internal(error: impl std::fmt::Display) -> Response {
    eprintln!("error: {error}");
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}

/// `GET /two-factor`: the code form, or the enrolment (QR code and key) for a login that has
/// no confirmed factor yet. Only for a session that has passed the password.
pub async fn page_for(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(query): Query<ReturnTo>,
) -> Response {
    let return_to = super::flows::local_path(query.return_to.as_deref());
    match render(&app, &headers, None, return_to).await {
        Ok(response) => response,
        Err(e) => internal(e),
    }
}

/// Where to go once signed in (a local path), carried through the second step.
#[derive(Deserialize)]
pub struct ReturnTo {
    return_to: Option<String>,
}

async fn render(
    app: &App,
    headers: &HeaderMap,
    error: Option<&str>,
    return_to: Option<String>,
) -> Result<Response, crate::store::StoreError> {
    let Some((_, login)) = session::pending(app, headers).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let account = app.account().await?;
    let site = site_name(&account, headers);
    let (csrf, cookie) = super::flows::form_token(app, headers);
    let factor = app
        .store
        .second_factor(&login.customer_id, &login.contact)
        .await?;
    let email = login.login.email.as_deref().unwrap_or_default().to_string();
    let context = match factor {
        Some(f) if f.confirmed => {
            context! { title => "Two-step sign-in", site, csrf, error, enrol => false, profile => false, return_to }
        }
        existing => {
            // Enrolment: a new seed each time the page is shown until one is confirmed.
            let seed = match existing.and_then(|f| app.secret_key.open(&login, &f.sealed)) {
                Some(seed) if error.is_some() => seed,
                _ => {
                    let mut seed = vec![0u8; 20];
                    getrandom::fill(&mut seed).expect("the system's random source");
                    let sealed = app.secret_key.seal(&login, &seed);
                    app.store
                        .begin_enrolment(&login.customer_id, &login.contact, &sealed)
                        .await?;
                    seed
                }
            };
            let Some((qr, secret)) = enrolment(seed, &site, &email) else {
                return Ok(internal("cannot make a TOTP for this login"));
            };
            context! {
                title => "Set up two-step sign-in", site, csrf, error, enrol => true, qr, secret,
                profile => false, required => true, return_to,
            }
        }
    };
    let response = page(StatusCode::OK, "two_factor.html", context);
    Ok(super::flows::with_cookie(response, cookie))
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    return_to: Option<String>,
}

/// `POST /two-factor` (field `code`): a TOTP code (±1 step, each step once) or a recovery
/// code. Counted against the lockout like a password. A first code confirms the enrolment
/// and shows ten recovery codes once.
pub async fn submit(
    State(app): State<Arc<App>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    match check(&app, &headers, &client.0, form).await {
        Ok(response) => response,
        Err(e) => internal(e),
    }
}

async fn check(
    app: &App,
    headers: &HeaderMap,
    address: &str,
    form: CodeForm,
) -> Result<Response, crate::store::StoreError> {
    if !super::flows::token_ok(app, headers, &form.csrf) {
        return Ok((StatusCode::FORBIDDEN, "This form expired.").into_response());
    }
    let Some((id_hash, login)) = session::pending(app, headers).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let account = app.account().await?;
    let limits = super::flows::Limits::of(&account);
    let at = session::now();
    let now = text(at);
    let email = login.login.email.as_deref().unwrap_or_default().to_string();
    let Claim::Attempt(attempt) = app
        .store
        .claim_attempt(&login.customer_id, &login.contact, limits.max, &now)
        .await?
    else {
        app.end_session(&id_hash).await?;
        return Ok(Redirect::to("/login").into_response());
    };
    let site = site_name(&account, headers);
    let code: String = form.code.chars().filter(|c| !c.is_whitespace()).collect();
    let return_to = super::flows::local_path(form.return_to.as_deref());
    let asked = Asked {
        login: &login,
        email: &email,
        address,
        at,
        now: &now,
    };
    let outcome = accept_code(app, &asked, &site, &code).await?;
    let Some(enrolled_now) = outcome else {
        if attempt >= limits.max {
            let key = LockKey::Login {
                customer_id: &login.customer_id,
                contact: &login.contact,
            };
            let until = session::later(at, limits.lock_minutes);
            app.store.lock(&key, &until).await?;
            app.store
                .event(&email, "locked", address, Some(&until), &now)
                .await?;
            app.end_session(&id_hash).await?;
            return Ok(Redirect::to("/login").into_response());
        }
        app.store
            .event(&email, "second_factor_failed", address, None, &now)
            .await?;
        super::throttle::count(app, address, at).await?;
        return render(
            app,
            headers,
            Some("That code is not right. Try the newest one."),
            return_to,
        )
        .await;
    };
    passed(app, &asked, &id_hash, enrolled_now, (site, return_to)).await
}

/// Who is asked for a second factor, and when.
struct Asked<'a> {
    login: &'a ServeLogin,
    email: &'a str,
    address: &'a str,
    at: jiff::Timestamp,
    now: &'a str,
}

/// Checks a code: a TOTP code (a step not used before), else an unused recovery code once
/// enrolment is confirmed. `None`: refused; `Some(enrolled_now)`: accepted, and whether this
/// code confirmed the enrolment.
async fn accept_code(
    app: &App,
    asked: &Asked<'_>,
    site: &str,
    code: &str,
) -> Result<Option<bool>, crate::store::StoreError> {
    let login = asked.login;
    let factor = app
        .store
        .second_factor(&login.customer_id, &login.contact)
        .await?;
    if let Some(factor) = &factor
        && let Some(seed) = app.secret_key.open(login, &factor.sealed)
        && let Some(totp) = totp(seed, site, asked.email)
        && let Some(step) = totp.check(code, asked.at.as_second().max(0) as u64)
        && app
            .store
            .accept_step(&login.customer_id, &login.contact, step as i64, asked.now)
            .await?
    {
        return Ok(Some(!factor.confirmed));
    }
    if !factor.as_ref().is_some_and(|f| f.confirmed) {
        return Ok(None);
    }
    let used = app
        .store
        .use_recovery_code(
            &login.customer_id,
            &login.contact,
            &hash_id(&code.to_ascii_lowercase()),
            asked.now,
        )
        .await?;
    if !used {
        return Ok(None);
    }
    app.store
        .event(
            asked.email,
            "recovery_code_used",
            asked.address,
            None,
            asked.now,
        )
        .await?;
    Ok(Some(false))
}

/// Both factors passed: the session gets a new id and full rights; a first code also shows
/// the recovery codes, once.
async fn passed(
    app: &App,
    asked: &Asked<'_>,
    id_hash: &str,
    enrolled_now: bool,
    (site, return_to): (String, Option<String>),
) -> Result<Response, crate::store::StoreError> {
    let next = return_to.unwrap_or_else(|| "/".into());
    let (login, email, address, now) = (asked.login, asked.email, asked.address, asked.now);
    // The session gets a new id now that it has passed both factors.
    let id = session::random_id();
    app.store
        .signed_in_second_factor(login, id_hash, &hash_id(&id), now)
        .await?;
    app.sessions.forget(id_hash);
    let cookie = Some(app.cookies.session(&id));
    app.store
        .event(
            email,
            "signed_in",
            address,
            Some("with a second factor"),
            now,
        )
        .await?;
    if !enrolled_now {
        return Ok(super::flows::with_cookie(
            Redirect::to(&next).into_response(),
            cookie,
        ));
    }
    app.store
        .event(email, "factor_enrolled", address, None, now)
        .await?;
    let codes: Vec<String> = (0..10).map(|_| recovery_code()).collect();
    let hashes: Vec<String> = codes.iter().map(|c| hash_id(c)).collect();
    app.store
        .replace_recovery_codes(&login.customer_id, &login.contact, &hashes)
        .await?;
    Ok(super::flows::with_cookie(
        page(
            StatusCode::OK,
            "recovery.html",
            context! { title => "Your recovery codes", site, codes, next },
        ),
        cookie,
    ))
}

/// A recovery code: 50 random bits as `xxxxx-xxxxx` (lower-case base32).
pub(super) fn recovery_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut bytes = [0u8; 10];
    getrandom::fill(&mut bytes).expect("the system's random source");
    let chars: String = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % 32] as char)
        .collect();
    format!("{}-{}", &chars[..5], &chars[5..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_seed_opens_only_for_its_login_and_key() {
        let key =
            SecretKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([7u8; 32]))
                .unwrap();
        let other =
            SecretKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([8u8; 32]))
                .unwrap();
        let login = |contact: &str| ServeLogin {
            customer_id: "C1".into(),
            contact: contact.into(),
            customer_name: String::new(),
            login: crate::state::LoginState {
                email: None,
                name: None,
                access: true,
                role: "customer_center".into(),
                website: None,
                notify: false,
                password: None,
                expires: None,
            },
            password_hash: None,
            runtime: crate::signin::Runtime::default(),
        };
        let sealed = key.seal(&login("a@x.example"), b"seed-seed-seed-seed!");
        assert!(!sealed.contains("seed"));
        assert_eq!(
            key.open(&login("a@x.example"), &sealed).unwrap(),
            b"seed-seed-seed-seed!"
        );
        assert!(key.open(&login("b@x.example"), &sealed).is_none());
        assert!(other.open(&login("a@x.example"), &sealed).is_none());
        assert!(
            SecretKey::from_base64("c2hvcnQ=")
                .unwrap_err()
                .contains("needs 32")
        );
        let code = recovery_code();
        assert_eq!(code.len(), 11);
        assert_ne!(code, recovery_code());
    }
}
