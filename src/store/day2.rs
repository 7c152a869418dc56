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

/// The newest new-access message of a login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct NotificationStatus {
    /// pending / sent / cancelled.
    pub status: String,
    /// When it was queued.
    pub created_at: String,
    /// When it was delivered.
    pub sent_at: Option<String>,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// The last failed attempt's error.
    pub last_error: Option<String>,
}

/// The newest set-password link of a login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LinkStatus {
    /// usable / used / revoked / expired.
    pub state: String,
    /// When it stops (or stopped) working.
    pub expires_at: String,
}

/// The newest history entry that names a login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
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

/// The statements of one engine for day-2 operations (they differ in how "now" is written
/// and in the string search function).
pub struct Day2Sql {
    pub find: &'static str,
    pub notification: &'static str,
    pub link: &'static str,
    pub last_change: &'static str,
    pub unlock: &'static str,
    pub insert_event: &'static str,
    pub queue: &'static str,
    pub revoke_tokens: &'static str,
    pub cancel_notifications: &'static str,
}

/// The day-2 statements of one engine, from its way of writing "now", its substring search
/// function and its false; the outbox statements are the engine's `WRITES`.
macro_rules! day2_sql {
    (now: $now:literal, contains: $contains:literal, no: $no:literal) => {
        $crate::store::day2::Day2Sql {
            find: concat!(
                "SELECT customer_id, contact, access, password_hash IS NOT NULL, password_set_at,
                        failed_attempts, locked_until, COALESCE(locked_until > ", $now, ", ", $no, "),
                        last_login_at
                 FROM logins WHERE email = $1"
            ),
            notification: "SELECT status, created_at, sent_at, attempts, last_error FROM notifications
                WHERE customer_id = $1 AND contact = $2 ORDER BY id DESC LIMIT 1",
            link: concat!(
                "SELECT expires_at, used_at IS NOT NULL, revoked_at IS NOT NULL, expires_at <= ", $now, "
                 FROM set_password_tokens WHERE customer_id = $1 AND contact = $2
                 ORDER BY expires_at DESC, notification_id DESC LIMIT 1"
            ),
            // The apply that last wrote the object, or a later day-2 event naming it (events
            // keep their one change as plain JSON; applies before migration 0008 too). `$1` comes
            // first: SQLite numbers parameters in order of appearance.
            last_change: concat!(
                "SELECT id, kind, applied_at, actor, git_commit FROM applies
                 WHERE id = (SELECT max(x) FROM (
                     SELECT id AS x FROM applies WHERE changes_z IS NULL AND ", $contains, "(changes, $1) > 0
                     UNION ALL
                     SELECT apply_id AS x FROM applied_objects WHERE address = $2
                 ) AS t)"
            ),
            unlock: "UPDATE logins SET failed_attempts = 0, locked_until = NULL
                WHERE customer_id = $1 AND contact = $2",
            insert_event: concat!(
                "INSERT INTO applies
                    (applied_at, actor, git_commit, manifests_digest, plan_digest, summary, changes, kind)
                 VALUES (", $now, ", $1, $2, '-', '-', $3, $4, $5)
                 RETURNING id"
            ),
            queue: WRITES.queue_notifications,
            revoke_tokens: WRITES.revoke_tokens,
            cancel_notifications: WRITES.cancel_notifications,
        }
    };
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
    if contact.is_empty() {
        Address::Customer(customer_id.to_string())
    } else {
        Address::Contact {
            customer: customer_id.to_string(),
            email: contact.to_string(),
        }
    }
}

/// The text that history's change list holds for a login's address, to find the last
/// change that named it.
pub(crate) fn history_needle(address: &Address) -> String {
    format!(
        "\"address\":{}",
        serde_json::to_string(&address.to_string()).expect("serialises")
    )
}

/// The row `find` reads: (customer_id, contact, access, password_set, password_set_at,
/// failed_attempts, locked_until, locked, last_login_at).
pub(crate) type FoundLogin = (
    String,
    String,
    bool,
    bool,
    Option<String>,
    i64,
    Option<String>,
    bool,
    Option<String>,
);

/// Reads everything `access` shows beyond the managed state. Evaluates to
/// `Result<Option<(LoginRuntime, bool)>, StoreError>` (the bool: the login has access).
macro_rules! login_runtime {
    ($conn:expr, $sql:expr, $email:expr) => {
        async {
            use $crate::store::Doing as _;
            let doing = "reading a login";
            let found: Option<$crate::store::day2::FoundLogin> = sqlx::query_as($sql.find)
                .bind($email)
                .fetch_optional(&mut *$conn)
                .await
                .doing(doing)?;
            let Some((
                customer_id,
                contact,
                access,
                password_set,
                password_set_at,
                failed_attempts,
                locked_until,
                locked,
                last_login_at,
            )) = found
            else {
                return Ok(None);
            };
            let notification: Option<$crate::store::day2::NotificationStatus> =
                sqlx::query_as($sql.notification)
                    .bind(&customer_id)
                    .bind(&contact)
                    .fetch_optional(&mut *$conn)
                    .await
                    .doing(doing)?;
            let link: Option<(String, bool, bool, bool)> = sqlx::query_as($sql.link)
                .bind(&customer_id)
                .bind(&contact)
                .fetch_optional(&mut *$conn)
                .await
                .doing(doing)?;
            let needle = $crate::store::day2::history_needle(&$crate::store::day2::address(
                &customer_id,
                &contact,
            ));
            let last_change: Option<$crate::store::day2::LastChange> =
                sqlx::query_as($sql.last_change)
                    .bind(needle)
                    .bind($crate::store::day2::address(&customer_id, &contact).to_string())
                    .fetch_optional(&mut *$conn)
                    .await
                    .doing(doing)?;
            let link = link.map(|(expires_at, used, revoked, expired)| {
                let state = if used {
                    "used"
                } else if revoked {
                    "revoked"
                } else if expired {
                    "expired"
                } else {
                    "usable"
                };
                $crate::store::day2::LinkStatus {
                    state: state.into(),
                    expires_at,
                }
            });
            let runtime = $crate::store::day2::LoginRuntime {
                customer_id,
                contact,
                password_set,
                password_set_at,
                failed_attempts,
                locked_until,
                locked,
                last_login_at,
                notification,
                link,
                last_change,
            };
            Ok::<_, $crate::store::StoreError>(Some((runtime, access)))
        }
        .await
    };
}

/// Records a day-2 operation in history; evaluates to `Result<i64, StoreError>`.
macro_rules! insert_event {
    ($tx:expr, $sql:expr, $provenance:expr, $event:expr) => {
        async {
            use $crate::store::Doing as _;
            let event = $event;
            sqlx::query_scalar::<_, i64>($sql.insert_event)
                .bind(&$provenance.actor)
                .bind(&$provenance.git_commit)
                .bind(&event.summary)
                .bind(&event.changes)
                .bind(event.kind)
                .fetch_one(&mut *$tx)
                .await
                .doing("recording it in history")
        }
        .await
    };
}

/// Clears one login's lockout in the open transaction `$tx`; evaluates to
/// `Result<i64, StoreError>` (the history id).
macro_rules! unlock {
    ($tx:expr, $sql:expr, $email:expr, $provenance:expr) => {
        async {
            use $crate::store::Doing as _;
            let found = $crate::store::day2::login_runtime!($tx, $sql, $email)?;
            let runtime = $crate::store::day2::with_access(
                found,
                $email,
                "has no access; there is nothing to unlock",
            )?;
            sqlx::query($sql.unlock)
                .bind(&runtime.customer_id)
                .bind(&runtime.contact)
                .execute(&mut *$tx)
                .await
                .doing("clearing the lockout")?;
            let before = match (&runtime.locked_until, runtime.locked) {
                (Some(until), true) => format!(
                    "locked until {until}, {} failed attempts",
                    runtime.failed_attempts
                ),
                _ => format!("not locked, {} failed attempts", runtime.failed_attempts),
            };
            let field = $crate::plan::FieldChange {
                field: "lockout".into(),
                old: Some(before),
                new: Some("cleared".into()),
            };
            let address = $crate::store::day2::address(&runtime.customer_id, &runtime.contact);
            let event = $crate::store::day2::Event::new("unlock", &address, field);
            $crate::store::day2::insert_event!($tx, $sql, $provenance, event)
        }
        .await
    };
}

/// Queues a fresh new-access message for one login, revoking its older links and cancelling
/// what was still queued, in the open transaction `$tx`; evaluates to
/// `Result<i64, StoreError>` (the history id).
macro_rules! resend {
    ($tx:expr, $sql:expr, $email:expr, $provenance:expr) => {
        async {
            use $crate::store::Doing as _;
            let found = $crate::store::day2::login_runtime!($tx, $sql, $email)?;
            let runtime = $crate::store::day2::with_access(found, $email, "has no access; grant it in the manifests first (a new-access notification goes out when access is granted)")?;
            let (key, queued) = $crate::store::day2::resend_rows(&runtime, $email);
            for sql in [$sql.revoke_tokens, $sql.cancel_notifications] {
                sqlx::query(sql)
                    .bind(&key)
                    .execute(&mut *$tx)
                    .await
                    .doing("revoking older set-password links")?;
            }
            sqlx::query($sql.queue)
                .bind(&queued)
                .execute(&mut *$tx)
                .await
                .doing("queueing the notification")?;
            let field = $crate::plan::FieldChange {
                field: "notification".into(),
                old: None,
                new: Some("new-access notification with a fresh set-password link queued; older links revoked".into()),
            };
            let address = $crate::store::day2::address(&runtime.customer_id, &runtime.contact);
            let event = $crate::store::day2::Event::new("resend", &address, field);
            $crate::store::day2::insert_event!($tx, $sql, $provenance, event)
        }
        .await
    };
}

pub(crate) use {day2_sql, insert_event, login_runtime, resend, unlock};

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
        idempotency_key: super::rows::random_key(),
        customer_id: runtime.customer_id.clone(),
        contact: runtime.contact.clone(),
        email: email.to_string(),
        password_assigned: false,
    };
    (json(&[key]), json(&[queued]))
}
