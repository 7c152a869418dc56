//! Passkeys: each login's WebAuthn credentials (public keys and signature counters, no
//! secret) and the ceremonies in progress (single use, minutes long).

use super::ServeStore;
use crate::store::{Doing, StoreError};

from_row! {
    /// A stored passkey.
    #[derive(Clone, Debug)]
    pub struct PasskeyRow {
        /// The credential id, base64url.
        pub credential_id: String,
        pub customer_id: String,
        pub contact: String,
        /// The WebAuthn user handle of the login (base64url).
        pub user_handle: String,
        /// What the person called it.
        pub name: String,
        /// webauthn-rs' `Passkey`, as JSON (the public key and the signature counter).
        pub passkey: String,
        pub created_at: String,
        pub last_used_at: Option<String>,
    }
}

/// What a login's passkey looks like to `access` (JSON: `schemas/access.schema.json`).
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct PasskeySummary {
    /// Its name.
    pub name: String,
    /// When it was registered.
    pub created_at: String,
    /// When it last signed in.
    pub last_used_at: Option<String>,
}

from_row! {
    /// A ceremony taken back: its login (registration only) and its state.
    #[derive(Clone, Debug)]
    pub struct CeremonyRow {
        pub customer_id: Option<String>,
        pub contact: Option<String>,
        pub state: String,
        pub expires_at: String,
    }
}

impl ServeStore {
    /// Keeps a ceremony's state until `expires_at`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn begin_ceremony(
        &self,
        id_hash: &str,
        kind: &str,
        login: Option<(&str, &str)>,
        state: &str,
        expires_at: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO passkey_ceremonies (id_hash, kind, customer_id, contact, state, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id_hash)
        .bind(kind)
        .bind(login.map(|l| l.0))
        .bind(login.map(|l| l.1))
        .bind(state)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .doing("starting a passkey ceremony")?;
        Ok(())
    }

    /// Takes a ceremony back, once: `None` when unknown, of another kind, or expired.
    ///
    /// # Errors
    /// Database errors.
    pub async fn take_ceremony(
        &self,
        id_hash: &str,
        kind: &str,
        now: &str,
    ) -> Result<Option<CeremonyRow>, StoreError> {
        let doing = "finishing a passkey ceremony";
        let row: Option<CeremonyRow> = sqlx::query_as(
            "DELETE FROM passkey_ceremonies WHERE id_hash = $1 AND kind = $2
             RETURNING customer_id, contact, state, expires_at",
        )
        .bind(id_hash)
        .bind(kind)
        .fetch_optional(&self.pool)
        .await
        .doing(doing)?;
        sqlx::query("DELETE FROM passkey_ceremonies WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .doing(doing)?;
        Ok(row.filter(|r| r.expires_at.as_str() > now))
    }

    /// Stores a new passkey.
    ///
    /// # Errors
    /// Database errors (the same credential registered twice among them).
    pub async fn add_passkey(&self, row: &PasskeyRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO passkeys (credential_id, customer_id, contact, user_handle, name, passkey, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&row.credential_id)
        .bind(&row.customer_id)
        .bind(&row.contact)
        .bind(&row.user_handle)
        .bind(&row.name)
        .bind(&row.passkey)
        .bind(&row.created_at)
        .execute(&self.pool)
        .await
        .doing("storing a passkey")?;
        Ok(())
    }

    /// The passkeys of a login.
    ///
    /// # Errors
    /// Database errors.
    pub async fn passkeys_of(
        &self,
        customer_id: &str,
        contact: &str,
    ) -> Result<Vec<PasskeyRow>, StoreError> {
        sqlx::query_as(
            "SELECT credential_id, customer_id, contact, user_handle, name, passkey, created_at, last_used_at
             FROM passkeys WHERE customer_id = $1 AND contact = $2 ORDER BY created_at, credential_id",
        )
        .bind(customer_id)
        .bind(contact)
        .fetch_all(&self.pool)
        .await
        .doing("reading passkeys")
    }

    /// The passkey with this credential id and user handle.
    ///
    /// # Errors
    /// Database errors.
    pub async fn passkey(
        &self,
        credential_id: &str,
        user_handle: &str,
    ) -> Result<Option<PasskeyRow>, StoreError> {
        sqlx::query_as(
            "SELECT credential_id, customer_id, contact, user_handle, name, passkey, created_at, last_used_at
             FROM passkeys WHERE credential_id = $1 AND user_handle = $2",
        )
        .bind(credential_id)
        .bind(user_handle)
        .fetch_optional(&self.pool)
        .await
        .doing("reading a passkey")
    }

    /// Records a passkey's use and its new signature counter.
    ///
    /// # Errors
    /// Database errors.
    pub async fn passkey_used(
        &self,
        credential_id: &str,
        passkey: &str,
        now: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE passkeys SET passkey = $2, last_used_at = $3 WHERE credential_id = $1")
            .bind(credential_id)
            .bind(passkey)
            .bind(now)
            .execute(&self.pool)
            .await
            .doing("recording a passkey's use")?;
        Ok(())
    }

    /// The passkeys `access` lists for a login (by email).
    ///
    /// # Errors
    /// Database errors.
    pub async fn passkey_summaries(&self, email: &str) -> Result<Vec<PasskeySummary>, StoreError> {
        let Some(login) = self.login_by_email(email).await? else {
            return Ok(Vec::new());
        };
        Ok(self
            .passkeys_of(&login.customer_id, &login.contact)
            .await?
            .into_iter()
            .map(|p| PasskeySummary {
                name: p.name,
                created_at: p.created_at,
                last_used_at: p.last_used_at,
            })
            .collect())
    }
}
