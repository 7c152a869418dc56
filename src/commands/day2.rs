//! Day-2 commands on one login: `access` (explain), `unlock`, `resend`.

use std::time::Duration;

use super::Outcome;
use super::adopt::open_existing;
use crate::access;
use crate::cli::{AccessOpts, HistoryFormat, LoginOpOpts, ResendOpts};
use crate::error::Error;
use crate::history::{self, Provenance};
use crate::state::State;
use crate::store::{self, AnyStore, Store};
use crate::validate::Desired;

/// The state the manifests intend: managed sections from the manifests, the others as live.
pub(super) fn intended(desired: Desired, live: State) -> State {
    let m = desired.managed;
    let want = desired.state;
    State {
        features: if m.features {
            want.features
        } else {
            live.features
        },
        websites: if m.websites {
            want.websites
        } else {
            live.websites
        },
        login_policy: if m.login_policy {
            want.login_policy
        } else {
            live.login_policy
        },
        notifications: if m.notifications {
            want.notifications
        } else {
            live.notifications
        },
        roles: if m.roles { want.roles } else { live.roles },
        customers: if m.customers {
            want.customers
        } else {
            live.customers
        },
        policies: if m.policies {
            want.policies
        } else {
            live.policies
        },
        oidc_clients: if m.oidc_clients {
            want.oidc_clients
        } else {
            live.oidc_clients
        },
        password_holders: live.password_holders,
        access: live.access,
        client_secret_hashes: live.client_secret_hashes,
    }
}

/// `portico report`: the access review as HTML or CSV.
///
/// # Errors
/// Database or manifest errors, or an unwritable output file.
pub async fn report(opts: &crate::cli::ReportOpts) -> Result<Outcome, Error> {
    let (state, activity, source) = match &opts.path {
        Some(path) => {
            let mut store = store::open(opts.connect.url(), false).await?;
            let live = store.read().await?;
            let (_, desired) = super::load_valid(path, Some(&live), opts.read.reading())?;
            (
                intended(desired, live),
                crate::store::Activity::default(),
                "intended (manifests)",
            )
        }
        None => {
            let mut store = open_existing(opts.connect.url()).await?;
            let state = store.read().await?;
            let activity = store.login_activity().await?;
            (state, activity, "live")
        }
    };
    let now = crate::clock::now();
    let rows = crate::report::rows(&state, &activity, now);
    let mut buffer = Vec::new();
    match opts.format {
        crate::cli::ReportFormat::Html => buffer.extend(
            crate::report::html(&rows, now, source)
                .map_err(|e| Error::Refused(format!("cannot render the report: {e}")))?
                .into_bytes(),
        ),
        crate::cli::ReportFormat::Csv => crate::report::csv(&rows, &mut buffer)
            .map_err(|e| Error::Io(std::io::Error::other(e)))?,
    }
    if opts.out.as_os_str() == "-" {
        use std::io::Write as _;
        std::io::stdout().write_all(&buffer)?;
    } else {
        std::fs::write(&opts.out, &buffer).map_err(|e| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("cannot write {}: {e}", opts.out.display()),
            ))
        })?;
        eprintln!(
            "Wrote the access review of {} logins to {}.",
            rows.len(),
            opts.out.display()
        );
    }
    Ok(Outcome::Done)
}

/// `portico access EMAIL`.
///
/// # Errors
/// An unknown login (with near matches), invalid manifests, or database errors.
pub async fn access(opts: &AccessOpts) -> Result<Outcome, Error> {
    let (state, runtime, source) = match &opts.path {
        Some(path) => {
            let mut store = store::open(opts.connect.url(), false).await?;
            let live = store.read().await?;
            let (_, desired) = super::load_valid(path, Some(&live), opts.read.reading())?;
            (intended(desired, live), None, "manifests")
        }
        None => {
            let mut store = open_existing(opts.connect.url()).await?;
            let state = store.read().await?;
            let runtime = store
                .login_runtime(&crate::state::normalize_email(&opts.email))
                .await?;
            (state, runtime, "live")
        }
    };
    let Some(mut report) = access::report(&state, &opts.email, runtime.as_ref(), source) else {
        return Err(Error::UnknownLogin {
            email: opts.email.clone(),
            near: access::near_matches(&state, &opts.email),
        });
    };
    // What the login service saw lately (DESIGN §10.5).
    if let Some(rt) = report.runtime.as_mut() {
        let serve = crate::store::serve::ServeStore::open(opts.connect.url(), 1).await?;
        // A database the login service never ran on may predate its tables: no events.
        rt.recent_events = serve
            .events(Some(&report.email), "", RECENT_EVENTS)
            .await
            .unwrap_or_default();
        rt.passkeys = serve
            .passkey_summaries(&report.email)
            .await
            .unwrap_or_default();
    }
    match opts.format {
        HistoryFormat::Json => println!("{}", crate::schema::to_json(&report)),
        HistoryFormat::Text => print!("{}", access::render_text(&report)),
    }
    Ok(Outcome::Done)
}

/// Sign-in events `access` shows.
const RECENT_EVENTS: i64 = 5;

/// Opens a database that must exist and takes the apply lock.
async fn locked(opts: &LoginOpOpts, provenance: &Provenance) -> Result<AnyStore, Error> {
    open_existing(opts.connect.url()).await?;
    let mut store = store::open(opts.connect.url(), true).await?;
    let timeout = Duration::try_from_secs_f64(opts.lock_timeout).unwrap_or(Duration::ZERO);
    store.lock(timeout, &provenance.actor).await?;
    store.migrate().await?;
    Ok(store)
}

fn provenance(opts: &LoginOpOpts) -> Provenance {
    Provenance {
        actor: history::actor(opts.actor.as_deref()),
        git_commit: None,
        clock: None,
    }
}

/// `portico unlock EMAIL`.
///
/// # Errors
/// An unknown login or one without access, a lock timeout, or database errors.
pub async fn unlock(opts: &LoginOpOpts) -> Result<Outcome, Error> {
    let provenance = provenance(opts);
    let mut store = locked(opts, &provenance).await?;
    let email = crate::state::normalize_email(&opts.email);
    let id = store.unlock(&email, &provenance).await?;
    println!(
        "Unlocked {email}: failed attempts and lockout cleared. Recorded as history entry {id}."
    );
    Ok(Outcome::Done)
}

/// `portico resend EMAIL`.
///
/// # Errors
/// An unknown login or one without access, no notification endpoint, a lock timeout, or
/// database errors.
pub async fn resend(opts: &ResendOpts) -> Result<Outcome, Error> {
    let provenance = provenance(&opts.login);
    let mut store = locked(&opts.login, &provenance).await?;
    let email = crate::state::normalize_email(&opts.login.email);
    if store.read().await?.notifications.is_none() {
        return Err(Error::Store(store::StoreError::Refused(
            "no `notifications:` endpoint is configured, so no message could be delivered".into(),
        )));
    }
    let id = store.resend(&email, &provenance).await?;
    println!(
        "Queued a new-access notification with a fresh set-password link for {email}; older links are revoked. Recorded as history entry {id}."
    );
    if opts.no_notify {
        println!("Deliver it with `portico notify`.");
        return Ok(Outcome::Done);
    }
    store.unlock_apply().await?;
    // Only this login's message: a resend never delivers other customers' queued mail.
    let options = crate::notify::DeliveryOptions {
        only: Some(email.to_string()),
        ignore_wait: true,
        ..super::delivery_options(&opts.delivery)
    };
    let report = crate::notify::deliver(&mut store, &options).await?;
    super::print_delivery(&report);
    if report.sent == 0 {
        return Err(Error::Undelivered(1));
    }
    Ok(Outcome::Done)
}
