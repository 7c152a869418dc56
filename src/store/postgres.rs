//! The PostgreSQL store (`postgres://…`): same behaviour as SQLite; plan reads in a
//! read-only transaction, apply serialises on an advisory lock.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use super::rows::Batches;
use super::sql::{Writes, read_snapshot, run_steps, standard_role_steps, steps};
use super::{Doing, OpenOptions, Store, StoreError, redact_url};
use crate::plan::Plan;
use crate::state::State;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Advisory-lock key shared by every portico apply on a database ("portico" in ASCII).
const APPLY_LOCK: i64 = 0x0070_6f72_7469_636f;

/// A PostgreSQL database.
pub struct PostgresStore {
    conn: PgConnection,
    lock_timeout: Duration,
}

impl PostgresStore {
    /// Connects. The password in the URL never appears in errors.
    ///
    /// # Errors
    /// [`StoreError::Connect`] when the URL is malformed or the server refuses.
    pub async fn open(url: &str, opts: &OpenOptions) -> Result<PostgresStore, StoreError> {
        let connect_error = |source| StoreError::Connect {
            url: redact_url(url),
            source,
        };
        let options = PgConnectOptions::from_str(url)
            .map_err(connect_error)?
            .application_name("portico");
        let conn = PgConnection::connect_with(&options)
            .await
            .map_err(connect_error)?;
        Ok(PostgresStore {
            conn,
            lock_timeout: opts.busy_timeout,
        })
    }
}

impl Store for PostgresStore {
    async fn init(&mut self) -> Result<(), StoreError> {
        MIGRATOR.run(&mut self.conn).await?;
        let mut tx = self.conn.begin().await.doing("starting a transaction")?;
        run_steps!(tx, standard_role_steps(&WRITES));
        tx.commit().await.doing("committing")
    }

    async fn read(&mut self) -> Result<State, StoreError> {
        let mut tx = self
            .conn
            .begin_with("BEGIN READ ONLY")
            .await
            .doing("starting a read-only transaction")?;
        let state = if schema_ready(&mut tx).await? {
            read_snapshot!(tx)?
        } else {
            State::empty()
        };
        tx.rollback()
            .await
            .doing("ending the read-only transaction")?;
        Ok(state)
    }

    async fn apply(&mut self, plan: &Plan, fingerprint: &str) -> Result<(), StoreError> {
        MIGRATOR.run(&mut self.conn).await?;
        let mut tx = self.conn.begin().await.doing("starting a transaction")?;
        let timeout = format!("{}ms", self.lock_timeout.as_millis());
        sqlx::query("SELECT set_config('lock_timeout', $1, true)")
            .bind(timeout)
            .execute(&mut *tx)
            .await
            .doing("setting the lock timeout")?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(APPLY_LOCK)
            .execute(&mut *tx)
            .await
            .doing("taking the apply lock")?;
        let live: State = read_snapshot!(tx)?;
        if live.fingerprint() != fingerprint {
            return Err(StoreError::Stale);
        }
        run_steps!(tx, standard_role_steps(&WRITES));
        run_steps!(tx, steps(&WRITES, &Batches::from_plan(plan)));
        tx.commit().await.doing("committing")
    }
}

/// Whether portico's schema is there and current; a newer schema is an error.
async fn schema_ready(conn: &mut PgConnection) -> Result<bool, StoreError> {
    let has_table: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .doing("checking the schema")?;
    if !has_table {
        return Ok(false);
    }
    let found: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut *conn)
            .await
            .doing("checking the schema")?;
    let known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    match found {
        Some(found) if found > known => Err(StoreError::TooNew { found, known }),
        Some(found) => Ok(found == known),
        None => Ok(false),
    }
}

const WRITES: Writes = Writes {
    upsert_features: "INSERT INTO features (name, enabled)
        SELECT e->>'name', (e->>'enabled')::boolean FROM jsonb_array_elements($1::jsonb) AS e
        ON CONFLICT (name) DO UPDATE SET enabled = excluded.enabled",
    upsert_login_policy: "INSERT INTO login_policy
        (id, max_failed_attempts, lockout_minutes, session_timeout_minutes, password_min_length)
        SELECT 1, (e->>'max_failed_attempts')::bigint, (e->>'lockout_minutes')::bigint,
               (e->>'session_timeout_minutes')::bigint, (e->>'password_min_length')::bigint
        FROM jsonb_array_elements($1::jsonb) AS e
        ON CONFLICT (id) DO UPDATE SET max_failed_attempts = excluded.max_failed_attempts,
            lockout_minutes = excluded.lockout_minutes,
            session_timeout_minutes = excluded.session_timeout_minutes,
            password_min_length = excluded.password_min_length",
    upsert_websites: "INSERT INTO websites (id, name, url)
        SELECT e->>'id', e->>'name', e->>'url' FROM jsonb_array_elements($1::jsonb) AS e
        ON CONFLICT (id) DO UPDATE SET name = excluded.name, url = excluded.url",
    delete_websites: "DELETE FROM websites WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb))",
    upsert_roles: "INSERT INTO roles (id, name, base, standard, two_factor)
        SELECT e->>'id', e->>'name', e->>'base', (e->>'standard')::boolean, e->>'two_factor'
        FROM jsonb_array_elements($1::jsonb) AS e
        ON CONFLICT (id) DO UPDATE SET name = excluded.name, base = excluded.base,
            standard = excluded.standard, two_factor = excluded.two_factor",
    delete_role_permissions: "DELETE FROM role_permissions
        WHERE role_id IN (SELECT jsonb_array_elements_text($1::jsonb))",
    insert_role_permissions: "INSERT INTO role_permissions (role_id, permission, level)
        SELECT e->>'role_id', e->>'permission', e->>'level' FROM jsonb_array_elements($1::jsonb) AS e",
    delete_roles: "DELETE FROM roles WHERE NOT standard AND id IN (SELECT jsonb_array_elements_text($1::jsonb))",
    delete_logins: "DELETE FROM logins WHERE (customer_id, contact) IN
        (SELECT e->>'customer_id', e->>'contact' FROM jsonb_array_elements($1::jsonb) AS e)",
    delete_customer_logins: "DELETE FROM logins WHERE customer_id IN (SELECT jsonb_array_elements_text($1::jsonb))",
    delete_customers: "DELETE FROM customers WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb))",
    release_emails: "UPDATE logins SET email = NULL
        WHERE contact = '' AND customer_id IN (SELECT jsonb_array_elements_text($1::jsonb))",
    upsert_customers: "INSERT INTO customers (id, name, protect)
        SELECT e->>'id', e->>'name', (e->>'protect')::boolean FROM jsonb_array_elements($1::jsonb) AS e
        ON CONFLICT (id) DO UPDATE SET name = excluded.name, protect = excluded.protect",
    upsert_logins: "INSERT INTO logins
        (customer_id, contact, email, name, access, role_id, website_id, notify)
        SELECT e->>'customer_id', e->>'contact', e->>'email', e->>'name', (e->>'access')::boolean,
               e->>'role_id', e->>'website_id', (e->>'notify')::boolean
        FROM jsonb_array_elements($1::jsonb) AS e
        ON CONFLICT (customer_id, contact) DO UPDATE SET email = excluded.email,
            name = excluded.name, access = excluded.access, role_id = excluded.role_id,
            website_id = excluded.website_id, notify = excluded.notify",
};
