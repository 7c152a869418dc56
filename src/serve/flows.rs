//! The sign-in flows: the sign-in page with its lockout, signing out, and the set-password
//! page the new-access email links to. Handlers parse, ask the core and the store, render.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use minijinja::context;
use serde::Deserialize;

use super::pages::page;
use super::session::{self, hash_id, later, now, random_id, site_name, text};
use super::{App, Client, throttle};
use crate::store::serve::{Claim, LockKey, Seen, ServeLogin};

/// The message for every failed sign-in, whatever the reason: it must not tell an unknown
/// email, a wrong password, no access, an expired login or another website apart.
const FAILED: &str = "The email or password is not right, or this login cannot sign in here.";

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    return_to: Option<String>,
}

#[derive(Deserialize)]
pub struct ReturnTo {
    return_to: Option<String>,
}

/// A path on this site to go back to: relative, never `//host` or `/\host`.
/// `text` as one query-string value.
pub(super) fn encoded(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

pub(super) fn local_path(to: Option<&str>) -> Option<String> {
    to.filter(|t| t.starts_with('/') && !t.starts_with("//") && !t.starts_with("/\\"))
        .map(str::to_string)
}

/// The form token of this browser, and the `Set-Cookie` that gives it one when it has none.
pub(super) fn form_token(app: &App, headers: &HeaderMap) -> (String, Option<String>) {
    match app.cookies.csrf_token(headers) {
        Some(token) => (token.to_string(), None),
        None => {
            let token = random_id();
            let cookie = app.cookies.csrf(&token);
            (token, Some(cookie))
        }
    }
}

/// Whether a posted form carries this browser's form token (double submit; the cross-origin
/// check of `Origin`/`Sec-Fetch-Site` runs before, in the router's layer).
pub(super) fn token_ok(app: &App, headers: &HeaderMap, posted: &str) -> bool {
    app.cookies
        .csrf_token(headers)
        .is_some_and(|cookie| !posted.is_empty() && cookie == posted)
}

pub(super) fn with_cookie(mut response: Response, cookie: Option<String>) -> Response {
    if let Some(cookie) = cookie
        && let Ok(value) = cookie.parse()
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

pub(super) fn internal(error: impl std::fmt::Display) -> Response {
    eprintln!("error: {error}");
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}

fn login_form(
    app: &App,
    headers: &HeaderMap,
    site: &str,
    email: &str,
    error: Option<&str>,
    return_to: Option<String>,
) -> Response {
    let (csrf, cookie) = form_token(app, headers);
    let response = page(
        StatusCode::OK,
        "login.html",
        context! { title => "Sign in", site, email, error, csrf, return_to },
    );
    with_cookie(response, cookie)
}

/// `GET /login`.
pub async fn login_page(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(query): Query<ReturnTo>,
) -> Response {
    let account = match app.account().await {
        Ok(a) => a,
        Err(e) => return internal(e),
    };
    let site = site_name(&account, &headers);
    login_form(
        &app,
        &headers,
        &site,
        "",
        None,
        local_path(query.return_to.as_deref()),
    )
}

/// Checks `password` against `hash` (or a dummy hash, so an unknown email takes as long) on
/// the bounded hashing pool. `None` when the pool stayed busy: the caller answers 503.
pub(super) async fn verify(app: &App, hash: Option<String>, password: String) -> Option<bool> {
    let known = hash.is_some();
    let hash = hash.unwrap_or_else(|| app.dummy_hash.clone());
    let ok = app.hashing.verify(hash, password).await?;
    Some(ok && known)
}

/// `POST /login`.
pub async fn login(
    State(app): State<Arc<App>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    match sign_in(&app, &headers, &client.0, form).await {
        Ok(response) => response,
        Err(e) => internal(e),
    }
}

async fn sign_in(
    app: &App,
    headers: &HeaderMap,
    address: &str,
    form: LoginForm,
) -> Result<Response, crate::store::StoreError> {
    let account = app.account().await?;
    let site = site_name(&account, headers);
    let return_to = local_path(form.return_to.as_deref());
    if !token_ok(app, headers, &form.csrf) {
        let message = Some("This form expired. Please sign in again.");
        let response = login_form(app, headers, &site, &form.email, message, return_to);
        return Ok((StatusCode::FORBIDDEN, response).into_response());
    }
    let email = crate::state::normalize_email(&form.email);
    let limits = Limits::of(&account);
    let at = now();
    let now_text = text(at);
    let who = Failure {
        email: &email,
        address,
        at,
        now_text: &now_text,
    };
    let Some(claimed) = admit(app, &who).await? else {
        return Ok(throttle::too_many(&site, at));
    };
    let seen = Seen {
        address,
        refund: claimed.refund(),
        passkey: None,
    };
    let email_hash = hash_id(&email);
    let (login, claim) = claim_attempt(app, &email, &email_hash, limits.max, &now_text).await?;
    let lock_key = lock_key(login.as_ref(), &email_hash);
    let Claim::Attempt(attempt) = claim else {
        return locked(app, &who, site, limits.lock_minutes).await;
    };
    let hash = login.as_ref().and_then(|l| l.password_hash.clone());
    let Some(verified) = verify(app, hash, form.password).await else {
        // Not checked, but counted: the limit's last attempt locks even when it is turned
        // away busy, so a flood cannot leave the count at the limit without a lock.
        if attempt >= limits.max {
            app.store
                .lock(&lock_key, &later(at, limits.lock_minutes))
                .await?;
        }
        return Ok(busy());
    };
    let entry = login
        .as_ref()
        .filter(|_| verified)
        .and_then(|l| entry(&account, l, headers, &now_text).map(|two| (l, two)));
    if let Some((login, second_factor)) = entry {
        let started = Started {
            at,
            now_text: &now_text,
            session_minutes: limits.session_minutes,
        };
        return signed_in(app, login, second_factor, &started, &seen, return_to).await;
    }
    let last = attempt >= limits.max;
    failed(app, &who, &lock_key, last, limits.lock_minutes).await?;
    let failed = login_form(app, headers, &site, &form.email, Some(FAILED), return_to);
    Ok(failed)
}

/// Claims one sign-in attempt before the password is checked: a locked login (or email) is
/// refused unhashed, and concurrent attempts never exceed the limit. An email no login has
/// is counted by its hash, alike.
async fn claim_attempt(
    app: &App,
    email: &str,
    email_hash: &str,
    max: i64,
    now_text: &str,
) -> Result<(Option<ServeLogin>, Claim), crate::store::StoreError> {
    if let Some((login, claim)) = app
        .store
        .login_claiming_attempt(email, max, now_text)
        .await?
    {
        return Ok((Some(login), claim));
    }
    let claim = app
        .store
        .claim_unknown_attempt(email_hash, max, now_text)
        .await?;
    Ok((None, claim))
}

/// Counts the attempt against its address before anything else, atomically: however many
/// arrive at once, an address gets no more than its allowance checked (a right password is
/// refunded). An address that used up its failures this hour is refused (`None`) before
/// anything is counted against a login: a flood from one place cannot lock everyone out.
async fn admit(
    app: &App,
    who: &Failure<'_>,
) -> Result<Option<throttle::Claimed>, crate::store::StoreError> {
    let claimed = throttle::claim(app, who.address, who.at).await?;
    if matches!(claimed, throttle::Claimed::Refused) {
        app.store
            .event(
                who.email,
                "refused_throttled",
                who.address,
                None,
                who.now_text,
            )
            .await?;
        return Ok(None);
    }
    Ok(Some(claimed))
}

/// What locks after too many failures: the login, or the email no login has (by hash).
fn lock_key<'a>(login: Option<&'a ServeLogin>, email_hash: &'a str) -> LockKey<'a> {
    match login {
        Some(l) => LockKey::Login {
            customer_id: &l.customer_id,
            contact: &l.contact,
        },
        None => LockKey::Unknown(email_hash),
    }
}

/// The answer to a sign-in while its login (or email) is locked: refused unhashed.
async fn locked(
    app: &App,
    who: &Failure<'_>,
    site: String,
    minutes: i64,
) -> Result<Response, crate::store::StoreError> {
    app.store
        .event(who.email, "refused_locked", who.address, None, who.now_text)
        .await?;
    let context = context! { title => "Signing in is paused", site, minutes };
    Ok(page(StatusCode::OK, "locked.html", context))
}

/// Who is signing in, from where, and when (for the events recorded).
struct Failure<'a> {
    email: &'a str,
    address: &'a str,
    at: jiff::Timestamp,
    now_text: &'a str,
}

/// Records a failed sign-in, locking the login (or email) when it was the limit's last.
async fn failed(
    app: &App,
    f: &Failure<'_>,
    lock_key: &LockKey<'_>,
    last: bool,
    lock_minutes: i64,
) -> Result<(), crate::store::StoreError> {
    if last {
        let until = later(f.at, lock_minutes);
        app.store.lock(lock_key, &until).await?;
        app.store
            .event(f.email, "locked", f.address, Some(&until), f.now_text)
            .await?;
    }
    app.store
        .event(f.email, "signin_failed", f.address, None, f.now_text)
        .await
}

/// Whether a login whose password is right may enter on this request's website now (the
/// one decision, DESIGN §10.1), and then whether it must pass a second factor first.
fn entry(
    account: &super::Account,
    login: &ServeLogin,
    headers: &HeaderMap,
    now_text: &str,
) -> Option<bool> {
    let website = session::website_of(account, headers);
    let mut runtime = login.runtime.clone();
    // The claim already judged the lockout.
    runtime.locked_until = None;
    let decision = crate::signin::decide(
        account,
        &login.login,
        Some(&runtime),
        crate::signin::Site::Request(website.as_deref()),
        now_text,
    );
    decision.may_enter().then_some(decision.second_factor)
}

/// The login policy's numbers a sign-in works with.
pub(super) struct Limits {
    /// Consecutive failures before a lock.
    pub max: i64,
    /// How long a lock lasts.
    pub lock_minutes: i64,
    /// How long a session lasts at most.
    pub session_minutes: i64,
}

impl Limits {
    pub fn of(account: &crate::state::State) -> Limits {
        let policy = account.login_policy.clone().unwrap_or_default();
        Limits {
            max: i64::from(policy.lockout.max_failed_attempts.max(1)),
            lock_minutes: i64::from(policy.lockout.duration_minutes.max(1)),
            session_minutes: i64::from(policy.session_max_hours.max(1)) * 60,
        }
    }
}

/// When a sign-in started.
struct Started<'a> {
    at: jiff::Timestamp,
    now_text: &'a str,
    session_minutes: i64,
}

/// The answer when every hashing slot is taken.
fn busy() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        "Too many sign-ins at once; please try again in a few seconds.",
    )
        .into_response()
}

/// A right password for a login that may enter: a session, good for nothing but the second
/// factor while the role requires one (the failed count stays until it is passed), else a
/// full one and the way back to where the person was going.
async fn signed_in(
    app: &App,
    login: &crate::store::serve::ServeLogin,
    second_factor: bool,
    started: &Started<'_>,
    seen: &Seen<'_>,
    return_to: Option<String>,
) -> Result<Response, crate::store::StoreError> {
    let id = random_id();
    let expires = later(started.at, started.session_minutes);
    let to = if second_factor {
        app.store
            .pending_session(login, &hash_id(&id), started.now_text, &expires, seen)
            .await?;
        match return_to {
            Some(to) => format!("/two-factor?return_to={}", encoded(&to)),
            None => "/two-factor".to_string(),
        }
    } else {
        app.store
            .signed_in(login, &hash_id(&id), started.now_text, &expires, seen)
            .await?;
        return_to.unwrap_or_else(|| "/".into())
    };
    let response = Redirect::to(&to).into_response();
    Ok(with_cookie(response, Some(app.cookies.session(&id))))
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`: ends this session.
pub async fn logout(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    if !token_ok(&app, &headers, &form.csrf) {
        return (StatusCode::FORBIDDEN, "This form expired.").into_response();
    }
    if let Some(id) = app.cookies.session_id(&headers)
        && let Err(e) = app.end_session(&hash_id(id)).await
    {
        return internal(e);
    }
    let response = Redirect::to("/login").into_response();
    with_cookie(response, Some(app.cookies.clear_session()))
}

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
pub struct SetPasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
}

fn set_password_form(
    app: &App,
    headers: &HeaderMap,
    site: &str,
    token: &str,
    min_length: u32,
    error: Option<&str>,
) -> Response {
    let (csrf, cookie) = form_token(app, headers);
    let response = page(
        if error.is_some() && token.is_empty() {
            StatusCode::GONE
        } else {
            StatusCode::OK
        },
        "set_password.html",
        context! { title => "Set your password", site, token, min_length, error, csrf },
    );
    with_cookie(response, cookie)
}

/// `GET /set-password?token=…`: shows the form; never uses the token (mail scanners
/// pre-fetch links).
pub async fn set_password_page(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
) -> Response {
    let account = match app.account().await {
        Ok(a) => a,
        Err(e) => return internal(e),
    };
    let site = site_name(&account, &headers);
    let min = account
        .login_policy
        .as_ref()
        .map_or(10, |p| p.password.min_length);
    set_password_form(&app, &headers, &site, query.token.trim(), min, None)
}

/// Hashes a new password on the bounded pool; `None` when the pool stayed busy or hashing
/// failed.
pub(super) async fn hash_new(app: &App, password: String) -> Option<String> {
    app.hashing.hash(password).await
}

/// `POST /set-password`: checks the policy, stores the argon2id hash, uses the token once
/// (one conditional `UPDATE`), revokes the login's other links, and signs in.
pub async fn set_password(
    State(app): State<Arc<App>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Form(form): Form<SetPasswordForm>,
) -> Response {
    let account = match app.account().await {
        Ok(a) => a,
        Err(e) => return internal(e),
    };
    let site = site_name(&account, &headers);
    let min = account
        .login_policy
        .as_ref()
        .map_or(10, |p| p.password.min_length);
    let again =
        |error: &str| set_password_form(&app, &headers, &site, &form.token, min, Some(error));
    if !token_ok(&app, &headers, &form.csrf) {
        return (
            StatusCode::FORBIDDEN,
            again("This form expired. Please try again."),
        )
            .into_response();
    }
    if form.password != form.password_confirm {
        return again("The two passwords are not the same.");
    }
    if (form.password.chars().count() as u32) < min {
        return again(&format!("The password needs at least {min} characters."));
    }
    let Some(hash) = hash_new(&app, form.password.clone()).await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "Busy; please try again.").into_response();
    };
    let redeemed = async {
        let mut store = crate::store::open(&app.database, true).await?;
        crate::store::Store::redeem_token(
            &mut store,
            &crate::notify::token_hash(&form.token),
            &hash,
        )
        .await
    }
    .await;
    let email = match redeemed {
        Ok(email) => email,
        Err(crate::store::StoreError::Token(why)) => {
            let message = format!(
                "{}. Ask for a new one with \"forgot password\" or from your administrator.",
                capitalise(&why)
            );
            return set_password_form(&app, &headers, &site, "", min, Some(&message));
        }
        Err(e) => return internal(e),
    };
    sign_in_after_set(&app, &account, &headers, &email, &client.0)
        .await
        .unwrap_or_else(internal)
}

/// After a password set: signed in at once, unless the login may not get in here (or
/// needs a second factor, which it is then asked for).
async fn sign_in_after_set(
    app: &App,
    account: &super::Account,
    headers: &HeaderMap,
    email: &str,
    address: &str,
) -> Result<Response, crate::store::StoreError> {
    let at = now();
    let now_text = text(at);
    // The password is set whatever happens next: a failed event write does not undo it.
    let _ = app
        .store
        .event(email, "password_set", address, None, &now_text)
        .await;
    let Some(login) = app.store.login_by_email(email).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let Some(second_factor) = entry(account, &login, headers, &now_text) else {
        return Ok(Redirect::to("/login").into_response());
    };
    let started = Started {
        at,
        now_text: &now_text,
        session_minutes: Limits::of(account).session_minutes,
    };
    let seen = Seen {
        address,
        refund: None,
        passkey: None,
    };
    signed_in(app, &login, second_factor, &started, &seen, None).await
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
