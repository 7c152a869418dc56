//! `GET /oidc/authorize`: the authorization endpoint (code flow only). An unknown client or a
//! redirect URI not registered exactly is shown an error page, never redirected to (RFC 6749
//! §4.1.2.1); every other refusal goes back to the client as `error=…`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use super::{App, CODE_SECONDS};

/// The longest `state` or `nonce` accepted (characters). Both are echoed (in the redirect,
/// in the ID token) and `nonce` is stored with the code; clients send 22–64 characters.
const MAX_ECHOED: usize = 512;
use crate::serve::pages::page;
use crate::serve::session::{Current, current, hash_id, site_name};
use crate::store::serve::CodeRow;

/// The request's parameters (all optional here: each missing one has its own answer).
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
pub struct AuthorizeQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    response_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redirect_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code_challenge: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code_challenge_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_age: Option<String>,
    /// Set by portico when it sends the browser to sign in afresh (`prompt=login`,
    /// `max_age`): the sign-in must be newer than this (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    signed_in_after: Option<i64>,
}

/// `GET /oidc/authorize`.
pub async fn authorize(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(query): Query<AuthorizeQuery>,
) -> Response {
    match run(&app, &headers, query).await {
        Ok(response) => response,
        Err(e) => crate::serve::flows::internal(e),
    }
}

async fn run(
    app: &App,
    headers: &HeaderMap,
    q: AuthorizeQuery,
) -> Result<Response, crate::store::StoreError> {
    let account = app.account().await?;
    let site = site_name(&account, headers);
    let client = q
        .client_id
        .as_deref()
        .and_then(|id| Some((id, account.oidc_clients.get(id)?)));
    let Some((client_id, client)) = client else {
        return Ok(error_page(
            &site,
            "This application is not known to the customer center.",
        ));
    };
    let Some(redirect_uri) = q
        .redirect_uri
        .clone()
        .filter(|r| client.redirect_uris.contains(r))
    else {
        return Ok(error_page(
            &site,
            "This application asked to return to an address it has not registered.",
        ));
    };
    let back = Back {
        redirect_uri: &redirect_uri,
        // Not echoed when too long (the request is refused for it).
        state: q.state.as_deref().filter(|s| s.len() <= MAX_ECHOED),
        issuer: super::issuer(app, headers).unwrap_or_default(),
    };
    let (challenge, scope) = match checked(&q, client) {
        Ok(found) => found,
        Err((error, description)) => return Ok(back.error(error, description)),
    };
    let now = jiff::Timestamp::now();
    let person = current(app, headers).await?;
    let fresh_enough = person
        .as_ref()
        .is_some_and(|p| signed_in_recently(p, &q, now));
    let Some(person) = person.filter(|_| fresh_enough) else {
        if q.prompt.as_deref() == Some("none") {
            return Ok(back.error("login_required", "the person is not signed in"));
        }
        return Ok(to_sign_in(&q, now));
    };
    let now_text = crate::clock::format(now);
    let (may_enter, second_factor) = super::admitted(&account, client, &person.login, &now_text);
    if !may_enter || (second_factor && !crate::serve::session::two_factors(&person.factors)) {
        return Ok(back.error(
            "access_denied",
            "this login may not sign in to this application",
        ));
    }
    let code = super::random_token();
    let row = CodeRow {
        client_id: client_id.to_string(),
        customer_id: person.login.customer_id.clone(),
        contact: person.login.contact.clone(),
        redirect_uri: redirect_uri.clone(),
        code_challenge: challenge,
        scope,
        nonce: q.nonce.clone(),
        auth_time: person.auth_time.clone(),
        amr: person.factors.clone(),
        expires_at: crate::clock::format(now + jiff::SignedDuration::from_secs(CODE_SECONDS)),
    };
    app.store.issue_code(&hash_id(&code), &row).await?;
    Ok(back.with(&[("code", &code)]))
}

/// The request's PKCE challenge and granted scopes, or the error to send back.
fn checked(
    q: &AuthorizeQuery,
    client: &crate::state::OidcClientState,
) -> Result<(String, String), (&'static str, &'static str)> {
    if q.response_type.as_deref() != Some("code") {
        return Err((
            "unsupported_response_type",
            "only the code flow (response_type=code) is offered",
        ));
    }
    let challenge = q
        .code_challenge
        .as_deref()
        .filter(|c| super::pkce_shaped(c));
    let Some(challenge) = challenge.filter(|_| q.code_challenge_method.as_deref() == Some("S256"))
    else {
        return Err((
            "invalid_request",
            "PKCE is required: code_challenge with code_challenge_method=S256",
        ));
    };
    let too_long = |v: &Option<String>| v.as_ref().is_some_and(|v| v.len() > MAX_ECHOED);
    if too_long(&q.state) || too_long(&q.nonce) {
        return Err((
            "invalid_request",
            "state and nonce may be at most 512 characters",
        ));
    }
    let scope = super::granted(client, q.scope.as_deref().unwrap_or_default());
    if !scope.split(' ').any(|s| s == "openid") {
        return Err(("invalid_scope", "the openid scope is required"));
    }
    Ok((challenge.to_string(), scope))
}

/// Whether the session's sign-in is recent enough for `prompt=login` and `max_age`.
fn signed_in_recently(person: &Current, q: &AuthorizeQuery, now: jiff::Timestamp) -> bool {
    let Ok(auth_time) = person.auth_time.parse::<jiff::Timestamp>() else {
        return false;
    };
    if let Some(after) = q.signed_in_after {
        return auth_time.as_second() >= after;
    }
    if q.prompt.as_deref() == Some("login") {
        return false;
    }
    match q.max_age.as_deref().map(str::parse::<i64>) {
        Some(Ok(max_age)) => (now - auth_time).as_secs() <= max_age,
        _ => true,
    }
}

/// To the sign-in page, returning here: with `prompt=login` or `max_age` passed, the sign-in
/// must then be newer than now.
fn to_sign_in(q: &AuthorizeQuery, now: jiff::Timestamp) -> Response {
    let mut again = q.clone();
    if q.prompt.as_deref() == Some("login") || q.max_age.is_some() {
        again.prompt = None;
        again.max_age = None;
        again.signed_in_after.get_or_insert(now.as_second());
    }
    let query = serde_urlencoded_pairs(&again);
    let back = format!("/oidc/authorize?{query}");
    Redirect::to(&format!(
        "/login?return_to={}",
        crate::serve::flows::encoded(&back)
    ))
    .into_response()
}

/// The request's parameters as a query string.
fn serde_urlencoded_pairs(q: &AuthorizeQuery) -> String {
    let value = serde_json::to_value(q).expect("parameters serialise");
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in value.as_object().into_iter().flatten() {
        let text = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_string);
        out.append_pair(name, &text);
    }
    out.finish()
}

/// Where the answer goes: the registered redirect URI, with `state` and `iss` (RFC 9207).
struct Back<'a> {
    redirect_uri: &'a str,
    state: Option<&'a str>,
    issuer: String,
}

impl Back<'_> {
    fn with(&self, pairs: &[(&str, &str)]) -> Response {
        let mut url = url::Url::parse(self.redirect_uri).expect("registered redirect URIs parse");
        {
            let mut query = url.query_pairs_mut();
            for (name, value) in pairs {
                query.append_pair(name, value);
            }
            if let Some(state) = self.state {
                query.append_pair("state", state);
            }
            query.append_pair("iss", &self.issuer);
        }
        Redirect::to(url.as_str()).into_response()
    }

    fn error(&self, error: &str, description: &str) -> Response {
        self.with(&[("error", error), ("error_description", description)])
    }
}

fn error_page(site: &str, message: &str) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "oidc_error.html",
        context! { title => "This sign-in link does not work", site, message },
    )
}
