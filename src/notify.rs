//! Delivering queued new-access notifications: an HTTP POST per message with an idempotency
//! key, timeouts, retries with exponential backoff and jitter, and every attempt recorded.
//! A set-password token is created per delivery run and stored only as a hash.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::catalog;
use crate::state::{LoginState, State, hex};
use crate::store::{AnyStore, OutboxRow, Store, StoreError};

/// The JSON body POSTed for each new-access notification
/// (`schemas/notification.schema.json`). It never carries a password.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "portico new-access notification")]
pub struct NotificationMessage {
    /// Always `customer_center.new_access`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Same value as the `Idempotency-Key` header: one per queued message, stable across
    /// retries.
    pub idempotency_key: String,
    /// The login's email (lower case).
    pub email: String,
    /// The contact's name, when known.
    pub name: Option<String>,
    /// The customer the login belongs to.
    pub customer: Named,
    /// The login's role.
    pub role: Named,
    /// The login's website, when it has one.
    pub website: Option<Named>,
    /// Where to log in: `<website url>/login`, else `notifications.login_url`.
    pub login_url: Option<String>,
    /// `assigned` when an initial password was set by the admin (never included), else
    /// `set_by_user`.
    pub password: String,
    /// When no password was assigned: a single-use link to set one.
    pub set_password: Option<SetPasswordLink>,
}

/// An id and display name.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Named {
    /// Identifier.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// A single-use set-password link.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPasswordLink {
    /// `<website url or login_url>/set-password?token=…`
    pub url: String,
    /// When the link stops working (RFC 3339, UTC).
    pub expires_at: String,
}

/// How hard to try.
#[derive(Clone, Debug)]
pub struct DeliveryOptions {
    /// Per request.
    pub timeout: Duration,
    /// Attempts per message in this run.
    pub attempts: u32,
    /// First backoff; doubled after each failure, plus up to half of it as jitter.
    pub backoff: Duration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            timeout: Duration::from_secs(10),
            attempts: 3,
            backoff: Duration::from_millis(500),
        }
    }
}

/// What a delivery run did.
#[derive(Debug, Default)]
pub struct DeliveryReport {
    /// Messages delivered.
    pub sent: usize,
    /// Messages still pending, with the last error.
    pub failed: Vec<(String, String)>,
    /// Why nothing was tried, when nothing could be.
    pub blocked: Option<String>,
}

/// Delivers every pending message.
///
/// # Errors
/// Only database errors; delivery failures are recorded and reported, never raised.
pub async fn deliver(
    store: &mut AnyStore,
    opts: &DeliveryOptions,
) -> Result<DeliveryReport, StoreError> {
    let mut report = DeliveryReport::default();
    let pending = store.outbox(true).await?;
    if pending.is_empty() {
        return Ok(report);
    }
    let state = store.read().await?;
    let Some(settings) = state.notifications.clone() else {
        report.blocked = Some(format!(
            "{} notification(s) stay queued: no `notifications:` endpoint is configured",
            pending.len()
        ));
        return Ok(report);
    };
    let auth = match &settings.auth_env {
        Some(name) => match std::env::var(name) {
            Ok(value) => Some(value),
            Err(_) => {
                report.blocked = Some(format!(
                    "{} notification(s) stay queued: environment variable `{name}` (notifications.auth_header) is not set",
                    pending.len()
                ));
                return Ok(report);
            }
        },
        None => None,
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .user_agent(concat!("portico/", env!("CARGO_PKG_VERSION")))
        .timeout(opts.timeout)
        .build()
        .map_err(|e| StoreError::Lock(format!("cannot create an HTTP client: {e}")))?;
    for message in pending {
        // Another `portico notify` (or apply) running now may be delivering it.
        if !store.claim(message.id).await? {
            continue;
        }
        let Some(login) = login_of(&state, &message) else {
            let error = "the login no longer exists".to_string();
            store.record_attempt(message.id, Some(&error)).await?;
            store.release(message.id).await?;
            report.failed.push((message.email.clone(), error));
            continue;
        };
        let body = build(store, &state, &settings, &message, login).await?;
        match post(
            store,
            &client,
            &settings.url,
            auth.as_deref(),
            &message,
            &body,
            opts,
        )
        .await?
        {
            None => report.sent += 1,
            Some(error) => {
                store.release(message.id).await?;
                report.failed.push((message.email.clone(), error));
            }
        }
    }
    Ok(report)
}

fn login_of<'a>(state: &'a State, message: &OutboxRow) -> Option<&'a LoginState> {
    let customer = state.customers.get(&message.customer_id)?;
    if message.contact.is_empty() {
        Some(&customer.record.login)
    } else {
        customer.contacts.get(&message.contact)
    }
}

async fn build(
    store: &mut AnyStore,
    state: &State,
    settings: &crate::state::NotificationSettings,
    message: &OutboxRow,
    login: &LoginState,
) -> Result<NotificationMessage, StoreError> {
    let customer = &state.customers[&message.customer_id];
    let role_name = state
        .roles
        .get(&login.role)
        .map(|r| r.name.clone())
        .or_else(|| catalog::standard_role(&login.role).map(|r| r.name.to_string()))
        .unwrap_or_else(|| login.role.clone());
    let website = login
        .website
        .as_ref()
        .and_then(|id| state.websites.get(id).map(|w| (id, w)));
    let base = website.map(|(_, w)| w.url.trim_end_matches('/').to_string());
    let login_url = base
        .as_ref()
        .map(|b| format!("{b}/login"))
        .or_else(|| settings.login_url.clone());
    let set_password = if message.password_assigned {
        None
    } else {
        let link_base = base
            .or_else(|| settings.login_url.clone())
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string();
        let token = new_token();
        let expires_at = store
            .issue_token(message, &token_hash(&token), settings.token_ttl_hours)
            .await?;
        Some(SetPasswordLink {
            url: format!("{link_base}/set-password?token={token}"),
            expires_at,
        })
    };
    Ok(NotificationMessage {
        kind: "customer_center.new_access".into(),
        idempotency_key: message.idempotency_key.clone(),
        // Always the login's current address: it may have changed since the message was
        // queued (links issued to the old one were revoked by that apply).
        email: login.email.clone().unwrap_or_else(|| message.email.clone()),
        name: login.name.clone(),
        customer: Named {
            id: message.customer_id.clone(),
            name: customer.record.name.clone(),
        },
        role: Named {
            id: login.role.clone(),
            name: role_name,
        },
        website: website.map(|(id, w)| Named {
            id: id.clone(),
            name: w.name.clone(),
        }),
        login_url,
        password: if message.password_assigned {
            "assigned"
        } else {
            "set_by_user"
        }
        .into(),
        set_password,
    })
}

/// POSTs one message with retries; records every attempt. Returns the last error, if any.
async fn post(
    store: &mut AnyStore,
    client: &reqwest::Client,
    url: &str,
    auth: Option<&str>,
    message: &OutboxRow,
    body: &NotificationMessage,
    opts: &DeliveryOptions,
) -> Result<Option<String>, StoreError> {
    let mut last = None;
    for attempt in 0..opts.attempts.max(1) {
        if attempt > 0 {
            tokio::time::sleep(backoff(opts.backoff, attempt)).await;
        }
        let mut request = client
            .post(url)
            .header("Idempotency-Key", &message.idempotency_key)
            .json(body);
        if let Some(auth) = auth {
            request = request.header(reqwest::header::AUTHORIZATION, auth);
        }
        let (error, retry) = match request.send().await {
            Ok(response) if response.status().is_success() => (None, false),
            Ok(response) => {
                let status = response.status();
                let retry =
                    status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429;
                (Some(format!("the endpoint answered {status}")), retry)
            }
            Err(e) if e.is_timeout() => {
                (Some(format!("no answer within {:?}", opts.timeout)), true)
            }
            Err(e) if e.is_connect() => (Some("cannot connect to the endpoint".to_string()), true),
            Err(e) => (Some(format!("request failed: {}", e.without_url())), true),
        };
        store.record_attempt(message.id, error.as_deref()).await?;
        last = error;
        if last.is_none() || !retry {
            break;
        }
    }
    Ok(last)
}

/// `base × 2^(attempt-1)` plus up to half of that as random jitter.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let delay = base * 2u32.saturating_pow(attempt - 1);
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    delay + delay.mul_f64(f64::from(byte[0]) / 510.0)
}

/// A random 256-bit token, hex-encoded.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the system's random source works");
    hex(&bytes)
}

/// The SHA-256 of a token, as stored.
pub fn token_hash(token: &str) -> String {
    hex(&sha2::Sha256::digest(token.trim().as_bytes()))
}
