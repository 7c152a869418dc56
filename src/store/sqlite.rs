//! The embedded SQLite store (the default, `sqlite://portico.db`).

use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::Connection;

use super::rows::{Batches, Snapshot, standard_role_rows};
use super::{BATCH, Doing, OpenOptions, Store, StoreError, json, redact_url};
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
    pub async fn open(url: &str, writable: bool, opts: &OpenOptions) -> Result<SqliteStore, StoreError> {
        let connect_error = |source| StoreError::Connect { url: redact_url(url), source };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(connect_error)?
            .busy_timeout(opts.busy_timeout)
            .foreign_keys(true)
            .read_only(!writable)
            .create_if_missing(writable);
        let exists = options.get_filename().exists();
        let conn = if writable || exists {
            Some(SqliteConnection::connect_with(&options).await.map_err(connect_error)?)
        } else {
            None
        };
        Ok(SqliteStore { url: url.to_string(), options, conn })
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
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.doing("starting a transaction")?;
        write_standard_roles(&mut tx).await?;
        tx.commit().await.doing("committing")
    }

    async fn read(&mut self) -> Result<State, StoreError> {
        let Some(conn) = self.conn.as_mut() else { return Ok(State::default()) };
        if !schema_ready(conn).await? {
            return Ok(State::default());
        }
        read_state(conn).await
    }

    async fn apply(&mut self, plan: &Plan, fingerprint: &str) -> Result<(), StoreError> {
        let conn = self.conn()?;
        MIGRATOR.run(&mut *conn).await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.doing("taking the write lock")?;
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
    let found: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
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
    let doing = "reading the live state";
    let snapshot = Snapshot {
        features: sqlx::query_as("SELECT name, enabled FROM features").fetch_all(&mut *conn).await.doing(doing)?,
        login_policy: sqlx::query_as(
            "SELECT max_failed_attempts, lockout_minutes, session_timeout_minutes, password_min_length
             FROM login_policy WHERE id = 1",
        )
        .fetch_optional(&mut *conn)
        .await
        .doing(doing)?,
        websites: sqlx::query_as("SELECT id, name, url FROM websites").fetch_all(&mut *conn).await.doing(doing)?,
        roles: sqlx::query_as("SELECT id, name, base, standard, two_factor FROM roles WHERE standard = 0")
            .fetch_all(&mut *conn)
            .await
            .doing(doing)?,
        role_permissions: sqlx::query_as(
            "SELECT p.role_id, p.permission, p.level FROM role_permissions p
             JOIN roles r ON r.id = p.role_id WHERE r.standard = 0",
        )
        .fetch_all(&mut *conn)
        .await
        .doing(doing)?,
        customers: sqlx::query_as("SELECT id, name, protect FROM customers").fetch_all(&mut *conn).await.doing(doing)?,
        logins: sqlx::query_as(
            "SELECT customer_id, contact, email, name, access, role_id, website_id, notify FROM logins",
        )
        .fetch_all(&mut *conn)
        .await
        .doing(doing)?,
    };
    snapshot.into_state()
}

async fn write_standard_roles(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    let (roles, permissions) = standard_role_rows();
    let ids: Vec<&str> = roles.iter().map(|r| r.id.as_str()).collect();
    run(conn, UPSERT_ROLES, &roles, "writing standard roles").await?;
    run(conn, DELETE_ROLE_PERMISSIONS, &ids, "writing standard roles").await?;
    run(conn, INSERT_ROLE_PERMISSIONS, &permissions, "writing standard roles").await
}

/// Runs the plan's batches in apply order.
async fn write(conn: &mut SqliteConnection, b: &Batches) -> Result<(), StoreError> {
    run(conn, UPSERT_FEATURES, &b.features_on, "switching features on").await?;
    run(conn, UPSERT_LOGIN_POLICY, &b.login_policy, "writing the login policy").await?;
    run(conn, UPSERT_WEBSITES, &b.websites, "writing websites").await?;
    run(conn, UPSERT_ROLES, &b.roles, "writing roles").await?;
    let role_ids: Vec<&str> = b.roles.iter().map(|r| r.id.as_str()).collect();
    run(conn, DELETE_ROLE_PERMISSIONS, &role_ids, "writing role permissions").await?;
    run(conn, INSERT_ROLE_PERMISSIONS, &b.role_permissions, "writing role permissions").await?;
    run(conn, DELETE_LOGINS, &b.delete_contacts, "deleting contacts").await?;
    run(conn, DELETE_CUSTOMER_LOGINS, &b.delete_customers, "deleting customers").await?;
    run(conn, DELETE_CUSTOMERS, &b.delete_customers, "deleting customers").await?;
    run(conn, RELEASE_EMAILS, &b.release_emails, "changing login emails").await?;
    run(conn, UPSERT_CUSTOMERS, &b.customers, "writing customers").await?;
    run(conn, UPSERT_LOGINS, &b.customer_logins, "writing customer logins").await?;
    run(conn, UPSERT_LOGINS, &b.contacts, "writing contact logins").await?;
    run(conn, DELETE_ROLES, &b.delete_roles, "deleting roles").await?;
    run(conn, DELETE_WEBSITES, &b.delete_websites, "deleting websites").await?;
    run(conn, UPSERT_FEATURES, &b.features_off, "switching features off").await
}

/// Runs a statement whose only parameter is a JSON array of rows, in batches.
async fn run<T: serde::Serialize>(
    conn: &mut SqliteConnection,
    sql: &'static str,
    rows: &[T],
    doing: &'static str,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(BATCH) {
        sqlx::query(sql).bind(json(chunk)).execute(&mut *conn).await.doing(doing)?;
    }
    Ok(())
}

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

const DELETE_ROLES: &str = "DELETE FROM roles WHERE standard = 0 AND id IN (SELECT value FROM json_each(?1))";

const DELETE_LOGINS: &str = "DELETE FROM logins WHERE (customer_id, contact) IN
    (SELECT value->>'customer_id', value->>'contact' FROM json_each(?1))";

const DELETE_CUSTOMER_LOGINS: &str =
    "DELETE FROM logins WHERE customer_id IN (SELECT value FROM json_each(?1))";

const DELETE_CUSTOMERS: &str = "DELETE FROM customers WHERE id IN (SELECT value FROM json_each(?1))";

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

