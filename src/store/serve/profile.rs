//! The login service's writes beyond signing in: a signed-in person's own changes (password,
//! recovery codes), password resets queued for the outbox, the per-address failure counts
//! that throttle a flood, and the retention of what the server keeps.

use super::{ServeLogin, ServeStore};
use crate::store::{Doing, StoreError};

impl ServeStore {
    /// Stores a new password hash for a signed-in login that proved its current one: clears
    /// its lockout, revokes its outstanding set-password links, and ends every other session
    /// (the one in `keep` stays).
    ///
    /// # Errors
    /// Database errors.
    pub async fn change_password(
        &self,
        login: &ServeLogin,
        hash: &str,
        keep: &str,
        now: &str,
    ) -> Result<(), StoreError> {
        let doing = "changing a password";
        let mut tx = self.pool.begin().await.doing(doing)?;
        sqlx::query(
            "UPDATE logins SET password_hash = $1, password_set_at = $2, failed_attempts = 0,
                locked_until = NULL WHERE customer_id = $3 AND contact = $4",
        )
        .bind(hash)
        .bind(now)
        .bind(&login.customer_id)
        .bind(&login.contact)
        .execute(&mut *tx)
        .await
        .doing(doing)?;
        sqlx::query(
            "UPDATE set_password_tokens SET revoked_at = $1
             WHERE customer_id = $2 AND contact = $3 AND used_at IS NULL AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(&login.customer_id)
        .bind(&login.contact)
        .execute(&mut *tx)
        .await
        .doing(doing)?;
        sqlx::query(
            "DELETE FROM sessions WHERE customer_id = $1 AND contact = $2 AND id_hash <> $3",
        )
        .bind(&login.customer_id)
        .bind(&login.contact)
        .bind(keep)
        .execute(&mut *tx)
        .await
        .doing(doing)?;
        tx.commit().await.doing(doing)?;
        Ok(())
    }

    /// Clears a login's consecutive failures after its password was proved again.
    ///
    /// # Errors
    /// Database errors.
    pub async fn clear_failures(&self, customer_id: &str, contact: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE logins SET failed_attempts = 0 WHERE customer_id = $1 AND contact = $2",
        )
        .bind(customer_id)
        .bind(contact)
        .execute(&self.pool)
        .await
        .doing("clearing failed attempts")?;
        Ok(())
    }

    /// How many of the login's recovery codes are still unused.
    ///
    /// # Errors
    /// Database errors.
    pub async fn recovery_codes_left(&self, login: &ServeLogin) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM recovery_codes
             WHERE customer_id = $1 AND contact = $2 AND used_at IS NULL",
        )
        .bind(&login.customer_id)
        .bind(&login.contact)
        .fetch_one(&self.pool)
        .await
        .doing("counting recovery codes")
    }

    /// Queues a password-reset message for the login, unless one was queued since
    /// `not_before` (a form submitted over and over sends one message). `true` when queued.
    ///
    /// Requests for one login are taken one at a time: SQLite runs one write at a time; on
    /// PostgreSQL the login's row is locked first, in the same transaction, so a second
    /// request waits and its insert (a later statement, with a newer snapshot) sees the
    /// first one's message. A single `INSERT … WHERE NOT EXISTS` let two requests at once
    /// (`jane@…` and `JANE@…` submitted back to back) both queue one.
    ///
    /// # Errors
    /// Database errors.
    pub async fn queue_reset(
        &self,
        login: &ServeLogin,
        now: &str,
        not_before: &str,
    ) -> Result<bool, StoreError> {
        let doing = "queueing a password reset";
        let email = login.login.email.as_deref().unwrap_or_default();
        let _turn = self.writer_turn().await;
        let mut tx = self.pool.begin().await.doing(doing)?;
        if self.postgres {
            sqlx::query("SELECT 1 FROM logins WHERE customer_id = $1 AND contact = $2 FOR UPDATE")
                .bind(&login.customer_id)
                .bind(&login.contact)
                .fetch_optional(&mut *tx)
                .await
                .doing(doing)?;
        }
        let done = sqlx::query(
            "INSERT INTO notifications
                (created_at, customer_id, contact, email, password_assigned, status, kind)
             SELECT $1, $2, $3, NULLIF($4, $3), 1 = 0, 0, 1
             WHERE NOT EXISTS (SELECT 1 FROM notifications WHERE customer_id = $2 AND contact = $3
                AND kind = 1 AND created_at > $5)",
        )
        .bind(seconds(now)?)
        .bind(&login.customer_id)
        .bind(&login.contact)
        .bind(email)
        .bind(seconds(not_before)?)
        .execute(&mut *tx)
        .await
        .doing(doing)?;
        tx.commit().await.doing(doing)?;
        Ok(done.rows_affected() == 1)
    }

    /// Counts one attempt from `address` in the hour that began at `window` *before* it is
    /// checked, atomically and only below `limit`: however many arrive at once, at most
    /// `limit` are checked in an hour (a right password is refunded, see
    /// [`super::Seen`]). `false` when the address has used up its allowance.
    ///
    /// # Errors
    /// Database errors.
    pub async fn claim_address(
        &self,
        address: &str,
        window: &str,
        limit: i64,
    ) -> Result<bool, StoreError> {
        let n: Option<i64> = sqlx::query_scalar(
            "INSERT INTO address_failures (address, window_start, failures) VALUES ($1, $2, 1)
             ON CONFLICT (address) DO UPDATE SET
                failures = CASE WHEN address_failures.window_start = $2
                    THEN address_failures.failures + 1 ELSE 1 END,
                window_start = $2
             WHERE address_failures.window_start <> $2 OR address_failures.failures < $3
             RETURNING CAST(failures AS BIGINT)",
        )
        .bind(address)
        .bind(window)
        .bind(limit)
        .fetch_optional(&self.pool)
        .await
        .doing("counting an address's attempt")?;
        Ok(n.is_some())
    }

    /// Counts one failure (a wrong password or code, a reset request) from `address` in the
    /// hour that began at `window`, atomically.
    ///
    /// # Errors
    /// Database errors.
    pub async fn count_failure(&self, address: &str, window: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO address_failures (address, window_start, failures) VALUES ($1, $2, 1)
             ON CONFLICT (address) DO UPDATE SET
                failures = CASE WHEN address_failures.window_start = $2
                    THEN address_failures.failures + 1 ELSE 1 END,
                window_start = $2",
        )
        .bind(address)
        .bind(window)
        .execute(&self.pool)
        .await
        .doing("counting an address's failure")?;
        Ok(())
    }

    /// Removes what the server no longer needs: events older than `events_before`, ended
    /// sessions and access tokens, locks of unknown emails that ended, and address counts
    /// and authorization codes of hours before `windows_before`. Returns how many events went.
    ///
    /// # Errors
    /// Database errors.
    pub async fn prune(
        &self,
        events_before: &str,
        windows_before: &str,
        now: &str,
    ) -> Result<u64, StoreError> {
        let doing = "removing old sign-in records";
        let events = sqlx::query("DELETE FROM login_events WHERE at < $1")
            .bind(events_before)
            .execute(&self.pool)
            .await
            .doing(doing)?
            .rows_affected();
        for sql in [
            "DELETE FROM sessions WHERE expires_at <= $1",
            "DELETE FROM unknown_signins WHERE locked_until IS NOT NULL AND locked_until <= $1",
            "DELETE FROM oidc_tokens WHERE expires_at <= $1",
        ] {
            sqlx::query(sql)
                .bind(now)
                .execute(&self.pool)
                .await
                .doing(doing)?;
        }
        // Codes are kept past their tokens' life, so a late replay still revokes.
        for sql in [
            "DELETE FROM address_failures WHERE window_start < $1",
            "DELETE FROM oidc_codes WHERE expires_at < $1",
        ] {
            sqlx::query(sql)
                .bind(windows_before)
                .execute(&self.pool)
                .await
                .doing(doing)?;
        }
        Ok(events)
    }
}

/// An RFC 3339 time as the Unix seconds a message's `created_at` stores.
fn seconds(at: &str) -> Result<i64, StoreError> {
    at.parse::<jiff::Timestamp>()
        .map(jiff::Timestamp::as_second)
        .map_err(|e| StoreError::Corrupt(format!("time `{at}`: {e}")))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::ServeStore;
    use crate::store::Store as _;

    /// Twenty requests for a login's reset at once, on a real database: one message. Eight
    /// logins one after the other (without the row lock, PostgreSQL queued two in about
    /// one burst in three).
    async fn one_reset_however_many_at_once(url: &str) {
        let mut store = crate::store::open(url, true).await.expect("open");
        store.init().await.expect("init");
        drop(store);
        let serve = Arc::new(ServeStore::open(url, 8).await.expect("serve store"));
        for n in 0..8 {
            let customer = sqlx::AssertSqlSafe(format!(
                "INSERT INTO customers (id, name) VALUES ('C{n}', 'Acme {n}')"
            ));
            let login = sqlx::AssertSqlSafe(format!(
                "INSERT INTO logins (customer_id, contact, email, access, role_id, notify)
                 VALUES ('C{n}', '', 'ap{n}@acme.example', 1 = 1, 'customer_center', 1 = 0)"
            ));
            for sql in [customer, login] {
                sqlx::query(sql).execute(&serve.pool).await.expect("a row");
            }
        }
        for n in 0..8 {
            let login = serve
                .login_by_email(&format!("ap{n}@acme.example"))
                .await
                .expect("read")
                .expect("the login");
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..20 {
                let (serve, login) = (serve.clone(), login.clone());
                tasks.spawn(async move {
                    let (now, not_before) = ("2026-12-02T12:00:00Z", "2026-12-02T11:55:00Z");
                    serve
                        .queue_reset(&login, now, not_before)
                        .await
                        .expect("queued or not")
                });
            }
            let queued = tasks.join_all().await.into_iter().filter(|q| *q).count();
            assert_eq!(queued, 1, "login {n} on {url}");
        }
        let rows: i64 =
            sqlx::query_scalar("SELECT CAST(count(*) AS BIGINT) FROM notifications WHERE kind = 1")
                .fetch_one(&serve.pool)
                .await
                .expect("count");
        assert_eq!(rows, 8, "{url}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_reset_is_queued_once_on_sqlite() {
        let dir = tempfile::tempdir().expect("a folder");
        let url = format!("sqlite://{}", dir.path().join("live.db").display());
        one_reset_however_many_at_once(&url).await;
    }

    /// On the server `PORTICO_TEST_POSTGRES_URL` names (the suite starts one), in a
    /// database of its own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_reset_is_queued_once_on_postgres() {
        use sqlx::Connection as _;
        let Ok(admin) = std::env::var("PORTICO_TEST_POSTGRES_URL") else {
            eprintln!("PORTICO_TEST_POSTGRES_URL is not set: skipped");
            return;
        };
        let name = format!("portico_unit_reset_{}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(&admin).await.expect("server");
        let drop = || sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"));
        sqlx::query(drop()).execute(&mut conn).await.expect("drop");
        let create = sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"));
        sqlx::query(create)
            .execute(&mut conn)
            .await
            .expect("create");
        let (base, _) = admin.rsplit_once('/').expect("a database in the URL");
        one_reset_however_many_at_once(&format!("{base}/{name}")).await;
        sqlx::query(drop()).execute(&mut conn).await.expect("drop");
    }
}
