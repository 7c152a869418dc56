//! The embedded SQLite store (the default, `sqlite://portico.db`).

use std::collections::HashMap;
use std::str::FromStr;

use std::io::Write as _;
use std::time::{Duration, Instant};

use compact_str::CompactString;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use super::rows::{Batches, CustomersBuilder, append_logins_from_json, customers_from_json};
use super::shared;
use super::sql::{StepStream, Writes, history_and_batches, standard_role_steps};
use super::{
    Applied, Doing, FileRow, LiveVersion, OpenOptions, Owners, Part, PartQuery, PlanIndex,
    ReadMark, Store, StoreError, redact_url, schema_status,
};
use super::{OutboxRow, Recorded};
use crate::history::{ApplyRecord, Provenance};
use crate::passwords::PasswordRow;
use crate::plan::Plan;
use crate::progress::{phase, phase_async};
use crate::state::ObjectDigest;
use crate::state::State;

use super::migrations::SQLITE_MIGRATOR as MIGRATOR;

/// A SQLite database file.
pub struct SqliteStore {
    url: String,
    options: SqliteConnectOptions,
    writable: bool,
    conn: Option<SqliteConnection>,
    lock: Option<std::fs::File>,
    /// This store's [`ReadMark::store`], and the mark of its last full read.
    id: u64,
    read_mark: Option<ReadMark>,
    /// The schema was found (or made) current on this connection: an apply and the count
    /// after it do not ask again (two statements each, a few tenths of a millisecond of a
    /// 10-login apply). A schema never goes back, and a newer one is refused before.
    current: bool,
}

impl SqliteStore {
    /// Prepares to open the database. Nothing is created until something is written: a
    /// missing file reads as an empty account.
    ///
    /// # Errors
    /// [`StoreError::Connect`] when the URL is malformed.
    pub async fn open(
        url: &str,
        writable: bool,
        opts: &OpenOptions,
    ) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|source| StoreError::Connect {
                url: redact_url(url),
                source,
            })?
            .busy_timeout(opts.busy_timeout)
            .foreign_keys(true)
            .read_only(!writable)
            .create_if_missing(writable);
        Ok(SqliteStore {
            url: url.to_string(),
            options,
            writable,
            conn: None,
            lock: None,
            id: {
                let mut bytes = [0u8; 8];
                getrandom::fill(&mut bytes).expect("the system's random source works");
                u64::from_le_bytes(bytes)
            },
            read_mark: None,
            current: false,
        })
    }

    /// The connection, opened (and for a writable store, the file created) on first use.
    async fn conn(&mut self, create: bool) -> Result<Option<&mut SqliteConnection>, StoreError> {
        if self.conn.is_none() && self.path().exists() {
            self.recover().await?;
        }
        if self.conn.is_none() && (create || self.path().exists()) {
            if create && !self.writable {
                let source = sqlx::Error::Configuration("the database is opened read-only".into());
                return Err(StoreError::Connect {
                    url: redact_url(&self.url),
                    source,
                });
            }
            let conn = SqliteConnection::connect_with(&self.options)
                .await
                .map_err(|source| StoreError::Connect {
                    url: redact_url(&self.url),
                    source,
                })?;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut())
    }

    /// Rolls back what an interrupted apply left (a "hot" rollback journal beside the file)
    /// before anything reads: a read-only connection cannot do that itself and would fail
    /// with "attempt to write a readonly database" until the next apply.
    async fn recover(&mut self) -> Result<(), StoreError> {
        let mut journal = self.path().as_os_str().to_owned();
        journal.push("-journal");
        let hot = std::fs::metadata(&journal).is_ok_and(|m| m.len() > 0);
        if !hot {
            return Ok(());
        }
        let options = self
            .options
            .clone()
            .read_only(false)
            .create_if_missing(false);
        let recovered = async {
            let mut conn = SqliteConnection::connect_with(&options).await?;
            // The first read of a writable connection rolls the hot journal back.
            sqlx::query("SELECT count(*) FROM sqlite_master")
                .execute(&mut conn)
                .await?;
            conn.close().await
        };
        match recovered.await {
            Ok(()) => {
                eprintln!(
                    "note: {} holds what an interrupted apply left; it was rolled back (that apply changed nothing)",
                    self.path().display()
                );
                Ok(())
            }
            Err(source) => Err(StoreError::Connect {
                url: format!(
                    "{} (an interrupted apply left a journal that needs write access to roll back: run any apply, or `portico init`, with write access)",
                    redact_url(&self.url)
                ),
                source,
            }),
        }
    }

    /// The file behind this store.
    pub fn path(&self) -> &std::path::Path {
        self.options.get_filename()
    }

    fn lock_path(&self) -> std::path::PathBuf {
        let mut path = self.path().as_os_str().to_owned();
        path.push(".lock");
        path.into()
    }
}

impl Store for SqliteStore {
    async fn init(&mut self) -> Result<(), StoreError> {
        let conn = self.conn(true).await?.expect("created");
        MIGRATOR.run(&mut *conn).await?;
        let mut tx = conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .doing("starting a transaction")?;
        let (_, roles, _) = read_version_for_apply(&mut tx).await?;
        if !roles {
            shared::run_steps::<sqlx::Sqlite>(&mut tx, standard_role_steps(&WRITES)).await?;
        }
        tx.commit().await.doing("committing")
    }

    async fn migrate(&mut self) -> Result<(), StoreError> {
        if let Some(conn) = self.conn(false).await? {
            let found = schema_version(conn).await?;
            if matches!(found, Some(found) if found < known_version()) {
                MIGRATOR.run(&mut *conn).await?;
                self.current = true;
            } else {
                self.current = found == Some(known_version());
            }
        }
        Ok(())
    }

    async fn has_schema(&mut self) -> Result<bool, StoreError> {
        Ok(match self.conn(false).await? {
            Some(conn) => schema_version(conn).await?.is_some(),
            None => false,
        })
    }

    async fn login_activity(&mut self) -> Result<super::Activity, StoreError> {
        let Some(conn) = self.conn(false).await? else {
            return Ok(super::Activity::default());
        };
        if !schema_ready(conn).await? {
            return Ok(super::Activity::default());
        }
        let logins = sqlx::query_as(super::LOGIN_ACTIVITY)
            .fetch_all(&mut *conn)
            .await
            .doing("reading login activity")?;
        let written: Vec<super::WrittenBy> = sqlx::query_as(super::WRITTEN_BY)
            .fetch_all(&mut *conn)
            .await
            .doing("reading which apply wrote each login")?;
        Ok(super::Activity::new(logins, written))
    }

    async fn unlock_apply(&mut self) -> Result<(), StoreError> {
        // Closing the file releases its lock.
        self.lock = None;
        Ok(())
    }

    async fn lock(&mut self, timeout: Duration, holder: &str) -> Result<(), StoreError> {
        if self.lock.is_some() {
            return Ok(());
        }
        let path = self.lock_path();
        let io = |e: std::io::Error| {
            StoreError::Lock(format!("cannot use the lock file {}: {e}", path.display()))
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < timeout => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    // The holder is the first line: an apply killed between writing its
                    // line and cutting the file leaves the end of a longer old one after it.
                    let held_by = std::fs::read_to_string(&path).ok().and_then(|h| {
                        let first = h.lines().next().unwrap_or_default().trim();
                        (!first.is_empty()).then(|| first.to_string())
                    });
                    return Err(StoreError::LockTimeout {
                        waited: timeout,
                        held_by,
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
            }
        }
        // The holder is written over the old one, then the file cut to its length: cutting
        // it to nothing first made ext4 flush the last holder's line to disk (its guard for
        // files replaced by truncation), 10–14 ms of every apply.
        let line = format!("{holder} (pid {})\n", std::process::id());
        file.write_all(line.as_bytes()).map_err(io)?;
        file.set_len(line.len() as u64).map_err(io)?;
        self.lock = Some(file);
        Ok(())
    }

    async fn read(&mut self) -> Result<State, StoreError> {
        let Some(conn) = self.conn(false).await? else {
            return Ok(State::empty());
        };
        if !schema_ready(conn).await? {
            return Ok(State::empty());
        }
        read_state(conn).await
    }

    async fn read_with_applied(&mut self) -> Result<(State, Applied), StoreError> {
        let Some(conn) = self.conn(false).await? else {
            return Ok((State::empty(), Applied::default()));
        };
        if !schema_ready(conn).await? {
            return Ok((State::empty(), Applied::default()));
        }
        // One read transaction: every query sees the same committed state.
        let mut tx = conn.begin().await.doing("starting a read transaction")?;
        let (state, applied) = read_state_and_applied(&mut tx).await?;
        let version = data_version(&mut tx).await?;
        tx.rollback().await.doing("ending the read transaction")?;
        self.read_mark = Some(ReadMark {
            store: self.id,
            version,
        });
        Ok((state, applied))
    }

    fn read_mark(&self) -> Option<ReadMark> {
        self.read_mark
    }

    async fn read_index(
        &mut self,
    ) -> Result<(LiveVersion, Option<(i64, Option<PlanIndex>)>), StoreError> {
        let Some(conn) = self.conn(false).await? else {
            return Ok((LiveVersion::default(), None));
        };
        if !schema_ready(conn).await? {
            return Ok((LiveVersion::default(), None));
        }
        let mut tx = conn.begin().await.doing("starting a read transaction")?;
        let version = shared::read_version::<sqlx::Sqlite>(&mut tx).await?;
        let index = shared::read_index::<sqlx::Sqlite>(&mut tx).await?;
        tx.rollback().await.doing("ending the read transaction")?;
        Ok((version, index))
    }

    async fn record_index(
        &mut self,
        index: &PlanIndex,
        fingerprint: &str,
    ) -> Result<(), StoreError> {
        let Some(conn) = self.conn(true).await? else {
            return Ok(());
        };
        if !schema_ready(conn).await? {
            return Ok(());
        }
        let mut tx = conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .doing("taking the write lock")?;
        shared::record_index::<sqlx::Sqlite>(&mut tx, index, fingerprint, &WRITES).await?;
        tx.commit().await.doing("committing")?;
        Ok(())
    }

    async fn owners(
        &mut self,
        customers: &[CompactString],
        emails: &[CompactString],
    ) -> Result<Owners, StoreError> {
        let Some(conn) = self.conn(false).await? else {
            return Ok(Owners::default());
        };
        let doing = "reading the live state";
        let json = |v: &[CompactString]| serde_json::to_string(v).expect("strings serialise");
        let mut tx = conn.begin().await.doing("starting a read transaction")?;
        let text: String = sqlx::query_scalar(
            "SELECT json_group_array(id) FROM customers WHERE id IN (SELECT value FROM json_each(?1))",
        )
        .bind(json(customers))
        .fetch_one(&mut *tx)
        .await
        .doing(doing)?;
        let found = decode(&text, "customers")?;
        let text: String = sqlx::query_scalar(READ_EMAIL_OWNERS)
            .bind(json(emails))
            .fetch_one(&mut *tx)
            .await
            .doing(doing)?;
        let emails = decode(&text, "login emails")?;
        let version = shared::read_version::<sqlx::Sqlite>(&mut tx).await?;
        tx.rollback().await.doing("ending the read transaction")?;
        Ok(Owners {
            version,
            customers: found,
            emails,
        })
    }

    async fn roles_elsewhere(
        &mut self,
        roles: &[CompactString],
        customers: &[CompactString],
    ) -> Result<(LiveVersion, Vec<CompactString>), StoreError> {
        let Some(conn) = self.conn(false).await? else {
            return Ok((LiveVersion::default(), Vec::new()));
        };
        let json = |v: &[CompactString]| serde_json::to_string(v).expect("strings serialise");
        let mut tx = conn.begin().await.doing("starting a read transaction")?;
        let text: String = sqlx::query_scalar(READ_ROLES_ELSEWHERE)
            .bind(json(roles))
            .bind(json(customers))
            .fetch_one(&mut *tx)
            .await
            .doing("reading the live state")?;
        let version = shared::read_version::<sqlx::Sqlite>(&mut tx).await?;
        tx.rollback().await.doing("ending the read transaction")?;
        Ok((version, decode(&text, "roles")?))
    }

    async fn read_part(&mut self, query: &PartQuery<'_>) -> Result<Part, StoreError> {
        let Some(conn) = self.conn(false).await? else {
            return Ok(Part::empty());
        };
        if !schema_ready(conn).await? {
            return Ok(Part::empty());
        }
        let mut tx = conn.begin().await.doing("starting a read transaction")?;
        let part = read_part(&mut tx, query).await?;
        tx.rollback().await.doing("ending the read transaction")?;
        Ok(part)
    }

    async fn read_files(&mut self, paths: &[String]) -> Result<Vec<FileRow>, StoreError> {
        let Some(conn) = self.conn(false).await? else {
            return Ok(Vec::new());
        };
        let paths = serde_json::to_string(paths).expect("strings serialise");
        sqlx::query_as(
            "SELECT path, lower(hex(digest)), ids, groups FROM plan_index_files
             WHERE path IN (SELECT value FROM json_each(?1))",
        )
        .bind(paths)
        .fetch_all(&mut *conn)
        .await
        .doing("reading the plan index")
    }

    async fn read_pages(
        &mut self,
        firsts: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let Some(conn) = self.conn(false).await? else {
            return Ok(Vec::new());
        };
        let firsts = serde_json::to_string(firsts).expect("strings serialise");
        sqlx::query_as(
            "SELECT first, body FROM plan_index_pages
             WHERE first IN (SELECT value FROM json_each(?1))",
        )
        .bind(firsts)
        .fetch_all(&mut *conn)
        .await
        .doing("reading the plan index")
    }

    async fn history(&mut self, id: Option<i64>) -> Result<Vec<ApplyRecord>, StoreError> {
        let Some(conn) = self.conn(false).await? else {
            return Ok(Vec::new());
        };
        if !schema_ready(conn).await? {
            return Ok(Vec::new());
        }
        shared::read_history::<sqlx::Sqlite>(conn, id).await
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
        let id = self.id;
        let current = self.current;
        let conn = self.conn(true).await?.expect("created");
        // The schema is made here when there is none (the migrator's full check costs a
        // millisecond or two, so a current schema is not checked again).
        if !current && schema_version(conn).await? != Some(known_version()) {
            MIGRATOR.run(&mut *conn).await?;
        }
        let building = history_and_batches(plan, history, passwords);
        let cached = conn.cached_statements_size();
        // A small plan's history row and batches are built while the transaction begins.
        let (begun, building) = tokio::join!(
            crate::progress::phase_async("begin", conn.begin_with("BEGIN IMMEDIATE")),
            building.here()
        );
        let mut tx = begun.doing("taking the write lock")?;
        // A plan computed from this connection's last read, with no commit by anyone else
        // since, was computed from exactly what is live; else the write count tells.
        let (version, roles, data_version) =
            crate::progress::phase_async("check version", read_version_for_apply(&mut tx)).await?;
        let unchanged = plan
            .read_mark
            .is_some_and(|mark| mark.store == id && mark.version == data_version);
        if !unchanged && version.fingerprint() != plan.live_fingerprint {
            return Err(StoreError::Stale);
        }
        // A big apply sets the write-count triggers aside (one run per row doubled its
        // writes); a small one keeps them (setting them aside rewrites the schema).
        let triggers = if plan.changes.len() >= TRIGGERS_ASIDE_FROM {
            set_triggers_aside(&mut tx).await?
        } else {
            Vec::new()
        };
        if !roles {
            shared::run_steps::<sqlx::Sqlite>(&mut tx, standard_role_steps(&WRITES)).await?;
        }
        // A big plan's history row and batches, from their thread (a stale apply was told
        // so without waiting for them).
        let (history, mut batches) = building.built().await;
        // The history row first: its id goes with every applied object the rows write.
        let id = crate::progress::phase_async("insert history", async {
            shared::insert_history::<sqlx::Sqlite>(&mut tx, &history).await
        })
        .await?;
        batches.set_apply_id(id);
        // An everyday index is made while the database writes the rows.
        let (written, made) = tokio::join!(
            crate::progress::phase_async("write rows", write(&mut tx, batches)),
            shared::sealed(index)
        );
        written?;
        let pending = crate::progress::phase_async("record index", async {
            shared::finish_apply::<sqlx::Sqlite>(&mut tx, (made, pending), &WRITES).await
        })
        .await?;
        restore_triggers(&mut tx, triggers).await?;
        // The statements compiled inside the transaction (none in an everyday apply: see
        // `prepare_apply`), while the statement cache is not full.
        let compiled = tx.cached_statements_size().saturating_sub(cached);
        crate::progress::count("statements compiled in the write", compiled);
        crate::progress::phase_async("commit", tx.commit())
            .await
            .doing("committing")?;
        self.current = true;
        Ok(Recorded { id, pending })
    }

    async fn prepare_apply(
        &mut self,
        which: super::ApplyStatements,
        done: &(dyn Fn() -> bool + Sync),
    ) {
        let Ok(Some(conn)) = self.conn(false).await else {
            return;
        };
        for sql in shared::apply_statements(which, &WRITES, VERSION_FOR_APPLY) {
            if done() || sqlx::Executor::prepare(&mut *conn, sql).await.is_err() {
                return;
            }
        }
    }

    async fn outbox(&mut self, pending_only: bool) -> Result<Vec<OutboxRow>, StoreError> {
        let Some(conn) = self.conn(false).await? else {
            return Ok(Vec::new());
        };
        if !schema_ready(conn).await? {
            return Ok(Vec::new());
        }
        shared::read_outbox::<sqlx::Sqlite>(conn, pending_only).await
    }

    async fn issue_tokens(
        &mut self,
        tokens: &[super::NewToken<'_>],
    ) -> Result<Vec<String>, StoreError> {
        let conn = self.conn(true).await?.expect("created");
        shared::issue_tokens::<sqlx::Sqlite>(conn, tokens).await
    }

    async fn claim_many(&mut self, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        let conn = self.conn(true).await?.expect("created");
        shared::claim_many::<sqlx::Sqlite>(conn, ids).await
    }

    async fn record_results(&mut self, results: &[super::Settled]) -> Result<(), StoreError> {
        let conn = self.conn(true).await?.expect("created");
        shared::record_results::<sqlx::Sqlite>(conn, results).await
    }

    async fn requeue_failed(&mut self) -> Result<u64, StoreError> {
        let conn = self.conn(true).await?.expect("created");
        shared::requeue_failed::<sqlx::Sqlite>(conn).await
    }

    async fn redeem_token(
        &mut self,
        token_hash: &str,
        password_hash: &str,
    ) -> Result<String, StoreError> {
        // Never create a database just to refuse a token.
        let Some(conn) = self.conn(false).await? else {
            return Err(StoreError::Token("this link is not valid".into()));
        };
        if !schema_ready(conn).await? {
            return Err(StoreError::Token("this link is not valid".into()));
        }
        let mut tx = conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .doing("starting a transaction")?;
        let email = shared::redeem::<sqlx::Sqlite>(&mut tx, token_hash, password_hash).await?;
        tx.commit().await.doing("committing")?;
        Ok(email)
    }

    async fn login_runtime(
        &mut self,
        email: &str,
    ) -> Result<Option<super::LoginRuntime>, StoreError> {
        let Some(conn) = self.conn(false).await? else {
            return Ok(None);
        };
        if !schema_ready(conn).await? {
            return Ok(None);
        }
        Ok(shared::login_runtime::<sqlx::Sqlite>(conn, email)
            .await?
            .map(|(runtime, _)| runtime))
    }

    async fn unlock(&mut self, email: &str, provenance: &Provenance) -> Result<i64, StoreError> {
        let mut tx = self.day2_transaction(email, provenance).await?;
        let id =
            shared::day2_op::<sqlx::Sqlite>(&mut tx, email, provenance, shared::Day2Op::Unlock)
                .await?;
        tx.commit().await.doing("committing")?;
        Ok(id)
    }

    async fn resend(&mut self, email: &str, provenance: &Provenance) -> Result<i64, StoreError> {
        let mut tx = self.day2_transaction(email, provenance).await?;
        let id = shared::day2_op::<sqlx::Sqlite>(
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

impl SqliteStore {
    /// Takes the apply lock and opens a write transaction on an existing, current database
    /// for a day-2 operation on `email`; never creates a database.
    async fn day2_transaction(
        &mut self,
        email: &str,
        provenance: &Provenance,
    ) -> Result<sqlx::Transaction<'_, sqlx::Sqlite>, StoreError> {
        self.lock(OpenOptions::default().busy_timeout, &provenance.actor)
            .await?;
        let Some(conn) = self.conn(false).await? else {
            return Err(super::day2::unknown(email));
        };
        if !schema_ready(conn).await? {
            return Err(super::day2::unknown(email));
        }
        conn.begin_with("BEGIN IMMEDIATE")
            .await
            .doing("taking the write lock")
    }
}

/// Whether the database has migrations this build has not applied yet.
fn known_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

async fn schema_version(conn: &mut SqliteConnection) -> Result<Option<i64>, StoreError> {
    let has_table: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
    )
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

/// Whether portico's schema is there and current (see [`schema_status`]).
async fn schema_ready(conn: &mut SqliteConnection) -> Result<bool, StoreError> {
    schema_status(schema_version(conn).await?, known_version())
}

/// `PRAGMA data_version`, which changes whenever another connection commits to the file,
/// and the rows this connection itself has changed so far (`total_changes()`): together,
/// equal values mean nobody wrote in between.
async fn data_version(conn: &mut SqliteConnection) -> Result<(i64, i64), StoreError> {
    sqlx::query_as("SELECT data_version, total_changes() FROM pragma_data_version")
        .fetch_one(&mut *conn)
        .await
        .doing("reading the data version")
}

async fn read_state(conn: &mut SqliteConnection) -> Result<State, StoreError> {
    let (customers, _) = read_big_tables(&mut *conn).await?;
    shared::read_snapshot::<sqlx::Sqlite>(conn, customers).await
}

/// The state and the digests of what portico last wrote: the logins' from their rows, the
/// other objects' from `applied_objects`.
async fn read_state_and_applied(
    conn: &mut SqliteConnection,
) -> Result<(State, Applied), StoreError> {
    let (customers, logins) = read_big_tables(&mut *conn).await?;
    let state = shared::read_snapshot::<sqlx::Sqlite>(&mut *conn, customers).await?;
    let objects = read_applied_objects(&mut *conn).await?;
    let version = shared::read_version::<sqlx::Sqlite>(conn).await?;
    Ok((
        state,
        Applied {
            objects,
            logins,
            version,
        },
    ))
}

/// How many changes an apply makes before it sets the write-count triggers aside.
const TRIGGERS_ASIDE_FROM: usize = 1_000;

/// Sets the write-count triggers aside for the apply's own writes (it raises the count once
/// at the end: at 300,000 new logins, a trigger per row doubled the time of the writes).
/// Returns their definitions, to create them again in the same transaction.
async fn set_triggers_aside(conn: &mut SqliteConnection) -> Result<Vec<String>, StoreError> {
    let doing = "setting the write-count triggers aside";
    let triggers: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'managed!_%' ESCAPE '!'",
    )
    .fetch_all(&mut *conn)
    .await
    .doing(doing)?;
    for (name, _) in &triggers {
        // The name comes from the schema itself, quoted as an identifier.
        let drop = format!("DROP TRIGGER \"{}\"", name.replace('"', "\"\""));
        sqlx::query(sqlx::AssertSqlSafe(drop))
            .execute(&mut *conn)
            .await
            .doing(doing)?;
    }
    Ok(triggers.into_iter().map(|(_, sql)| sql).collect())
}

/// Creates again the triggers [`set_triggers_aside`] set aside.
async fn restore_triggers(conn: &mut SqliteConnection, sql: Vec<String>) -> Result<(), StoreError> {
    for create in sql {
        sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(&mut *conn)
            .await
            .doing("creating the write-count triggers again")?;
    }
    Ok(())
}

/// Runs the plan's batches in apply order, each batch's JSON written on another thread
/// while SQLite runs the one before.
async fn write(conn: &mut SqliteConnection, batches: Batches) -> Result<(), StoreError> {
    let mut stream = StepStream::spawn(&WRITES, batches);
    let at = stream.at.clone();
    while let Some((index, param)) = stream.next().await {
        let step = stream.steps[index];
        let query = sqlx::query(step.sql).bind(param);
        let query = if step.stamped {
            query.bind(at.as_str())
        } else {
            query
        };
        query.execute(&mut *conn).await.doing(step.doing)?;
    }
    Ok(())
}

const WRITES: Writes = Writes {
    upsert_features: UPSERT_FEATURES,
    upsert_login_policy: UPSERT_LOGIN_POLICY,
    upsert_websites: UPSERT_WEBSITES,
    delete_websites: DELETE_WEBSITES,
    upsert_policies: "INSERT INTO policies (id, message, rule)
        SELECT value->>'id', value->>'message', value->>'rule' FROM json_each(?1) WHERE true
        ON CONFLICT (id) DO UPDATE SET message = excluded.message, rule = excluded.rule",
    delete_policies: "DELETE FROM policies WHERE id IN (SELECT value FROM json_each(?1))",
    upsert_clients: "INSERT INTO oidc_clients
            (id, name, website, redirect_uris, post_logout_redirect_uris, scopes, secret_marker)
        SELECT value->>'id', value->>'name', value->>'website', value->>'redirect_uris',
            value->>'post_logout_redirect_uris', value->>'scopes', value->>'secret_marker'
        FROM json_each(?1) WHERE true
        ON CONFLICT (id) DO UPDATE SET name = excluded.name, website = excluded.website,
            redirect_uris = excluded.redirect_uris,
            post_logout_redirect_uris = excluded.post_logout_redirect_uris,
            scopes = excluded.scopes, secret_marker = excluded.secret_marker,
            secret_hash = CASE WHEN excluded.secret_marker IS NULL THEN NULL
                ELSE oidc_clients.secret_hash END",
    delete_clients: "DELETE FROM oidc_clients WHERE id IN (SELECT value FROM json_each(?1))",
    set_client_secrets: "UPDATE oidc_clients SET secret_hash =
            (SELECT value->>'hash' FROM json_each(?1) WHERE value->>'client' = oidc_clients.id)
        WHERE id IN (SELECT value->>'client' FROM json_each(?1))",
    upsert_roles: UPSERT_ROLES,
    delete_role_permissions: DELETE_ROLE_PERMISSIONS,
    insert_role_permissions: INSERT_ROLE_PERMISSIONS,
    delete_roles: DELETE_ROLES,
    delete_logins: DELETE_LOGINS,
    delete_customer_logins: DELETE_CUSTOMER_LOGINS,
    delete_customers: DELETE_CUSTOMERS,
    release_emails: RELEASE_EMAILS,
    upsert_customers: UPSERT_CUSTOMERS,
    insert_customers: "WITH r(v) AS MATERIALIZED (SELECT value FROM json_each(?1))
        INSERT INTO customers (id, name, protect) SELECT v->>'id', v->>'name', v->>'protect' FROM r",
    upsert_logins: UPSERT_LOGINS,
    insert_logins: "WITH r(v) AS MATERIALIZED (SELECT value FROM json_each(?1))
        INSERT INTO logins
        (customer_id, contact, email, name, access, role_id, website_id, notify, password_marker, expires_at,
         applied_digest, applied_apply_id, password_hash, password_set_at)
        SELECT v->>'customer_id', v->>'contact', v->>'email', v->>'name',
               v->>'access', v->>'role_id', v->>'website_id', v->>'notify',
               v->>'password_marker', v->>'expires_at', v->>'applied_digest', v->>'applied_apply_id',
               v->>'password_hash', v->>'password_set_at'
        FROM r",
    insert_applied: None,
    upsert_applied: "WITH r(v) AS MATERIALIZED (SELECT value FROM json_each(?1))
        INSERT INTO applied_objects (address, digest, apply_id)
        SELECT v->>'address', v->>'digest', v->>'apply_id' FROM r WHERE true
        ON CONFLICT (address) DO UPDATE SET digest = excluded.digest, apply_id = excluded.apply_id",
    delete_applied: "DELETE FROM applied_objects WHERE address IN (SELECT value FROM json_each(?1))",
    upsert_notification_settings: "INSERT INTO notification_settings (id, url, auth_env, smtp_url, smtp_username, smtp_password_env, from_address, reply_to, login_url, token_ttl_hours, max_attempts, template_subject, template_text, template_html, reset_ttl_minutes, reset_subject, reset_text, reset_html)
        SELECT 1, value->>'url', value->>'auth_env', value->>'smtp_url', value->>'smtp_username', value->>'smtp_password_env', value->>'from_address', value->>'reply_to', value->>'login_url', value->>'token_ttl_hours', value->>'max_attempts', value->>'template_subject', value->>'template_text', value->>'template_html', value->>'reset_ttl_minutes', value->>'reset_subject', value->>'reset_text', value->>'reset_html'
        FROM json_each(?1) WHERE true
        ON CONFLICT (id) DO UPDATE SET url = excluded.url, auth_env = excluded.auth_env, smtp_url = excluded.smtp_url, smtp_username = excluded.smtp_username, smtp_password_env = excluded.smtp_password_env, from_address = excluded.from_address, reply_to = excluded.reply_to, login_url = excluded.login_url, token_ttl_hours = excluded.token_ttl_hours, max_attempts = excluded.max_attempts, template_subject = excluded.template_subject, template_text = excluded.template_text, template_html = excluded.template_html, reset_ttl_minutes = excluded.reset_ttl_minutes, reset_subject = excluded.reset_subject, reset_text = excluded.reset_text, reset_html = excluded.reset_html",
    set_passwords:
        "UPDATE logins SET password_hash = j.value->>'hash', password_set_at = ?2
        FROM json_each(?1) AS j
        WHERE logins.customer_id = j.value->>'customer_id' AND logins.contact = j.value->>'contact'",
    queue_notifications: "WITH r(k, v) AS MATERIALIZED (SELECT key, value FROM json_each(?1))
        INSERT INTO notifications
        (created_at, customer_id, contact, email, password_assigned, status)
        SELECT unixepoch(?2), v->>'customer_id', v->>'contact',
               NULLIF(v->>'email', v->>'contact'), v->>'password_assigned', 0
        FROM r ORDER BY k",
    revoke_tokens:
        "UPDATE set_password_tokens SET revoked_at = ?2
        WHERE used_at IS NULL AND revoked_at IS NULL AND (customer_id, contact) IN
            (SELECT value->>'customer_id', value->>'contact' FROM json_each(?1))",
    cancel_notifications: "UPDATE notifications SET status = 2
        WHERE status = 0 AND (customer_id, contact) IN
            (SELECT value->>'customer_id', value->>'contact' FROM json_each(?1))",
    // Sessions are few: each is checked against its login by key (logins have no index by
    // role).
    end_role_sessions: "DELETE FROM sessions WHERE EXISTS (SELECT 1 FROM logins l
            WHERE l.customer_id = sessions.customer_id AND l.contact = sessions.contact
            AND l.role_id IN (SELECT value FROM json_each(?1)))",
    end_sessions: "DELETE FROM sessions WHERE (customer_id, contact) IN
            (SELECT value->>'customer_id', value->>'contact' FROM json_each(?1))",
    upsert_index_files: "INSERT INTO plan_index_files (path, digest, ids, groups)
        SELECT value->>'path', unhex(value->>'digest'), unhex(value->>'ids'), unhex(value->>'groups')
        FROM json_each(?1) WHERE true
        ON CONFLICT (path) DO UPDATE
        SET digest = excluded.digest, ids = excluded.ids, groups = excluded.groups",
    delete_index_files: "DELETE FROM plan_index_files WHERE path IN (SELECT value FROM json_each(?1))",
    together: super::finish::Together::Statements,
};

const RESEND: shared::ResendSql = shared::ResendSql {
    revoke_tokens: WRITES.revoke_tokens,
    cancel_notifications: WRITES.cancel_notifications,
    queue: WRITES.queue_notifications,
};

const UPSERT_FEATURES: &str = "INSERT INTO features (name, enabled)
    SELECT value->>'name', value->>'enabled' FROM json_each(?1) WHERE true
    ON CONFLICT (name) DO UPDATE SET enabled = excluded.enabled";

const UPSERT_LOGIN_POLICY: &str = "INSERT INTO login_policy
    (id, max_failed_attempts, lockout_minutes, session_timeout_minutes, password_min_length, session_max_hours)
    SELECT 1, value->>'max_failed_attempts', value->>'lockout_minutes',
           value->>'session_timeout_minutes', value->>'password_min_length', value->>'session_max_hours'
    FROM json_each(?1) WHERE true
    ON CONFLICT (id) DO UPDATE SET max_failed_attempts = excluded.max_failed_attempts,
        lockout_minutes = excluded.lockout_minutes,
        session_timeout_minutes = excluded.session_timeout_minutes,
        password_min_length = excluded.password_min_length,
        session_max_hours = excluded.session_max_hours";

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

// The big writes read each row's JSON once: `json_each`'s `value` is rebuilt as text every
// time it is named, so ten `value->>` per row turned each row into text ten times.
const UPSERT_CUSTOMERS: &str = "WITH r(v) AS MATERIALIZED (SELECT value FROM json_each(?1))
    INSERT INTO customers (id, name, protect)
    SELECT v->>'id', v->>'name', v->>'protect' FROM r WHERE true
    ON CONFLICT (id) DO UPDATE SET name = excluded.name, protect = excluded.protect";

const UPSERT_LOGINS: &str = "WITH r(v) AS MATERIALIZED (SELECT value FROM json_each(?1))
    INSERT INTO logins
    (customer_id, contact, email, name, access, role_id, website_id, notify, password_marker, expires_at,
     applied_digest, applied_apply_id)
    SELECT v->>'customer_id', v->>'contact', v->>'email', v->>'name',
           v->>'access', v->>'role_id', v->>'website_id', v->>'notify',
           v->>'password_marker', v->>'expires_at', v->>'applied_digest', v->>'applied_apply_id'
    FROM r WHERE true
    ON CONFLICT (customer_id, contact) DO UPDATE SET email = excluded.email,
        name = excluded.name, access = excluded.access, role_id = excluded.role_id,
        website_id = excluded.website_id, notify = excluded.notify,
        password_marker = excluded.password_marker, expires_at = excluded.expires_at,
        applied_digest = excluded.applied_digest, applied_apply_id = excluded.applied_apply_id";

/// `[[id, name, protect], …]`, in key order.
const READ_CUSTOMERS: &str = "SELECT json_group_array(json_array(id, name, protect))
    FROM (SELECT id, name, protect FROM customers ORDER BY id)";

/// `[[customer_id, contact, email, name, access, role_id, website_id, notify,
/// password_marker, expires_at, has_password], …]`: the first `$1` logins in key order.
const READ_LOGINS_FIRST: &str =
    "SELECT json_group_array(json_array(customer_id, contact, email, name, access, role_id,
                website_id, notify, password_marker, expires_at, has_password, applied_digest))
         FROM (SELECT *, password_hash IS NOT NULL AS has_password FROM logins
               ORDER BY customer_id, contact LIMIT $1)";

/// The same, for the `$3` logins after the key (`$1`, `$2`).
const READ_LOGINS_AFTER: &str =
    "SELECT json_group_array(json_array(customer_id, contact, email, name, access, role_id,
                website_id, notify, password_marker, expires_at, has_password, applied_digest))
         FROM (SELECT *, password_hash IS NOT NULL AS has_password FROM logins
               WHERE (customer_id, contact) > ($1, $2)
               ORDER BY customer_id, contact LIMIT $3)";

/// The key (`customer_id`, `contact`) of the login `$1` past the first, in key order: the
/// last of a page of `$1 + 1`.
const PAGE_END_FIRST: &str = "SELECT customer_id, contact FROM logins
    ORDER BY customer_id, contact LIMIT 1 OFFSET $1";

/// The same, counted from the login after the key (`$1`, `$2`).
const PAGE_END_AFTER: &str = "SELECT customer_id, contact FROM logins
    WHERE (customer_id, contact) > ($1, $2)
    ORDER BY customer_id, contact LIMIT 1 OFFSET $3";

/// `{address: digest, …}` of the objects other than logins.
const READ_APPLIED: &str = "SELECT json_group_object(address, digest) FROM applied_objects";

/// How many logins one read of the live state fetches at a time: `PORTICO_READ_PAGE_ROWS`,
/// else 25,000 (a page's JSON is ~4 MB; the tests use tiny pages to cross many).
fn logins_page() -> i64 {
    std::env::var("PORTICO_READ_PAGE_ROWS")
        .ok()
        .and_then(|rows| rows.parse::<i64>().ok())
        .filter(|rows| *rows > 0)
        .unwrap_or(25_000)
}

/// Reads the customers and the logins as JSON values built by SQLite: rows read one by one
/// cost far more (sqlx wakes the reading task once per row from its SQLite thread). The
/// logins, the biggest table, come in pages ([`logins_page`] rows) in key order: one value
/// for all of them was held twice (SQLite's and ours) at the peak of reading. Each page
/// becomes state before the next is read ([`CustomersBuilder`]).
async fn read_big_tables(
    conn: &mut SqliteConnection,
) -> Result<(super::rows::LiveCustomers, crate::state::LoginDigests), StoreError> {
    let doing = "reading the live state";
    let json = phase_async(
        "read customers json",
        sqlx::query_scalar::<_, String>(READ_CUSTOMERS).fetch_one(&mut *conn),
    )
    .await
    .doing(doing)?;
    let customers = phase("decode customers", || customers_from_json(&json))?;
    drop(json);
    let page_rows = logins_page();
    // SQLite makes a page's JSON on the connection's own thread while the page before is
    // decoded and built into state on a blocking thread: the read takes about as long as
    // SQLite's part alone. Each page starts after the key the one before ends on, found
    // first in the index (a millisecond), so the next page is asked for before this one is
    // decoded.
    let mut building = tokio::task::spawn_blocking(move || Ok(CustomersBuilder::new(customers)));
    let mut after: Option<(CompactString, CompactString)> = None;
    loop {
        let json = phase_async(
            "read logins json",
            logins_page_json(conn, &after, page_rows),
        )
        .await
        .doing(doing)?;
        let end = page_end(conn, &after, page_rows).await.doing(doing)?;
        let mut builder = super::rows::joined(building).await?;
        building = tokio::task::spawn_blocking(move || {
            let mut page = Vec::with_capacity(usize::try_from(page_rows).unwrap_or(0));
            phase("decode logins", || {
                append_logins_from_json(&json, &mut page)
            })?;
            drop(json);
            phase("logins into state", || builder.add_page(page))?;
            Ok(builder)
        });
        match end {
            Some(key) => after = Some(key),
            None => break,
        }
    }
    Ok(super::rows::joined(building).await?.finish())
}

/// The JSON of the `rows` logins after the key `after` (from the first without one).
async fn logins_page_json(
    conn: &mut SqliteConnection,
    after: &Option<(CompactString, CompactString)>,
    rows: i64,
) -> Result<String, sqlx::Error> {
    let query = match after {
        None => sqlx::query_scalar::<_, String>(READ_LOGINS_FIRST),
        Some((customer, contact)) => sqlx::query_scalar::<_, String>(READ_LOGINS_AFTER)
            .bind(customer.as_str())
            .bind(contact.as_str()),
    };
    query.bind(rows).fetch_one(&mut *conn).await
}

/// The key of the last of the `rows` logins after `after`, in the order
/// [`logins_page_json`] reads them; none when fewer are left (that page is the last).
async fn page_end(
    conn: &mut SqliteConnection,
    after: &Option<(CompactString, CompactString)>,
    rows: i64,
) -> Result<Option<(CompactString, CompactString)>, sqlx::Error> {
    let query = match after {
        None => sqlx::query_as::<_, (String, String)>(PAGE_END_FIRST),
        Some((customer, contact)) => sqlx::query_as::<_, (String, String)>(PAGE_END_AFTER)
            .bind(customer.as_str())
            .bind(contact.as_str()),
    };
    let key = query.bind(rows - 1).fetch_optional(&mut *conn).await?;
    Ok(key.map(|(customer, contact)| (customer.into(), contact.into())))
}

/// Reads the digests of what portico last wrote of the objects other than logins, by
/// address.
async fn read_applied_objects(
    conn: &mut SqliteConnection,
) -> Result<HashMap<CompactString, ObjectDigest, foldhash::fast::RandomState>, StoreError> {
    let json: String = sqlx::query_scalar(READ_APPLIED)
        .fetch_one(&mut *conn)
        .await
        .doing("reading what portico last applied")?;
    serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("applied_objects: {e}")))
}

/// `[[id, name, protect], …]` of the customers in the JSON array `?1`, in key order.
const READ_SOME_CUSTOMERS: &str = "SELECT json_group_array(json_array(id, name, protect))
    FROM (SELECT id, name, protect FROM customers
          WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id)";

/// The logins of the customers in `?1`, as [`READ_LOGINS_FIRST`] gives them.
const READ_SOME_LOGINS: &str =
    "SELECT json_group_array(json_array(customer_id, contact, email, name, access, role_id,
                website_id, notify, password_marker, expires_at, has_password, applied_digest))
         FROM (SELECT *, password_hash IS NOT NULL AS has_password FROM logins
               WHERE customer_id IN (SELECT value FROM json_each(?1))
               ORDER BY customer_id, contact)";

/// `[[email, customer_id], …]` of the logins holding an email of `?1`.
const READ_EMAIL_OWNERS: &str = "SELECT json_group_array(json_array(email, customer_id))
    FROM logins WHERE email IN (SELECT value FROM json_each(?1))";

/// The roles of `?1` that a login of a customer not in `?2` has.
const READ_ROLES_ELSEWHERE: &str = "SELECT json_group_array(r.value) FROM json_each(?1) AS r
    WHERE EXISTS (SELECT 1 FROM logins AS l WHERE l.role_id = r.value
                  AND l.customer_id NOT IN (SELECT value FROM json_each(?2)))";

/// `[[customer_id, contact, email, expires_at], …]` of the logins with access expiring
/// before `?1`, of customers not in `?2` (through the partial index on `expires_at`).
const READ_EXPIRING: &str =
    "SELECT json_group_array(json_array(customer_id, contact, email, expires_at))
    FROM logins WHERE expires_at IS NOT NULL AND expires_at < ?1 AND access = 1
    AND customer_id NOT IN (SELECT value FROM json_each(?2))";

/// `[[customer_id, contact], …]` of the logins with access.
const READ_ACCESS_KEYS: &str = "SELECT json_group_array(json_array(customer_id, contact))
    FROM logins WHERE access = 1";

/// `[[customer_id, contact, password_marker], …]` of the logins holding a reset marker.
const READ_PASSWORD_MARKERS: &str =
    "SELECT json_group_array(json_array(customer_id, contact, password_marker))
    FROM logins WHERE password_marker IS NOT NULL";

/// What an incremental plan reads ([`Store::read_part`]), in the caller's transaction.
async fn read_part(conn: &mut SqliteConnection, query: &PartQuery<'_>) -> Result<Part, StoreError> {
    let doing = "reading the live state";
    let json = |values: &[CompactString]| serde_json::to_string(values).expect("strings serialise");
    let ids = json(query.customers);
    let scalar = |sql: &'static str| sqlx::query_scalar::<_, String>(sql);
    let text = scalar(READ_SOME_CUSTOMERS)
        .bind(&ids)
        .fetch_one(&mut *conn)
        .await
        .doing(doing)?;
    let customers = customers_from_json(&text)?;
    let text = scalar(READ_SOME_LOGINS)
        .bind(&ids)
        .fetch_one(&mut *conn)
        .await
        .doing(doing)?;
    let mut logins = Vec::new();
    append_logins_from_json(&text, &mut logins)?;
    let text = scalar(READ_EXPIRING)
        .bind(query.expiring_before)
        .bind(&ids)
        .fetch_one(&mut *conn)
        .await
        .doing(doing)?;
    let expiring = decode(&text, "expiring logins")?;
    let (customers, digests) = super::rows::build_customers(customers, vec![logins])?;
    let mut state = shared::read_snapshot::<sqlx::Sqlite>(&mut *conn, customers).await?;
    if query.access_keys {
        let text = scalar(READ_ACCESS_KEYS)
            .fetch_one(&mut *conn)
            .await
            .doing(doing)?;
        let keys = decode(&text, "logins with access")?;
        state.access = crate::state::LiveAccess::Keys(crate::state::LoginKeys::new(keys));
    }
    let mut markers = crate::state::PasswordMarkers::default();
    if query.password_markers {
        let text = scalar(READ_PASSWORD_MARKERS)
            .fetch_one(&mut *conn)
            .await
            .doing(doing)?;
        markers = super::rows::password_markers(decode(&text, "password markers")?)?;
    }
    let applied = Applied {
        objects: read_applied_objects(&mut *conn).await?,
        logins: digests,
        version: shared::read_version::<sqlx::Sqlite>(conn).await?,
    };
    Ok(Part {
        state,
        applied,
        expiring,
        markers,
    })
}

/// A JSON value SQLite built, decoded.
fn decode<T: serde::de::DeserializeOwned>(json: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// The query of [`read_version_for_apply`].
const VERSION_FOR_APPLY: &str = "SELECT m.store, m.n, m.roles_at = m.n AND m.roles_digest = ?1,
        d.data_version, total_changes()
    FROM pragma_data_version AS d LEFT JOIN managed_changes AS m ON m.id = 1";

/// An apply's first read (see `shared::read_version_for_apply`), with [`data_version`]'s
/// two numbers in the same round trip (a round trip is 0.1–0.2 ms of a ten-login apply).
async fn read_version_for_apply(
    conn: &mut SqliteConnection,
) -> Result<(crate::state::LiveVersion, bool, (i64, i64)), StoreError> {
    let (store, n, roles, data_version, changes): (
        Option<String>,
        Option<i64>,
        Option<bool>,
        i64,
        i64,
    ) = sqlx::query_as(VERSION_FOR_APPLY)
        .bind(super::sql::standard_roles_digest())
        .fetch_one(&mut *conn)
        .await
        .doing("reading the live state's version")?;
    let version = crate::state::LiveVersion(store.zip(n));
    Ok((version, roles == Some(true), (data_version, changes)))
}
