//! The store's statements that are the same on both engines, written once as functions
//! generic over `sqlx::Database` (SQLite and PostgreSQL both take `$1` parameters). "Now"
//! is computed here once per operation and bound, never the database's clock, so both
//! engines and every instance agree on it. Rows are decoded by name.
//!
//! Rust does not carry a trait's where-clauses to the functions that use it, so each
//! function names what it needs of its engine: an executor on `&mut Connection`, and the
//! types it binds and reads.

use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};

use super::day2::{self, Event, LastChange, LinkStatus, LoginRuntime, NotificationStatus};
use super::rows::{ApplyRow, Snapshot};
use super::sql::{HistoryInsert, Step};
use super::{Doing as _, OutboxRow, StoreError};
use crate::history::{ApplyRecord, Provenance};
use crate::state::State;

/// Now, as the store writes times (`YYYY-MM-DDTHH:MM:SSZ`): the wall clock, whatever clock
/// a plan runs on (these are the times things happened).
fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// A time as the store writes it.
fn text(at: jiff::Timestamp) -> String {
    crate::clock::format(at)
}

/// `minutes` after `at`, as the store writes it.
fn after(at: jiff::Timestamp, minutes: i64) -> String {
    text(
        at.saturating_add(jiff::SignedDuration::from_mins(minutes))
            .unwrap_or(at),
    )
}

/// Runs steps on a connection or transaction, one statement per parameter.
///
/// # Errors
/// Database errors.
pub(crate) async fn run_steps<DB>(
    conn: &mut DB::Connection,
    steps: Vec<Step<'_>>,
) -> Result<(), StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    for step in steps {
        for param in step.params {
            sqlx::query(step.sql)
                .bind(param)
                .execute(&mut *conn)
                .await
                .doing(step.doing)?;
        }
    }
    Ok(())
}

/// Reads every managed row with the same SQL on both engines (`NOT standard` works on
/// SQLite integers and PostgreSQL booleans alike); the big tables come from each engine's
/// own fast read.
///
/// # Errors
/// Database errors; rows portico never writes.
pub(crate) async fn read_snapshot<DB>(
    conn: &mut DB::Connection,
    customers: super::rows::LiveCustomers,
) -> Result<State, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'r> super::rows::FeatureRow: FromRow<'r, DB::Row>,
    for<'r> super::rows::PolicyRow: FromRow<'r, DB::Row>,
    for<'r> super::rows::WebsiteRow: FromRow<'r, DB::Row>,
    for<'r> super::rows::RoleRow: FromRow<'r, DB::Row>,
    for<'r> super::rows::PermissionRow: FromRow<'r, DB::Row>,
    for<'r> super::rows::AccessPolicyRow: FromRow<'r, DB::Row>,
    for<'r> super::rows::ClientRow: FromRow<'r, DB::Row>,
    for<'r> super::rows::NotificationSettingsRow: FromRow<'r, DB::Row>,
{
    let doing = "reading the live state";
    let snapshot = Snapshot {
        features: sqlx::query_as("SELECT name, enabled FROM features")
            .fetch_all(&mut *conn)
            .await
            .doing(doing)?,
        login_policy: sqlx::query_as(
            "SELECT max_failed_attempts, lockout_minutes, session_timeout_minutes, password_min_length, session_max_hours
             FROM login_policy WHERE id = 1",
        )
        .fetch_optional(&mut *conn)
        .await
        .doing(doing)?,
        websites: sqlx::query_as("SELECT id, name, url FROM websites")
            .fetch_all(&mut *conn)
            .await
            .doing(doing)?,
        roles: sqlx::query_as(
            "SELECT id, name, base, standard, two_factor FROM roles WHERE NOT standard",
        )
        .fetch_all(&mut *conn)
        .await
        .doing(doing)?,
        role_permissions: sqlx::query_as(
            "SELECT p.role_id, p.permission, p.level FROM role_permissions p
             JOIN roles r ON r.id = p.role_id WHERE NOT r.standard",
        )
        .fetch_all(&mut *conn)
        .await
        .doing(doing)?,
        customers,
        policies: sqlx::query_as("SELECT id, message, rule FROM policies")
            .fetch_all(&mut *conn)
            .await
            .doing(doing)?,
        clients: sqlx::query_as(
            "SELECT id, name, website, redirect_uris, post_logout_redirect_uris, scopes, secret_marker,
                    secret_hash
             FROM oidc_clients",
        )
        .fetch_all(&mut *conn)
        .await
        .doing(doing)?,
        notification_settings: sqlx::query_as(
            "SELECT url, auth_env, smtp_url, smtp_username, smtp_password_env, from_address, reply_to, login_url, token_ttl_hours, max_attempts, template_subject, template_text, template_html,
                    reset_ttl_minutes, reset_subject, reset_text, reset_html
             FROM notification_settings WHERE id = 1",
        )
        .fetch_optional(&mut *conn)
        .await
        .doing(doing)?,
    };
    crate::progress::phase("into state", || snapshot.into_state())
}

/// The statements of `which` ([`super::Store::prepare_apply`]), those every apply runs
/// first: the same texts the apply runs (`writes`, [`INSERT_HISTORY`], `version`: the
/// engine's version check, [`super::finish::sql`]), so the prepared ones are those run.
pub(crate) fn apply_statements(
    which: super::ApplyStatements,
    writes: &super::sql::Writes,
    version: &'static str,
) -> Vec<sqlx::SqlStr> {
    use sqlx::SqlSafeStr as _;
    let mut statements = Vec::new();
    if let super::ApplyStatements::Index(counts) = which {
        let sql = super::finish::sql(counts, writes.together);
        statements.push(sqlx::AssertSqlSafe(sql).into_sql_str());
    }
    let rows = [
        version,
        INSERT_HISTORY,
        writes.upsert_logins,
        writes.queue_notifications,
        writes.upsert_customers,
        writes.insert_logins,
        writes.cancel_notifications,
        writes.insert_customers,
        writes.delete_customer_logins,
    ];
    statements.extend(rows.into_iter().map(|sql| sql.into_sql_str()));
    statements
}

/// An apply's history row, its id returned.
pub(crate) const INSERT_HISTORY: &str = "INSERT INTO applies
        (applied_at, actor, git_commit, manifests_digest, plan_digest, summary, changes, changes_z, clock)
     VALUES ($1, $2, $3, $4, $5, $6, '', $7, $8)
     RETURNING id";

/// Records an apply in history; returns its id.
///
/// # Errors
/// Database errors.
pub(crate) async fn insert_history<DB>(
    conn: &mut DB::Connection,
    history: &HistoryInsert,
) -> Result<i64, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
{
    let applied_at = text(now());
    let id: i64 = sqlx::query_scalar(INSERT_HISTORY)
        .bind(applied_at.as_str())
        .bind(history.actor.as_str())
        .bind(history.git_commit.as_deref())
        .bind(history.manifests_digest.as_str())
        .bind(history.plan_digest.as_str())
        .bind(history.summary.as_str())
        .bind(history.changes_z.as_slice())
        .bind(history.clock.as_deref())
        .fetch_one(&mut *conn)
        .await
        .doing("recording the apply in history")?;
    Ok(id)
}

/// Reads the apply history: every apply without its change list, or one apply in full.
///
/// # Errors
/// Database errors; unreadable history.
pub(crate) async fn read_history<DB>(
    conn: &mut DB::Connection,
    id: Option<i64>,
) -> Result<Vec<ApplyRecord>, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'r> ApplyRow: FromRow<'r, DB::Row>,
{
    let rows: Vec<ApplyRow> = match id {
        None => {
            sqlx::query_as(
                "SELECT id, kind, applied_at, actor, git_commit, clock, manifests_digest, plan_digest, summary, '' AS changes,
                        NULL AS changes_z
                 FROM applies ORDER BY id",
            )
            .fetch_all(&mut *conn)
            .await
        }
        Some(id) => {
            sqlx::query_as(
                "SELECT id, kind, applied_at, actor, git_commit, clock, manifests_digest, plan_digest, summary, changes,
                        changes_z
                 FROM applies WHERE id = $1",
            )
            .bind(id)
            .fetch_all(&mut *conn)
            .await
        }
    }
    .doing("reading the apply history")?;
    rows.into_iter().map(ApplyRow::into_record).collect()
}

/// Reads the outbox, oldest first. A message stores no email when it goes to its contact's
/// own address, and no idempotency key unless it was queued before migration 0024: its key
/// is then [`message_key`] of this store.
///
/// # Errors
/// Database errors.
pub(crate) async fn read_outbox<DB>(
    conn: &mut DB::Connection,
    pending_only: bool,
) -> Result<Vec<OutboxRow>, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'r> OutboxRow: FromRow<'r, DB::Row>,
    for<'r> (String,): FromRow<'r, DB::Row>,
{
    let doing = "reading the notification outbox";
    let store: Option<String> =
        sqlx::query_scalar("SELECT store FROM managed_changes WHERE id = 1")
            .fetch_optional(&mut *conn)
            .await
            .doing(doing)?;
    let mut rows: Vec<OutboxRow> = sqlx::query_as(
        "SELECT id, idempotency_key, created_at, customer_id, contact,
                coalesce(email, contact) AS email, password_assigned,
                CASE status WHEN 0 THEN 'pending' WHEN 1 THEN 'sent' WHEN 2 THEN 'cancelled' ELSE 'failed' END AS status,
                attempts, last_error, last_attempt_at, sent_at, next_attempt_at,
                CASE kind WHEN 1 THEN 'reset' ELSE 'new_access' END AS kind
         FROM notifications WHERE (NOT $1) OR status = 0 ORDER BY id",
    )
    .bind(pending_only)
    .fetch_all(&mut *conn)
    .await
    .doing(doing)?;
    let store = store.unwrap_or_default();
    for row in &mut rows {
        if row.idempotency_key.0.is_empty() {
            row.idempotency_key.0 = message_key(&store, row.id);
        }
    }
    Ok(rows)
}

/// The idempotency key of message `id` of `store` (its random id): the first 16 bytes of
/// SHA-256 over both, in hex. Unique in the store (ids are never reused: messages are never
/// deleted), the same at every attempt, and no clue to the store's id.
pub(crate) fn message_key(store: &str, id: i64) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("portico-message-v1\n{store}\n{id}").as_bytes());
    crate::state::hex(&digest[..16])
}

/// Revokes a login's set-password links that are still usable.
const REVOKE_OTHER_TOKENS: &str = "UPDATE set_password_tokens SET revoked_at = $3
    WHERE customer_id = $1 AND contact = $2 AND used_at IS NULL AND revoked_at IS NULL";

/// Stores a set-password token hash for a message's login, revoking the login's other
/// outstanding links in the same transaction (one valid link per login at a time); returns
/// its expiry.
///
/// # Errors
/// Database errors.
async fn issue_token<DB>(
    conn: &mut DB::Connection,
    message: &OutboxRow,
    token_hash: &str,
    ttl_minutes: u32,
) -> Result<String, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
{
    use sqlx::Connection as _;
    let doing = "storing a set-password link";
    let at = now();
    let expires = after(at, i64::from(ttl_minutes));
    let mut tx = conn.begin().await.doing(doing)?;
    sqlx::query(REVOKE_OTHER_TOKENS)
        .bind(message.customer_id.as_str())
        .bind(message.contact.as_str())
        .bind(text(at).as_str())
        .execute(&mut *tx)
        .await
        .doing("revoking a login's earlier set-password links")?;
    sqlx::query(
        "INSERT INTO set_password_tokens (token_hash, notification_id, customer_id, contact, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash)
    .bind(message.id)
    .bind(message.customer_id.as_str())
    .bind(message.contact.as_str())
    .bind(expires.as_str())
    .execute(&mut *tx)
    .await
    .doing(doing)?;
    tx.commit().await.doing(doing)?;
    Ok(expires)
}

/// How long a claimed message stays claimed by the run that claimed it.
const CLAIM_MINUTES: i64 = 10;

/// Claims a pending message for delivery; returns whether this run got it.
///
/// # Errors
/// Database errors.
async fn claim<DB>(conn: &mut DB::Connection, id: i64) -> Result<bool, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
{
    let at = now();
    let claimed: Option<i64> = sqlx::query_scalar(
        "UPDATE notifications SET claimed_until = $2
         WHERE id = $1 AND status = 0 AND (claimed_until IS NULL OR claimed_until <= $3)
         RETURNING id",
    )
    .bind(id)
    .bind(after(at, CLAIM_MINUTES).as_str())
    .bind(text(at).as_str())
    .fetch_optional(&mut *conn)
    .await
    .doing("claiming a notification")?;
    Ok(claimed.is_some())
}

/// Releases a claimed message: back to pending, or failed for good.
///
/// # Errors
/// Database errors.
async fn release<DB>(conn: &mut DB::Connection, id: i64, failed: bool) -> Result<(), StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
{
    sqlx::query(
        "UPDATE notifications SET claimed_until = NULL,
            status = CASE WHEN $2 THEN 3 ELSE status END WHERE id = $1",
    )
    .bind(id)
    .bind(failed)
    .execute(&mut *conn)
    .await
    .doing("releasing a notification")?;
    Ok(())
}

/// Puts every failed message back in the queue; returns how many.
///
/// # Errors
/// Database errors.
pub(crate) async fn requeue_failed<DB>(conn: &mut DB::Connection) -> Result<u64, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
{
    let ids: Vec<i64> = sqlx::query_scalar(
        "UPDATE notifications SET status = 0, attempts = 0, claimed_until = NULL,
            next_attempt_at = NULL WHERE status = 3 RETURNING id",
    )
    .fetch_all(&mut *conn)
    .await
    .doing("re-queueing failed notifications")?;
    Ok(ids.len() as u64)
}

/// Records one delivery attempt: sent when `error` is `None`; a failure waits before the
/// next try, twice as long after each (1 minute, 2, 4, … up to 256).
///
/// # Errors
/// Database errors.
async fn record_attempt<DB>(
    conn: &mut DB::Connection,
    id: i64,
    error: Option<&str>,
) -> Result<(), StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
{
    let doing = "recording a delivery attempt";
    let at = now();
    let Some(error) = error else {
        sqlx::query(
            "UPDATE notifications SET status = 1, attempts = attempts + 1, last_error = NULL,
                claimed_until = NULL, last_attempt_at = $2, sent_at = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(text(at).as_str())
        .execute(&mut *conn)
        .await
        .doing(doing)?;
        return Ok(());
    };
    // The count and the time of the next try change together, or neither does.
    let mut tx = sqlx::Connection::begin(&mut *conn).await.doing(doing)?;
    let made: Option<i64> = sqlx::query_scalar(
        "UPDATE notifications SET attempts = attempts + 1, last_error = $2, last_attempt_at = $3
         WHERE id = $1 RETURNING attempts",
    )
    .bind(id)
    .bind(error)
    .bind(text(at).as_str())
    .fetch_optional(&mut *tx)
    .await
    .doing(doing)?;
    if let Some(made) = made {
        let wait = 1_i64 << (made - 1).clamp(0, 8);
        sqlx::query("UPDATE notifications SET next_attempt_at = $2 WHERE id = $1")
            .bind(id)
            .bind(after(at, wait).as_str())
            .execute(&mut *tx)
            .await
            .doing(doing)?;
    }
    tx.commit().await.doing(doing)?;
    Ok(())
}

/// Stores each token ([`issue_token`]) in one transaction: one commit for a batch.
///
/// # Errors
/// Database errors (nothing is stored then).
pub(crate) async fn issue_tokens<DB>(
    conn: &mut DB::Connection,
    tokens: &[super::NewToken<'_>],
) -> Result<Vec<String>, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
{
    use sqlx::Connection as _;
    let doing = "storing set-password links";
    let mut tx = conn.begin().await.doing(doing)?;
    let mut expiries = Vec::with_capacity(tokens.len());
    for token in tokens {
        expiries.push(
            issue_token::<DB>(&mut tx, token.message, &token.token_hash, token.ttl_minutes).await?,
        );
    }
    tx.commit().await.doing(doing)?;
    Ok(expiries)
}

/// Claims each message ([`claim`]) in one transaction; returns the ids claimed.
///
/// # Errors
/// Database errors (nothing is claimed then).
pub(crate) async fn claim_many<DB>(
    conn: &mut DB::Connection,
    ids: &[i64],
) -> Result<Vec<i64>, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
{
    use sqlx::Connection as _;
    let doing = "claiming notifications";
    let mut tx = conn.begin().await.doing(doing)?;
    let mut claimed = Vec::with_capacity(ids.len());
    for &id in ids {
        if claim::<DB>(&mut tx, id).await? {
            claimed.push(id);
        }
    }
    tx.commit().await.doing(doing)?;
    Ok(claimed)
}

/// Records each message's attempts ([`record_attempt`]) and release ([`release`]) in one
/// transaction.
///
/// # Errors
/// Database errors (nothing is recorded then; the claims expire and the messages are tried
/// again).
pub(crate) async fn record_results<DB>(
    conn: &mut DB::Connection,
    results: &[super::Settled],
) -> Result<(), StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
{
    use sqlx::Connection as _;
    let doing = "recording delivery attempts";
    let mut tx = conn.begin().await.doing(doing)?;
    for result in results {
        for attempt in &result.attempts {
            record_attempt::<DB>(&mut tx, result.id, attempt.as_deref()).await?;
        }
        if let Some(failed) = result.release {
            release::<DB>(&mut tx, result.id, failed).await?;
        }
    }
    tx.commit().await.doing(doing)
}

from_row! {
    /// A set-password token and what it is for, as `redeem` reads it.
    pub(crate) struct TokenRow {
        customer_id: String,
        contact: String,
        email: Option<String>,
        used: bool,
        revoked: bool,
        expired: bool,
        access: bool,
    }
}

/// Redeems a set-password token inside the open transaction `tx`: checks it, stores the
/// new hash, uses the token, revokes the login's other tokens and ends its sessions.
/// Returns the login's email.
///
/// # Errors
/// [`StoreError::Token`] for a link that cannot be used (nothing changes); database errors.
pub(crate) async fn redeem<DB>(
    tx: &mut DB::Connection,
    token_hash: &str,
    password_hash: &str,
) -> Result<String, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'r> (String,): FromRow<'r, DB::Row>,
    for<'r> TokenRow: FromRow<'r, DB::Row>,
{
    let doing = "redeeming a set-password link";
    let now = text(now());
    // Claim first: the UPDATE changes a row for exactly one of two concurrent redeems.
    let claimed: Option<String> = sqlx::query_scalar(
        "UPDATE set_password_tokens SET used_at = $2 WHERE token_hash = $1
            AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2
         RETURNING token_hash",
    )
    .bind(token_hash)
    .bind(now.as_str())
    .fetch_optional(&mut *tx)
    .await
    .doing(doing)?;
    let claimed = claimed.is_some();
    let row: Option<TokenRow> = sqlx::query_as(
        "SELECT t.customer_id, t.contact, l.email, t.used_at IS NOT NULL AS used,
                t.revoked_at IS NOT NULL AS revoked, t.expires_at <= $2 AS expired,
                COALESCE(l.access, 1 = 0) AS access
         FROM set_password_tokens t
         LEFT JOIN logins l ON l.customer_id = t.customer_id AND l.contact = t.contact
         WHERE t.token_hash = $1",
    )
    .bind(token_hash)
    .bind(now.as_str())
    .fetch_optional(&mut *tx)
    .await
    .doing(doing)?;
    let Some(row) = row else {
        return Err(StoreError::Token("this link is not valid".into()));
    };
    if let Some(reason) = token_refusal(&row, claimed) {
        return Err(StoreError::Token(reason.into()));
    }
    sqlx::query(
        "UPDATE logins SET password_hash = $1, password_set_at = $4, failed_attempts = 0,
            locked_until = NULL WHERE customer_id = $2 AND contact = $3",
    )
    .bind(password_hash)
    .bind(row.customer_id.as_str())
    .bind(row.contact.as_str())
    .bind(now.as_str())
    .execute(&mut *tx)
    .await
    .doing(doing)?;
    sqlx::query(REVOKE_OTHER_TOKENS)
        .bind(row.customer_id.as_str())
        .bind(row.contact.as_str())
        .bind(now.as_str())
        .execute(&mut *tx)
        .await
        .doing(doing)?;
    // A password set ends the login's sessions (DESIGN §10.2).
    sqlx::query("DELETE FROM sessions WHERE customer_id = $1 AND contact = $2")
        .bind(row.customer_id.as_str())
        .bind(row.contact.as_str())
        .execute(&mut *tx)
        .await
        .doing(doing)?;
    Ok(row.email.unwrap_or_default())
}

/// Why a token cannot be used, when it cannot (`claimed`: this redeem used it just now).
fn token_refusal(row: &TokenRow, claimed: bool) -> Option<&'static str> {
    if !claimed && row.used {
        Some("this link was already used")
    } else if row.revoked {
        Some("this link was revoked")
    } else if !claimed && row.expired {
        Some("this link has expired")
    } else if !claimed {
        Some("this link was already used")
    } else if !row.access {
        Some("this login has no access")
    } else {
        None
    }
}

from_row! {
    /// A login as the day-2 operations find it by email.
    pub(crate) struct FoundLogin {
        customer_id: String,
        contact: String,
        access: bool,
        password_set: bool,
        password_set_at: Option<String>,
        failed_attempts: i64,
        locked_until: Option<String>,
        locked: bool,
        last_login_at: Option<String>,
    }
}

/// The newest history entry naming a login: the apply that last wrote the object, or a
/// later day-2 event naming it (events keep their one change as plain JSON; applies before
/// migration 0008 too). "Contains" is written with `replace`, which both engines have.
const LAST_CHANGE: &str = "SELECT id, kind, applied_at, actor, git_commit FROM applies
    WHERE id = (SELECT max(x) FROM (
        SELECT id AS x FROM applies
        WHERE changes_z IS NULL AND length(replace(changes, $1, '')) < length(changes)
        UNION ALL
        SELECT applied_apply_id AS x FROM logins WHERE customer_id = $2 AND contact = $3
    ) AS t)";

from_row! {
    /// A login's newest set-password link.
    pub(crate) struct LinkRow {
        expires_at: String,
        used: bool,
        revoked: bool,
        expired: bool,
    }
}

/// Reads everything `access` shows beyond the managed state, and whether the login has
/// access; `None` when no login has the email.
///
/// # Errors
/// Database errors.
pub(crate) async fn login_runtime<DB>(
    conn: &mut DB::Connection,
    email: &str,
) -> Result<Option<(LoginRuntime, bool)>, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'r> FoundLogin: FromRow<'r, DB::Row>,
    for<'r> LinkRow: FromRow<'r, DB::Row>,
    for<'r> NotificationStatus: FromRow<'r, DB::Row>,
    for<'r> LastChange: FromRow<'r, DB::Row>,
{
    let doing = "reading a login";
    let now = text(now());
    let found: Option<FoundLogin> = sqlx::query_as(
        "SELECT customer_id, contact, access, password_hash IS NOT NULL AS password_set,
                password_set_at, failed_attempts, locked_until,
                COALESCE(locked_until > $2, 1 = 0) AS locked, last_login_at
         FROM logins WHERE email = $1",
    )
    .bind(email)
    .bind(now.as_str())
    .fetch_optional(&mut *conn)
    .await
    .doing(doing)?;
    let Some(found) = found else {
        return Ok(None);
    };
    let (customer_id, contact) = (found.customer_id.as_str(), found.contact.as_str());
    let notification: Option<NotificationStatus> = sqlx::query_as(
        "SELECT CASE status WHEN 0 THEN 'pending' WHEN 1 THEN 'sent' WHEN 2 THEN 'cancelled' ELSE 'failed' END AS status, created_at, sent_at, attempts, last_error FROM notifications
         WHERE customer_id = $1 AND contact = $2 ORDER BY id DESC LIMIT 1",
    )
    .bind(customer_id)
    .bind(contact)
    .fetch_optional(&mut *conn)
    .await
    .doing(doing)?;
    let link: Option<LinkRow> = sqlx::query_as(
        "SELECT expires_at, used_at IS NOT NULL AS used, revoked_at IS NOT NULL AS revoked,
                expires_at <= $3 AS expired
         FROM set_password_tokens WHERE customer_id = $1 AND contact = $2
         ORDER BY expires_at DESC, notification_id DESC LIMIT 1",
    )
    .bind(customer_id)
    .bind(contact)
    .bind(now.as_str())
    .fetch_optional(&mut *conn)
    .await
    .doing(doing)?;
    let address = day2::address(customer_id, contact);
    let needle = day2::history_needle(&address);
    let last_change: Option<LastChange> = sqlx::query_as(LAST_CHANGE)
        .bind(needle.as_str())
        .bind(customer_id)
        .bind(contact)
        .fetch_optional(&mut *conn)
        .await
        .doing(doing)?;
    let runtime = LoginRuntime {
        customer_id: found.customer_id,
        contact: found.contact,
        password_set: found.password_set,
        password_set_at: found.password_set_at,
        failed_attempts: found.failed_attempts,
        locked_until: found.locked_until,
        locked: found.locked,
        last_login_at: found.last_login_at,
        notification,
        link: link.map(link_status),
        last_change,
    };
    Ok(Some((runtime, found.access)))
}

/// How a link stands, in a word.
fn link_status(link: LinkRow) -> LinkStatus {
    let state = if link.used {
        "used"
    } else if link.revoked {
        "revoked"
    } else if link.expired {
        "expired"
    } else {
        "usable"
    };
    LinkStatus {
        state: state.into(),
        expires_at: link.expires_at,
    }
}

/// Records a day-2 operation in history; returns its id.
///
/// # Errors
/// Database errors.
async fn insert_event<DB>(
    tx: &mut DB::Connection,
    provenance: &Provenance,
    event: &Event,
) -> Result<i64, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
{
    let applied_at = text(now());
    sqlx::query_scalar(
        "INSERT INTO applies
            (applied_at, actor, git_commit, manifests_digest, plan_digest, summary, changes, kind)
         VALUES ($1, $2, $3, '-', '-', $4, $5, $6)
         RETURNING id",
    )
    .bind(applied_at.as_str())
    .bind(provenance.actor.as_str())
    .bind(provenance.git_commit.as_deref())
    .bind(event.summary.as_str())
    .bind(event.changes.as_str())
    .bind(event.kind)
    .fetch_one(&mut *tx)
    .await
    .doing("recording it in history")
}

/// A day-2 operation on one login.
pub(crate) enum Day2Op<'a> {
    /// Clears the lockout.
    Unlock,
    /// Queues a fresh new-access message, revoking older links and cancelling what was
    /// still queued.
    Resend(&'a ResendSql),
}

/// Runs a day-2 operation on the login with `email` in the open transaction `tx`, recorded
/// in history; returns the history id.
///
/// # Errors
/// [`StoreError::UnknownLogin`] / [`StoreError::Refused`] (nothing changes); database errors.
pub(crate) async fn day2_op<DB>(
    tx: &mut DB::Connection,
    email: &str,
    provenance: &Provenance,
    op: Day2Op<'_>,
) -> Result<i64, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> FoundLogin: FromRow<'r, DB::Row>,
    for<'r> LinkRow: FromRow<'r, DB::Row>,
    for<'r> NotificationStatus: FromRow<'r, DB::Row>,
    for<'r> LastChange: FromRow<'r, DB::Row>,
{
    let found = login_runtime::<DB>(tx, email).await?;
    let why = match op {
        Day2Op::Unlock => "has no access; there is nothing to unlock",
        Day2Op::Resend(_) => {
            "has no access; grant it in the manifests first (a new-access notification goes out when access is granted)"
        }
    };
    let runtime = day2::with_access(found, email, why)?;
    let event = match op {
        Day2Op::Unlock => {
            sqlx::query(
                "UPDATE logins SET failed_attempts = 0, locked_until = NULL
                 WHERE customer_id = $1 AND contact = $2",
            )
            .bind(runtime.customer_id.as_str())
            .bind(runtime.contact.as_str())
            .execute(&mut *tx)
            .await
            .doing("clearing the lockout")?;
            day2::unlock_event(&runtime)
        }
        Day2Op::Resend(sql) => {
            let (key, queued) = day2::resend_rows(&runtime, email);
            let at = text(now());
            // The apply's statements: the revoke and the queue take the time as `$2`.
            sqlx::query(sql.revoke_tokens)
                .bind(key.as_str())
                .bind(at.as_str())
                .execute(&mut *tx)
                .await
                .doing("revoking older set-password links")?;
            sqlx::query(sql.cancel_notifications)
                .bind(key.as_str())
                .execute(&mut *tx)
                .await
                .doing("cancelling queued notifications")?;
            sqlx::query(sql.queue)
                .bind(queued.as_str())
                .bind(at.as_str())
                .execute(&mut *tx)
                .await
                .doing("queueing the notification")?;
            day2::resend_event(&runtime)
        }
    };
    insert_event::<DB>(tx, provenance, &event).await
}

/// The statements a resend runs that each engine writes its own way (JSON batches).
pub(crate) struct ResendSql {
    pub revoke_tokens: &'static str,
    pub cancel_notifications: &'static str,
    pub queue: &'static str,
}

/// Which write of which store the live state is (`managed_changes`, raised by triggers on
/// every write to a managed column).
///
/// # Errors
/// Database errors.
pub(crate) async fn read_version<DB>(
    conn: &mut DB::Connection,
) -> Result<crate::state::LiveVersion, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'r> (String, i64): FromRow<'r, DB::Row>,
{
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT store, n FROM managed_changes WHERE id = 1")
            .fetch_optional(&mut *conn)
            .await
            .doing("reading the live state's version")?;
    Ok(crate::state::LiveVersion(row))
}

/// An apply's first read (`sql`, the engine's `READ_VERSION_FOR_APPLY`): the live state's
/// version, and whether the standard roles are this build's and untouched: the last apply
/// wrote these same rows (their digest) and left the write count where it is (every write
/// to `roles` and `role_permissions` raises it). When they are not, the apply writes them
/// (`sql::standard_role_steps`).
///
/// # Errors
/// Database errors.
pub(crate) async fn read_version_for_apply<DB>(
    conn: &mut DB::Connection,
    sql: &'static str,
) -> Result<(crate::state::LiveVersion, bool), StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'r> (String, i64, Option<bool>): FromRow<'r, DB::Row>,
{
    let row: Option<(String, i64, Option<bool>)> = sqlx::query_as(sql)
        .bind(super::sql::standard_roles_digest())
        .fetch_optional(&mut *conn)
        .await
        .doing("reading the live state's version")?;
    let roles_current = row
        .as_ref()
        .is_some_and(|(.., current)| *current == Some(true));
    let version = crate::state::LiveVersion(row.map(|(store, n, _)| (store, n)));
    Ok((version, roles_current))
}

/// The plan index the last apply recorded, with the write count it left; `None` when there
/// is none (or it does not read).
///
/// # Errors
/// Database errors.
pub(crate) async fn read_index<DB>(
    conn: &mut DB::Connection,
) -> Result<Option<(i64, Option<crate::state::PlanIndex>)>, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'r> (i64, Vec<u8>): FromRow<'r, DB::Row>,
{
    let doing = "reading the plan index";
    let row: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT changes, body FROM plan_index WHERE id = 1")
            .fetch_optional(&mut *conn)
            .await
            .doing(doing)?;
    let Some((changes, body)) = row else {
        return Ok(None);
    };
    // The pages of its list are read later, only those a plan opens.
    Ok(Some((changes, crate::state::PlanIndex::from_stored(&body))))
}

/// The index an apply records, made and sealed ([`crate::state::SealingIndex::bytes`]);
/// `None` without one, or when it could not be made (the index is then removed).
pub(crate) async fn sealed(
    index: Option<crate::state::SealingIndex>,
) -> Option<(crate::state::Sealed, crate::state::FileWrites)> {
    match index {
        Some(index) => index.bytes().await,
        None => None,
    }
}

/// Ends an apply's writes: raises the write count once (whatever the triggers counted),
/// records that the standard roles are this build's as of that count, and records the plan
/// index `made` ([`sealed`]; counting the logins the apply leaves) with the count left, or
/// removes the old one when there is none (this apply did not leave the database as its
/// files describe, or the index could not be made).
/// Returns the messages still to deliver, counted up to `pending` (a larger outbox answers
/// `pending`), asked in the same statement as the write count.
///
/// # Errors
/// Database errors.
pub(crate) async fn finish_apply<DB>(
    conn: &mut DB::Connection,
    (made, pending): (
        Option<(crate::state::Sealed, crate::state::FileWrites)>,
        u64,
    ),
    sql: &super::sql::Writes,
) -> Result<u64, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q [u8]>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'r> (i64, i64): FromRow<'r, DB::Row>,
{
    let doing = "recording the plan index";
    let pending = i64::try_from(pending).unwrap_or(i64::MAX);
    // An everyday apply's few writes go in one round trip.
    if let Some(in_one) = made
        .as_ref()
        .and_then(|(sealed, rows)| super::finish::InOne::of(sealed, rows))
    {
        let waiting = in_one.run::<DB>(conn, pending, sql.together).await?;
        return Ok(waiting.unsigned_abs());
    }
    // The standard roles are as this apply leaves them: as written now, or as the last
    // apply wrote them with nothing written since.
    let (n, waiting): (i64, i64) = sqlx::query_as(super::finish::RAISE)
        .bind(super::sql::standard_roles_digest())
        .bind(pending)
        .fetch_one(&mut *conn)
        .await
        .doing(doing)?;
    match made {
        Some((sealed, rows)) => {
            write_index::<DB>(conn, &sealed, n).await?;
            write_files::<DB>(conn, &rows, sql).await?;
        }
        None => {
            for sql in [
                "DELETE FROM plan_index",
                "DELETE FROM plan_index_pages",
                "DELETE FROM plan_index_files",
            ] {
                sqlx::query(sql).execute(&mut *conn).await.doing(doing)?;
            }
        }
    }
    Ok(waiting.unsigned_abs())
}

/// Rows of the plan index's files written per statement: a JSON list of about 1 MB.
const FILE_ROWS_PER_STATEMENT: usize = 5_000;

/// Up to this many rows of the plan index's files are written one statement each.
const FILE_ROWS_ONE_BY_ONE: usize = 32;

/// Writes the files' rows recorded beside an index (see [`crate::state::FileWrites`]), a few
/// thousand per statement (one statement per row took ten seconds for 100,000 files).
///
/// # Errors
/// Database errors.
pub(crate) async fn write_files<DB>(
    conn: &mut DB::Connection,
    writes: &crate::state::FileWrites,
    sql: &super::sql::Writes,
) -> Result<(), StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q [u8]>: Encode<'q, DB> + Type<DB>,
{
    #[derive(serde::Serialize)]
    struct Row<'a> {
        path: &'a str,
        digest: &'a str,
        ids: String,
        groups: Option<String>,
    }
    let doing = "recording the plan index";
    if writes.all {
        sqlx::query("DELETE FROM plan_index_files")
            .execute(&mut *conn)
            .await
            .doing(doing)?;
    } else {
        // A row rewritten is replaced by the insert; only those of files gone are deleted.
        let rewritten: std::collections::BTreeSet<&str> =
            writes.rows.iter().map(|(path, ..)| path.as_str()).collect();
        let gone: Vec<&str> = writes
            .gone
            .iter()
            .map(String::as_str)
            .filter(|p| !rewritten.contains(p))
            .collect();
        for chunk in gone.chunks(FILE_ROWS_PER_STATEMENT) {
            let json = serde_json::to_string(chunk).expect("paths serialise");
            sqlx::query(sql.delete_index_files)
                .bind(json.as_str())
                .execute(&mut *conn)
                .await
                .doing(doing)?;
        }
    }
    if writes.rows.len() <= FILE_ROWS_ONE_BY_ONE
        && let Some(digests) = writes
            .rows
            .iter()
            .map(|(_, digest, ..)| hex::decode(digest).ok())
            .collect::<Option<Vec<Vec<u8>>>>()
    {
        return write_file_rows_one_by_one::<DB>(conn, &writes.rows, &digests).await;
    }
    for chunk in writes.rows.chunks(FILE_ROWS_PER_STATEMENT) {
        let rows: Vec<Row<'_>> = chunk
            .iter()
            .map(|(path, digest, ids, groups)| Row {
                path,
                digest,
                ids: crate::state::hex(ids),
                groups: groups.as_deref().map(crate::state::hex),
            })
            .collect();
        let json = serde_json::to_string(&rows).expect("rows serialise");
        sqlx::query(sql.upsert_index_files)
            .bind(json.as_str())
            .execute(&mut *conn)
            .await
            .doing(doing)?;
    }
    Ok(())
}

/// [`write_files`] for a few rows (an everyday apply rewrites a few files'): each in its own
/// statement, its blobs bound as bytes. Through the JSON list, the blobs of one file of 5,000
/// customers (35 KB) went as 70 KB of hex, and SQLite took 0.8 ms to parse and unhex them, a
/// twentieth of a 10-login plan.
async fn write_file_rows_one_by_one<DB>(
    conn: &mut DB::Connection,
    rows: &[crate::state::FileRow],
    digests: &[Vec<u8>],
) -> Result<(), StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q [u8]>: Encode<'q, DB> + Type<DB>,
{
    for ((path, _, ids, groups), digest) in rows.iter().zip(digests) {
        sqlx::query(
            "INSERT INTO plan_index_files (path, digest, ids, groups) VALUES ($1, $2, $3, $4)
             ON CONFLICT (path) DO UPDATE
             SET digest = excluded.digest, ids = excluded.ids, groups = excluded.groups",
        )
        .bind(path.as_str())
        .bind(digest.as_slice())
        .bind(ids.as_slice())
        .bind(groups.as_deref())
        .execute(&mut *conn)
        .await
        .doing("recording the plan index")?;
    }
    Ok(())
}

/// Records a sealed plan index as left at write count `n`, in place of any other: its own
/// bytes, and the pages of its list that changed (one statement a page: a few for an
/// everyday apply, a few hundred for 100,000 files).
///
/// # Errors
/// Database errors.
pub(crate) async fn write_index<DB>(
    conn: &mut DB::Connection,
    sealed: &crate::state::Sealed,
    n: i64,
) -> Result<(), StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
{
    let doing = "recording the plan index";
    sqlx::query(
        "INSERT INTO plan_index (id, changes, body) VALUES (1, $1, $2)
         ON CONFLICT (id) DO UPDATE SET changes = excluded.changes, body = excluded.body",
    )
    .bind(n)
    .bind(sealed.body.as_slice())
    .execute(&mut *conn)
    .await
    .doing(doing)?;
    if sealed.all {
        sqlx::query("DELETE FROM plan_index_pages")
            .execute(&mut *conn)
            .await
            .doing(doing)?;
    }
    for first in &sealed.gone {
        sqlx::query("DELETE FROM plan_index_pages WHERE first = $1")
            .bind(first.as_str())
            .execute(&mut *conn)
            .await
            .doing(doing)?;
    }
    for (first, body) in &sealed.pages {
        sqlx::query(
            "INSERT INTO plan_index_pages (first, body) VALUES ($1, $2)
             ON CONFLICT (first) DO UPDATE SET body = excluded.body",
        )
        .bind(first.as_str())
        .bind(body.as_slice())
        .execute(&mut *conn)
        .await
        .doing(doing)?;
    }
    Ok(())
}

/// Records the plan index of an apply with nothing to change, when nothing was written since
/// its plan was read (`fingerprint`); otherwise leaves the index as it is.
///
/// # Errors
/// Database errors.
pub(crate) async fn record_index<DB>(
    conn: &mut DB::Connection,
    index: &crate::state::PlanIndex,
    fingerprint: &str,
    sql: &super::sql::Writes,
) -> Result<(), StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q [u8]>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> (String, i64): FromRow<'r, DB::Row>,
{
    let version = read_version::<DB>(conn).await?;
    match version.changes() {
        Some(n) if version.fingerprint() == fingerprint => {
            write_index::<DB>(conn, &index.seal(), n).await?;
            write_files::<DB>(conn, &index.rows, sql).await
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_message_key_is_the_same_for_its_message_and_differs_for_any_other() {
        let key = super::message_key("0a1b", 7);
        assert_eq!(key.len(), 32);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(key, super::message_key("0a1b", 7));
        assert_ne!(key, super::message_key("0a1b", 8));
        assert_ne!(key, super::message_key("0a1c", 7));
        // Nothing of the store's id shows in it.
        assert!(!key.contains("0a1b"));
    }
}
