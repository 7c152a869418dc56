//! Delivering queued new-access notifications, by email (SMTP) or as JSON POSTed to a
//! webhook: a few messages at once, an idempotency key (the email's `Message-ID`), timeouts,
//! retries with exponential backoff and jitter, every attempt recorded, and a message that is
//! refused for good or runs out of attempts marked `failed`. A set-password token is created
//! per delivery and stored only as a hash.

mod smtp;

pub use crate::message::template;

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::catalog;
use crate::state::{LoginState, State, hex};
use crate::store::{AnyStore, NewToken, OutboxRow, Settled, Store, StoreError};

/// Messages claimed, given links, and recorded together: one database commit for each step
/// of up to this many messages, where one per message made each cost three commits (about
/// 15 ms of a message's time on SQLite, whose commits wait for the disk).
const BATCH: usize = 64;

/// A run stops after this many messages in a row were not delivered, none sent since: the
/// endpoint is down or refuses every message (a wrong address, a rejected credential). The
/// rest stay queued as they were, no attempt counted against them, for a later run. (Trying
/// each of 200,000 messages against a closed port took an apply 68 seconds and printed a
/// warning per message; against an endpoint that never answers it would take hours.)
pub const STOP_AFTER_FAILURES: usize = 8;

/// The JSON body POSTed for each new-access notification
/// (`schemas/notification.schema.json`). It never carries a password.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "portico new-access notification")]
pub struct NotificationMessage {
    /// `customer_center.new_access` (an apply gave access) or `customer_center.password_reset`
    /// (the login asked to reset its password on `portico serve`).
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
    /// The rendered subject line.
    pub subject: String,
    /// The rendered plain-text body.
    pub text: String,
    /// The rendered HTML body, when the template has one.
    pub html: Option<String>,
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
    /// Per request: per webhook POST; per SMTP connection set-up and per message.
    pub timeout: Duration,
    /// Attempts per message in this run (never beyond the message's remaining budget).
    pub attempts: u32,
    /// First backoff; doubled after each failure, plus up to half of it as jitter.
    pub backoff: Duration,
    /// Messages in flight at once (as many SMTP connections at most, each reused).
    pub parallel: usize,
    /// Deliver only the messages queued for this address (`portico resend EMAIL`).
    pub only: Option<String>,
    /// Try messages whose next-attempt time has not come yet (`notify --retry-now`).
    pub ignore_wait: bool,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            timeout: Duration::from_secs(10),
            attempts: 1,
            backoff: Duration::from_millis(500),
            parallel: 4,
            only: None,
            ignore_wait: false,
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
    /// Messages marked `failed` (refused for good, or out of attempts), with the last error.
    pub dead: Vec<(String, String)>,
    /// Why nothing was tried, when nothing could be.
    pub blocked: Option<String>,
    /// Pending messages left for a later run (their next-attempt time has not come, or
    /// another login's, with `only`).
    pub waiting: usize,
    /// Pending messages not tried because the run stopped after
    /// [`STOP_AFTER_FAILURES`] failures in a row.
    pub stopped: usize,
}

/// The result of one attempt.
#[derive(Debug)]
enum Attempt {
    Sent,
    /// Worth trying again later.
    Retry(String),
    /// Never going to work as it is (a 5xx SMTP reply, a 4xx HTTP answer).
    Permanent(String),
}

impl Attempt {
    fn error(&self) -> Option<&str> {
        match self {
            Attempt::Sent => None,
            Attempt::Retry(e) | Attempt::Permanent(e) => Some(e),
        }
    }
}

/// Where messages go.
#[derive(Clone)]
enum Transport {
    Webhook {
        client: reqwest::Client,
        url: String,
        auth: Option<String>,
    },
    Smtp(smtp::Mailer),
}

impl Transport {
    /// `Err` says why nothing can be delivered now (messages stay queued).
    fn new(
        settings: &crate::state::NotificationSettings,
        opts: &DeliveryOptions,
    ) -> Result<Transport, String> {
        let env = |name: &str, what: &str| {
            std::env::var(name)
                .map_err(|_| format!("environment variable `{name}` ({what}) is not set"))
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        if let Some(server) = &settings.smtp {
            let password = match &server.password_env {
                Some(name) => Some(env(name, "notifications.smtp.password")?),
                None => None,
            };
            return smtp::Mailer::new(settings, server, password, opts).map(Transport::Smtp);
        }
        let Some(url) = settings.url.clone() else {
            return Err("`notifications:` has neither `smtp` nor `url`".into());
        };
        let auth = match &settings.auth_env {
            Some(name) => Some(env(name, "notifications.auth_header")?),
            None => None,
        };
        // A redirect would re-post the body (with the live set-password link) elsewhere.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            .user_agent(concat!("portico/", env!("CARGO_PKG_VERSION")))
            .timeout(opts.timeout)
            .build()
            .map_err(|e| format!("cannot create an HTTP client: {e}"))?;
        Ok(Transport::Webhook { client, url, auth })
    }

    async fn send(&self, body: &NotificationMessage, timeout: Duration) -> Attempt {
        match self {
            Transport::Smtp(mailer) => mailer.send(body).await,
            Transport::Webhook { client, url, auth } => {
                let mut request = client
                    .post(url)
                    .header("Idempotency-Key", &body.idempotency_key)
                    .json(body);
                if let Some(auth) = auth {
                    request = request.header(reqwest::header::AUTHORIZATION, auth);
                }
                match request.send().await {
                    Ok(response) if response.status().is_success() => Attempt::Sent,
                    Ok(response) if response.status().is_redirection() => {
                        Attempt::Permanent(format!(
                            "the endpoint answered {} (a redirect): portico does not follow redirects; configure the final URL",
                            response.status()
                        ))
                    }
                    Ok(response) => {
                        let status = response.status();
                        let error = format!("the endpoint answered {status}");
                        if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
                            Attempt::Retry(error)
                        } else {
                            Attempt::Permanent(error)
                        }
                    }
                    Err(e) if e.is_timeout() => {
                        Attempt::Retry(format!("no answer within {timeout:?}"))
                    }
                    Err(e) if e.is_connect() => {
                        Attempt::Retry("cannot connect to the endpoint".into())
                    }
                    Err(e) => Attempt::Retry(format!("request failed: {}", e.without_url())),
                }
            }
        }
    }

    /// Up to `attempts` tries with backoff; every attempt's result, in order.
    async fn send_with_retries(
        &self,
        body: &NotificationMessage,
        attempts: u32,
        opts: &DeliveryOptions,
    ) -> Vec<Attempt> {
        let mut done = Vec::new();
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(backoff(opts.backoff, attempt)).await;
            }
            let result = self.send(body, opts.timeout).await;
            let again = matches!(result, Attempt::Retry(_));
            done.push(result);
            if !again {
                break;
            }
        }
        done
    }
}

/// A message handed to a delivery task.
struct InFlight {
    id: i64,
    email: String,
    /// Attempts made before this run.
    attempts_before: i64,
}

/// The account's settings, roles and websites, and the customers of `messages` only: an
/// apply that queued ten messages does not read 300,000 logins to send them.
async fn read_for(store: &mut AnyStore, messages: &[OutboxRow]) -> Result<State, StoreError> {
    let mut customers: Vec<compact_str::CompactString> = messages
        .iter()
        .map(|m| m.customer_id.as_str().into())
        .collect();
    customers.sort();
    customers.dedup();
    let query = crate::store::PartQuery {
        customers: &customers,
        expiring_before: "",
        access_keys: false,
        password_markers: false,
    };
    Ok(store.read_part(&query).await?.state)
}

/// Delivers every pending message, a few at once.
///
/// # Errors
/// Only database errors; delivery failures are recorded and reported, never raised.
pub async fn deliver(
    store: &mut AnyStore,
    opts: &DeliveryOptions,
) -> Result<DeliveryReport, StoreError> {
    let mut report = DeliveryReport::default();
    let pending = store.outbox(true).await?;
    let total = pending.len();
    let pending = due(pending, opts);
    report.waiting = total - pending.len();
    if pending.is_empty() {
        return Ok(report);
    }
    let (state, settings, (transport, templates)) = match prepare(store, &pending, opts).await? {
        Ok(prepared) => prepared,
        Err(why) => {
            report.blocked = Some(format!(
                "{} notification(s) stay queued: {why}",
                pending.len()
            ));
            return Ok(report);
        }
    };
    let max_attempts = i64::from(settings.max_attempts.max(1));
    let mut tasks = tokio::task::JoinSet::new();
    // Results not yet recorded: written a batch at a time. A run that stops before writing
    // them leaves those messages claimed; the claims expire and they are sent again (with
    // the same idempotency key), as after any interrupted run.
    let mut settled = Vec::new();
    // Messages not delivered in a row, none sent since.
    let mut streak = 0;
    for (n, chunk) in pending.chunks(BATCH).enumerate() {
        if streak >= STOP_AFTER_FAILURES {
            report.stopped += pending.len() - n * BATCH;
            break;
        }
        let ids: Vec<i64> = chunk.iter().map(|m| m.id).collect();
        // Another `portico notify` (or apply) running now may be delivering some of them.
        let claimed = store.claim_many(&ids).await?;
        let chunk: Vec<&OutboxRow> = chunk.iter().filter(|m| claimed.contains(&m.id)).collect();
        let mut links = new_links(store, &state, &settings, &chunk).await?;
        for message in chunk {
            while tasks.len() >= opts.parallel.max(1) {
                let done = tasks.join_next().await.expect("a task is running");
                if settle(done, max_attempts, &mut settled, &mut report) {
                    streak = 0;
                } else {
                    streak += 1;
                }
                if settled.len() >= BATCH {
                    store.record_results(&std::mem::take(&mut settled)).await?;
                }
            }
            if streak >= STOP_AFTER_FAILURES {
                give_back(message, &mut settled, &mut report);
                continue;
            }
            let body = match login_of(&state, message) {
                None => Err("the login no longer exists".to_string()),
                Some(login) => {
                    let link = links.remove(&message.id);
                    build(&state, &settings, &templates, message, login, link)
                }
            };
            match body {
                Ok(body) => {
                    tasks.spawn(send(&transport, opts, message, body, max_attempts));
                }
                Err(error) => dead(message, error, &mut settled, &mut report),
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        settle(done, max_attempts, &mut settled, &mut report);
    }
    store.record_results(&settled).await?;
    Ok(report)
}

/// What messages are built from: the logins they go to, the settings, the transport and
/// the templates.
type Prepared = (
    State,
    crate::state::NotificationSettings,
    (Transport, Compiled),
);

/// [`Prepared`] for `pending`, or why none of them can be sent now.
async fn prepare(
    store: &mut AnyStore,
    pending: &[OutboxRow],
    opts: &DeliveryOptions,
) -> Result<Result<Prepared, String>, StoreError> {
    let state = read_for(store, pending).await?;
    let Some(settings) = state.notifications.clone() else {
        return Ok(Err("no `notifications:` endpoint is configured".into()));
    };
    Ok(ready(&settings, opts).map(|ready| (state, settings, ready)))
}

/// A claimed message the run stopped before trying: given back, no attempt made or counted.
fn give_back(message: &OutboxRow, settled: &mut Vec<Settled>, report: &mut DeliveryReport) {
    settled.push(Settled {
        id: message.id,
        attempts: Vec::new(),
        release: Some(false),
    });
    report.stopped += 1;
}

/// Sends one message, retrying within this run up to what is left of its attempts.
fn send(
    transport: &Transport,
    opts: &DeliveryOptions,
    message: &OutboxRow,
    body: NotificationMessage,
    max_attempts: i64,
) -> impl std::future::Future<Output = (InFlight, Vec<Attempt>)> + Send + 'static {
    let budget = (max_attempts - message.attempts).max(1);
    let attempts = u32::try_from(budget)
        .unwrap_or(u32::MAX)
        .min(opts.attempts.max(1));
    let (transport, opts) = (transport.clone(), opts.clone());
    let flight = InFlight {
        id: message.id,
        email: message.email.clone(),
        attempts_before: message.attempts,
    };
    async move {
        let results = transport.send_with_retries(&body, attempts, &opts).await;
        (flight, results)
    }
}

/// The pending messages to try now: those `--only` names, whose retry time has come
/// (`--ignore-wait`: all of them).
fn due(mut pending: Vec<OutboxRow>, opts: &DeliveryOptions) -> Vec<OutboxRow> {
    let now = crate::clock::format(jiff::Timestamp::now());
    pending.retain(|m| {
        opts.only.as_ref().is_none_or(|only| *only == m.email)
            && (opts.ignore_wait || m.next_attempt_at.as_ref().is_none_or(|at| *at <= now))
    });
    pending
}

/// A message that can never be delivered: its error recorded, failed for good.
fn dead(
    message: &OutboxRow,
    error: String,
    settled: &mut Vec<Settled>,
    report: &mut DeliveryReport,
) {
    settled.push(Settled {
        id: message.id,
        attempts: vec![Some(error.clone())],
        release: Some(true),
    });
    report.dead.push((message.email.clone(), error));
}

/// The transport and both kinds of message's templates, or why messages stay queued.
fn ready(
    settings: &crate::state::NotificationSettings,
    opts: &DeliveryOptions,
) -> Result<(Transport, Compiled), String> {
    let transport = Transport::new(settings, opts)?;
    let compiled = [
        (template::Kind::NewAccess, settings.template.as_ref()),
        (template::Kind::Reset, settings.reset_template.as_ref()),
    ]
    .map(|(kind, sources)| template::Templates::new(sources, kind).map_err(|p| (kind, p)));
    match compiled {
        [Ok(access), Ok(reset)] => Ok((transport, Compiled { access, reset })),
        [Err((kind, problem)), _] | [_, Err((kind, problem))] => Err(format!(
            "the stored `{}.{}` template is broken: {}",
            kind.key(),
            problem.part.key(),
            problem.message
        )),
    }
}

/// The compiled templates of both kinds of message.
struct Compiled {
    access: template::Templates,
    reset: template::Templates,
}

/// A finished message's attempts and where it stands now, to record (and to report);
/// whether it was sent.
fn settle(
    done: Result<(InFlight, Vec<Attempt>), tokio::task::JoinError>,
    max_attempts: i64,
    settled: &mut Vec<Settled>,
    report: &mut DeliveryReport,
) -> bool {
    let (flight, results) = match done {
        Ok(done) => done,
        // A panicking task loses nothing: its claim expires and the message is retried.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    let made = flight.attempts_before + results.len() as i64;
    let release = match results.last() {
        Some(Attempt::Sent) => {
            report.sent += 1;
            None
        }
        Some(Attempt::Permanent(error)) => {
            report.dead.push((flight.email, error.clone()));
            Some(true)
        }
        Some(Attempt::Retry(error)) if made >= max_attempts => {
            report.dead.push((
                flight.email,
                format!("{error}; gave up after {made} attempt(s)"),
            ));
            Some(true)
        }
        Some(Attempt::Retry(error)) => {
            report.failed.push((flight.email, error.clone()));
            Some(false)
        }
        None => Some(false),
    };
    settled.push(Settled {
        id: flight.id,
        attempts: results
            .iter()
            .map(|r| r.error().map(str::to_string))
            .collect(),
        release,
    });
    release.is_none()
}

fn login_of<'a>(state: &'a State, message: &OutboxRow) -> Option<&'a LoginState> {
    let customer = state.customers.get(message.customer_id.as_str())?;
    if message.contact.is_empty() {
        Some(&customer.record.login)
    } else {
        customer.contacts.get(message.contact.as_str())
    }
}

/// The facts of a login's message, without the set-password link.
fn facts(
    state: &State,
    settings: &crate::state::NotificationSettings,
    customer_id: &str,
    login: &LoginState,
    fallback_email: &str,
) -> (template::Vars, String, Named, Option<Named>) {
    let customer = state
        .customers
        .get(customer_id)
        .expect("the login was found in this state");
    let role_name = state
        .roles
        .get(login.role.as_str())
        .map(|r| r.name.clone())
        .or_else(|| catalog::standard_role(&login.role).map(|r| r.name.to_string()))
        .unwrap_or_else(|| login.role.to_string());
    let website = login
        .website
        .as_ref()
        .and_then(|id| state.websites.get(id.as_str()).map(|w| (id, w)));
    let base = website.map(|(_, w)| w.url.trim_end_matches('/').to_string());
    let login_url = base
        .as_ref()
        .map(|b| format!("{b}/login"))
        .or_else(|| settings.login_url.clone());
    // The set-password page is served at the root of the login page's host.
    let link_base = base
        .or_else(|| {
            settings.login_url.as_deref().map(|u| {
                url::Url::parse(u)
                    .map(|u| u.origin().ascii_serialization())
                    .unwrap_or_else(|_| u.to_string())
            })
        })
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string();
    let vars = template::Vars {
        // Always the login's current address: it may have changed since the message was
        // queued (links issued to the old one were revoked by that apply).
        email: login.email.as_deref().unwrap_or(fallback_email).to_string(),
        name: login.name.as_deref().map(str::to_string),
        customer: customer.record.name.to_string(),
        customer_id: customer_id.to_string(),
        role: role_name.clone(),
        website: website.map(|(_, w)| w.name.clone()),
        login_url,
        reply_to: settings.reply_to.clone(),
        ..template::Vars::default()
    };
    let role = Named {
        id: login.role.to_string(),
        name: role_name,
    };
    let website = website.map(|(id, w)| Named {
        id: id.to_string(),
        name: w.name.clone(),
    });
    (vars, link_base, role, website)
}

/// Builds one message around its set-password token (from [`new_links`]; `None` when the
/// password was assigned) and renders the template. `Err` is a message that can never be
/// rendered.
fn build(
    state: &State,
    settings: &crate::state::NotificationSettings,
    templates: &Compiled,
    message: &OutboxRow,
    login: &LoginState,
    link: Option<(String, String)>,
) -> Result<NotificationMessage, String> {
    let (mut vars, link_base, role, website) =
        facts(state, settings, &message.customer_id, login, &message.email);
    let reset = message.kind == "reset";
    let (templates, kind) = if reset {
        (&templates.reset, "customer_center.password_reset")
    } else {
        (&templates.access, "customer_center.new_access")
    };
    let assigned = !needs_link(message);
    let set_password = link.map(|(token, expires_at)| SetPasswordLink {
        url: format!("{link_base}/set-password?token={token}"),
        expires_at,
    });
    vars.password_assigned = assigned;
    vars.set_password_url = set_password.as_ref().map(|l| l.url.clone());
    // For people, with its zone; the JSON body keeps RFC 3339 (`set_password.expires_at`).
    vars.link_expires_at = set_password
        .as_ref()
        .map(|l| crate::clock::for_people(&l.expires_at));
    let rendered = templates.render(&vars).map_err(|problem| {
        format!(
            "the `{}` template failed to render: {}",
            problem.part.key(),
            problem.message
        )
    })?;
    Ok(NotificationMessage {
        kind: kind.into(),
        idempotency_key: message.idempotency_key.to_string(),
        email: vars.email,
        name: vars.name,
        customer: Named {
            id: message.customer_id.clone(),
            name: vars.customer,
        },
        role,
        website,
        login_url: vars.login_url,
        password: if assigned { "assigned" } else { "set_by_user" }.into(),
        set_password,
        subject: rendered.subject,
        text: rendered.text,
        html: rendered.html,
    })
}

/// Whether a message carries a set-password link: a reset always does, a new-access message
/// unless the password was assigned.
fn needs_link(message: &OutboxRow) -> bool {
    message.kind == "reset" || !message.password_assigned
}

/// Fresh set-password tokens for the messages that carry a link and whose login still exists,
/// stored hashed in one transaction (each login's older links revoked): by message id, the
/// token and its expiry.
async fn new_links(
    store: &mut AnyStore,
    state: &State,
    settings: &crate::state::NotificationSettings,
    messages: &[&OutboxRow],
) -> Result<std::collections::HashMap<i64, (String, String)>, StoreError> {
    let wanted: Vec<(&OutboxRow, String)> = messages
        .iter()
        .filter(|m| needs_link(m) && login_of(state, m).is_some())
        .map(|m| (*m, new_token()))
        .collect();
    let requests: Vec<NewToken<'_>> = wanted
        .iter()
        .map(|(message, token)| NewToken {
            message,
            token_hash: token_hash(token),
            ttl_minutes: if message.kind == "reset" {
                settings.reset_ttl_minutes
            } else {
                settings.token_ttl_hours.saturating_mul(60)
            },
        })
        .collect();
    let expiries = store.issue_tokens(&requests).await?;
    Ok(wanted
        .into_iter()
        .zip(expiries)
        .map(|((message, token), expires_at)| (message.id, (token, expires_at)))
        .collect())
}

/// The message a login would get now, with the link shown as `<link>`: for admins editing
/// the template. `None` when no login has that email.
///
/// # Errors
/// A template that fails to render.
pub fn preview(
    state: &State,
    settings: &crate::state::NotificationSettings,
    email: &str,
    password_assigned: bool,
) -> Option<Result<template::Rendered, template::Problem>> {
    let email = crate::state::normalize_email(email);
    let (customer_id, login) = state.customers.iter().find_map(|(id, c)| {
        std::iter::once(&c.record.login)
            .chain(c.contacts.values())
            .find(|l| l.email.as_deref() == Some(email.as_str()))
            .map(|l| (id, l))
    })?;
    let (mut vars, _, _, _) = facts(state, settings, customer_id, login, &email);
    vars.password_assigned = password_assigned;
    if !password_assigned {
        vars.set_password_url = Some("<link>".into());
        vars.link_expires_at = Some(format!(
            "<{} hours after sending>",
            settings.token_ttl_hours
        ));
    }
    Some(
        template::Templates::new(settings.template.as_ref(), template::Kind::NewAccess)
            .and_then(|t| t.render(&vars)),
    )
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
