//! Passkeys (WebAuthn, through webauthn-rs): a signed-in person registers one from the home
//! page; then "Sign in with a passkey" signs in without a password or email (discoverable
//! credentials). User verification is required, so a passkey satisfies a role that requires
//! a second factor (`amr` `hwk`). A credential whose signature counter goes backwards is
//! refused. The browser side is `/assets/passkey.js` (the CSP allows no inline script).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Uuid, Webauthn, WebauthnBuilder,
};

use super::session::{
    Current, current, hash_id, later, now, random_id, site_name, text, website_of,
};
use super::{App, Client};
use crate::store::serve::PasskeyRow;

/// Minutes a ceremony may take (the browser's own timeout is shorter).
const CEREMONY_MINUTES: i64 = 5;

/// The relying party of this request: its host is the RP ID, its origin the only one
/// allowed (each website's host is its own).
fn relying_party(app: &App, headers: &HeaderMap, name: &str) -> Option<Webauthn> {
    let origin = super::oidc::issuer(app, headers)?;
    let url = url::Url::parse(&origin).ok()?;
    let rp_id = url.host_str()?.to_string();
    WebauthnBuilder::new(&rp_id, &url)
        .ok()?
        .rp_name(name)
        .build()
        .ok()
}

fn refused(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

fn failed(error: impl std::fmt::Display) -> Response {
    super::flows::internal(error)
}

/// The WebAuthn user handle of a login: 16 bytes of its random OpenID Connect subject, so it
/// never carries the email.
async fn user_handle(
    app: &App,
    customer_id: &str,
    contact: &str,
) -> Result<Uuid, crate::store::StoreError> {
    use base64::Engine as _;
    let sub = app
        .store
        .subject(customer_id, contact, &super::session::random_id())
        .await?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&sub)
        .unwrap_or_else(|_| sub.as_bytes().to_vec());
    let mut id = [0u8; 16];
    for (i, b) in bytes.iter().enumerate() {
        id[i % 16] ^= b;
    }
    Ok(Uuid::from_bytes(id))
}

/// The signed-in person and the relying party of this request, or the answer refusing it.
async fn signed_in(app: &App, headers: &HeaderMap) -> Result<(Current, Webauthn), Response> {
    let person = match current(app, headers).await {
        Ok(Some(person)) => person,
        Ok(None) => return Err(refused(StatusCode::UNAUTHORIZED, "sign in first")),
        Err(e) => return Err(failed(e)),
    };
    let site = site_name(&person.account, headers);
    match relying_party(app, headers, &site) {
        Some(rp) => Ok((person, rp)),
        None => Err(refused(StatusCode::BAD_REQUEST, "no valid Host header")),
    }
}

/// `POST /passkeys/register/start` (signed in): the options for `navigator.credentials.create`.
pub async fn register_start(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let (person, rp) = match signed_in(&app, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let login = &person.login;
    let started = async {
        let handle = user_handle(&app, &login.customer_id, &login.contact).await?;
        let existing = app
            .store
            .passkeys_of(&login.customer_id, &login.contact)
            .await?;
        let exclude = existing
            .iter()
            .filter_map(|p| serde_json::from_str::<Passkey>(&p.passkey).ok())
            .map(|p| p.cred_id().clone())
            .collect();
        let email = login.login.email.as_deref().unwrap_or_default();
        let name = login.login.name.as_deref().unwrap_or(email);
        let Ok((options, state)) =
            rp.start_passkey_registration(handle, email, name, Some(exclude))
        else {
            return Ok(None);
        };
        // A discoverable credential, so that it signs in without an email typed first (the
        // options' types are not re-exported by webauthn-rs: set on their JSON).
        let mut options = serde_json::to_value(&options).expect("options serialise");
        let selection = &mut options["publicKey"]["authenticatorSelection"];
        selection["residentKey"] = "required".into();
        selection["requireResidentKey"] = true.into();
        let id = random_id();
        let state = serde_json::to_string(&state).expect("a ceremony state serialises");
        let expires = later(now(), CEREMONY_MINUTES);
        let key = (login.customer_id.as_str(), login.contact.as_str());
        app.store
            .begin_ceremony(&hash_id(&id), "register", Some(key), &state, &expires)
            .await?;
        Ok::<_, crate::store::StoreError>(Some(
            serde_json::json!({ "ceremony": id, "options": options }),
        ))
    };
    match started.await {
        Ok(Some(body)) => Json(body).into_response(),
        Ok(None) => refused(StatusCode::BAD_REQUEST, "cannot start a registration"),
        Err(e) => failed(e),
    }
}

/// What the browser sends back after `navigator.credentials.create`.
#[derive(Deserialize)]
pub struct Registered {
    ceremony: String,
    #[serde(default)]
    name: String,
    credential: RegisterPublicKeyCredential,
}

/// `POST /passkeys/register/finish` (signed in): checks the new credential and stores it.
pub async fn register_finish(
    State(app): State<Arc<App>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Json(body): Json<Registered>,
) -> Response {
    let (person, rp) = match signed_in(&app, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let login = &person.login;
    let at = text(now());
    let finished = async {
        let Some(ceremony) = app
            .store
            .take_ceremony(&hash_id(&body.ceremony), "register", &at)
            .await?
        else {
            return Ok(Err("this registration expired: try again"));
        };
        let mine = ceremony.customer_id.as_deref() == Some(login.customer_id.as_str())
            && ceremony.contact.as_deref() == Some(login.contact.as_str());
        let state = serde_json::from_str::<PasskeyRegistration>(&ceremony.state).ok();
        let Some(state) = state.filter(|_| mine) else {
            return Ok(Err("this registration is not yours"));
        };
        let Ok(passkey) = rp.finish_passkey_registration(&body.credential, &state) else {
            return Ok(Err("the passkey could not be checked"));
        };
        let handle = user_handle(&app, &login.customer_id, &login.contact).await?;
        let name: String = body
            .name
            .trim()
            .chars()
            .filter(|c| !c.is_control())
            .take(60)
            .collect();
        let row = PasskeyRow {
            credential_id: credential_text(passkey.cred_id()),
            customer_id: login.customer_id.clone(),
            contact: login.contact.clone(),
            user_handle: handle.to_string(),
            name: if name.is_empty() {
                "Passkey".into()
            } else {
                name
            },
            passkey: serde_json::to_string(&passkey).expect("a passkey serialises"),
            created_at: at.clone(),
            last_used_at: None,
        };
        app.store.add_passkey(&row).await?;
        let email = login.login.email.as_deref().unwrap_or_default();
        app.store
            .event(email, "passkey_added", &client.0, Some(&row.name), &at)
            .await?;
        Ok::<_, crate::store::StoreError>(Ok(()))
    };
    match finished.await {
        Ok(Ok(())) => Json(serde_json::json!({ "ok": true })).into_response(),
        Ok(Err(message)) => refused(StatusCode::BAD_REQUEST, message),
        Err(e) => failed(e),
    }
}

fn credential_text(id: &webauthn_rs::prelude::CredentialID) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(AsRef::<[u8]>::as_ref(id))
}

/// `POST /passkeys/login/start`: the options for `navigator.credentials.get` (any passkey
/// of this site: the person picks it, no email asked).
pub async fn login_start(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let account = match app.account().await {
        Ok(account) => account,
        Err(e) => return failed(e),
    };
    let Some(rp) = relying_party(&app, &headers, &site_name(&account, &headers)) else {
        return refused(StatusCode::BAD_REQUEST, "no valid Host header");
    };
    let Ok((options, state)) = rp.start_discoverable_authentication() else {
        return refused(StatusCode::BAD_REQUEST, "cannot start a sign-in");
    };
    let id = random_id();
    let state = serde_json::to_string(&state).expect("a ceremony state serialises");
    let expires = later(now(), CEREMONY_MINUTES);
    match app
        .store
        .begin_ceremony(&hash_id(&id), "login", None, &state, &expires)
        .await
    {
        Ok(()) => Json(serde_json::json!({ "ceremony": id, "options": options })).into_response(),
        Err(e) => failed(e),
    }
}

/// What the browser sends back after `navigator.credentials.get`.
#[derive(Deserialize)]
pub struct Asserted {
    ceremony: String,
    credential: PublicKeyCredential,
    return_to: Option<String>,
}

/// The one answer for every refused passkey sign-in (it reveals nothing about the login).
const NOT_SIGNED_IN: &str =
    "That passkey did not sign you in. Use your email and password, or ask your administrator.";

/// `POST /passkeys/login/finish`: checks the assertion (user verified, counter forward),
/// then the sign-in decision, then starts a session that has passed both factors.
pub async fn login_finish(
    State(app): State<Arc<App>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Json(body): Json<Asserted>,
) -> Response {
    match assert(&app, &headers, &client.0, body).await {
        Ok(Ok((to, cookie))) => {
            let mut response = Json(serde_json::json!({ "to": to })).into_response();
            if let Ok(value) = cookie.parse() {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
        Ok(Err(())) => refused(StatusCode::UNAUTHORIZED, NOT_SIGNED_IN),
        Err(e) => failed(e),
    }
}

async fn assert(
    app: &App,
    headers: &HeaderMap,
    address: &str,
    body: Asserted,
) -> Result<Result<(String, String), ()>, crate::store::StoreError> {
    let account = app.account().await?;
    let Some(rp) = relying_party(app, headers, &site_name(&account, headers)) else {
        return Ok(Err(()));
    };
    let at = now();
    let now_text = text(at);
    let Some(stored) = verified(app, &rp, &body, &now_text).await? else {
        return Ok(Err(()));
    };
    let Some(login) = app
        .store
        .login_by_key(&stored.customer_id, &stored.contact)
        .await?
    else {
        return Ok(Err(()));
    };
    let decision = crate::signin::decide(
        &account,
        &login.login,
        Some(&login.runtime),
        crate::signin::Site::Request(website_of(&account, headers).as_deref()),
        &now_text,
    );
    if !decision.may_enter() {
        return Ok(Err(()));
    }
    let id = random_id();
    let expires = later(at, super::flows::Limits::of(&account).session_minutes);
    let seen = crate::store::serve::Seen {
        address,
        refund: None,
        passkey: Some(&stored.name),
    };
    app.store
        .signed_in(&login, &hash_id(&id), &now_text, &expires, &seen)
        .await?;
    let to = super::flows::local_path(body.return_to.as_deref()).unwrap_or_else(|| "/".into());
    Ok(Ok((to, app.cookies.session(&id))))
}

/// The passkey that signed this assertion, checked (its ceremony, user verification, a
/// signature counter that moved forward) and its new counter stored; `None` when refused.
async fn verified(
    app: &App,
    rp: &Webauthn,
    body: &Asserted,
    now_text: &str,
) -> Result<Option<PasskeyRow>, crate::store::StoreError> {
    let Some(ceremony) = app
        .store
        .take_ceremony(&hash_id(&body.ceremony), "login", now_text)
        .await?
    else {
        return Ok(None);
    };
    let Ok(state) = serde_json::from_str::<DiscoverableAuthentication>(&ceremony.state) else {
        return Ok(None);
    };
    let Ok((handle, credential_id)) = rp.identify_discoverable_authentication(&body.credential)
    else {
        return Ok(None);
    };
    let credential_id = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(credential_id)
    };
    let Some(stored) = app
        .store
        .passkey(&credential_id, &handle.to_string())
        .await?
    else {
        return Ok(None);
    };
    let Ok(mut passkey) = serde_json::from_str::<Passkey>(&stored.passkey) else {
        return Ok(None);
    };
    // The counter check (a clone's counter lags the original's) is webauthn-rs'.
    let result = rp.finish_discoverable_authentication_v2(&body.credential, state, &passkey);
    let Ok(result) = result.map_err(|e| eprintln!("portico serve: a passkey was refused: {e}"))
    else {
        return Ok(None);
    };
    if !result.user_verified() {
        return Ok(None);
    }
    passkey.update_credential(&result);
    let updated = serde_json::to_string(&passkey).expect("a passkey serialises");
    app.store
        .passkey_used(&credential_id, &updated, now_text)
        .await?;
    Ok(Some(stored))
}
