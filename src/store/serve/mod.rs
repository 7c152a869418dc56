//! What the login service reads and writes, through a connection pool shared by its requests:
//! the account settings a sign-in decision needs, one login by email or key, the lockout
//! counters (raised atomically), sessions (by the SHA-256 of their id) and sign-in events.
//! One SQL text serves both engines (sqlx's `Any` driver); "now" is always bound, never the
//! database's clock, so every instance and both engines agree.

mod oidc;
mod passkeys;
mod profile;

pub use oidc::{CodeRow, Redeemed, SigningKeyRow, TokenRow};
pub use passkeys::{PasskeyRow, PasskeySummary};

use std::collections::BTreeMap;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

use super::{Doing, StoreError};
use crate::catalog::{Feature, Level, Permission};
use crate::manifest::model::TwoFactor;
use crate::state::{LoginState, RoleState, State, WebsiteState};

/// A pool of connections for the login service.
#[derive(Clone)]
pub struct ServeStore {
    pool: AnyPool,
    /// PostgreSQL, where a sign-in's writes go in one statement (data-modifying `WITH`).
    postgres: bool,
    /// On SQLite, one writer at a time for the frequent small writes of the token endpoint:
    /// a second writer would get `SQLITE_BUSY` and sleep in SQLite's busy handler (1, 2, 5,
    /// 10… ms), which made the token endpoint's p99 100–300 ms. Waiting here costs
    /// microseconds.
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl ServeStore {
    /// The SQLite writer's turn (`None` on PostgreSQL, which has row locks).
    pub(crate) async fn writer_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if self.postgres {
            None
        } else {
            Some(self.writer.lock().await)
        }
    }
}

/// A login as the login service sees it: its key, its applied state, its runtime facts.
#[derive(Clone, Debug)]
pub struct ServeLogin {
    /// The customer it belongs to.
    pub customer_id: String,
    /// `""` for the customer's own login, else the contact's email.
    pub contact: String,
    /// The customer's name.
    pub customer_name: String,
    /// The applied login.
    pub login: LoginState,
    /// The argon2id hash, when a password is set.
    pub password_hash: Option<String>,
    /// Runtime lockout facts.
    pub runtime: crate::signin::Runtime,
}

/// A login's second factor as stored.
#[derive(Clone, Debug)]
pub struct SecondFactor {
    /// The TOTP seed, sealed with the server's key.
    pub sealed: String,
    /// Enrolment confirmed by a code.
    pub confirmed: bool,
}

/// A session as stored.
#[derive(Clone, Debug)]
pub struct SessionRow {
    /// The login's customer.
    pub customer_id: String,
    /// The login's contact key.
    pub contact: String,
    /// When it was last used (idle timeout).
    pub last_seen_at: String,
    /// When it ends whatever happens (absolute limit).
    pub expires_at: String,
    /// The factors passed: `pwd`, or `pwd otp`.
    pub factors: String,
    /// When the password was proved (an ID token's `auth_time`).
    pub created_at: String,
}

/// The result of claiming a sign-in attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The attempt may be checked; this is the n-th consecutive one.
    Attempt(i64),
    /// Locked (or the limit's last attempt is being checked right now): refused unhashed.
    Locked,
}

/// A login's columns, named (decoded by name on both engines).
const LOGIN_COLUMNS: &str = "l.customer_id, l.contact, c.name AS customer_name, l.email,
    l.name, CASE WHEN l.access THEN 1 ELSE 0 END AS access, l.role_id, l.website_id,
    l.expires_at, l.password_hash, l.locked_until,
    CAST(l.failed_attempts AS BIGINT) AS failed_attempts,
    CASE WHEN EXISTS (SELECT 1 FROM second_factors f WHERE f.customer_id = l.customer_id
        AND f.contact = l.contact AND f.confirmed_at IS NOT NULL) THEN 1 ELSE 0 END AS second_factor";

/// Claiming an attempt (`$2` now, `$3` the limit): a lock that has ended starts the count
/// again; otherwise the count rises by one.
const CLAIM_SET: &str = "
    failed_attempts = CASE WHEN locked_until IS NOT NULL AND locked_until <= $2 THEN 1 ELSE failed_attempts + 1 END,
    locked_until = CASE WHEN locked_until IS NOT NULL AND locked_until <= $2 THEN NULL ELSE locked_until END";

/// Which logins may be claimed: a lock that has ended, or no lock and below the limit.
const CLAIM_WHERE: &str = "((locked_until IS NOT NULL AND locked_until <= $2)
    OR (locked_until IS NULL AND failed_attempts < $3))";

from_row! {
    /// A login as read by [`LOGIN_COLUMNS`].
    struct LoginRow {
        customer_id: String,
        contact: String,
        customer_name: String,
        email: Option<String>,
        name: Option<String>,
        access: i64,
        role_id: String,
        website_id: Option<String>,
        expires_at: Option<String>,
        password_hash: Option<String>,
        locked_until: Option<String>,
        failed_attempts: i64,
        second_factor: i64,
    }
}

/// A login and the attempt claimed for it (`None`: locked).
struct ClaimedLoginRow {
    login: LoginRow,
    claimed: Option<i64>,
}

impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for ClaimedLoginRow
where
    &'r str: sqlx::ColumnIndex<R>,
    LoginRow: sqlx::FromRow<'r, R>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(Self {
            login: LoginRow::from_row(row)?,
            claimed: row.try_get("claimed")?,
        })
    }
}

from_row! {
    /// A `features` row as the login service reads it.
    struct FeatureRow {
        name: String,
        enabled: i64,
    }
}

from_row! {
    /// A `websites` row.
    struct WebsiteRow {
        id: String,
        name: String,
        url: String,
    }
}

from_row! {
    /// A `roles` row.
    struct RoleRow {
        id: String,
        name: String,
        base: Option<String>,
        two_factor: String,
    }
}

from_row! {
    /// A `role_permissions` row.
    struct LevelRow {
        role_id: String,
        permission: String,
        level: String,
    }
}

from_row! {
    /// The `login_policy` row.
    struct PolicyRow {
        max_failed_attempts: i64,
        lockout_minutes: i64,
        session_timeout_minutes: i64,
        password_min_length: i64,
        session_max_hours: i64,
    }
}

impl PolicyRow {
    /// The stored policy as portico's type (values portico wrote, so within range).
    fn into_policy(self) -> crate::manifest::model::LoginPolicy {
        let mut p = crate::manifest::model::LoginPolicy::default();
        p.lockout.max_failed_attempts = self.max_failed_attempts as u32;
        p.lockout.duration_minutes = self.lockout_minutes as u32;
        p.session_timeout_minutes = self.session_timeout_minutes as u32;
        p.password.min_length = self.password_min_length as u32;
        p.session_max_hours = self.session_max_hours as u32;
        p
    }
}

/// Sessions read in one query at most (well under every engine's limit on bound values).
pub const SESSIONS_AT_ONCE: usize = 500;

/// A session and its login, read in one query (the forward-auth hot path).
struct SessionLoginRow {
    id_hash: String,
    last_seen_at: String,
    expires_at_session: String,
    factors: String,
    created_at_session: String,
    login: LoginRow,
}

impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for SessionLoginRow
where
    &'r str: sqlx::ColumnIndex<R>,
    LoginRow: sqlx::FromRow<'r, R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id_hash: row.try_get("id_hash")?,
            last_seen_at: row.try_get("last_seen_at")?,
            expires_at_session: row.try_get("expires_at_session")?,
            factors: row.try_get("factors")?,
            created_at_session: row.try_get("created_at_session")?,
            login: LoginRow::from_row(row)?,
        })
    }
}

fn into_login(row: LoginRow) -> ServeLogin {
    ServeLogin {
        customer_id: row.customer_id,
        contact: row.contact,
        customer_name: row.customer_name,
        runtime: crate::signin::Runtime {
            password_set: row.password_hash.is_some(),
            locked_until: row.locked_until,
            failed_attempts: row.failed_attempts,
            second_factor: row.second_factor != 0,
        },
        password_hash: row.password_hash,
        login: LoginState {
            email: row.email.map(Into::into),
            name: row.name.map(Into::into),
            access: row.access != 0,
            role: row.role_id.into(),
            website: row.website_id.map(Into::into),
            notify: false,
            password: None,
            expires: row.expires_at.map(Into::into),
        },
    }
}

impl ServeStore {
    /// Opens a pool on `url` (`sqlite://…` or `postgres://…`) of at most `size` connections.
    ///
    /// # Errors
    /// The database cannot be reached.
    pub async fn open(url: &str, size: u32) -> Result<ServeStore, StoreError> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            .max_connections(size)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    // The login service's writes (sessions, counts, events) need not wait for
                    // the disk at each commit: in WAL mode, NORMAL keeps the file consistent
                    // and loses at most the last moments' sign-ins on a power cut (in the
                    // default rollback mode it could corrupt, so it stays FULL there).
                    // Applies keep their own connection, fully synchronous.
                    if sqlite {
                        // Write-ahead logging: the many small writes of sign-ins never make a
                        // check wait, and a check never makes a write wait. The mode stays
                        // with the file (applies use it too; nothing else changes for them).
                        let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
                            .fetch_one(&mut *conn)
                            .await?;
                        if mode.eq_ignore_ascii_case("wal") {
                            sqlx::query("PRAGMA synchronous = NORMAL")
                                .execute(&mut *conn)
                                .await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .doing("connecting the login service")?;
        Ok(ServeStore {
            pool,
            postgres: !sqlite,
            writer: std::sync::Arc::default(),
        })
    }

    /// Whether the database answers (`/readyz`).
    pub async fn ready(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// The account settings a sign-in decision needs: features, roles with their levels,
    /// websites and the login policy (no customers).
    ///
    /// # Errors
    /// Database errors.
    pub async fn account(&self) -> Result<State, StoreError> {
        let doing = "reading the account's settings";
        let mut state = State::default();
        let features: Vec<FeatureRow> = sqlx::query_as(
            "SELECT name, CASE WHEN enabled THEN 1 ELSE 0 END AS enabled FROM features",
        )
        .fetch_all(&self.pool)
        .await
        .doing(doing)?;
        for row in features {
            if let Some(feature) = Feature::from_key(&row.name) {
                state.features.insert(feature, row.enabled != 0);
            }
        }
        state.roles = self.roles().await?;
        let websites: Vec<WebsiteRow> = sqlx::query_as("SELECT id, name, url FROM websites")
            .fetch_all(&self.pool)
            .await
            .doing(doing)?;
        for row in websites {
            let website = WebsiteState {
                name: row.name,
                url: row.url,
            };
            state.websites.insert(row.id, website);
        }
        let policy: Option<PolicyRow> = sqlx::query_as(
            "SELECT max_failed_attempts, lockout_minutes, session_timeout_minutes, password_min_length, session_max_hours FROM login_policy",
        )
        .fetch_optional(&self.pool)
        .await
        .doing(doing)?;
        state.login_policy = policy.map(PolicyRow::into_policy);
        self.read_clients(&mut state).await?;
        Ok(state)
    }

    /// The roles, custom and standard, with their permissions.
    async fn roles(&self) -> Result<BTreeMap<String, RoleState>, StoreError> {
        let doing = "reading the account's roles";
        let roles: Vec<RoleRow> = sqlx::query_as("SELECT id, name, base, two_factor FROM roles")
            .fetch_all(&self.pool)
            .await
            .doing(doing)?;
        let levels: Vec<LevelRow> =
            sqlx::query_as("SELECT role_id, permission, level FROM role_permissions")
                .fetch_all(&self.pool)
                .await
                .doing(doing)?;
        let mut out = BTreeMap::new();
        for role in roles {
            let permissions: BTreeMap<Permission, Level> = levels
                .iter()
                .filter(|l| l.role_id == role.id)
                .filter_map(|l| {
                    Some((
                        Permission::from_key(&l.permission)?,
                        Level::from_key(&l.level)?,
                    ))
                })
                .collect();
            let two_factor = if role.two_factor == "required" {
                TwoFactor::Required
            } else {
                TwoFactor::Off
            };
            let state = RoleState {
                name: role.name,
                base: role.base.unwrap_or_default(),
                two_factor,
                permissions,
            };
            out.insert(role.id, state);
        }
        Ok(out)
    }

    /// The login with this (normalised) email.
    ///
    /// # Errors
    /// Database errors.
    pub async fn login_by_email(&self, email: &str) -> Result<Option<ServeLogin>, StoreError> {
        let sql = format!(
            "SELECT {LOGIN_COLUMNS} FROM logins l JOIN customers c ON c.id = l.customer_id WHERE l.email = $1"
        );
        let row: Option<LoginRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .doing("reading a login")?;
        Ok(row.map(into_login))
    }

    /// The login with this key.
    ///
    /// # Errors
    /// Database errors.
    pub async fn login_by_key(
        &self,
        customer_id: &str,
        contact: &str,
    ) -> Result<Option<ServeLogin>, StoreError> {
        let sql = format!(
            "SELECT {LOGIN_COLUMNS} FROM logins l JOIN customers c ON c.id = l.customer_id
             WHERE l.customer_id = $1 AND l.contact = $2"
        );
        let row: Option<LoginRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(customer_id)
            .bind(contact)
            .fetch_optional(&self.pool)
            .await
            .doing("reading a login")?;
        Ok(row.map(into_login))
    }

    /// Claims one sign-in attempt for a login before its password is checked: one atomic
    /// `UPDATE … RETURNING` raises the consecutive count only while the login is not locked
    /// and below `max`, so however many attempts arrive at once, at most `max` are ever
    /// checked between two successes (a lock that has ended starts the count again).
    ///
    /// # Errors
    /// Database errors.
    pub async fn claim_attempt(
        &self,
        customer_id: &str,
        contact: &str,
        max: i64,
        now: &str,
    ) -> Result<Claim, StoreError> {
        let sql = format!(
            "UPDATE logins SET {CLAIM_SET} WHERE customer_id = $1 AND contact = $4 AND {CLAIM_WHERE}
             RETURNING CAST(failed_attempts AS BIGINT)"
        );
        let n: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(customer_id)
            .bind(now)
            .bind(max)
            .bind(contact)
            .fetch_optional(&self.pool)
            .await
            .doing("counting a sign-in attempt")?;
        Ok(n.map_or(Claim::Locked, Claim::Attempt))
    }

    /// The login with this (normalised) email and, when there is one, one claimed sign-in
    /// attempt for it (see [`ServeStore::claim_attempt`]). On PostgreSQL both are one
    /// statement (a data-modifying `WITH`: the login is read as it was before the claim).
    ///
    /// # Errors
    /// Database errors.
    pub async fn login_claiming_attempt(
        &self,
        email: &str,
        max: i64,
        now: &str,
    ) -> Result<Option<(ServeLogin, Claim)>, StoreError> {
        if !self.postgres {
            let Some(login) = self.login_by_email(email).await? else {
                return Ok(None);
            };
            let claim = self
                .claim_attempt(&login.customer_id, &login.contact, max, now)
                .await?;
            return Ok(Some((login, claim)));
        }
        let sql = format!(
            "WITH claim AS (
                UPDATE logins SET {CLAIM_SET} WHERE email = $1 AND {CLAIM_WHERE}
                RETURNING CAST(failed_attempts AS BIGINT) AS claimed
             )
             SELECT {LOGIN_COLUMNS}, (SELECT claimed FROM claim) AS claimed
             FROM logins l JOIN customers c ON c.id = l.customer_id WHERE l.email = $1"
        );
        let row: Option<ClaimedLoginRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(email)
            .bind(now)
            .bind(max)
            .fetch_optional(&self.pool)
            .await
            .doing("counting a sign-in attempt")?;
        Ok(row.map(|row| {
            let claim = row.claimed.map_or(Claim::Locked, Claim::Attempt);
            (into_login(row.login), claim)
        }))
    }

    /// The same for an email no login has, keyed by its SHA-256.
    ///
    /// # Errors
    /// Database errors.
    pub async fn claim_unknown_attempt(
        &self,
        email_hash: &str,
        max: i64,
        now: &str,
    ) -> Result<Claim, StoreError> {
        let n: Option<i64> = sqlx::query_scalar(
            "INSERT INTO unknown_signins (email_hash, failed_attempts) VALUES ($1, 1)
             ON CONFLICT (email_hash) DO UPDATE SET
                failed_attempts = CASE WHEN unknown_signins.locked_until IS NOT NULL AND unknown_signins.locked_until <= $2
                    THEN 1 ELSE unknown_signins.failed_attempts + 1 END,
                locked_until = CASE WHEN unknown_signins.locked_until IS NOT NULL AND unknown_signins.locked_until <= $2
                    THEN NULL ELSE unknown_signins.locked_until END
             WHERE (unknown_signins.locked_until IS NOT NULL AND unknown_signins.locked_until <= $2)
                OR (unknown_signins.locked_until IS NULL AND unknown_signins.failed_attempts < $3)
             RETURNING CAST(failed_attempts AS BIGINT)",
        )
        .bind(email_hash)
        .bind(now)
        .bind(max)
        .fetch_optional(&self.pool)
        .await
        .doing("counting a sign-in attempt")?;
        Ok(n.map_or(Claim::Locked, Claim::Attempt))
    }

    /// Locks a login (or an unknown email, by hash) until `until`, after its last allowed
    /// failure.
    ///
    /// # Errors
    /// Database errors.
    pub async fn lock(&self, key: &LockKey<'_>, until: &str) -> Result<(), StoreError> {
        let query = match key {
            LockKey::Login {
                customer_id,
                contact,
            } => sqlx::query(
                "UPDATE logins SET locked_until = $1 WHERE customer_id = $2 AND contact = $3",
            )
            .bind(until)
            .bind(*customer_id)
            .bind(*contact),
            LockKey::Unknown(hash) => {
                sqlx::query("UPDATE unknown_signins SET locked_until = $1 WHERE email_hash = $2")
                    .bind(until)
                    .bind(*hash)
            }
        };
        query.execute(&self.pool).await.doing("locking a login")?;
        Ok(())
    }

    /// A successful sign-in (a password, or a passkey: [`Seen::passkey`]): the count is
    /// reset, `last_login_at` set, and a session stored.
    ///
    /// # Errors
    /// Database errors.
    pub async fn signed_in(
        &self,
        login: &ServeLogin,
        session_hash: &str,
        now: &str,
        expires_at: &str,
        seen: &Seen<'_>,
    ) -> Result<(), StoreError> {
        let doing = "recording a sign-in";
        if self.postgres {
            return self
                .signed_in_at_once(login, session_hash, now, expires_at, seen)
                .await;
        }
        let mut tx = self.pool.begin().await.doing(doing)?;
        // One transaction (one commit) for everything a sign-in writes.
        seen.record(&mut tx, login, "signed_in", now).await?;
        sqlx::query(
            "UPDATE logins SET failed_attempts = 0, locked_until = NULL, last_login_at = $1
             WHERE customer_id = $2 AND contact = $3",
        )
        .bind(now)
        .bind(&login.customer_id)
        .bind(&login.contact)
        .execute(&mut *tx)
        .await
        .doing(doing)?;
        sqlx::query(
            "INSERT INTO sessions (id_hash, customer_id, contact, created_at, last_seen_at, expires_at, factors)
             VALUES ($1, $2, $3, $4, $4, $5, $6)",
        )
        .bind(session_hash)
        .bind(&login.customer_id)
        .bind(&login.contact)
        .bind(now)
        .bind(expires_at)
        .bind(seen.factors())
        .execute(&mut *tx)
        .await
        .doing(doing)?;
        tx.commit().await.doing(doing)?;
        Ok(())
    }

    /// [`ServeStore::signed_in`] on PostgreSQL: the event, the reset count, the refund of
    /// the address's attempt and the session in one statement (atomic as a transaction; one
    /// round trip instead of five).
    async fn signed_in_at_once(
        &self,
        login: &ServeLogin,
        session_hash: &str,
        now: &str,
        expires_at: &str,
        seen: &Seen<'_>,
    ) -> Result<(), StoreError> {
        // Without a counted attempt ($8 NULL) the refund matches no row.
        sqlx::query(
            "WITH event AS (
                INSERT INTO login_events (at, email, kind, address, detail)
                VALUES ($1, $2, 'signed_in', $3, $9)
            ), login AS (
                UPDATE logins SET failed_attempts = 0, locked_until = NULL, last_login_at = $1
                WHERE customer_id = $4 AND contact = $5
            ), refund AS (
                UPDATE address_failures SET failures = failures - 1
                WHERE address = $3 AND window_start = $8 AND failures > 0
            )
            INSERT INTO sessions (id_hash, customer_id, contact, created_at, last_seen_at, expires_at, factors)
            VALUES ($6, $4, $5, $1, $1, $7, $10)",
        )
        .bind(now)
        .bind(login.login.email.as_deref().unwrap_or_default())
        .bind(seen.address)
        .bind(&login.customer_id)
        .bind(&login.contact)
        .bind(session_hash)
        .bind(expires_at)
        .bind(seen.refund)
        .bind(seen.detail())
        .bind(seen.factors())
        .execute(&self.pool)
        .await
        .doing("recording a sign-in")?;
        Ok(())
    }

    /// A session that has passed the password only (its role requires a second factor).
    ///
    /// # Errors
    /// Database errors.
    pub async fn pending_session(
        &self,
        login: &ServeLogin,
        session_hash: &str,
        now: &str,
        expires_at: &str,
        seen: &Seen<'_>,
    ) -> Result<(), StoreError> {
        let doing = "starting a sign-in";
        let mut tx = self.pool.begin().await.doing(doing)?;
        seen.record(&mut tx, login, "password_accepted", now)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (id_hash, customer_id, contact, created_at, last_seen_at, expires_at, factors)
             VALUES ($1, $2, $3, $4, $4, $5, 'pwd')",
        )
        .bind(session_hash)
        .bind(&login.customer_id)
        .bind(&login.contact)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .doing(doing)?;
        tx.commit().await.doing(doing)?;
        Ok(())
    }

    /// The session with this id hash and its login, in one query; `None` when either is gone.
    ///
    /// # Errors
    /// Database errors.
    pub async fn session_with_login(
        &self,
        id_hash: &str,
    ) -> Result<Option<(SessionRow, ServeLogin)>, StoreError> {
        let found = self.sessions_with_logins(&[id_hash]).await?;
        Ok(found
            .into_iter()
            .next()
            .map(|(_, session, login)| (session, login)))
    }

    /// The sessions with these id hashes (at most [`SESSIONS_AT_ONCE`]) and their logins, in
    /// one query, with each one's id hash; those gone are left out.
    ///
    /// # Errors
    /// Database errors.
    pub async fn sessions_with_logins(
        &self,
        id_hashes: &[&str],
    ) -> Result<Vec<(String, SessionRow, ServeLogin)>, StoreError> {
        if id_hashes.is_empty() {
            return Ok(Vec::new());
        }
        // Only numbered placeholders are written into the text; the hashes are bound.
        let placeholders = (1..=id_hashes.len().min(SESSIONS_AT_ONCE))
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT s.id_hash, s.last_seen_at, s.expires_at AS expires_at_session, s.factors,
                s.created_at AS created_at_session, {LOGIN_COLUMNS}
             FROM sessions s
             JOIN logins l ON l.customer_id = s.customer_id AND l.contact = s.contact
             JOIN customers c ON c.id = l.customer_id
             WHERE s.id_hash IN ({placeholders})"
        );
        let mut query = sqlx::query_as::<_, SessionLoginRow>(sqlx::AssertSqlSafe(sql));
        for id_hash in id_hashes.iter().take(SESSIONS_AT_ONCE) {
            query = query.bind(*id_hash);
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .doing("reading sessions")?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let session = SessionRow {
                    customer_id: r.login.customer_id.clone(),
                    contact: r.login.contact.clone(),
                    last_seen_at: r.last_seen_at,
                    expires_at: r.expires_at_session,
                    factors: r.factors,
                    created_at: r.created_at_session,
                };
                (r.id_hash, session, into_login(r.login))
            })
            .collect())
    }

    /// The session with this id hash.
    ///
    /// # Errors
    /// Database errors.
    pub async fn session(&self, id_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        let row: Option<(String, String, String, String, String, String)> = sqlx::query_as(
            "SELECT customer_id, contact, last_seen_at, expires_at, factors, created_at
             FROM sessions WHERE id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await
        .doing("reading a session")?;
        Ok(row.map(
            |(customer_id, contact, last_seen_at, expires_at, factors, created_at)| SessionRow {
                customer_id,
                contact,
                last_seen_at,
                expires_at,
                factors,
                created_at,
            },
        ))
    }

    /// The login's second factor, when it has begun or finished enrolling.
    ///
    /// # Errors
    /// Database errors.
    pub async fn second_factor(
        &self,
        customer_id: &str,
        contact: &str,
    ) -> Result<Option<SecondFactor>, StoreError> {
        let row: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT secret_sealed, confirmed_at FROM second_factors WHERE customer_id = $1 AND contact = $2",
        )
        .bind(customer_id)
        .bind(contact)
        .fetch_optional(&self.pool)
        .await
        .doing("reading a second factor")?;
        Ok(row.map(|(sealed, confirmed)| SecondFactor {
            sealed,
            confirmed: confirmed.is_some(),
        }))
    }

    /// Starts (or restarts) an enrolment with a new sealed seed; a confirmed factor is kept.
    ///
    /// # Errors
    /// Database errors.
    pub async fn begin_enrolment(
        &self,
        customer_id: &str,
        contact: &str,
        sealed: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO second_factors (customer_id, contact, secret_sealed) VALUES ($1, $2, $3)
             ON CONFLICT (customer_id, contact) DO UPDATE SET secret_sealed = excluded.secret_sealed
             WHERE second_factors.confirmed_at IS NULL",
        )
        .bind(customer_id)
        .bind(contact)
        .bind(sealed)
        .execute(&self.pool)
        .await
        .doing("starting a two-factor enrolment")?;
        Ok(())
    }

    /// Accepts TOTP step `step` once: the one conditional `UPDATE` succeeds only for a step
    /// after the last one accepted, so a code is never accepted twice (also at once on two
    /// instances). Confirms an enrolment on the way.
    ///
    /// # Errors
    /// Database errors.
    pub async fn accept_step(
        &self,
        customer_id: &str,
        contact: &str,
        step: i64,
        now: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE second_factors SET last_step = $3, confirmed_at = coalesce(confirmed_at, $4)
             WHERE customer_id = $1 AND contact = $2 AND (last_step IS NULL OR last_step < $3)",
        )
        .bind(customer_id)
        .bind(contact)
        .bind(step)
        .bind(now)
        .execute(&self.pool)
        .await
        .doing("accepting a two-factor code")?;
        Ok(done.rows_affected() == 1)
    }

    /// Replaces the login's recovery codes by these (SHA-256 hashes).
    ///
    /// # Errors
    /// Database errors.
    pub async fn replace_recovery_codes(
        &self,
        customer_id: &str,
        contact: &str,
        hashes: &[String],
    ) -> Result<(), StoreError> {
        let doing = "storing recovery codes";
        let mut tx = self.pool.begin().await.doing(doing)?;
        sqlx::query("DELETE FROM recovery_codes WHERE customer_id = $1 AND contact = $2")
            .bind(customer_id)
            .bind(contact)
            .execute(&mut *tx)
            .await
            .doing(doing)?;
        for hash in hashes {
            sqlx::query(
                "INSERT INTO recovery_codes (code_hash, customer_id, contact) VALUES ($1, $2, $3)",
            )
            .bind(hash)
            .bind(customer_id)
            .bind(contact)
            .execute(&mut *tx)
            .await
            .doing(doing)?;
        }
        tx.commit().await.doing(doing)?;
        Ok(())
    }

    /// Uses one recovery code (by hash) once.
    ///
    /// # Errors
    /// Database errors.
    pub async fn use_recovery_code(
        &self,
        customer_id: &str,
        contact: &str,
        hash: &str,
        now: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at = $4
             WHERE code_hash = $1 AND customer_id = $2 AND contact = $3 AND used_at IS NULL",
        )
        .bind(hash)
        .bind(customer_id)
        .bind(contact)
        .bind(now)
        .execute(&self.pool)
        .await
        .doing("using a recovery code")?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that a session has passed the second factor under a new id: the login's
    /// failed count is cleared and its last sign-in set, as for a password alone.
    ///
    /// # Errors
    /// Database errors.
    pub async fn signed_in_second_factor(
        &self,
        login: &ServeLogin,
        id_hash: &str,
        new_id_hash: &str,
        now: &str,
    ) -> Result<(), StoreError> {
        let doing = "recording a sign-in";
        let mut tx = self.pool.begin().await.doing(doing)?;
        // A new id for the session that passed both factors (the password-only one is gone).
        sqlx::query(
            "UPDATE sessions SET id_hash = $3, factors = 'pwd otp', last_seen_at = $2 WHERE id_hash = $1",
        )
        .bind(id_hash)
        .bind(now)
        .bind(new_id_hash)
        .execute(&mut *tx)
        .await
        .doing(doing)?;
        sqlx::query(
            "UPDATE logins SET failed_attempts = 0, locked_until = NULL, last_login_at = $1
             WHERE customer_id = $2 AND contact = $3",
        )
        .bind(now)
        .bind(&login.customer_id)
        .bind(&login.contact)
        .execute(&mut *tx)
        .await
        .doing(doing)?;
        tx.commit().await.doing(doing)?;
        Ok(())
    }

    /// Removes the second factor and recovery codes of the login with this email, and ends
    /// its sessions (`portico reset-2fa`, for a lost phone). `false` when no login has it.
    ///
    /// # Errors
    /// Database errors.
    pub async fn reset_second_factor(&self, email: &str) -> Result<bool, StoreError> {
        let Some(login) = self.login_by_email(email).await? else {
            return Ok(false);
        };
        let doing = "removing a second factor";
        let mut tx = self.pool.begin().await.doing(doing)?;
        for sql in [
            "DELETE FROM second_factors WHERE customer_id = $1 AND contact = $2",
            "DELETE FROM recovery_codes WHERE customer_id = $1 AND contact = $2",
            "DELETE FROM passkeys WHERE customer_id = $1 AND contact = $2",
            "DELETE FROM sessions WHERE customer_id = $1 AND contact = $2",
        ] {
            sqlx::query(sql)
                .bind(&login.customer_id)
                .bind(&login.contact)
                .execute(&mut *tx)
                .await
                .doing(doing)?;
        }
        tx.commit().await.doing(doing)?;
        Ok(true)
    }

    /// Marks these sessions (at most [`SESSIONS_AT_ONCE`]) seen at `seen_at`, in one
    /// statement; a session already marked later keeps its time.
    ///
    /// # Errors
    /// Database errors.
    pub async fn touch(&self, id_hashes: &[&str], seen_at: &str) -> Result<(), StoreError> {
        if id_hashes.is_empty() {
            return Ok(());
        }
        // Only numbered placeholders are written into the text; the hashes are bound.
        let placeholders = (2..=id_hashes.len().min(SESSIONS_AT_ONCE) + 1)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE sessions SET last_seen_at = $1 WHERE last_seen_at < $1 AND id_hash IN ({placeholders})"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(seen_at);
        for id_hash in id_hashes.iter().take(SESSIONS_AT_ONCE) {
            query = query.bind(*id_hash);
        }
        query.execute(&self.pool).await.doing("keeping sessions")?;
        Ok(())
    }

    /// Ends one session.
    ///
    /// # Errors
    /// Database errors.
    pub async fn end_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await
            .doing("ending a session")?;
        Ok(())
    }

    /// Ends every session of the login with this (normalised) email; how many ended, or
    /// `None` when no login has it.
    ///
    /// # Errors
    /// Database errors.
    pub async fn end_sessions_of(&self, email: &str) -> Result<Option<u64>, StoreError> {
        let Some(login) = self.login_by_email(email).await? else {
            return Ok(None);
        };
        let done = sqlx::query("DELETE FROM sessions WHERE customer_id = $1 AND contact = $2")
            .bind(&login.customer_id)
            .bind(&login.contact)
            .execute(&self.pool)
            .await
            .doing("ending a login's sessions")?;
        Ok(Some(done.rows_affected()))
    }

    /// Records a sign-in event (never a secret).
    ///
    /// # Errors
    /// Database errors.
    pub async fn event(
        &self,
        email: &str,
        kind: &str,
        address: &str,
        detail: Option<&str>,
        now: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO login_events (at, email, kind, address, detail) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(now)
        .bind(email)
        .bind(kind)
        .bind(address)
        .bind(detail)
        .execute(&self.pool)
        .await
        .doing("recording a sign-in event")?;
        Ok(())
    }
}

/// One sign-in event (`portico events`). It never holds a secret.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct EventRow {
    /// When (UTC, RFC 3339).
    pub at: String,
    /// The client's address (as the trusted proxy forwarded it), when known.
    pub address: Option<String>,
    /// The email the event is about (as typed, normalised; for unknown emails too).
    pub email: String,
    /// `signed_in`, `password_accepted` (the second factor comes next), `signin_failed`,
    /// `refused_locked`, `refused_throttled`, `locked`, `password_set`, `password_changed`, `reset_requested`, `second_factor_failed`,
    /// `factor_enrolled`, `recovery_code_used`, `recovery_codes_renewed`, `factor_reset`,
    /// `signed_out`.
    pub kind: String,
    /// What else is known (the time a lock ends, the command that signed out).
    pub detail: Option<String>,
}

impl ServeStore {
    /// The newest events, newest first: all, or one email's, since a time.
    ///
    /// # Errors
    /// Database errors.
    pub async fn events(
        &self,
        email: Option<&str>,
        since: &str,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        type Row = (String, Option<String>, String, String, Option<String>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT at, address, email, kind, detail FROM login_events
             WHERE ($1 = '' OR email = $1) AND at >= $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(email.unwrap_or_default())
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .doing("reading sign-in events")?;
        Ok(rows
            .into_iter()
            .map(|(at, address, email, kind, detail)| EventRow {
                at,
                address: address.filter(|a| !a.is_empty()),
                email,
                kind,
                detail,
            })
            .collect())
    }
}

/// Where a sign-in came from, recorded with it in its transaction: the event (with the
/// client's address) and, when throttling counted the attempt up front, its refund (a right
/// password is not a failure).
pub struct Seen<'a> {
    /// The client's address.
    pub address: &'a str,
    /// The throttling window the attempt was counted in, when it was.
    pub refund: Option<&'a str>,
    /// The passkey that signed in (its name), instead of a password: the session's factor
    /// is then `hwk` and the event names the passkey.
    pub passkey: Option<&'a str>,
}

impl Seen<'_> {
    /// The session's factors when this sign-in completes it.
    fn factors(&self) -> &'static str {
        if self.passkey.is_some() { "hwk" } else { "pwd" }
    }

    /// The event's detail: which passkey, when one signed in.
    fn detail(&self) -> Option<String> {
        self.passkey.map(|name| format!("with the passkey {name}"))
    }

    async fn record(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        login: &ServeLogin,
        kind: &str,
        now: &str,
    ) -> Result<(), StoreError> {
        let doing = "recording a sign-in";
        sqlx::query(
            "INSERT INTO login_events (at, email, kind, address, detail) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(now)
        .bind(login.login.email.as_deref().unwrap_or_default())
        .bind(kind)
        .bind(self.address)
        .bind(self.detail())
        .execute(&mut **tx)
        .await
        .doing(doing)?;
        if let Some(window) = self.refund {
            sqlx::query(
                "UPDATE address_failures SET failures = failures - 1
                 WHERE address = $1 AND window_start = $2 AND failures > 0",
            )
            .bind(self.address)
            .bind(window)
            .execute(&mut **tx)
            .await
            .doing(doing)?;
        }
        Ok(())
    }
}

/// Whose lockout to set.
pub enum LockKey<'a> {
    /// A login.
    Login {
        /// Its customer.
        customer_id: &'a str,
        /// Its contact key.
        contact: &'a str,
    },
    /// An email no login has, by its SHA-256.
    Unknown(&'a str),
}
