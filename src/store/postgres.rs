//! The PostgreSQL store (`postgres://…`): same behaviour as SQLite; plan reads in a
//! read-only transaction, apply serialises on an advisory lock.

use std::str::FromStr;
use std::time::{Duration, Instant};

use compact_str::CompactString;
use futures_util::TryStreamExt as _;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use sqlx::{Connection, Row as _};

use super::rows::{Batches, CustomerRow, CustomersBuilder, LoginRow};
use super::shared;
use super::sql::{Fill, StepStream, Writes, history_and_batches, standard_role_steps};
use super::{
    Applied, Doing, FileRow, LiveVersion, ObjectDigest, OpenOptions, Owners, Part, PartQuery,
    PlanIndex, Store, StoreError, redact_url, schema_status,
};
use super::{OutboxRow, Recorded};
use crate::history::{ApplyRecord, Provenance};
use crate::passwords::PasswordRow;
use crate::plan::Plan;
use crate::state::State;

use super::migrations::POSTGRES_MIGRATOR as MIGRATOR;

/// Advisory-lock key shared by every portico apply on a database ("portico" in ASCII).
pub const APPLY_LOCK: i64 = 0x0070_6f72_7469_636f;

/// A PostgreSQL database.
pub struct PostgresStore {
    conn: PgConnection,
    locked: bool,
    /// The schema was found current (or made so) under the apply lock: an apply in this
    /// process does not ask again.
    current: bool,
}

impl PostgresStore {
    /// Connects. The password in the URL never appears in errors.
    ///
    /// # Errors
    /// [`StoreError::Connect`] when the URL is malformed or the server refuses.
    pub async fn open(url: &str, _opts: &OpenOptions) -> Result<PostgresStore, StoreError> {
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
            locked: false,
            current: false,
        })
    }

    /// Who holds the apply lock, from the server's own activity view.
    async fn lock_holder(&mut self) -> Option<String> {
        let row: Option<(String, String, i32, String)> = sqlx::query_as(
            "SELECT a.application_name, coalesce(a.usename::text, ''), a.pid,
                    to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND a.pid <> pg_backend_pid()
             LIMIT 1",
        )
        .fetch_optional(&mut self.conn)
        .await
        .ok()
        .flatten();
        row.map(|(app, user, pid, since)| {
            format!("{app}, database user {user}, server pid {pid}, connected since {since}")
        })
    }
}

impl Store for PostgresStore {
    async fn init(&mut self) -> Result<(), StoreError> {
        MIGRATOR.run(&mut self.conn).await?;
        let mut tx = self.conn.begin().await.doing("starting a transaction")?;
        shared::run_steps::<sqlx::Postgres>(&mut tx, standard_role_steps(&WRITES)).await?;
        tx.commit().await.doing("committing")
    }

    async fn migrate(&mut self) -> Result<(), StoreError> {
        let found = schema_version_outside_transaction(&mut self.conn).await?;
        if matches!(found, Some(found) if found < known_version()) {
            MIGRATOR.run(&mut self.conn).await?;
            self.current = self.locked;
        } else {
            self.current = self.locked && found == Some(known_version());
        }
        Ok(())
    }

    async fn has_schema(&mut self) -> Result<bool, StoreError> {
        Ok(schema_version(&mut self.conn).await?.is_some())
    }

    async fn login_activity(&mut self) -> Result<super::Activity, StoreError> {
        if schema_version(&mut self.conn).await?.is_none() {
            return Ok(super::Activity::default());
        }
        let logins = sqlx::query_as(super::LOGIN_ACTIVITY)
            .fetch_all(&mut self.conn)
            .await
            .doing("reading login activity")?;
        let written: Vec<super::WrittenBy> = sqlx::query_as(super::WRITTEN_BY)
            .fetch_all(&mut self.conn)
            .await
            .doing("reading which apply wrote each login")?;
        Ok(super::Activity::new(logins, written))
    }

    async fn unlock_apply(&mut self) -> Result<(), StoreError> {
        self.current = false;
        if self.locked {
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(APPLY_LOCK)
                .execute(&mut self.conn)
                .await
                .doing("releasing the apply lock")?;
            self.locked = false;
        }
        Ok(())
    }

    async fn lock(&mut self, timeout: Duration, holder: &str) -> Result<(), StoreError> {
        if self.locked {
            return Ok(());
        }
        let name: String = format!("portico apply by {holder}")
            .chars()
            .take(60)
            .collect();
        // The connection is named and the lock tried in one statement.
        let (_, mut got): (String, bool) = sqlx::query_as(
            "SELECT set_config('application_name', $1, false), pg_try_advisory_lock($2)",
        )
        .bind(name)
        .bind(APPLY_LOCK)
        .fetch_one(&mut self.conn)
        .await
        .doing("taking the apply lock")?;
        let started = Instant::now();
        loop {
            if got {
                self.locked = true;
                return Ok(());
            }
            if started.elapsed() >= timeout {
                let held_by = self.lock_holder().await;
                return Err(StoreError::LockTimeout {
                    waited: timeout,
                    held_by,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            got = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(APPLY_LOCK)
                .fetch_one(&mut self.conn)
                .await
                .doing("taking the apply lock")?;
        }
    }

    async fn read(&mut self) -> Result<State, StoreError> {
        Ok(self.read_with_applied().await?.0)
    }

    async fn read_with_applied(&mut self) -> Result<(State, Applied), StoreError> {
        // One snapshot for every query: a login is never read without its customer, and
        // the drift records match the objects they describe.
        let mut tx = read_only(&mut self.conn).await?;
        let read = if schema_ready(&mut tx).await? {
            let (customers, logins) = read_big_tables(&mut tx).await?;
            let state = shared::read_snapshot::<sqlx::Postgres>(&mut tx, customers).await?;
            let objects = read_applied_objects(&mut tx).await?;
            let version = shared::read_version::<sqlx::Postgres>(&mut tx).await?;
            let applied = Applied {
                objects,
                logins,
                version,
            };
            (state, applied)
        } else {
            (State::empty(), Applied::default())
        };
        tx.rollback()
            .await
            .doing("ending the read-only transaction")?;
        Ok(read)
    }

    async fn read_index(
        &mut self,
    ) -> Result<(LiveVersion, Option<(i64, Option<PlanIndex>)>), StoreError> {
        let mut tx = read_only(&mut self.conn).await?;
        let read = if schema_ready(&mut tx).await? {
            let version = shared::read_version::<sqlx::Postgres>(&mut tx).await?;
            (
                version,
                shared::read_index::<sqlx::Postgres>(&mut tx).await?,
            )
        } else {
            (LiveVersion::default(), None)
        };
        tx.rollback()
            .await
            .doing("ending the read-only transaction")?;
        Ok(read)
    }

    /// Not ahead on PostgreSQL: prepared there (typed as the apply binds, one round trip
    /// each and the result columns' origins looked up), an everyday apply came out 1–2 ms
    /// slower than compiling them inside its transaction (docs/performance.md).
    async fn prepare_apply(
        &mut self,
        _which: super::ApplyStatements,
        _done: &(dyn Fn() -> bool + Sync),
    ) {
    }

    async fn record_index(
        &mut self,
        index: &PlanIndex,
        fingerprint: &str,
    ) -> Result<(), StoreError> {
        if !schema_ready(&mut self.conn).await? {
            return Ok(());
        }
        let mut tx = self
            .conn
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ")
            .await
            .doing("starting a transaction")?;
        shared::record_index::<sqlx::Postgres>(&mut tx, index, fingerprint, &WRITES).await?;
        tx.commit().await.doing("committing")?;
        Ok(())
    }

    async fn owners(
        &mut self,
        customers: &[CompactString],
        emails: &[CompactString],
    ) -> Result<Owners, StoreError> {
        let doing = "reading the live state";
        let strs = |v: &[CompactString]| v.iter().map(|s| s.to_string()).collect::<Vec<String>>();
        let mut tx = read_only(&mut self.conn).await?;
        let found: Vec<String> = sqlx::query_scalar("SELECT id FROM customers WHERE id = ANY($1)")
            .bind(strs(customers))
            .fetch_all(&mut *tx)
            .await
            .doing(doing)?;
        let owners: Vec<(String, String)> =
            sqlx::query_as("SELECT email, customer_id FROM logins WHERE email = ANY($1)")
                .bind(strs(emails))
                .fetch_all(&mut *tx)
                .await
                .doing(doing)?;
        let version = shared::read_version::<sqlx::Postgres>(&mut tx).await?;
        tx.rollback()
            .await
            .doing("ending the read-only transaction")?;
        let c = CompactString::from;
        Ok(Owners {
            version,
            customers: found.into_iter().map(c).collect(),
            emails: owners.into_iter().map(|(e, i)| (c(e), c(i))).collect(),
        })
    }

    async fn roles_elsewhere(
        &mut self,
        roles: &[CompactString],
        customers: &[CompactString],
    ) -> Result<(LiveVersion, Vec<CompactString>), StoreError> {
        let strs = |v: &[CompactString]| v.iter().map(|s| s.to_string()).collect::<Vec<String>>();
        let mut tx = read_only(&mut self.conn).await?;
        let found: Vec<String> = sqlx::query_scalar(
            "SELECT r FROM unnest($1::text[]) AS r WHERE EXISTS
                (SELECT 1 FROM logins AS l WHERE l.role_id = r AND NOT (l.customer_id = ANY($2)))",
        )
        .bind(strs(roles))
        .bind(strs(customers))
        .fetch_all(&mut *tx)
        .await
        .doing("reading the live state")?;
        let version = shared::read_version::<sqlx::Postgres>(&mut tx).await?;
        tx.rollback()
            .await
            .doing("ending the read-only transaction")?;
        Ok((
            version,
            found.into_iter().map(CompactString::from).collect(),
        ))
    }

    async fn read_part(&mut self, query: &PartQuery<'_>) -> Result<Part, StoreError> {
        let mut tx = read_only(&mut self.conn).await?;
        let part = if schema_ready(&mut tx).await? {
            read_part(&mut tx, query).await?
        } else {
            Part::empty()
        };
        tx.rollback()
            .await
            .doing("ending the read-only transaction")?;
        Ok(part)
    }

    async fn read_files(&mut self, paths: &[String]) -> Result<Vec<FileRow>, StoreError> {
        sqlx::query_as(
            "SELECT path, encode(digest, 'hex'), ids, groups FROM plan_index_files WHERE path = ANY($1)",
        )
        .bind(paths)
        .fetch_all(&mut self.conn)
        .await
        .doing("reading the plan index")
    }

    async fn read_pages(
        &mut self,
        firsts: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        sqlx::query_as("SELECT first, body FROM plan_index_pages WHERE first = ANY($1)")
            .bind(firsts)
            .fetch_all(&mut self.conn)
            .await
            .doing("reading the plan index")
    }

    async fn history(&mut self, id: Option<i64>) -> Result<Vec<ApplyRecord>, StoreError> {
        if !schema_ready(&mut self.conn).await? {
            return Ok(Vec::new());
        }
        let conn = &mut self.conn;
        shared::read_history::<sqlx::Postgres>(conn, id).await
    }

    async fn apply(
        &mut self,
        plan: &std::sync::Arc<Plan>,
        history: super::History,
        (passwords, index): (Vec<PasswordRow>, Option<crate::state::SealingIndex>),
        pending: u64,
    ) -> Result<Recorded, StoreError> {
        self.lock(OpenOptions::default().busy_timeout, history.actor())
            .await?;
        // The schema is made here when there is none (a current one is not checked again,
        // nor asked again when `migrate` found it current under this lock).
        if !self.current && schema_version(&mut self.conn).await? != Some(known_version()) {
            MIGRATOR.run(&mut self.conn).await?;
        }
        let building = history_and_batches(plan, history, passwords);
        let cached = self.conn.cached_statements_size();
        // One consistent snapshot for the re-check and the writes; an outside write that
        // conflicts ends the transaction with a serialization failure: nothing applied.
        // A small plan's history row and batches are built while the transaction begins.
        let (begun, building) = tokio::join!(
            self.conn
                .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ"),
            building.here()
        );
        let mut tx = begun.doing("starting a transaction")?;
        // The write count, raised by every write to a managed column: an outside write
        // committed after this snapshot makes the count's update below fail to serialize.
        let (version, roles) =
            shared::read_version_for_apply::<sqlx::Postgres>(&mut tx, READ_VERSION_FOR_APPLY)
                .await?;
        if version.fingerprint() != plan.live_fingerprint {
            return Err(StoreError::Stale);
        }
        if !roles {
            shared::run_steps::<sqlx::Postgres>(&mut tx, standard_role_steps(&WRITES)).await?;
        }
        // A big plan's history row and batches, from their thread (a stale apply was told
        // so without waiting for them).
        let (history, mut batches) = building.built().await;
        // The history row first: its id goes with every applied object the rows write.
        let id = crate::progress::phase_async("insert history", async {
            shared::insert_history::<sqlx::Postgres>(&mut tx, &history).await
        })
        .await?;
        batches.set_apply_id(id);
        // An everyday index is made while the server writes the rows.
        let (filled, made) = tokio::join!(
            crate::progress::phase_async("write rows", run_filling(&mut tx, batches)),
            shared::sealed(index)
        );
        let filled = filled?;
        if filled.contains(&"logins") {
            // Fresh statistics: the tables went from (nearly) empty to large in this
            // transaction, and until autovacuum gets to them, the queries that look logins
            // up by key (day-2 operations, set-password links) would be planned for the
            // empty tables; so would the queued messages' (an apply counting those still
            // to deliver scanned all of them).
            sqlx::query("ANALYZE customers, logins, notifications")
                .execute(&mut *tx)
                .await
                .doing("updating the tables' statistics")?;
        }
        let pending = crate::progress::phase_async("record index", async {
            shared::finish_apply::<sqlx::Postgres>(&mut tx, (made, pending), &WRITES).await
        })
        .await?;
        // As on SQLite: none in an everyday apply (`prepare_apply`).
        let compiled = tx.cached_statements_size().saturating_sub(cached);
        crate::progress::count("statements compiled in the write", compiled);
        crate::progress::phase_async("commit", tx.commit())
            .await
            .doing("committing")?;
        // The schema is current now, and stays so while the lock is held: another apply on
        // this store does not ask again.
        self.current = self.locked;
        Ok(Recorded { id, pending })
    }

    async fn outbox(&mut self, pending_only: bool) -> Result<Vec<OutboxRow>, StoreError> {
        if !schema_ready(&mut self.conn).await? {
            return Ok(Vec::new());
        }
        let conn = &mut self.conn;
        shared::read_outbox::<sqlx::Postgres>(conn, pending_only).await
    }

    async fn issue_tokens(
        &mut self,
        tokens: &[super::NewToken<'_>],
    ) -> Result<Vec<String>, StoreError> {
        let conn = &mut self.conn;
        shared::issue_tokens::<sqlx::Postgres>(conn, tokens).await
    }

    async fn claim_many(&mut self, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        let conn = &mut self.conn;
        shared::claim_many::<sqlx::Postgres>(conn, ids).await
    }

    async fn record_results(&mut self, results: &[super::Settled]) -> Result<(), StoreError> {
        let conn = &mut self.conn;
        shared::record_results::<sqlx::Postgres>(conn, results).await
    }

    async fn requeue_failed(&mut self) -> Result<u64, StoreError> {
        let conn = &mut self.conn;
        shared::requeue_failed::<sqlx::Postgres>(conn).await
    }

    async fn redeem_token(
        &mut self,
        token_hash: &str,
        password_hash: &str,
    ) -> Result<String, StoreError> {
        let conn = &mut self.conn;
        let mut tx = conn.begin().await.doing("starting a transaction")?;
        let email = shared::redeem::<sqlx::Postgres>(&mut tx, token_hash, password_hash).await?;
        tx.commit().await.doing("committing")?;
        Ok(email)
    }

    async fn login_runtime(
        &mut self,
        email: &str,
    ) -> Result<Option<super::LoginRuntime>, StoreError> {
        if !schema_ready(&mut self.conn).await? {
            return Ok(None);
        }
        let mut tx = self
            .conn
            .begin_with("BEGIN READ ONLY")
            .await
            .doing("starting a read-only transaction")?;
        let found = shared::login_runtime::<sqlx::Postgres>(&mut tx, email).await?;
        tx.rollback()
            .await
            .doing("ending the read-only transaction")?;
        Ok(found.map(|(runtime, _)| runtime))
    }

    async fn unlock(&mut self, email: &str, provenance: &Provenance) -> Result<i64, StoreError> {
        let mut tx = self.day2_transaction(email, provenance).await?;
        let id =
            shared::day2_op::<sqlx::Postgres>(&mut tx, email, provenance, shared::Day2Op::Unlock)
                .await?;
        tx.commit().await.doing("committing")?;
        Ok(id)
    }

    async fn resend(&mut self, email: &str, provenance: &Provenance) -> Result<i64, StoreError> {
        let mut tx = self.day2_transaction(email, provenance).await?;
        let id = shared::day2_op::<sqlx::Postgres>(
            &mut tx,
            email,
            provenance,
            shared::Day2Op::Resend(&RESEND),
        )
        .await?;
        tx.commit().await.doing("committing")?;
        Ok(id)
    }
}

impl PostgresStore {
    /// Takes the apply lock and opens a transaction on a current database for a day-2
    /// operation on `email`.
    async fn day2_transaction(
        &mut self,
        email: &str,
        provenance: &Provenance,
    ) -> Result<sqlx::Transaction<'_, sqlx::Postgres>, StoreError> {
        self.lock(OpenOptions::default().busy_timeout, &provenance.actor)
            .await?;
        if !schema_ready(&mut self.conn).await? {
            return Err(super::day2::unknown(email));
        }
        self.conn.begin().await.doing("starting a transaction")
    }
}

fn known_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

async fn schema_version(conn: &mut PgConnection) -> Result<Option<i64>, StoreError> {
    let has_table: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .doing("checking the schema")?;
    if !has_table {
        return Ok(None);
    }
    sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut *conn)
        .await
        .doing("checking the schema")
}

/// [`schema_version`] in one statement, for a connection outside a transaction (a missing
/// table there is an error that ends nothing): [`Store::migrate`] asks it on the store's own
/// connection, an apply under its lock. PostgreSQL logs the missing table as an error, for a
/// database portico has not set up yet.
async fn schema_version_outside_transaction(
    conn: &mut PgConnection,
) -> Result<Option<i64>, StoreError> {
    let found = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut *conn)
        .await;
    match found {
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(UNDEFINED_TABLE) => Ok(None),
        found => found.doing("checking the schema"),
    }
}

/// PostgreSQL's SQLSTATE for a table that does not exist.
const UNDEFINED_TABLE: &str = "42P01";

/// Whether portico's schema is there and current (see [`schema_status`]).
async fn schema_ready(conn: &mut PgConnection) -> Result<bool, StoreError> {
    schema_status(schema_version(conn).await?, known_version())
}

const RESEND: shared::ResendSql = shared::ResendSql {
    revoke_tokens: WRITES.revoke_tokens,
    cancel_notifications: WRITES.cancel_notifications,
    queue: WRITES.queue_notifications,
};

// Each batch is read with `json_to_recordset`, one pass over the JSON text per batch into
// typed columns: `jsonb_array_elements` and `->>` per column first built a `jsonb` value and
// then looked every key up (7,500 logins: 107 ms against 94 ms; 71 ms as a plain insert).
const WRITES: Writes = Writes {
    upsert_features: "INSERT INTO features (name, enabled)
        SELECT name, enabled FROM json_to_recordset($1::json) AS e(name text, enabled boolean)
        ON CONFLICT (name) DO UPDATE SET enabled = excluded.enabled",
    upsert_login_policy: "INSERT INTO login_policy
        (id, max_failed_attempts, lockout_minutes, session_timeout_minutes, password_min_length, session_max_hours)
        SELECT 1, max_failed_attempts, lockout_minutes, session_timeout_minutes, password_min_length, session_max_hours
        FROM json_to_recordset($1::json) AS e(max_failed_attempts bigint, lockout_minutes bigint,
            session_timeout_minutes bigint, password_min_length bigint, session_max_hours bigint)
        ON CONFLICT (id) DO UPDATE SET max_failed_attempts = excluded.max_failed_attempts,
            lockout_minutes = excluded.lockout_minutes,
            session_timeout_minutes = excluded.session_timeout_minutes,
            password_min_length = excluded.password_min_length,
            session_max_hours = excluded.session_max_hours",
    upsert_websites: "INSERT INTO websites (id, name, url)
        SELECT id, name, url FROM json_to_recordset($1::json) AS e(id text, name text, url text)
        ON CONFLICT (id) DO UPDATE SET name = excluded.name, url = excluded.url",
    delete_websites: "DELETE FROM websites WHERE id IN (SELECT json_array_elements_text($1::json))",
    upsert_policies: "INSERT INTO policies (id, message, rule)
        SELECT id, message, rule FROM json_to_recordset($1::json) AS e(id text, message text, rule text)
        ON CONFLICT (id) DO UPDATE SET message = excluded.message, rule = excluded.rule",
    delete_policies: "DELETE FROM policies WHERE id IN (SELECT json_array_elements_text($1::json))",
    upsert_clients: "INSERT INTO oidc_clients
            (id, name, website, redirect_uris, post_logout_redirect_uris, scopes, secret_marker)
        SELECT id, name, website, redirect_uris, post_logout_redirect_uris, scopes, secret_marker
        FROM json_to_recordset($1::json) AS e(id text, name text, website text,
            redirect_uris text, post_logout_redirect_uris text, scopes text, secret_marker bigint)
        ON CONFLICT (id) DO UPDATE SET name = excluded.name, website = excluded.website,
            redirect_uris = excluded.redirect_uris,
            post_logout_redirect_uris = excluded.post_logout_redirect_uris,
            scopes = excluded.scopes, secret_marker = excluded.secret_marker,
            secret_hash = CASE WHEN excluded.secret_marker IS NULL THEN NULL
                ELSE oidc_clients.secret_hash END",
    delete_clients: "DELETE FROM oidc_clients WHERE id IN (SELECT json_array_elements_text($1::json))",
    set_client_secrets: "UPDATE oidc_clients SET secret_hash = e.hash
        FROM json_to_recordset($1::json) AS e(client text, hash text)
        WHERE oidc_clients.id = e.client",
    upsert_roles: "INSERT INTO roles (id, name, base, standard, two_factor)
        SELECT id, name, base, standard, two_factor
        FROM json_to_recordset($1::json) AS e(id text, name text, base text, standard boolean, two_factor text)
        ON CONFLICT (id) DO UPDATE SET name = excluded.name, base = excluded.base,
            standard = excluded.standard, two_factor = excluded.two_factor",
    delete_role_permissions: "DELETE FROM role_permissions
        WHERE role_id IN (SELECT json_array_elements_text($1::json))",
    insert_role_permissions: "INSERT INTO role_permissions (role_id, permission, level)
        SELECT role_id, permission, level
        FROM json_to_recordset($1::json) AS e(role_id text, permission text, level text)",
    delete_roles: "DELETE FROM roles WHERE NOT standard AND id IN (SELECT json_array_elements_text($1::json))",
    delete_logins: "DELETE FROM logins WHERE (customer_id, contact) IN
        (SELECT customer_id, contact FROM json_to_recordset($1::json) AS e(customer_id text, contact text))",
    delete_customer_logins: "DELETE FROM logins WHERE customer_id IN (SELECT json_array_elements_text($1::json))",
    delete_customers: "DELETE FROM customers WHERE id IN (SELECT json_array_elements_text($1::json))",
    release_emails: "UPDATE logins SET email = NULL
        WHERE contact = '' AND customer_id IN (SELECT json_array_elements_text($1::json))",
    upsert_customers: "INSERT INTO customers (id, name, protect)
        SELECT id, name, protect FROM json_to_recordset($1::json) AS e(id text, name text, protect boolean)
        ON CONFLICT (id) DO UPDATE SET name = excluded.name, protect = excluded.protect",
    insert_customers: "INSERT INTO customers (id, name, protect)
        SELECT id, name, protect FROM json_to_recordset($1::json) AS e(id text, name text, protect boolean)",
    upsert_logins: "INSERT INTO logins
        (customer_id, contact, email, name, access, role_id, website_id, notify, password_marker, expires_at,
         applied_digest, applied_apply_id)
        SELECT * FROM json_to_recordset($1::json) AS e(customer_id text, contact text, email text,
            name text, access boolean, role_id text, website_id text, notify boolean,
            password_marker bigint, expires_at text, applied_digest bigint, applied_apply_id bigint)
        ON CONFLICT (customer_id, contact) DO UPDATE SET email = excluded.email,
            name = excluded.name, access = excluded.access, role_id = excluded.role_id,
            website_id = excluded.website_id, notify = excluded.notify,
            password_marker = excluded.password_marker, expires_at = excluded.expires_at,
            applied_digest = excluded.applied_digest, applied_apply_id = excluded.applied_apply_id",
    insert_logins: "INSERT INTO logins
        (customer_id, contact, email, name, access, role_id, website_id, notify, password_marker, expires_at,
         applied_digest, applied_apply_id, password_hash, password_set_at)
        SELECT * FROM json_to_recordset($1::json) AS e(customer_id text, contact text, email text,
            name text, access boolean, role_id text, website_id text, notify boolean,
            password_marker bigint, expires_at text, applied_digest bigint, applied_apply_id bigint,
            password_hash text, password_set_at text)",
    upsert_applied: "INSERT INTO applied_objects (address, digest, apply_id)
        SELECT address, digest, apply_id
        FROM json_to_recordset($1::json) AS e(address text, digest text, apply_id bigint)
        ON CONFLICT (address) DO UPDATE SET digest = excluded.digest, apply_id = excluded.apply_id",
    insert_applied: Some(
        "INSERT INTO applied_objects (address, digest, apply_id)
        SELECT address, digest, apply_id
        FROM json_to_recordset($1::json) AS e(address text, digest text, apply_id bigint)",
    ),
    delete_applied: "DELETE FROM applied_objects WHERE address IN (SELECT json_array_elements_text($1::json))",
    upsert_notification_settings: "INSERT INTO notification_settings (id, url, auth_env, smtp_url, smtp_username, smtp_password_env, from_address, reply_to, login_url, token_ttl_hours, max_attempts, template_subject, template_text, template_html, reset_ttl_minutes, reset_subject, reset_text, reset_html)
        SELECT 1, url, auth_env, smtp_url, smtp_username, smtp_password_env, from_address, reply_to, login_url, token_ttl_hours, max_attempts, template_subject, template_text, template_html, reset_ttl_minutes, reset_subject, reset_text, reset_html
        FROM json_to_recordset($1::json) AS e(url text, auth_env text, smtp_url text, smtp_username text,
            smtp_password_env text, from_address text, reply_to text, login_url text,
            token_ttl_hours bigint, max_attempts bigint, template_subject text, template_text text,
            template_html text, reset_ttl_minutes bigint, reset_subject text, reset_text text, reset_html text)
        ON CONFLICT (id) DO UPDATE SET url = excluded.url, auth_env = excluded.auth_env, smtp_url = excluded.smtp_url, smtp_username = excluded.smtp_username, smtp_password_env = excluded.smtp_password_env, from_address = excluded.from_address, reply_to = excluded.reply_to, login_url = excluded.login_url, token_ttl_hours = excluded.token_ttl_hours, max_attempts = excluded.max_attempts, template_subject = excluded.template_subject, template_text = excluded.template_text, template_html = excluded.template_html, reset_ttl_minutes = excluded.reset_ttl_minutes, reset_subject = excluded.reset_subject, reset_text = excluded.reset_text, reset_html = excluded.reset_html",
    set_passwords: "UPDATE logins SET password_hash = e.hash, password_set_at = $2
        FROM json_to_recordset($1::json) AS e(customer_id text, contact text, hash text)
        WHERE logins.customer_id = e.customer_id AND logins.contact = e.contact",
    queue_notifications: "INSERT INTO notifications
        (created_at, customer_id, contact, email, password_assigned, status)
        SELECT extract(epoch FROM $2::timestamptz)::bigint,
               j.customer_id, j.contact, NULLIF(j.email, j.contact), j.password_assigned, 0
        FROM ROWS FROM (json_to_recordset($1::json) AS (customer_id text,
            contact text, email text, password_assigned boolean))
            WITH ORDINALITY AS j(customer_id, contact, email, password_assigned, n)
        ORDER BY j.n",
    revoke_tokens: "UPDATE set_password_tokens SET revoked_at = $2
        WHERE used_at IS NULL AND revoked_at IS NULL AND (customer_id, contact) IN
            (SELECT customer_id, contact FROM json_to_recordset($1::json) AS e(customer_id text, contact text))",
    cancel_notifications: "UPDATE notifications SET status = 2
        WHERE status = 0 AND (customer_id, contact) IN
            (SELECT customer_id, contact FROM json_to_recordset($1::json) AS e(customer_id text, contact text))",
    // Sessions are few: each is checked against its login by key (logins have no index by
    // role).
    end_role_sessions: "DELETE FROM sessions WHERE EXISTS (SELECT 1 FROM logins l
            WHERE l.customer_id = sessions.customer_id AND l.contact = sessions.contact
            AND l.role_id IN (SELECT json_array_elements_text($1::json)))",
    end_sessions: "DELETE FROM sessions WHERE (customer_id, contact) IN
            (SELECT customer_id, contact FROM json_to_recordset($1::json) AS e(customer_id text, contact text))",
    upsert_index_files: "INSERT INTO plan_index_files (path, digest, ids, groups)
        SELECT path, decode(digest, 'hex'), decode(ids, 'hex'), decode(groups, 'hex')
        FROM json_to_recordset($1::json) AS e(path text, digest text, ids text, groups text)
        ON CONFLICT (path) DO UPDATE
        SET digest = excluded.digest, ids = excluded.ids, groups = excluded.groups",
    delete_index_files: "DELETE FROM plan_index_files WHERE path IN (SELECT json_array_elements_text($1::json))",
    together: super::finish::Together::With,
};

/// From this many rows added to a table holding fewer, an apply sets the table's indexes and
/// keys aside while it fills, and builds them once after: PostgreSQL sorts the rows for each
/// index instead of descending it per row, and checks each foreign key in one pass. Inserting
/// 7,500 logins took 71 ms with the logins' four indexes and 9 ms without; building them
/// over 300,000 rows takes 0.7 s, against 2.5 s row by row. Everything stays inside the
/// apply's transaction, so a duplicate or a dangling key found at the rebuild still rolls
/// everything back. The table is locked until the commit (a `plan` started meanwhile waits).
pub const BULK_ROWS: usize = 10_000;

/// The tables an apply may fill with their keys set aside, each with how to count (up to
/// `$1`) the rows it holds.
const FILLABLE: [(&str, &str); 2] = [
    (
        "logins",
        "SELECT count(*) FROM (SELECT FROM logins LIMIT $1) AS held",
    ),
    (
        "notifications",
        "SELECT count(*) FROM (SELECT FROM notifications LIMIT $1) AS held",
    ),
];

/// Whether the connected role may alter the table `$1` (owns it, or is a member of its
/// owner), and no other table's foreign key depends on its keys.
const MAY_SET_ASIDE: &str = "SELECT pg_has_role(c.relowner, 'USAGE')
        AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.confrelid = c.oid AND k.conrelid <> c.oid)
    FROM pg_class c WHERE c.oid = $1::regclass";

/// Keeps the table `$1`'s keys and indexes, as defined now, for the rest of the
/// transaction: kind 1 a primary key or unique constraint, 2 an index of its own, 3 a
/// foreign key.
const SAVE_KEYS: [&str; 2] = [
    "CREATE TEMP TABLE IF NOT EXISTS portico_set_aside
        (tbl regclass, kind int, name text, def text, aside boolean) ON COMMIT DROP",
    "INSERT INTO portico_set_aside
     SELECT $1::regclass, CASE k.contype WHEN 'f' THEN 3 ELSE 1 END, k.conname,
            pg_get_constraintdef(k.oid), false
     FROM pg_constraint k WHERE k.conrelid = $1::regclass AND k.contype IN ('p', 'u', 'f')
     UNION ALL
     SELECT $1::regclass, 2, format('%I.%I', n.nspname, c.relname), pg_get_indexdef(i.indexrelid), false
     FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE i.indrelid = $1::regclass
       AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid)",
];

/// Drops what [`SAVE_KEYS`] kept (foreign keys first).
const DROP_KEYS: &str = "DO $$ DECLARE k record; BEGIN
    FOR k IN SELECT tbl, kind, name FROM portico_set_aside WHERE NOT aside ORDER BY kind DESC LOOP
        IF k.kind = 2 THEN EXECUTE format('DROP INDEX %s', k.name);
        ELSE EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', k.tbl, k.name);
        END IF;
    END LOOP;
    UPDATE portico_set_aside SET aside = true;
END $$";

/// Builds the keys and indexes back exactly as they were (keys, then indexes, then foreign
/// keys, each checking every row in one pass).
const ADD_KEYS: &str = "DO $$ DECLARE k record; BEGIN
    FOR k IN SELECT tbl, kind, name, def FROM portico_set_aside ORDER BY kind LOOP
        IF k.kind = 2 THEN EXECUTE k.def;
        ELSE EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', k.tbl, k.name, k.def);
        END IF;
    END LOOP;
    DELETE FROM portico_set_aside;
END $$";

/// Runs an apply's steps, each batch's JSON written on another thread while PostgreSQL runs
/// the one before. A table that the steps fill with at least [`BULK_ROWS`] rows while it
/// holds fewer is filled with its keys set aside ([`BULK_ROWS`]); returns those tables.
async fn run_filling(
    conn: &mut PgConnection,
    batches: Batches,
) -> Result<Vec<&'static str>, StoreError> {
    let mut stream = StepStream::spawn(&WRITES, batches);
    let at = stream.at.clone();
    let mut aside = Vec::new();
    for (table, count) in FILLABLE {
        let fills = stream.steps.iter().filter_map(|s| s.fills);
        let fills: Vec<Fill> = fills.filter(|f| f.table == table).collect();
        let rows: usize = fills.iter().map(|f| f.rows).sum();
        if rows < BULK_ROWS {
            continue;
        }
        let may: bool = sqlx::query_scalar(MAY_SET_ASIDE)
            .bind(table)
            .fetch_one(&mut *conn)
            .await
            .doing("checking who owns the tables")?;
        let held: i64 = sqlx::query_scalar(count)
            .bind(i64::try_from(rows).unwrap_or(i64::MAX))
            .fetch_one(&mut *conn)
            .await
            .doing("counting rows before a large write")?;
        let needs_empty = fills.iter().any(|f| f.into_empty.is_some());
        let held = usize::try_from(held).unwrap_or(usize::MAX);
        if may && held < rows && !(needs_empty && held > 0) {
            aside.push(table);
        }
    }
    let mut current: Option<&'static str> = None;
    while let Some((index, param)) = stream.next().await {
        let step = stream.steps[index];
        let fills = step.fills.filter(|f| aside.contains(&f.table));
        if current.is_some() && current != fills.map(|f| f.table) {
            set_back(conn).await?;
            current = None;
        }
        if let (None, Some(fill)) = (current, fills) {
            for sql in SAVE_KEYS {
                sqlx::query(sql)
                    .bind(fill.table)
                    .execute(&mut *conn)
                    .await
                    .doing("setting indexes aside for a large write")?;
            }
            sqlx::query(DROP_KEYS)
                .execute(&mut *conn)
                .await
                .doing("setting indexes aside for a large write")?;
            current = Some(fill.table);
        }
        let sql = fills.and_then(|f| f.into_empty).unwrap_or(step.sql);
        let query = sqlx::query(sql).bind(param);
        let query = if step.stamped {
            query.bind(at.as_str())
        } else {
            query
        };
        query.execute(&mut *conn).await.doing(step.doing)?;
    }
    if current.is_some() {
        set_back(conn).await?;
    }
    Ok(aside)
}

/// Builds back the keys set aside.
async fn set_back(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query(ADD_KEYS)
        .execute(&mut *conn)
        .await
        .doing("building indexes and checking keys after a large write")?;
    Ok(())
}

/// One snapshot for every query of a read: a login is never read without its customer.
async fn read_only(
    conn: &mut PgConnection,
) -> Result<sqlx::Transaction<'_, sqlx::Postgres>, StoreError> {
    conn.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .doing("starting a read-only transaction")
}

/// Reads the customers and the logins row by row in PostgreSQL's binary format, each row
/// decoded as it arrives (nothing is held whole but the rows read): building one JSON value
/// per 25,000 logins cost the server 75 ms, sending the same rows 21 ms.
async fn read_big_tables(
    conn: &mut PgConnection,
) -> Result<(super::rows::LiveCustomers, crate::state::LoginDigests), StoreError> {
    let doing = "reading the live state";
    let customers: i64 = sqlx::query_scalar("SELECT count(*) FROM customers")
        .fetch_one(&mut *conn)
        .await
        .doing(doing)?;
    let mut out = Vec::with_capacity(usize::try_from(customers).unwrap_or(0));
    let mut rows = sqlx::query("SELECT id, name, protect FROM customers").fetch(&mut *conn);
    while let Some(row) = rows.try_next().await.doing(doing)? {
        out.push(customer_row(&row)?);
    }
    drop(rows);
    // Each page is built into state on a blocking thread while the next page's rows arrive.
    let mut building = tokio::task::spawn_blocking(move || Ok(CustomersBuilder::new(out)));
    // In key order by bytes (the "C" collation, as Rust compares strings), so each page of
    // rows becomes state as it arrives: sent in no order, all 300,000 rows (80 MB) were held
    // until the last arrived. The sort gets the memory to stay off disk.
    sqlx::query("SET LOCAL work_mem = '64MB'")
        .execute(&mut *conn)
        .await
        .doing(doing)?;
    let mut rows = sqlx::query(
        "SELECT customer_id, contact, email, name, access, role_id, website_id, notify,
                password_marker, expires_at, password_hash IS NOT NULL, applied_digest
         FROM logins ORDER BY customer_id COLLATE \"C\", contact COLLATE \"C\"",
    )
    .fetch(&mut *conn);
    let mut page = Vec::with_capacity(LOGINS_PAGE);
    while let Some(row) = rows.try_next().await.doing(doing)? {
        page.push(login_row(&row)?);
        if page.len() == LOGINS_PAGE {
            let full = std::mem::replace(&mut page, Vec::with_capacity(LOGINS_PAGE));
            let mut builder = super::rows::joined(building).await?;
            building = tokio::task::spawn_blocking(move || {
                builder.add_page(full)?;
                Ok(builder)
            });
        }
    }
    let mut builder = super::rows::joined(building).await?;
    builder.add_page(page)?;
    Ok(builder.finish())
}

/// How many logins become state at a time in a full read.
const LOGINS_PAGE: usize = 25_000;

/// A customer row of `SELECT id, name, protect`.
fn customer_row(row: &PgRow) -> Result<CustomerRow, StoreError> {
    Ok(CustomerRow {
        id: text(row, 0)?,
        name: text(row, 1)?,
        protect: row.try_get(2).doing("reading the live state")?,
    })
}

/// A login row of `SELECT customer_id, contact, email, name, access, role_id, website_id,
/// notify, password_marker, expires_at, password_hash IS NOT NULL, applied_digest`.
fn login_row(row: &PgRow) -> Result<LoginRow, StoreError> {
    let doing = "reading the live state";
    Ok(LoginRow {
        customer_id: text(row, 0)?,
        contact: text(row, 1)?,
        email: optional_text(row, 2)?,
        name: optional_text(row, 3)?,
        access: row.try_get(4).doing(doing)?,
        role_id: text(row, 5)?,
        website_id: optional_text(row, 6)?,
        notify: row.try_get(7).doing(doing)?,
        password_marker: row.try_get(8).doing(doing)?,
        expires_at: optional_text(row, 9)?,
        applied_digest: row.try_get(11).doing(doing)?,
        applied_apply_id: None,
        password_hash: None,
        password_set_at: None,
        has_password: row.try_get(10).doing(doing)?,
    })
}

/// Up to how many customers [`read_part`] looks up by key rather than letting the planner
/// choose (which picks a hash join over the whole table from a few thousand keys).
const LOOKUPS_UP_TO: usize = 20_000;

/// What an incremental plan reads ([`Store::read_part`]), in the caller's transaction.
async fn read_part(conn: &mut PgConnection, query: &PartQuery<'_>) -> Result<Part, StoreError> {
    let doing = "reading the live state";
    let ids: Vec<&str> = query.customers.iter().map(CompactString::as_str).collect();
    if ids.len() <= LOOKUPS_UP_TO {
        // A few thousand keys are looked up one by one in the primary keys: the planner
        // would hash or scan all 300,000 logins (38 ms, on every core) for 5,000 customers
        // whose 15,000 logins the keys give in 15 ms.
        sqlx::query("SET LOCAL enable_hashjoin = off")
            .execute(&mut *conn)
            .await
            .doing(doing)?;
        sqlx::query("SET LOCAL enable_mergejoin = off")
            .execute(&mut *conn)
            .await
            .doing(doing)?;
    }
    let mut customers = Vec::with_capacity(ids.len());
    let mut rows = sqlx::query(
        "SELECT c.id, c.name, c.protect FROM unnest($1::text[]) AS k(id)
         JOIN customers AS c ON c.id = k.id",
    )
    .bind(&ids)
    .fetch(&mut *conn);
    while let Some(row) = rows.try_next().await.doing(doing)? {
        customers.push(customer_row(&row)?);
    }
    drop(rows);
    let mut logins = Vec::new();
    let mut rows = sqlx::query(
        "SELECT l.customer_id, l.contact, l.email, l.name, l.access, l.role_id, l.website_id,
                l.notify, l.password_marker, l.expires_at, l.password_hash IS NOT NULL,
                l.applied_digest
         FROM unnest($1::text[]) AS k(id) JOIN logins AS l ON l.customer_id = k.id",
    )
    .bind(&ids)
    .fetch(&mut *conn);
    while let Some(row) = rows.try_next().await.doing(doing)? {
        logins.push(login_row(&row)?);
    }
    drop(rows);
    let expiring: Vec<(String, String, Option<String>, String)> = sqlx::query_as(
        "SELECT customer_id, contact, email, expires_at FROM logins
         WHERE expires_at IS NOT NULL AND expires_at < $1 AND access
           AND NOT (customer_id = ANY($2))",
    )
    .bind(query.expiring_before)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .doing(doing)?;
    let (customers, digests) = super::rows::build_customers(customers, vec![logins])?;
    let mut state = shared::read_snapshot::<sqlx::Postgres>(&mut *conn, customers).await?;
    if query.access_keys {
        state.access = crate::state::LiveAccess::Keys(read_access_keys(&mut *conn).await?);
    }
    let markers = if query.password_markers {
        read_password_markers(&mut *conn).await?
    } else {
        crate::state::PasswordMarkers::default()
    };
    let applied = Applied {
        objects: read_applied_objects(&mut *conn).await?,
        logins: digests,
        version: shared::read_version::<sqlx::Postgres>(conn).await?,
    };
    let c = CompactString::from;
    Ok(Part {
        state,
        applied,
        expiring: expiring
            .into_iter()
            .map(|(i, k, e, x)| (c(i), c(k), e.map(c), c(x)))
            .collect(),
        markers,
    })
}

/// The keys of the logins with access (what validation needs of the logins not read).
async fn read_access_keys(conn: &mut PgConnection) -> Result<crate::state::LoginKeys, StoreError> {
    let mut keys = Vec::new();
    let mut rows =
        sqlx::query("SELECT customer_id, contact FROM logins WHERE access").fetch(&mut *conn);
    while let Some(row) = rows.try_next().await.doing("reading the live state")? {
        keys.push((text(&row, 0)?, text(&row, 1)?));
    }
    Ok(crate::state::LoginKeys::new(keys))
}

/// The reset marker of every login holding one.
async fn read_password_markers(
    conn: &mut PgConnection,
) -> Result<crate::state::PasswordMarkers, StoreError> {
    let doing = "reading the live state";
    let mut found = Vec::new();
    let mut rows = sqlx::query(
        "SELECT customer_id, contact, password_marker FROM logins
         WHERE password_marker IS NOT NULL",
    )
    .fetch(&mut *conn);
    while let Some(row) = rows.try_next().await.doing(doing)? {
        let marker: i64 = row.try_get(2).doing(doing)?;
        found.push((text(&row, 0)?, text(&row, 1)?, marker));
    }
    super::rows::password_markers(found)
}

fn text(row: &PgRow, column: usize) -> Result<CompactString, StoreError> {
    let text: &str = row.try_get(column).doing("reading the live state")?;
    Ok(text.into())
}

fn optional_text(row: &PgRow, column: usize) -> Result<Option<CompactString>, StoreError> {
    let text: Option<&str> = row.try_get(column).doing("reading the live state")?;
    Ok(text.map(CompactString::from))
}

/// Reads the digests of what portico last wrote of the objects other than logins, by
/// address.
async fn read_applied_objects(
    conn: &mut PgConnection,
) -> Result<
    std::collections::HashMap<CompactString, ObjectDigest, foldhash::fast::RandomState>,
    StoreError,
> {
    let doing = "reading what portico last applied";
    let mut applied = std::collections::HashMap::default();
    let mut rows = sqlx::query("SELECT address, digest FROM applied_objects").fetch(&mut *conn);
    while let Some(row) = rows.try_next().await.doing(doing)? {
        let address: &str = row.try_get(0).doing(doing)?;
        let digest: &str = row.try_get(1).doing(doing)?;
        applied.insert(address.into(), ObjectDigest::from_hex(digest));
    }
    Ok(applied)
}

/// An apply's first read (see `shared::read_version_for_apply`). It also says, for the
/// transaction, that its writes are the apply's: the write-count triggers skip them (the
/// apply counts itself once, at its end; migration 0021).
const READ_VERSION_FOR_APPLY: &str = "SELECT store, n, roles_at = n AND roles_digest = $1 FROM managed_changes, set_config('portico.applying', 'on', true) WHERE id = 1";
