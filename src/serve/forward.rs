//! Handing the signed-in person to the company's portal (DESIGN §10.4): `/auth/request` for
//! nginx `auth_request`, `/auth/forward` for Traefik ForwardAuth and Caddy `forward_auth`,
//! each re-evaluating the session and the sign-in decision on every check; and the home page.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;

use super::App;
use super::pages::page;
use super::session::{Current, current, site_name};
use crate::catalog::Permission;

fn internal(error: impl std::fmt::Display) -> Response {
    eprintln!("error: {error}");
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}

/// The `Remote-*` headers of a signed-in person.
fn remote_headers(person: &Current) -> Vec<(&'static str, String)> {
    let login = &person.login;
    let role = &login.login.role;
    let permissions: Vec<String> = Permission::ALL
        .iter()
        .map(|p| (p, crate::policy::effective_level(&person.account, role, *p)))
        .filter(|(_, level)| *level != crate::catalog::Level::None)
        .map(|(p, level)| format!("{}={}", p.key(), level.key()))
        .collect();
    let email = login.login.email.as_deref().unwrap_or_default().to_string();
    vec![
        ("Remote-User", email.clone()),
        ("Remote-Email", email),
        (
            "Remote-Name",
            login.login.name.as_deref().unwrap_or_default().to_string(),
        ),
        ("Remote-Customer", login.customer_id.clone()),
        ("Remote-Role", role.to_string()),
        (
            "Remote-Website",
            login
                .login
                .website
                .as_deref()
                .unwrap_or_default()
                .to_string(),
        ),
        ("Remote-Permissions", permissions.join(",")),
    ]
}

fn allowed(person: &Current) -> Response {
    let mut response = StatusCode::OK.into_response();
    for (name, value) in remote_headers(person) {
        // UTF-8 is sent as its bytes (a name like "Jürgen Müller"); a value with a control
        // character (a line break) is left out, never sent raw.
        if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// `GET /auth/request` (nginx `auth_request`): 200 with the `Remote-*` headers, or 401 with
/// a `Location` to sign in.
pub async fn auth_request(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    match current(&app, &headers).await {
        Ok(Some(person)) => allowed(&person),
        Ok(None) => {
            let mut response = StatusCode::UNAUTHORIZED.into_response();
            response
                .headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/login"));
            response
        }
        Err(e) => internal(e),
    }
}

/// `GET /auth/forward` (Traefik ForwardAuth, Caddy `forward_auth`): 200 with the `Remote-*`
/// headers, or a redirect to sign in on the same website, returning to the path asked for.
pub async fn auth_forward(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    match current(&app, &headers).await {
        Ok(Some(person)) => allowed(&person),
        Ok(None) => {
            let uri = headers
                .get("X-Forwarded-Uri")
                .and_then(|v| v.to_str().ok())
                .filter(|u| u.starts_with('/') && !u.starts_with("//"))
                .unwrap_or("/");
            let back: String = url::form_urlencoded::byte_serialize(uri.as_bytes()).collect();
            Redirect::to(&format!("/login?return_to={back}")).into_response()
        }
        Err(e) => internal(e),
    }
}

/// `GET /`: who is signed in, their customer, website, role and each permission's level.
pub async fn home(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let person = match current(&app, &headers).await {
        Ok(Some(person)) => person,
        Ok(None) => return Redirect::to("/login").into_response(),
        Err(e) => return internal(e),
    };
    let account = &person.account;
    let login = &person.login.login;
    let role = account
        .roles
        .get(login.role.as_str())
        .map_or_else(|| login.role.to_string(), |r| r.name.clone());
    let permissions: Vec<minijinja::Value> = Permission::ALL
        .iter()
        .map(|p| {
            context! {
                name => p.info().label,
                level => crate::policy::effective_level(account, &login.role, *p).key(),
            }
        })
        .collect();
    let website = login
        .website
        .as_ref()
        .and_then(|w| account.websites.get(w.as_str()).map(|w| w.name.clone()));
    let passkeys: Vec<minijinja::Value> = match app
        .store
        .passkeys_of(&person.login.customer_id, &person.login.contact)
        .await
    {
        Ok(rows) => rows
            .into_iter()
            .map(|p| context! { name => p.name, created_at => p.created_at, last_used_at => p.last_used_at })
            .collect(),
        Err(e) => return internal(e),
    };
    let (csrf, cookie) = match app.cookies.csrf_token(&headers) {
        Some(token) => (token.to_string(), None),
        None => {
            let token = super::session::random_id();
            let cookie = app.cookies.csrf(&token);
            (token, Some(cookie))
        }
    };
    let mut response = page(
        StatusCode::OK,
        "home.html",
        context! {
            title => "Your customer center",
            site => site_name(account, &headers),
            email => login.email.as_deref().unwrap_or_default(),
            name => login.name.as_deref(),
            customer => person.login.customer_name.clone(),
            website, role, permissions, csrf, passkeys,
        },
    );
    if let Some(cookie) = cookie
        && let Ok(value) = cookie.parse()
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}
