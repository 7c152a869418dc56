//! `POST /oidc/token` (a code, its PKCE verifier and the client's proof for an ID token and
//! an access token) and `/oidc/userinfo` (the claims of an access token's login, decided
//! again on every call).

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use openidconnect::core::{
    CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AccessToken, AdditionalClaims, Audience, AuthenticationMethodReference, AuthorizationCode,
    IdToken, IdTokenClaims, IssuerUrl, Nonce, StandardClaims, SubjectIdentifier,
};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::{ACCESS_TOKEN_SECONDS, App, ID_TOKEN_SECONDS, oauth_error};
use crate::serve::session::hash_id;
use crate::state::OidcClientState;
use crate::store::serve::{CodeRow, Redeemed, TokenRow};

/// portico's own claims in an ID token (with the `access` scope; others as scopes allow).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
struct PorticoClaims {
    #[serde(flatten)]
    claims: serde_json::Map<String, serde_json::Value>,
}

impl AdditionalClaims for PorticoClaims {}

type PorticoIdToken = IdToken<
    PorticoClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// The token request's form fields.
#[derive(Debug, Default, Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// A refusal, as the token endpoint answers it.
struct Refused(Response);

fn refused(error: &str, description: &str) -> Refused {
    Refused(oauth_error(StatusCode::BAD_REQUEST, error, description))
}

/// `POST /oidc/token`.
pub async fn token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    match exchange(&app, &headers, form).await {
        Ok(Ok(response)) => response,
        Ok(Err(Refused(response))) => response,
        Err(e) => crate::serve::flows::internal(e),
    }
}

async fn exchange(
    app: &Arc<App>,
    headers: &HeaderMap,
    form: TokenForm,
) -> Result<Result<Response, Refused>, crate::store::StoreError> {
    let account = app.account().await?;
    let (client_id, client) = match authenticate(app, &account, headers, &form).await {
        Ok(found) => found,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if form.grant_type.as_deref() != Some("authorization_code") {
        return Ok(Err(refused(
            "unsupported_grant_type",
            "only authorization_code is offered",
        )));
    }
    let (Some(code), Some(verifier)) = (form.code.as_deref(), form.code_verifier.as_deref()) else {
        return Ok(Err(refused(
            "invalid_request",
            "code and code_verifier are required",
        )));
    };
    let now = jiff::Timestamp::now();
    let now_text = crate::clock::format(now);
    let code_hash = hash_id(code);
    let issued = match app.store.redeem_code(&code_hash, &now_text).await? {
        Redeemed::Fresh(issued) => issued,
        Redeemed::Replayed => {
            return Ok(Err(refused(
                "invalid_grant",
                "the code was used before: what it gave is revoked",
            )));
        }
        Redeemed::Unknown => return Ok(Err(refused("invalid_grant", "unknown code"))),
    };
    if let Some(why) = binding_problem(
        &issued,
        &client_id,
        form.redirect_uri.as_deref(),
        verifier,
        &now_text,
    ) {
        return Ok(Err(refused("invalid_grant", why)));
    }
    let Some(login) = app
        .store
        .login_by_key(&issued.customer_id, &issued.contact)
        .await?
    else {
        return Ok(Err(refused("invalid_grant", "the login no longer exists")));
    };
    let (may_enter, second_factor) = super::admitted(&account, client, &login, &now_text);
    if !may_enter || (second_factor && !crate::serve::session::two_factors(&issued.amr)) {
        return Ok(Err(refused(
            "invalid_grant",
            "this login may no longer sign in to this application",
        )));
    }
    let Some(body) = issue(
        app,
        headers,
        (&client_id, &account),
        &issued,
        (&login, code, &code_hash),
        now,
    )
    .await?
    else {
        return Ok(Err(refused(
            "invalid_grant",
            "the code was used again meanwhile: what it gave is revoked",
        )));
    };
    Ok(Ok((StatusCode::OK, axum::Json(body)).into_response()))
}

/// The access token (stored) and the signed ID token, as the token response's JSON; `None`
/// when the code was presented again while they were made.
async fn issue(
    app: &Arc<App>,
    headers: &HeaderMap,
    (client_id, account): (&str, &crate::serve::Account),
    issued: &CodeRow,
    (login, code, code_hash): (&crate::store::serve::ServeLogin, &str, &str),
    now: jiff::Timestamp,
) -> Result<Option<serde_json::Value>, crate::store::StoreError> {
    let access_token = super::random_token();
    let row = TokenRow {
        client_id: client_id.to_string(),
        customer_id: issued.customer_id.clone(),
        contact: issued.contact.clone(),
        scope: issued.scope.clone(),
        amr: issued.amr.clone(),
        auth_time: issued.auth_time.clone(),
        expires_at: crate::clock::format(
            now + jiff::SignedDuration::from_secs(ACCESS_TOKEN_SECONDS),
        ),
    };
    let sub = subject(app, login).await?;
    let issuer = super::issuer(app, headers).unwrap_or_default();
    let claims = super::claims(account, login, &issued.scope);
    let signed = sign(
        app,
        (&issuer, client_id, &sub),
        issued,
        claims,
        (&access_token, code),
        now,
    )
    .await?;
    let Some(id_token) = signed else {
        return Err(crate::store::StoreError::Corrupt(
            "signing an ID token failed".into(),
        ));
    };
    // Stored only once its ID token is signed: a failure leaves no unused token behind.
    if !app
        .store
        .issue_token(&hash_id(&access_token), code_hash, &row)
        .await?
    {
        return Ok(None);
    }
    Ok(Some(serde_json::json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_SECONDS,
        "id_token": id_token,
        "scope": issued.scope,
    })))
}

/// Why a redeemed code does not fit this request, if it does not: another client, another
/// redirect URI, a verifier that does not hash to its challenge, or too late.
fn binding_problem(
    issued: &CodeRow,
    client_id: &str,
    redirect_uri: Option<&str>,
    verifier: &str,
    now: &str,
) -> Option<&'static str> {
    if issued.client_id != client_id {
        return Some("the code was issued to another client");
    }
    if redirect_uri != Some(issued.redirect_uri.as_str()) {
        return Some("redirect_uri differs from the authorization request's");
    }
    if !super::pkce_shaped(verifier) || super::s256(verifier) != issued.code_challenge {
        return Some("code_verifier does not match the code_challenge");
    }
    if issued.expires_at.as_str() <= now {
        return Some("the code expired");
    }
    None
}

/// The client and its proof: HTTP Basic (`client_secret_basic`) or the form
/// (`client_secret_post`); a public client sends its id only.
async fn authenticate<'a>(
    app: &App,
    account: &'a crate::serve::Account,
    headers: &HeaderMap,
    form: &TokenForm,
) -> Result<(String, &'a OidcClientState), Refused> {
    let basic = basic_credentials(headers);
    let used_basic = basic.is_some();
    let (id, secret) = match (basic, &form.client_secret) {
        (Some(_), Some(_)) => {
            return Err(refused(
                "invalid_request",
                "use one client authentication method",
            ));
        }
        (Some((id, secret)), None) => (Some(id), Some(secret)),
        (None, secret) => (form.client_id.clone(), secret.clone()),
    };
    let unauthorised = || {
        let mut response = oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
        if used_basic {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"portico\""),
            );
        }
        Refused(response)
    };
    let Some(id) = id else {
        return Err(unauthorised());
    };
    let Some(client) = account.oidc_clients.get(&id) else {
        return Err(unauthorised());
    };
    let proved = match (client.confidential(), secret) {
        (false, None) => true,
        (true, Some(secret)) => {
            let stored = account.client_secret_hashes.get(&id).cloned();
            match stored {
                Some(stored) => proves(app, &id, stored, secret).await,
                None => false,
            }
        }
        _ => false,
    };
    if proved {
        Ok((id, client))
    } else {
        Err(unauthorised())
    }
}

/// Whether `secret` is the client's: argon2 the first time for a stored hash, then the
/// SHA-256 of the secret that matched it.
async fn proves(app: &App, id: &str, stored: String, secret: String) -> bool {
    let digest: [u8; 32] = sha2::Sha256::digest(secret.as_bytes()).into();
    if let Some((hash, known)) = app
        .oidc
        .proved
        .lock()
        .expect("the proved-secrets cache")
        .get(id)
        && *hash == stored
    {
        return *known == digest;
    }
    let matched = app.hashing.verify(stored.clone(), secret).await == Some(true);
    if matched {
        app.oidc
            .proved
            .lock()
            .expect("the proved-secrets cache")
            .insert(id.to_string(), (stored, digest));
    }
    matched
}

/// `Authorization: Basic` as (client id, secret), each form-urlencoded (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |s: &str| -> String {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((decode(id), decode(secret)))
}

async fn subject(
    app: &App,
    login: &crate::store::serve::ServeLogin,
) -> Result<String, crate::store::StoreError> {
    app.store
        .subject(&login.customer_id, &login.contact, &super::random_token())
        .await
}

/// The signed ID token; `None` only when signing fails.
async fn sign(
    app: &Arc<App>,
    (issuer, client_id, sub): (&str, &str, &str),
    issued: &CodeRow,
    claims: serde_json::Map<String, serde_json::Value>,
    (access_token, code): (&str, &str),
    now: jiff::Timestamp,
) -> Result<Option<String>, crate::store::StoreError> {
    let keys = app.oidc.keys(app).await?;
    let time =
        |t: jiff::Timestamp| chrono::DateTime::from_timestamp(t.as_second(), 0).unwrap_or_default();
    let expires = now + jiff::SignedDuration::from_secs(ID_TOKEN_SECONDS);
    let Ok(issuer) = IssuerUrl::new(issuer.to_string()) else {
        return Ok(None);
    };
    let auth_time = issued.auth_time.parse::<jiff::Timestamp>().ok().map(time);
    let mut claims = claims;
    let standard = StandardClaims::<CoreGenderClaim>::new(SubjectIdentifier::new(sub.to_string()));
    // The standard claims the scopes release ride in the additional map, already shaped.
    claims.remove("sub");
    let token_claims = IdTokenClaims::new(
        issuer,
        vec![Audience::new(client_id.to_string())],
        time(expires),
        time(now),
        standard,
        PorticoClaims { claims },
    )
    .set_nonce(issued.nonce.clone().map(Nonce::new))
    .set_auth_time(auth_time)
    .set_auth_method_refs(Some(
        super::amr(&issued.amr)
            .into_iter()
            .map(AuthenticationMethodReference::new)
            .collect(),
    ));
    let (access_token, code) = (
        AccessToken::new(access_token.to_string()),
        AuthorizationCode::new(code.to_string()),
    );
    // An RS256 signature is most of a token request's CPU: off the runtime's threads (the
    // requests in flight on them are not held up), one per core at a time.
    let Ok(_turn) = app.oidc.signers.acquire().await else {
        return Ok(None);
    };
    let signed = tokio::task::spawn_blocking(move || {
        PorticoIdToken::new(
            token_claims,
            &*keys.signing,
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            Some(&access_token),
            Some(&code),
        )
        .ok()
        .map(|t| t.to_string())
    })
    .await;
    Ok(signed.ok().flatten())
}

/// `GET` or `POST /oidc/userinfo` with `Authorization: Bearer`: the claims of the token's
/// scopes, while the token lives, its client exists and its login may still sign in.
pub async fn userinfo(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    match user_claims(&app, &headers).await {
        Ok(Some(claims)) => (StatusCode::OK, axum::Json(claims)).into_response(),
        Ok(None) => {
            let mut response = oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the access token is not valid",
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            response
        }
        Err(e) => crate::serve::flows::internal(e),
    }
}

async fn user_claims(
    app: &App,
    headers: &HeaderMap,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, crate::store::StoreError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let Some(bearer) = bearer else {
        return Ok(None);
    };
    let now = crate::clock::format(jiff::Timestamp::now());
    let Some(token) = app
        .store
        .access_token(&hash_id(bearer.trim()), &now)
        .await?
    else {
        return Ok(None);
    };
    let account = app.account().await?;
    let Some(client) = account.oidc_clients.get(&token.client_id) else {
        return Ok(None);
    };
    let Some(login) = app
        .store
        .login_by_key(&token.customer_id, &token.contact)
        .await?
    else {
        return Ok(None);
    };
    let (may_enter, second_factor) = super::admitted(&account, client, &login, &now);
    if !may_enter || (second_factor && !crate::serve::session::two_factors(&token.amr)) {
        return Ok(None);
    }
    let mut claims = super::claims(&account, &login, &token.scope);
    claims.insert("sub".into(), subject(app, &login).await?.into());
    Ok(Some(claims))
}
