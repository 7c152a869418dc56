//! What the OpenID Connect provider keeps: signing keys (private halves sealed), the codes
//! and access tokens it issued (by SHA-256 only), and each login's random `sub`.

use super::ServeStore;
use crate::store::{Doing, StoreError};

from_row! {
    /// A signing key as stored.
    #[derive(Clone, Debug)]
    pub struct SigningKeyRow {
        /// The key id (`kid`).
        pub kid: String,
        /// When it was made.
        pub created_at: String,
        /// When a newer key replaced it (it is still published a while, for the tokens it signed).
        pub retired_at: Option<String>,
        /// The PKCS#1 PEM private key, sealed with the server's key.
        pub private_sealed: String,
        /// The public key as a JWK.
        pub public_jwk: String,
    }
}

from_row! {
    /// An authorization code's bindings, as issued.
    #[derive(Clone, Debug)]
    pub struct CodeRow {
        pub client_id: String,
        pub customer_id: String,
        pub contact: String,
        pub redirect_uri: String,
        pub code_challenge: String,
        pub scope: String,
        pub nonce: Option<String>,
        pub auth_time: String,
        pub amr: String,
        pub expires_at: String,
    }
}

/// What redeeming a code found.
#[derive(Clone, Debug)]
pub enum Redeemed {
    /// Unused until now: it is used from this moment.
    Fresh(Box<CodeRow>),
    /// Used before: what it issued has just been revoked (RFC 6749 §4.1.2).
    Replayed,
    /// No such code (or its client was removed).
    Unknown,
}

from_row! {
    /// An access token, as issued.
    #[derive(Clone, Debug)]
    pub struct TokenRow {
        pub client_id: String,
        pub customer_id: String,
        pub contact: String,
        pub scope: String,
        pub amr: String,
        pub auth_time: String,
        pub expires_at: String,
    }
}

impl ServeStore {
    /// The keys published now: the active ones and those retired after `retired_after`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn signing_keys(
        &self,
        retired_after: &str,
    ) -> Result<Vec<SigningKeyRow>, StoreError> {
        sqlx::query_as(
            "SELECT kid, created_at, retired_at, private_sealed, public_jwk FROM oidc_keys
             WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at DESC, kid",
        )
        .bind(retired_after)
        .fetch_all(&self.pool)
        .await
        .doing("reading the signing keys")
    }

    /// Adds a signing key; with `retire`, every older active key is retired in the same
    /// transaction (`portico keys rotate`).
    ///
    /// # Errors
    /// Database errors.
    pub async fn add_signing_key(
        &self,
        key: &SigningKeyRow,
        retire: bool,
    ) -> Result<(), StoreError> {
        let doing = "storing a signing key";
        let mut tx = self.pool.begin().await.doing(doing)?;
        if retire {
            sqlx::query("UPDATE oidc_keys SET retired_at = $1 WHERE retired_at IS NULL")
                .bind(&key.created_at)
                .execute(&mut *tx)
                .await
                .doing(doing)?;
        }
        sqlx::query(
            "INSERT INTO oidc_keys (kid, created_at, retired_at, private_sealed, public_jwk)
             VALUES ($1, $2, NULL, $3, $4)",
        )
        .bind(&key.kid)
        .bind(&key.created_at)
        .bind(&key.private_sealed)
        .bind(&key.public_jwk)
        .execute(&mut *tx)
        .await
        .doing(doing)?;
        tx.commit().await.doing(doing)
    }

    /// Stores an authorization code (by its hash).
    ///
    /// # Errors
    /// Database errors (a removed client among them).
    pub async fn issue_code(&self, code_hash: &str, code: &CodeRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oidc_codes (code_hash, client_id, customer_id, contact, redirect_uri,
                code_challenge, scope, nonce, auth_time, amr, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(code_hash)
        .bind(&code.client_id)
        .bind(&code.customer_id)
        .bind(&code.contact)
        .bind(&code.redirect_uri)
        .bind(&code.code_challenge)
        .bind(&code.scope)
        .bind(&code.nonce)
        .bind(&code.auth_time)
        .bind(&code.amr)
        .bind(&code.expires_at)
        .execute(&self.pool)
        .await
        .doing("issuing an authorization code")?;
        Ok(())
    }

    /// Uses a code: at most once, whatever runs at the same time (one conditional UPDATE). A
    /// code used before revokes the access tokens it issued.
    ///
    /// # Errors
    /// Database errors.
    pub async fn redeem_code(&self, code_hash: &str, now: &str) -> Result<Redeemed, StoreError> {
        let doing = "redeeming an authorization code";
        let turn = self.writer_turn().await;
        let fresh: Option<CodeRow> = sqlx::query_as(
            "UPDATE oidc_codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL
             RETURNING client_id, customer_id, contact, redirect_uri, code_challenge, scope,
                nonce, auth_time, amr, expires_at",
        )
        .bind(code_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .doing(doing)?;
        drop(turn);
        if let Some(code) = fresh {
            return Ok(Redeemed::Fresh(Box::new(code)));
        }
        let known: Option<(String,)> =
            sqlx::query_as("SELECT code_hash FROM oidc_codes WHERE code_hash = $1")
                .bind(code_hash)
                .fetch_optional(&self.pool)
                .await
                .doing(doing)?;
        if known.is_none() {
            return Ok(Redeemed::Unknown);
        }
        let _turn = self.writer_turn().await;
        // The code is marked first: a token being issued for it now either committed before
        // (and is revoked next) or sees the mark and is not issued (`issue_token`).
        sqlx::query("UPDATE oidc_codes SET replayed_at = $2 WHERE code_hash = $1")
            .bind(code_hash)
            .bind(now)
            .execute(&self.pool)
            .await
            .doing(doing)?;
        sqlx::query(
            "UPDATE oidc_tokens SET revoked_at = $2 WHERE code_hash = $1 AND revoked_at IS NULL",
        )
        .bind(code_hash)
        .bind(now)
        .execute(&self.pool)
        .await
        .doing(doing)?;
        Ok(Redeemed::Replayed)
    }

    /// Stores an access token (by its hash), issued for a code; `false` (nothing stored) when
    /// the code was presented again meanwhile. On PostgreSQL the code's row is locked while
    /// the token is written, so a replay's revocation waits for it and then sees it; SQLite
    /// runs one write at a time.
    ///
    /// # Errors
    /// Database errors.
    pub async fn issue_token(
        &self,
        token_hash: &str,
        code_hash: &str,
        token: &TokenRow,
    ) -> Result<bool, StoreError> {
        let _turn = self.writer_turn().await;
        let sql = if self.postgres {
            "WITH code AS (
                SELECT code_hash FROM oidc_codes
                WHERE code_hash = $3 AND replayed_at IS NULL FOR UPDATE
            )
            INSERT INTO oidc_tokens (token_hash, client_id, code_hash, customer_id, contact,
                scope, amr, auth_time, expires_at)
            SELECT $1, $2, code_hash, $4, $5, $6, $7, $8, $9 FROM code"
        } else {
            "INSERT INTO oidc_tokens (token_hash, client_id, code_hash, customer_id, contact,
                scope, amr, auth_time, expires_at)
            SELECT $1, $2, code_hash, $4, $5, $6, $7, $8, $9 FROM oidc_codes
            WHERE code_hash = $3 AND replayed_at IS NULL"
        };
        let done = sqlx::query(sql)
            .bind(token_hash)
            .bind(&token.client_id)
            .bind(code_hash)
            .bind(&token.customer_id)
            .bind(&token.contact)
            .bind(&token.scope)
            .bind(&token.amr)
            .bind(&token.auth_time)
            .bind(&token.expires_at)
            .execute(&self.pool)
            .await
            .doing("issuing an access token")?;
        Ok(done.rows_affected() == 1)
    }

    /// An access token that is not revoked and has not expired at `now`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn access_token(
        &self,
        token_hash: &str,
        now: &str,
    ) -> Result<Option<TokenRow>, StoreError> {
        sqlx::query_as(
            "SELECT client_id, customer_id, contact, scope, amr, auth_time, expires_at
             FROM oidc_tokens WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .doing("reading an access token")
    }

    /// The login's `sub`: made (random) the first time it is asked for, the same ever after.
    ///
    /// # Errors
    /// Database errors.
    pub async fn subject(
        &self,
        customer_id: &str,
        contact: &str,
        fresh: &str,
    ) -> Result<String, StoreError> {
        let doing = "reading a login's subject";
        let read = || {
            sqlx::query_as::<_, (String,)>(
                "SELECT sub FROM oidc_subjects WHERE customer_id = $1 AND contact = $2",
            )
            .bind(customer_id)
            .bind(contact)
        };
        if let Some((sub,)) = read().fetch_optional(&self.pool).await.doing(doing)? {
            return Ok(sub);
        }
        {
            let _turn = self.writer_turn().await;
            sqlx::query(
                "INSERT INTO oidc_subjects (customer_id, contact, sub) VALUES ($1, $2, $3)
                 ON CONFLICT (customer_id, contact) DO NOTHING",
            )
            .bind(customer_id)
            .bind(contact)
            .bind(fresh)
            .execute(&self.pool)
            .await
            .doing(doing)?;
        }
        let (sub,) = read().fetch_one(&self.pool).await.doing(doing)?;
        Ok(sub)
    }

    /// The clients and their secrets' hashes, into the account's settings.
    pub(super) async fn read_clients(
        &self,
        state: &mut crate::state::State,
    ) -> Result<(), StoreError> {
        let rows: Vec<crate::store::rows::ClientRow> = sqlx::query_as(
            "SELECT id, name, website, redirect_uris, post_logout_redirect_uris, scopes,
                secret_marker, secret_hash FROM oidc_clients",
        )
        .fetch_all(&self.pool)
        .await
        .doing("reading the OpenID Connect clients")?;
        for mut row in rows {
            if let Some(hash) = row.secret_hash.take() {
                state.client_secret_hashes.insert(row.id.clone(), hash);
            }
            let (id, client) = row.into_state()?;
            state.oidc_clients.insert(id, client);
        }
        Ok(())
    }
}
