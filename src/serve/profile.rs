//! The profile page (DESIGN §10.2), for a signed-in person: change the password (the current
//! one required, the policy applied, other sessions ended), turn on two-step sign-in even when
//! the role does not require it, make new recovery codes, and see recent sign-ins. Every
//! change asks for the current password again; wrong ones count toward the lockout.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use minijinja::context;
use serde::Deserialize;

use super::flows::{form_token, hash_new, internal, token_ok, verify, with_cookie};
use super::pages::page;
use super::session::{self, Current, hash_id, later, now, random_id, site_name, text};
use super::two_factor::{enrolment, recovery_code, totp};
use super::{App, Client, throttle};
use crate::store::StoreError;
use crate::store::serve::{Claim, LockKey};

/// Sign-ins shown on the profile.
const RECENT: i64 = 10;

#[derive(Deserialize)]
pub struct ProfileForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
    #[serde(default)]
    code: String,
}

/// What a profile page says after a change, or what went wrong.
#[derive(Default)]
struct Said<'a> {
    notice: Option<&'a str>,
    error: Option<&'a str>,
}

/// Events shown as recent sign-ins, in words.
fn describe(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "signed_in" => "Signed in",
        "signin_failed" => "Failed sign-in",
        "second_factor_failed" => "Wrong two-step code",
        "locked" => "Signing in paused after failed attempts",
        "refused_locked" => "Sign-in refused while paused",
        "password_set" => "Password set",
        "password_changed" => "Password changed",
        "reset_requested" => "Password reset asked for",
        "factor_enrolled" => "Two-step sign-in turned on",
        "recovery_code_used" => "Recovery code used",
        "recovery_codes_renewed" => "New recovery codes made",
        "factor_reset" => "Two-step sign-in reset by the administrator",
        "signed_out" => "Signed out everywhere by the administrator",
        _ => return None,
    })
}

async fn render(
    app: &App,
    headers: &HeaderMap,
    person: &Current,
    said: Said<'_>,
) -> Result<Response, StoreError> {
    let login = &person.login;
    let email = login.login.email.as_deref().unwrap_or_default();
    let site = site_name(&person.account, headers);
    let (csrf, cookie) = form_token(app, headers);
    let min_length = person
        .account
        .login_policy
        .as_ref()
        .map_or(10, |p| p.password.min_length);
    let required = person
        .account
        .roles
        .get(login.login.role.as_str())
        .is_some_and(|r| r.two_factor == crate::manifest::model::TwoFactor::Required);
    let codes_left = if login.runtime.second_factor {
        app.store.recovery_codes_left(login).await?
    } else {
        0
    };
    let recent: Vec<minijinja::Value> = app
        .store
        .events(Some(email), "", RECENT * 3)
        .await?
        .into_iter()
        .filter_map(|e| {
            let what = describe(&e.kind)?;
            Some(context! { at => e.at, what, address => e.address })
        })
        .take(RECENT as usize)
        .collect();
    let status = if said.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let response = page(
        status,
        "profile.html",
        context! {
            title => "Your profile", site, csrf, email, min_length, required,
            two_factor => login.runtime.second_factor, codes_left, recent,
            notice => said.notice, error => said.error,
        },
    );
    Ok(with_cookie(response, cookie))
}

/// The signed-in person, or the answer to give instead (sign in first).
async fn signed_in(
    app: &App,
    headers: &HeaderMap,
) -> Result<Result<Current, Response>, StoreError> {
    Ok(match session::current(app, headers).await? {
        Some(person) => Ok(person),
        None => Err(Redirect::to("/login?return_to=/profile").into_response()),
    })
}

/// `GET /profile`.
pub async fn page_for(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let run = async {
        let person = match signed_in(&app, &headers).await? {
            Ok(p) => p,
            Err(answer) => return Ok(answer),
        };
        render(&app, &headers, &person, Said::default()).await
    };
    run.await.unwrap_or_else(internal)
}

/// The outcome of asking for the current password again.
enum Reauth {
    Ok,
    Wrong,
    /// Locked now (this was the limit's last try) or already: the session is over.
    Locked,
    Busy,
}

/// Checks the current password of a signed-in person the way a sign-in does: one attempt
/// claimed first, a wrong one counted toward the lockout and the address's allowance.
async fn reauthenticate(
    app: &App,
    person: &Current,
    password: String,
    address: &str,
) -> Result<Reauth, StoreError> {
    let login = &person.login;
    let policy = person.account.login_policy.clone().unwrap_or_default();
    let max = i64::from(policy.lockout.max_failed_attempts.max(1));
    let at = now();
    let now_text = text(at);
    let Claim::Attempt(attempt) = app
        .store
        .claim_attempt(&login.customer_id, &login.contact, max, &now_text)
        .await?
    else {
        return Ok(Reauth::Locked);
    };
    // The stored hash as it is now, not as this instance last saw it.
    let hash = app
        .store
        .login_by_key(&login.customer_id, &login.contact)
        .await?
        .and_then(|l| l.password_hash);
    let Some(right) = verify(app, hash, password).await else {
        return Ok(Reauth::Busy);
    };
    let email = login.login.email.as_deref().unwrap_or_default();
    if right {
        app.store
            .clear_failures(&login.customer_id, &login.contact)
            .await?;
        return Ok(Reauth::Ok);
    }
    app.store
        .event(
            email,
            "signin_failed",
            address,
            Some("on the profile page"),
            &now_text,
        )
        .await?;
    throttle::count(app, address, at).await?;
    if attempt >= max {
        let until = later(at, i64::from(policy.lockout.duration_minutes.max(1)));
        let key = LockKey::Login {
            customer_id: &login.customer_id,
            contact: &login.contact,
        };
        app.store.lock(&key, &until).await?;
        app.store
            .event(email, "locked", address, Some(&until), &now_text)
            .await?;
        app.end_session(&person.id_hash).await?;
        return Ok(Reauth::Locked);
    }
    Ok(Reauth::Wrong)
}

/// Runs a profile change: the form token, a signed-in person, and the current password
/// checked; then `change`.
async fn guarded<F, Fut>(
    app: &App,
    headers: &HeaderMap,
    address: &str,
    form: ProfileForm,
    change: F,
) -> Response
where
    F: FnOnce(Current, ProfileForm) -> Fut,
    Fut: std::future::Future<Output = Result<Response, StoreError>>,
{
    let run = async {
        if !token_ok(app, headers, &form.csrf) {
            return Ok((StatusCode::FORBIDDEN, "This form expired.").into_response());
        }
        let person = match signed_in(app, headers).await? {
            Ok(p) => p,
            Err(answer) => return Ok(answer),
        };
        let said = |error| Said {
            notice: None,
            error: Some(error),
        };
        match reauthenticate(app, &person, form.current_password.clone(), address).await? {
            Reauth::Ok => change(person, form).await,
            Reauth::Wrong => {
                render(
                    app,
                    headers,
                    &person,
                    said("Your current password is not right."),
                )
                .await
            }
            Reauth::Locked => Ok(Redirect::to("/login").into_response()),
            Reauth::Busy => Ok((
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many sign-ins at once; please try again in a few seconds.",
            )
                .into_response()),
        }
    };
    run.await.unwrap_or_else(internal)
}

/// `POST /profile/password` (fields `current_password`, `password`, `password_confirm`).
pub async fn change_password(
    State(app): State<Arc<App>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Form(form): Form<ProfileForm>,
) -> Response {
    let (app2, headers2, address) = (app.clone(), headers.clone(), client.0.clone());
    guarded(&app, &headers, &client.0, form, |person, form| async move {
        let (app, headers) = (&app2, &headers2);
        let min = person
            .account
            .login_policy
            .as_ref()
            .map_or(10, |p| p.password.min_length);
        let problem = if form.password != form.password_confirm {
            Some("The two new passwords are not the same.".to_string())
        } else if (form.password.chars().count() as u32) < min {
            Some(format!("The new password needs at least {min} characters."))
        } else {
            None
        };
        if let Some(problem) = problem {
            let said = Said {
                notice: None,
                error: Some(&problem),
            };
            return render(app, headers, &person, said).await;
        }
        let Some(hash) = hash_new(app, form.password).await else {
            return Ok((StatusCode::SERVICE_UNAVAILABLE, "Busy; please try again.").into_response());
        };
        let now_text = text(now());
        app.store
            .change_password(&person.login, &hash, &person.id_hash, &now_text)
            .await?;
        app.sessions.forget(&person.id_hash);
        let email = person.login.login.email.as_deref().unwrap_or_default();
        app.store
            .event(email, "password_changed", &address, None, &now_text)
            .await?;
        let said = Said {
            notice: Some("Your password was changed. Your other sessions were signed out."),
            error: None,
        };
        render(app, headers, &person, said).await
    })
    .await
}

/// `POST /profile/two-factor`: with the current password, starts turning on two-step sign-in
/// (a new seed, shown as a QR code and key); then, with a `code` from the app, confirms it and
/// shows the recovery codes once.
pub async fn two_factor(
    State(app): State<Arc<App>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Form(form): Form<ProfileForm>,
) -> Response {
    if !form.code.trim().is_empty() {
        return confirm(&app, &headers, &client.0, form)
            .await
            .unwrap_or_else(internal);
    }
    let (app2, headers2) = (app.clone(), headers.clone());
    guarded(&app, &headers, &client.0, form, |person, _| async move {
        let (app, headers) = (&app2, &headers2);
        if person.login.runtime.second_factor {
            return Ok(Redirect::to("/profile").into_response());
        }
        let mut seed = vec![0u8; 20];
        getrandom::fill(&mut seed).expect("the system's random source");
        let login = &person.login;
        let sealed = app.secret_key.seal(login, &seed);
        app.store
            .begin_enrolment(&login.customer_id, &login.contact, &sealed)
            .await?;
        enrol_page(app, headers, &person, seed, None)
    })
    .await
}

fn enrol_page(
    app: &App,
    headers: &HeaderMap,
    person: &Current,
    seed: Vec<u8>,
    error: Option<&str>,
) -> Result<Response, StoreError> {
    let site = site_name(&person.account, headers);
    let email = person.login.login.email.as_deref().unwrap_or_default();
    let Some((qr, secret)) = enrolment(seed, &site, email) else {
        return Ok(internal("cannot make a TOTP for this login"));
    };
    let (csrf, cookie) = form_token(app, headers);
    let response = page(
        StatusCode::OK,
        "two_factor.html",
        context! {
            title => "Turn on two-step sign-in", site, csrf, error, enrol => true, qr, secret,
            profile => true, required => false,
        },
    );
    Ok(with_cookie(response, cookie))
}

/// Confirms a started enrolment with a code from the app.
async fn confirm(
    app: &App,
    headers: &HeaderMap,
    address: &str,
    form: ProfileForm,
) -> Result<Response, StoreError> {
    if !token_ok(app, headers, &form.csrf) {
        return Ok((StatusCode::FORBIDDEN, "This form expired.").into_response());
    }
    let person = match signed_in(app, headers).await? {
        Ok(p) => p,
        Err(answer) => return Ok(answer),
    };
    let login = &person.login;
    let Some(factor) = app
        .store
        .second_factor(&login.customer_id, &login.contact)
        .await?
        .filter(|f| !f.confirmed)
    else {
        return Ok(Redirect::to("/profile").into_response());
    };
    let Some(seed) = app.secret_key.open(login, &factor.sealed) else {
        return Ok(internal(
            "a stored two-factor seed does not open with this key",
        ));
    };
    let site = site_name(&person.account, headers);
    let email = login.login.email.as_deref().unwrap_or_default().to_string();
    let at = now();
    let now_text = text(at);
    let code: String = form.code.chars().filter(|c| !c.is_whitespace()).collect();
    let step = totp(seed.clone(), &site, &email)
        .and_then(|t| t.check(&code, at.as_second().max(0) as u64));
    let accepted = match step {
        Some(step) => {
            app.store
                .accept_step(&login.customer_id, &login.contact, step as i64, &now_text)
                .await?
        }
        None => false,
    };
    if !accepted {
        app.store
            .event(
                &email,
                "second_factor_failed",
                address,
                Some("while turning it on"),
                &now_text,
            )
            .await?;
        throttle::count(app, address, at).await?;
        return enrol_page(
            app,
            headers,
            &person,
            seed,
            Some("That code is not right. Try the newest one."),
        );
    }
    enrolled(app, &person, address, &now_text, site).await
}

/// Two-step sign-in turned on: this session has passed the second factor and continues
/// under a new id; the recovery codes are shown, once.
async fn enrolled(
    app: &App,
    person: &Current,
    address: &str,
    now_text: &str,
    site: String,
) -> Result<Response, StoreError> {
    let login = &person.login;
    let email = login.login.email.as_deref().unwrap_or_default();
    // This session has now passed the second factor: it continues under a new id.
    let id = random_id();
    app.store
        .signed_in_second_factor(login, &person.id_hash, &hash_id(&id), now_text)
        .await?;
    app.sessions.forget(&person.id_hash);
    app.store
        .event(
            email,
            "factor_enrolled",
            address,
            Some("on the profile page"),
            now_text,
        )
        .await?;
    let codes = new_recovery_codes(app, person).await?;
    let response = page(
        StatusCode::OK,
        "recovery.html",
        context! { title => "Your recovery codes", site, codes },
    );
    Ok(with_cookie(response, Some(app.cookies.session(&id))))
}

async fn new_recovery_codes(app: &App, person: &Current) -> Result<Vec<String>, StoreError> {
    let codes: Vec<String> = (0..10).map(|_| recovery_code()).collect();
    let hashes: Vec<String> = codes.iter().map(|c| hash_id(c)).collect();
    app.store
        .replace_recovery_codes(&person.login.customer_id, &person.login.contact, &hashes)
        .await?;
    Ok(codes)
}

/// `POST /profile/recovery-codes`: with the current password, ten new recovery codes (the old
/// ones stop working), shown once.
pub async fn recovery_codes(
    State(app): State<Arc<App>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Form(form): Form<ProfileForm>,
) -> Response {
    let (app2, headers2, address) = (app.clone(), headers.clone(), client.0.clone());
    guarded(&app, &headers, &client.0, form, |person, _| async move {
        let (app, headers) = (&app2, &headers2);
        if !person.login.runtime.second_factor {
            return Ok(Redirect::to("/profile").into_response());
        }
        let codes = new_recovery_codes(app, &person).await?;
        let email = person.login.login.email.as_deref().unwrap_or_default();
        app.store
            .event(
                email,
                "recovery_codes_renewed",
                &address,
                None,
                &text(now()),
            )
            .await?;
        let site = site_name(&person.account, headers);
        Ok(page(
            StatusCode::OK,
            "recovery.html",
            context! { title => "Your new recovery codes", site, codes },
        ))
    })
    .await
}
