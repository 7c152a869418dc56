//! "Forgot password" (DESIGN §10.2): the same answer for every email; for a login that may
//! get in (a lockout or a missing password does not stop a reset), a reset message through the
//! outbox, its link valid `notifications.reset_ttl_minutes`. Redeeming it is the set-password
//! page's job: it clears the lockout, ends the other sessions and never skips the second
//! factor.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use minijinja::context;
use serde::Deserialize;

use super::flows::{form_token, token_ok, with_cookie};
use super::pages::page;
use super::session::{now, site_name, text, website_of};
use super::{App, Client, throttle};
use crate::signin::Refusal;

/// A login gets at most one reset message per this many minutes, however often it asks.
const RESET_EVERY_MINUTES: i64 = 2;

#[derive(Deserialize)]
pub struct ForgotForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

fn internal(error: impl std::fmt::Display) -> Response {
    eprintln!("error: {error}");
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}

fn form(app: &App, headers: &HeaderMap, site: &str, sent: bool, error: Option<&str>) -> Response {
    let (csrf, cookie) = form_token(app, headers);
    let response = page(
        if error.is_some() {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::OK
        },
        "forgot.html",
        context! { title => "Reset your password", site, csrf, sent, error },
    );
    with_cookie(response, cookie)
}

/// `GET /forgot-password`.
pub async fn page_for(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    match app.account().await {
        Ok(account) => form(&app, &headers, &site_name(&account, &headers), false, None),
        Err(e) => internal(e),
    }
}

/// `POST /forgot-password` (field `email`): answers at once, the same for every email; the
/// reset, if any, is queued after the answer, so its time tells nothing either.
pub async fn submit(
    State(app): State<Arc<App>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Form(posted): Form<ForgotForm>,
) -> Response {
    let account = match app.account().await {
        Ok(a) => a,
        Err(e) => return internal(e),
    };
    let site = site_name(&account, &headers);
    if !token_ok(&app, &headers, &posted.csrf) {
        return form(
            &app,
            &headers,
            &site,
            false,
            Some("This form expired. Please try again."),
        );
    }
    let at = now();
    // Each request counts toward the address's hourly allowance: one place cannot send
    // resets to every address it can guess.
    match throttle::claim(&app, &client.0, at).await {
        Ok(throttle::Claimed::Refused) => return throttle::too_many(&site, at),
        Ok(_) => {}
        Err(e) => return internal(e),
    }
    let email = crate::state::normalize_email(&posted.email);
    let website = website_of(&account, &headers);
    let worker = app.clone();
    tokio::spawn(async move {
        if let Err(e) = queue(&worker, &email, website.as_deref(), &client.0, at).await {
            eprintln!("error: queueing a password reset: {e}");
        }
    });
    form(&app, &headers, &site, true, None)
}

/// Queues a reset for `email` when a login has it and may get in on this website.
async fn queue(
    app: &App,
    email: &str,
    website: Option<&str>,
    address: &str,
    at: jiff::Timestamp,
) -> Result<(), crate::store::StoreError> {
    let now_text = text(at);
    let Some(login) = app.store.login_by_email(email).await? else {
        return Ok(());
    };
    let account = app.account().await?;
    let decision = crate::signin::decide(
        &account,
        &login.login,
        Some(&login.runtime),
        crate::signin::Site::Request(website),
        &now_text,
    );
    // A lockout or a password never set are what a reset is for.
    let stops = decision
        .refusals
        .iter()
        .any(|r| !matches!(r, Refusal::Locked { .. } | Refusal::NoPassword));
    if stops {
        return Ok(());
    }
    let not_before = super::session::later(at, -RESET_EVERY_MINUTES);
    if app
        .store
        .queue_reset(&login, &now_text, &not_before)
        .await?
    {
        app.store
            .event(email, "reset_requested", address, None, &now_text)
            .await?;
        app.outbox.notify_one();
    }
    Ok(())
}
