//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): `GET /oidc/logout` asks
//! the person to confirm (a link alone never signs anyone out), `POST` ends the session and
//! returns to a post-logout URI only when the client registered it exactly.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use minijinja::context;
use serde::Deserialize;

use super::App;
use crate::serve::flows::{form_token, token_ok, with_cookie};
use crate::serve::pages::page;
use crate::serve::session::{hash_id, site_name};

/// The logout request's parameters.
#[derive(Debug, Default, Deserialize)]
pub struct LogoutQuery {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    #[serde(default)]
    csrf: String,
}

/// `GET /oidc/logout`: the confirmation.
pub async fn logout_page(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<LogoutQuery>,
) -> Response {
    let account = match app.account().await {
        Ok(account) => account,
        Err(e) => return crate::serve::flows::internal(e),
    };
    let client_id = q
        .client_id
        .clone()
        .or_else(|| audience(q.id_token_hint.as_deref()));
    let client = client_id
        .as_deref()
        .and_then(|id| account.oidc_clients.get(id));
    let (csrf, cookie) = form_token(&app, &headers);
    let response = page(
        StatusCode::OK,
        "oidc_logout.html",
        context! {
            title => "Sign out",
            site => site_name(&account, &headers),
            client => client.map(|c| c.name.clone()),
            client_id => client.and(client_id),
            post_logout_redirect_uri => q.post_logout_redirect_uri,
            state => q.state,
            csrf,
        },
    );
    with_cookie(response, cookie)
}

/// `POST /oidc/logout`: ends the session, then back to the client's registered post-logout
/// URI (with `state`), else to the sign-in page.
pub async fn logout(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<LogoutQuery>,
) -> Response {
    if !token_ok(&app, &headers, &form.csrf) {
        return (StatusCode::FORBIDDEN, "This form expired.").into_response();
    }
    if let Some(id) = app.cookies.session_id(&headers)
        && let Err(e) = app.end_session(&hash_id(id)).await
    {
        return crate::serve::flows::internal(e);
    }
    let account = match app.account().await {
        Ok(account) => account,
        Err(e) => return crate::serve::flows::internal(e),
    };
    let registered = form
        .client_id
        .as_deref()
        .and_then(|id| account.oidc_clients.get(id))
        .zip(form.post_logout_redirect_uri.as_deref())
        .filter(|(client, uri)| client.post_logout_redirect_uris.iter().any(|u| u == uri))
        .and_then(|(_, uri)| url::Url::parse(uri).ok());
    let to = match registered {
        Some(mut url) => {
            if let Some(state) = &form.state {
                url.query_pairs_mut().append_pair("state", state);
            }
            url.to_string()
        }
        None => "/login".to_string(),
    };
    with_cookie(
        Redirect::to(&to).into_response(),
        Some(app.cookies.clear_session()),
    )
}

/// The `aud` of an ID token, read without checking its signature: it only picks which
/// client's registered URIs a redirect must be one of.
fn audience(id_token: Option<&str>) -> Option<String> {
    let payload = id_token?.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    match &claims["aud"] {
        serde_json::Value::String(aud) => Some(aud.clone()),
        serde_json::Value::Array(list) => list.first()?.as_str().map(str::to_string),
        _ => None,
    }
}
