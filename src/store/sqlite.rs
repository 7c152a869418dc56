//! The embedded SQLite store (the default, `sqlite://portico.db`).

use std::str::FromStr;

use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use super::rows::Batches;
use super::sql::{Writes, read_snapshot, run_steps, standard_role_steps, steps};
use super::{Doing, OpenOptions, Store, StoreError, redact_url};
use crate::plan::Plan;
use crate::state::State;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A SQLite database file.
pub struct SqliteStore {
    url: String,
    options: SqliteConnectOptions,
    conn: Option<SqliteConnection>,
}

impl SqliteStore {
    /// Opens the database. Read-only stores never create or write the file: a missing file
    /// reads as an empty account.
    ///
    /// # Errors
    /// [`StoreError::Connect`] when the URL is malformed or the file cannot be opened.
    pub async fn open(
        url: &str,
        writable: bool,
        opts: &OpenOptions,
    ) -> Result<SqliteStore, StoreError> {
        let connect_error = |source| StoreError::Connect {
            url: redact_url(url),
            source,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(connect_error)?
            .busy_timeout(opts.busy_timeout)
            .foreign_keys(true)
            .read_only(!writable)
            .create_if_missing(writable);
        let exists = options.get_filename().exists();
        let conn = if writable || exists {
            Some(
                SqliteConnection::connect_with(&options)
                    .await
                    .map_err(connect_error)?,
            )
        } else {
            None
        };
        Ok(SqliteStore {
            url: url.to_string(),
            options,
            conn,
        })
    }

    fn conn(&mut self) -> Result<&mut SqliteConnection, StoreError> {
        let url = redact_url(&self.url);
        self.conn.as_mut().ok_or_else(|| StoreError::Connect {
            url,
            source: sqlx::Error::Configuration("the database is opened read-only".into()),
        })
    }

    /// The file behind this store.
    pub fn path(&self) -> &std::path::Path {
        self.options.get_filename()
    }
}

impl Store for SqliteStore {
    async fn init(&mut self) -> Result<(), StoreError> {
        let conn = self.conn()?;
        MIGRATOR.run(&mut *conn).await?;
        let mut tx = conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .doing("starting a transaction")?;
        write_standard_roles(&mut tx).await?;
        tx.commit().await.doing("committing")
    }

    async fn read(&mut self) -> Result<State, StoreError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(State::empty());
        };
        if !schema_ready(conn).await? {
            return Ok(State::empty());
        }
        read_state(conn).await
    }

    async fn apply(&mut self, plan: &Plan, fingerprint: &str) -> Result<(), StoreError> {
        let conn = self.conn()?;
        MIGRATOR.run(&mut *conn).await?;
        let mut tx = conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .doing("taking the write lock")?;
        if read_state(&mut tx).await?.fingerprint() != fingerprint {
            return Err(StoreError::Stale);
        }
        write_standard_roles(&mut tx).await?;
        write(&mut tx, &Batches::from_plan(plan)).await?;
        tx.commit().await.doing("committing")
    }
}

/// Whether portico's schema is there and current. An empty or foreign file is not ready;
/// a newer schema is an error.
async fn schema_ready(conn: &mut SqliteConnection) -> Result<bool, StoreError> {
    let has_table: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
    )
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

async fn read_state(conn: &mut SqliteConnection) -> Result<State, StoreError> {
    read_snapshot!(conn)
}

async fn write_standard_roles(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    run_steps!(conn, standard_role_steps(&WRITES));
    Ok(())
}

/// Runs the plan's batches in apply order.
async fn write(conn: &mut SqliteConnection, b: &Batches) -> Result<(), StoreError> {
    run_steps!(conn, steps(&WRITES, b));
    Ok(())
}

const WRITES: Writes = Writes {
    upsert_features: UPSERT_FEATURES,
    upsert_login_policy: UPSERT_LOGIN_POLICY,
    upsert_websites: UPSERT_WEBSITES,
    delete_websites: DELETE_WEBSITES,
    upsert_roles: UPSERT_ROLES,
    delete_role_permissions: DELETE_ROLE_PERMISSIONS,
    insert_role_permissions: INSERT_ROLE_PERMISSIONS,
    delete_roles: DELETE_ROLES,
    delete_logins: DELETE_LOGINS,
    delete_customer_logins: DELETE_CUSTOMER_LOGINS,
    delete_customers: DELETE_CUSTOMERS,
    release_emails: RELEASE_EMAILS,
    upsert_customers: UPSERT_CUSTOMERS,
    upsert_logins: UPSERT_LOGINS,
};

const UPSERT_FEATURES: &str = "INSERT INTO features (name, enabled)
    SELECT value->>'name', value->>'enabled' FROM json_each(?1) WHERE true
    ON CONFLICT (name) DO UPDATE SET enabled = excluded.enabled";

const UPSERT_LOGIN_POLICY: &str = "INSERT INTO login_policy
    (id, max_failed_attempts, lockout_minutes, session_timeout_minutes, password_min_length)
    SELECT 1, value->>'max_failed_attempts', value->>'lockout_minutes',
           value->>'session_timeout_minutes', value->>'password_min_length'
    FROM json_each(?1) WHERE true
    ON CONFLICT (id) DO UPDATE SET max_failed_attempts = excluded.max_failed_attempts,
        lockout_minutes = excluded.lockout_minutes,
        session_timeout_minutes = excluded.session_timeout_minutes,
        password_min_length = excluded.password_min_length";

const UPSERT_WEBSITES: &str = "INSERT INTO websites (id, name, url)
    SELECT value->>'id', value->>'name', value->>'url' FROM json_each(?1) WHERE true
    ON CONFLICT (id) DO UPDATE SET name = excluded.name, url = excluded.url";

const DELETE_WEBSITES: &str = "DELETE FROM websites WHERE id IN (SELECT value FROM json_each(?1))";

const UPSERT_ROLES: &str = "INSERT INTO roles (id, name, base, standard, two_factor)
    SELECT value->>'id', value->>'name', value->>'base', value->>'standard', value->>'two_factor'
    FROM json_each(?1) WHERE true
    ON CONFLICT (id) DO UPDATE SET name = excluded.name, base = excluded.base,
        standard = excluded.standard, two_factor = excluded.two_factor";

const DELETE_ROLE_PERMISSIONS: &str =
    "DELETE FROM role_permissions WHERE role_id IN (SELECT value FROM json_each(?1))";

const INSERT_ROLE_PERMISSIONS: &str = "INSERT INTO role_permissions (role_id, permission, level)
    SELECT value->>'role_id', value->>'permission', value->>'level' FROM json_each(?1)";

const DELETE_ROLES: &str =
    "DELETE FROM roles WHERE NOT standard AND id IN (SELECT value FROM json_each(?1))";

const DELETE_LOGINS: &str = "DELETE FROM logins WHERE (customer_id, contact) IN
    (SELECT value->>'customer_id', value->>'contact' FROM json_each(?1))";

const DELETE_CUSTOMER_LOGINS: &str =
    "DELETE FROM logins WHERE customer_id IN (SELECT value FROM json_each(?1))";

const DELETE_CUSTOMERS: &str =
    "DELETE FROM customers WHERE id IN (SELECT value FROM json_each(?1))";

const RELEASE_EMAILS: &str = "UPDATE logins SET email = NULL
    WHERE contact = '' AND customer_id IN (SELECT value FROM json_each(?1))";

const UPSERT_CUSTOMERS: &str = "INSERT INTO customers (id, name, protect)
    SELECT value->>'id', value->>'name', value->>'protect' FROM json_each(?1) WHERE true
    ON CONFLICT (id) DO UPDATE SET name = excluded.name, protect = excluded.protect";

const UPSERT_LOGINS: &str = "INSERT INTO logins
    (customer_id, contact, email, name, access, role_id, website_id, notify)
    SELECT value->>'customer_id', value->>'contact', value->>'email', value->>'name',
           value->>'access', value->>'role_id', value->>'website_id', value->>'notify'
    FROM json_each(?1) WHERE true
    ON CONFLICT (customer_id, contact) DO UPDATE SET email = excluded.email,
        name = excluded.name, access = excluded.access, role_id = excluded.role_id,
        website_id = excluded.website_id, notify = excluded.notify";
