//! The provider's signing keys: RSA 2048 (RS256, the algorithm every OpenID Connect relying
//! party supports), kept in the database with the private half sealed under the server's
//! key, made by `serve` when there is none and by `portico keys rotate`. A retired key stays
//! published for [`PUBLISHED_AFTER_RETIREMENT`], far past the life of the tokens it signed.

use openidconnect::core::{
    CoreJsonWebKey, CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey,
};
use openidconnect::{JsonWebKeyId, PrivateSigningKey, SigningError};

use std::sync::Arc;

use crate::serve::SecretKey;
use crate::store::StoreError;
use crate::store::serve::{ServeStore, SigningKeyRow};

/// How long a retired key stays in the JWKS: relying parties cache key sets (often for an
/// hour), and an ID token lives [`super::ID_TOKEN_SECONDS`].
pub const PUBLISHED_AFTER_RETIREMENT: i64 = 24 * 60 * 60;

/// The keys in use: the newest active one signs, every published one verifies.
pub struct Keys {
    /// The key that signs.
    pub signing: Arc<Signer>,
    /// The published public keys (`/oidc/jwks`).
    pub jwks: CoreJsonWebKeySet,
}

/// An RS256 signing key whose signatures *ring* makes (the library rustls already builds):
/// about four times faster than RustCrypto's `rsa`, which made a token request cost 2–3 ms
/// of CPU. `rsa` still makes the keys (*ring* cannot).
pub struct Signer {
    kid: String,
    key_pair: ring::signature::RsaKeyPair,
    rng: ring::rand::SystemRandom,
    public: CoreJsonWebKey,
}

impl Signer {
    /// A signer for a PKCS#1 PEM private key and its published JWK.
    fn new(kid: &str, pem: &str, public: CoreJsonWebKey) -> Option<Signer> {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        use rsa::pkcs8::EncodePrivateKey;
        let der = rsa::RsaPrivateKey::from_pkcs1_pem(pem)
            .ok()?
            .to_pkcs8_der()
            .ok()?;
        let key_pair = ring::signature::RsaKeyPair::from_pkcs8(der.as_bytes()).ok()?;
        Some(Signer {
            kid: kid.to_string(),
            key_pair,
            rng: ring::rand::SystemRandom::new(),
            public,
        })
    }
}

impl PrivateSigningKey for Signer {
    type VerificationKey = CoreJsonWebKey;

    fn sign(&self, alg: &CoreJwsSigningAlgorithm, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        if *alg != CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256 {
            return Err(SigningError::UnsupportedAlg(format!("{alg:?}")));
        }
        let mut signature = vec![0; self.key_pair.public().modulus_len()];
        self.key_pair
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &self.rng,
                message,
                &mut signature,
            )
            .map_err(|_| SigningError::CryptoError)?;
        Ok(signature)
    }

    fn as_verification_key(&self) -> CoreJsonWebKey {
        self.public.clone()
    }
}

fn purpose(kid: &str) -> String {
    format!("oidc-signing-key\u{0}{kid}")
}

/// Makes a new key (a second or so of CPU), sealed for storing.
///
/// # Errors
/// When the system's random source fails.
pub fn generate(secret_key: &SecretKey, now: &str) -> Result<SigningKeyRow, String> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
        .map_err(|e| format!("making a signing key: {e}"))?;
    let pem = private
        .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
        .map_err(|e| format!("encoding a signing key: {e}"))?;
    let kid = crate::serve::session::random_id();
    let signing = CoreRsaPrivateSigningKey::from_pem(&pem, Some(JsonWebKeyId::new(kid.clone())))?;
    let public_jwk = serde_json::to_string(&signing.as_verification_key())
        .map_err(|e| format!("writing a public key: {e}"))?;
    Ok(SigningKeyRow {
        private_sealed: secret_key.seal_for(&purpose(&kid), pem.as_bytes()),
        kid,
        created_at: now.to_string(),
        retired_at: None,
        public_jwk,
    })
}

/// The published keys, making the first one when there is none (or none this server's key
/// opens, as after the secret key changed).
///
/// # Errors
/// Database errors; a key that cannot be made.
pub async fn load(
    store: &ServeStore,
    secret_key: &SecretKey,
    at: jiff::Timestamp,
    previous: Option<&Keys>,
) -> Result<Keys, StoreError> {
    let now = crate::clock::format(at);
    let oldest =
        crate::clock::format(at - jiff::SignedDuration::from_secs(PUBLISHED_AFTER_RETIREMENT));
    for attempt in 0..2 {
        let rows = store.signing_keys(&oldest).await?;
        if let Some(keys) = from_rows(&rows, secret_key, previous) {
            return Ok(keys);
        }
        if attempt == 0 {
            let fresh = generate(secret_key, &now).map_err(StoreError::Corrupt)?;
            // Another instance may have made one at the same moment: both are published.
            store.add_signing_key(&fresh, false).await?;
        }
    }
    Err(StoreError::Corrupt(
        "no signing key opens with this server's secret key".into(),
    ))
}

/// The newest active key that opens signs (the previous signer when it is still that key);
/// every published key is in the JWKS.
fn from_rows(
    rows: &[SigningKeyRow],
    secret_key: &SecretKey,
    previous: Option<&Keys>,
) -> Option<Keys> {
    let signing = rows
        .iter()
        .filter(|r| r.retired_at.is_none())
        .find_map(|r| {
            if let Some(keys) = previous.filter(|k| k.signing.kid == r.kid) {
                return Some(keys.signing.clone());
            }
            let pem = secret_key.open_for(&purpose(&r.kid), &r.private_sealed)?;
            let pem = String::from_utf8(pem).ok()?;
            Signer::new(&r.kid, &pem, serde_json::from_str(&r.public_jwk).ok()?).map(Arc::new)
        })?;
    let published = rows
        .iter()
        .filter_map(|r| serde_json::from_str::<CoreJsonWebKey>(&r.public_jwk).ok())
        .collect();
    Some(Keys {
        signing,
        jwks: CoreJsonWebKeySet::new(published),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_opens_only_under_its_server_key_and_publishes_no_private_part() {
        use base64::Engine as _;
        let key = |b: u8| {
            SecretKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([b; 32]))
                .unwrap()
        };
        let row = generate(&key(1), "2026-12-01T00:00:00Z").unwrap();
        assert!(!row.private_sealed.contains("PRIVATE"));
        let jwk: serde_json::Value = serde_json::from_str(&row.public_jwk).unwrap();
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["kid"], row.kid.as_str());
        assert!(jwk.get("d").is_none() && jwk.get("p").is_none(), "{jwk}");
        assert!(from_rows(std::slice::from_ref(&row), &key(1), None).is_some());
        assert!(from_rows(&[row], &key(2), None).is_none());
    }
}
