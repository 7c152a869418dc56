//! Day-2 operations on one login: what `portico access` reads beside the managed state, and
//! `unlock` / `resend`, each one transaction recorded in history.

use serde::Serialize;

use super::rows::{LoginKey, QueuedNotification};
use super::{StoreError, json};
use crate::history::RecordedChange;
use crate::plan::{Action, Address, FieldChange, Origin, Summary};

/// A login's runtime data and the outbox, token and history facts about it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LoginRuntime {
    /// The customer it belongs to.
    pub customer_id: String,
    /// `""` for the customer's own login, else the contact's email.
    pub contact: String,
    /// Whether any password hash is stored (assigned or set by the user).
    pub password_set: bool,
    /// When the password was last set.
    pub password_set_at: Option<String>,
    /// Failed attempts since the last successful login.
    pub failed_attempts: i64,
    /// Locked until this time (RFC 3339), when locked.
    pub locked_until: Option<String>,
    /// Whether `locked_until` is still in the future.
    pub locked: bool,
    /// Last successful login.
    pub last_login_at: Option<String>,
    /// The newest new-access message for this login.
    pub notification: Option<NotificationStatus>,
    /// The newest set-password link issued to this login.
    pub link: Option<LinkStatus>,
    /// The newest apply (or unlock / resend) that touched this login.
    pub last_change: Option<LastChange>,
}

from_row! {
    /// The newest new-access message of a login.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize)]
    pub struct NotificationStatus {
        /// pending / sent / cancelled.
        pub status: String,
        /// When it was queued.
        pub created_at: super::SecondsText,
        /// When it was delivered.
        pub sent_at: Option<String>,
        /// Delivery attempts so far.
        pub attempts: i64,
        /// The last failed attempt's error.
        pub last_error: Option<String>,
    }
}

/// The newest set-password link of a login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LinkStatus {
    /// usable / used / revoked / expired.
    pub state: String,
    /// When it stops (or stopped) working.
    pub expires_at: String,
}

from_row! {
    /// The newest history entry that names a login.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize)]
    pub struct LastChange {
        /// History id (`portico history show ID`).
        pub id: i64,
        /// apply / unlock / resend.
        pub kind: String,
        /// When.
        pub applied_at: String,
        /// Who.
        pub actor: String,
        /// Git commit, when known.
        pub git_commit: Option<String>,
    }
}

/// Why an unlock or resend was refused.
pub(crate) fn refuse(message: String) -> StoreError {
    StoreError::Refused(message)
}

/// The history row of a day-2 operation on one login.
pub(crate) struct Event {
    pub kind: &'static str,
    pub summary: String,
    pub changes: String,
}

impl Event {
    pub fn new(kind: &'static str, address: &Address, field: FieldChange) -> Event {
        let summary = Summary {
            update: 1,
            ..Summary::default()
        };
        let change = RecordedChange {
            address: address.to_string(),
            action: Action::Update,
            origin: Origin::Manifests,
            fields: vec![field],
        };
        Event {
            kind,
            summary: serde_json::to_string(&summary).expect("serialises"),
            changes: json(&[change]),
        }
    }
}

/// The address of a login row.
pub(crate) fn address(customer_id: &str, contact: &str) -> Address {
    Address::login(customer_id, contact)
}

/// The text that history's change list holds for a login's address, to find the last
/// change that named it.
pub(crate) fn history_needle(address: &Address) -> String {
    format!(
        "\"address\":{}",
        serde_json::to_string(&address.to_string()).expect("serialises")
    )
}

/// The history event of an unlock: the lockout as it was, cleared.
pub(crate) fn unlock_event(runtime: &LoginRuntime) -> Event {
    let before = match (&runtime.locked_until, runtime.locked) {
        (Some(until), true) => format!(
            "locked until {until}, {} failed attempts",
            runtime.failed_attempts
        ),
        _ => format!("not locked, {} failed attempts", runtime.failed_attempts),
    };
    let field = FieldChange {
        field: "lockout".into(),
        old: Some(before),
        new: Some("cleared".into()),
    };
    Event::new(
        "unlock",
        &address(&runtime.customer_id, &runtime.contact),
        field,
    )
}

/// The history event of a resend.
pub(crate) fn resend_event(runtime: &LoginRuntime) -> Event {
    let field = FieldChange {
        field: "notification".into(),
        old: None,
        new: Some(
            "new-access notification with a fresh set-password link queued; older links revoked"
                .into(),
        ),
    };
    Event::new(
        "resend",
        &address(&runtime.customer_id, &runtime.contact),
        field,
    )
}

/// The login found for a day-2 operation, refused (changing nothing) when no login has the
/// email or the login has no access; `why` follows "EMAIL has no access; ".
pub(crate) fn with_access(
    found: Option<(LoginRuntime, bool)>,
    email: &str,
    why: &str,
) -> Result<LoginRuntime, StoreError> {
    match found {
        None => Err(unknown(email)),
        Some((_, false)) => Err(refuse(format!("{email} {why}"))),
        Some((runtime, true)) => Ok(runtime),
    }
}

/// The error for an email no login has.
pub(crate) fn unknown(email: &str) -> StoreError {
    StoreError::UnknownLogin(email.to_string())
}

/// The JSON parameters of a resend: the login's key (for revoking and cancelling) and the
/// message to queue. The message carries a set-password link: that is what a resend is for.
pub(crate) fn resend_rows(runtime: &LoginRuntime, email: &str) -> (String, String) {
    let key = LoginKey {
        customer_id: runtime.customer_id.clone(),
        contact: runtime.contact.clone(),
    };
    let queued = QueuedNotification {
        customer_id: runtime.customer_id.clone(),
        contact: runtime.contact.clone(),
        email: email.to_string(),
        password_assigned: false,
    };
    (json(&[key]), json(&[queued]))
}
