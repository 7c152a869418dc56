//! The OpenID Connect provider (DESIGN §11): discovery, the key set, the authorization
//! endpoint (code flow, PKCE S256 for every client), the token endpoint, userinfo and
//! RP-initiated logout. Clients are the applied `oidc_clients`; every code, token and
//! userinfo answer is gated by the one sign-in decision ([`crate::signin::decide`]).

mod authorize;
pub mod keys;
mod logout;
mod token;

pub use authorize::authorize;
pub use logout::{logout, logout_page};
pub use token::{token, userinfo};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::Digest as _;

use super::App;
use crate::catalog::Permission;
use crate::state::OidcClientState;
use crate::store::serve::ServeLogin;

/// Seconds an authorization code may be redeemed in.
pub const CODE_SECONDS: i64 = 60;
/// Seconds an ID token is valid.
pub const ID_TOKEN_SECONDS: i64 = 300;
/// Seconds an access token is valid (userinfo re-checks the login on every call).
pub const ACCESS_TOKEN_SECONDS: i64 = 600;
/// How long the signing keys are reused before they are read again (a rotation by
/// `portico keys rotate` is picked up within this).
const KEYS_TTL: Duration = Duration::from_secs(10);

/// The provider's state in the server: its keys, and the client secrets proved recently.
pub struct Provider {
    keys: tokio::sync::RwLock<Option<(Instant, Arc<keys::Keys>)>>,
    /// A background read of the keys is under way.
    refreshing: AtomicBool,
    /// Client id → (the stored hash, the SHA-256 of the secret that matched it): argon2 runs
    /// once per client and stored hash, not once per token request.
    proved: Mutex<HashMap<String, (String, [u8; 32])>>,
    /// One signature per core at a time, the others waiting in turn (a first-come queue):
    /// as many threads as requests made the slowest wait for all the others.
    signers: tokio::sync::Semaphore,
}

impl Default for Provider {
    fn default() -> Provider {
        let cores = crate::parallel::cores();
        Provider {
            keys: tokio::sync::RwLock::default(),
            refreshing: AtomicBool::new(false),
            proved: Mutex::default(),
            signers: tokio::sync::Semaphore::new(cores),
        }
    }
}

impl Provider {
    /// The signing keys, read again every [`KEYS_TTL`]: in the background, while requests
    /// go on with the keys they have (only the very first read is waited for). The signer is
    /// kept while the signing key stays the same.
    ///
    /// # Errors
    /// Database errors; no key this server can open or make.
    pub async fn keys(&self, app: &Arc<App>) -> Result<Arc<keys::Keys>, crate::store::StoreError> {
        let current = self.keys.read().await.clone();
        if let Some((at, keys)) = current {
            if at.elapsed() >= KEYS_TTL && !self.refreshing.swap(true, Ordering::AcqRel) {
                let (app, previous) = (app.clone(), keys.clone());
                tokio::spawn(async move {
                    let provider = &app.oidc;
                    let now = jiff::Timestamp::now();
                    match keys::load(&app.store, &app.secret_key, now, Some(&previous)).await {
                        Ok(fresh) => {
                            *provider.keys.write().await = Some((Instant::now(), Arc::new(fresh)))
                        }
                        Err(e) => eprintln!("portico serve: reading the signing keys failed: {e}"),
                    }
                    provider.refreshing.store(false, Ordering::Release);
                });
            }
            return Ok(keys);
        }
        let mut slot = self.keys.write().await;
        if let Some((_, keys)) = &*slot {
            return Ok(keys.clone());
        }
        let fresh =
            Arc::new(keys::load(&app.store, &app.secret_key, jiff::Timestamp::now(), None).await?);
        *slot = Some((Instant::now(), fresh.clone()));
        Ok(fresh)
    }
}

/// The issuer of this request: the scheme `serve` is reached by (https behind its proxy; http
/// with `--insecure-cookies`) and the request's host. Each website's host is its own issuer.
pub fn issuer(app: &App, headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !valid {
        return None;
    }
    let scheme = if app.cookies.insecure {
        "http"
    } else {
        "https"
    };
    Some(format!("{scheme}://{}", host.to_ascii_lowercase()))
}

/// `GET /.well-known/openid-configuration`.
pub async fn discovery(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some(issuer) = issuer(&app, &headers) else {
        return (StatusCode::BAD_REQUEST, "no valid Host header").into_response();
    };
    let at = |path: &str| format!("{issuer}{path}");
    let document = serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": at("/oidc/authorize"),
        "token_endpoint": at("/oidc/token"),
        "userinfo_endpoint": at("/oidc/userinfo"),
        "jwks_uri": at("/oidc/jwks"),
        "end_session_endpoint": at("/oidc/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": crate::manifest::oidc::SCOPES,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr", "email",
            "email_verified", "name", "customer", "role", "website", "permissions",
        ],
        "prompt_values_supported": ["none", "login"],
        "authorization_response_iss_parameter_supported": true,
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
    });
    public_json(Json(document).into_response())
}

/// `GET /oidc/jwks`: the published public keys.
pub async fn jwks(State(app): State<Arc<App>>) -> Response {
    match app.oidc.keys(&app).await {
        Ok(keys) => public_json(Json(keys.jwks.clone()).into_response()),
        Err(e) => super::flows::internal(e),
    }
}

/// Public documents any page may fetch (no cookies are read): CORS open, cacheable briefly.
fn public_json(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        "*".parse().expect("a header"),
    );
    h.insert(
        header::CACHE_CONTROL,
        "public, max-age=300".parse().expect("a header"),
    );
    response
}

/// An OAuth error as JSON (RFC 6749 §5.2), with this status.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = serde_json::json!({ "error": error, "error_description": description });
    (status, Json(body)).into_response()
}

/// A random token of 256 bits, base64url (codes, access tokens).
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the system's random source");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// BASE64URL(SHA-256(verifier)), the S256 code challenge (RFC 7636 §4.2).
fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// A PKCE verifier or challenge: 43 to 128 unreserved characters (RFC 7636 §4.1).
fn pkce_shaped(text: &str) -> bool {
    (43..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The sign-in decision for a login reaching a client: its access now, on the client's
/// website. Whether it may enter, and whether it must have passed a second factor.
fn admitted(
    account: &crate::state::State,
    client: &OidcClientState,
    login: &ServeLogin,
    now: &str,
) -> (bool, bool) {
    let decision = crate::signin::decide(
        account,
        &login.login,
        Some(&login.runtime),
        crate::signin::Site::Request(client.website.as_deref()),
        now,
    );
    (decision.may_enter(), decision.second_factor)
}

/// The `amr` values of a session's factors (RFC 8176): `pwd`, `otp`.
fn amr(factors: &str) -> Vec<String> {
    factors
        .split(' ')
        .filter(|f| !f.is_empty())
        .map(String::from)
        .collect()
}

/// The claims a login releases under these scopes (userinfo, and the ID token).
fn claims(
    account: &crate::state::State,
    login: &ServeLogin,
    scope: &str,
) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::Value;
    let mut out = serde_json::Map::new();
    let has = |s: &str| scope.split(' ').any(|x| x == s);
    let l = &login.login;
    if has("email") {
        out.insert(
            "email".into(),
            Value::from(l.email.as_deref().unwrap_or_default()),
        );
        // The email is the administrator's, reviewed in a pull request (a directory's email).
        out.insert("email_verified".into(), Value::Bool(l.email.is_some()));
    }
    if has("profile") {
        let name = l
            .name
            .as_deref()
            .map_or_else(|| login.customer_name.clone(), str::to_string);
        out.insert("name".into(), Value::from(name));
    }
    if has("access") {
        out.insert("customer".into(), Value::from(login.customer_id.clone()));
        out.insert("role".into(), Value::from(l.role.to_string()));
        if let Some(website) = &l.website {
            out.insert("website".into(), Value::from(website.to_string()));
        }
        let permissions: serde_json::Map<String, Value> = Permission::ALL
            .iter()
            .map(|p| (p, crate::policy::effective_level(account, &l.role, *p)))
            .filter(|(_, level)| *level != crate::catalog::Level::None)
            .map(|(p, level)| (p.key().to_string(), Value::from(level.key())))
            .collect();
        out.insert("permissions".into(), Value::Object(permissions));
    }
    out
}

/// The allowed scopes of a request: those asked for that the client may have, in the
/// client's order.
fn granted(client: &OidcClientState, asked: &str) -> String {
    let asked: Vec<&str> = asked.split(' ').filter(|s| !s.is_empty()).collect();
    client
        .scopes
        .iter()
        .filter(|s| asked.contains(&s.as_str()))
        .cloned()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(pkce_shaped("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
        assert!(!pkce_shaped("short"));
        assert!(!pkce_shaped(&"a".repeat(129)));
        assert!(!pkce_shaped(&format!("{}+", "a".repeat(50))));
    }
}
