//! Initial passwords: where they come from, argon2id hashing (all cores, with progress), and
//! the checks a hash must pass. No function here ever prints or logs a secret.

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::PasswordHash;
use std::sync::Arc;

use compact_str::CompactString;
use serde::Serialize;

use crate::state::Address;

pub use crate::state::SecretRef;

/// What can go wrong preparing passwords. Messages name the source, never the value.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The variable is not set.
    #[error("{address}: environment variable `{name}` is not set")]
    MissingEnv {
        /// The login.
        address: String,
        /// The variable.
        name: String,
    },
    /// The file cannot be read.
    #[error("{address}: cannot read password file {path}: {reason}")]
    File {
        /// The login.
        address: String,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A saved plan cannot carry a pre-hashed password.
    #[error(
        "{address}: a saved plan cannot carry a pre-hashed (argon2) password; apply with -f and --expect-digest instead"
    )]
    HashNotInPlan {
        /// The login.
        address: String,
    },
    /// Hashing failed.
    #[error("{address}: hashing the password failed")]
    Hash {
        /// The login.
        address: String,
    },
}

/// Reads a password from its source.
///
/// # Errors
/// [`PasswordError`] naming the source when it is missing.
pub fn resolve(
    root: &std::path::Path,
    address: &str,
    source: &SecretRef,
    limit: u64,
) -> Result<Option<String>, PasswordError> {
    match source {
        SecretRef::Env(name) => {
            std::env::var(name)
                .map(Some)
                .map_err(|_| PasswordError::MissingEnv {
                    address: address.into(),
                    name: name.clone(),
                })
        }
        SecretRef::File(path) => {
            let shown = path.display().to_string();
            crate::files::read_inside("password file", root, root, &shown, limit)
                .map(|text| Some(text.trim_end_matches(['\r', '\n']).to_string()))
                .map_err(|e| PasswordError::File {
                    address: address.into(),
                    path: shown,
                    reason: e.to_string(),
                })
        }
        SecretRef::Argon2 { .. } => Ok(None),
    }
}

/// An argon2id hash with OWASP's parameters (m = 19 MiB, t = 2, p = 1) and a random salt.
///
/// # Errors
/// Only when the system's random source fails.
pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    Ok(argon2::Argon2::default()
        .hash_password(password.as_bytes())?
        .to_string())
}

/// Hashes many passwords on all cores, in order, with a progress bar on a terminal when
/// there are many. Panics only when the system's random source fails.
pub fn hash_many(passwords: &[&str]) -> Vec<String> {
    let bar =
        crate::progress::Progress::start("hashing passwords", Some(passwords.len() as u64), 8);
    let threads = crate::parallel::cores();
    let chunk = passwords.len().div_ceil(threads).max(1);
    let hashes = std::thread::scope(|scope| {
        let handles: Vec<_> = passwords
            .chunks(chunk)
            .map(|part| {
                let bar = bar.clone();
                scope.spawn(move || {
                    part.iter()
                        .map(|p| {
                            let hashed = hash(p).expect("the OS random source works");
                            bar.inc();
                            hashed
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a hashing thread never panics"))
            .collect()
    });
    bar.finish();
    hashes
}

/// Whether `hash` is an argon2id PHC string at least as strong as OWASP's minimum.
pub fn is_strong_argon2id(hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    parsed.algorithm.as_str() == "argon2id" && strong_params(parsed.params.as_str())
}

/// How many parameter sets each thread remembers a verdict on.
const PARAMS_REMEMBERED: usize = 16;

/// Whether argon2 parameters (`m=…,t=…,p=…`) are valid and at least OWASP's minimum. An
/// account's hashes differ in salt and output but share a few parameter sets, so each
/// thread remembers its verdict on the first few it sees: reading them again was a third
/// of the check of a pre-hashed password (hundreds of thousands in a large account).
fn strong_params(params: &str) -> bool {
    thread_local! {
        static SEEN: std::cell::RefCell<Vec<(String, bool)>> = const {
            std::cell::RefCell::new(Vec::new())
        };
    }
    if let Some(known) = SEEN.with_borrow(|seen| {
        seen.iter()
            .find(|(p, _)| p == params)
            .map(|(_, strong)| *strong)
    }) {
        return known;
    }
    let strong = params
        .parse::<argon2::password_hash::phc::ParamsString>()
        .ok()
        .and_then(|params| argon2::Params::try_from(&params).ok())
        .is_some_and(|params| {
            params.m_cost() >= 19 * 1024 && params.t_cost() >= 2
                || params.m_cost() >= 12 * 1024 && params.t_cost() >= 3
                || params.m_cost() >= 9 * 1024 && params.t_cost() >= 4
                || params.m_cost() >= 7 * 1024 && params.t_cost() >= 5
        });
    SEEN.with_borrow_mut(|seen| {
        if seen.len() < PARAMS_REMEMBERED {
            seen.push((params.to_string(), strong));
        }
    });
    strong
}

/// A login's new password hash (or an OpenID Connect client's secret), ready to store.
#[derive(Clone, Serialize)]
pub struct PasswordRow {
    /// The login's customer (`""` for a client).
    pub customer_id: CompactString,
    /// `""` for the customer's own login, else the contact's email.
    pub contact: CompactString,
    /// The client's id, for a client secret (`""` for a login).
    #[serde(skip_serializing_if = "CompactString::is_empty")]
    pub client: CompactString,
    /// The argon2id hash: a hash given in the manifests is shared with them, not copied
    /// (at 300,000 pre-hashed passwords, the copies took 30 MB).
    pub hash: Arc<str>,
}

/// The key only: a hash is not shown.
impl std::fmt::Debug for PasswordRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordRow")
            .field("customer_id", &self.customer_id)
            .field("contact", &self.contact)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl PasswordRow {
    /// Whether this is a client's secret rather than a login's password.
    pub fn is_client(&self) -> bool {
        !self.client.is_empty()
    }
}

/// A password to store: (its login or client, the plaintext to hash or, as `Err`, a hash
/// given in the manifests).
type Job<'a> = (&'a Address, Result<String, Arc<str>>);

/// The (customer, contact, client) key of a password's row.
fn key_of(address: &Address) -> Option<(&str, &str, &str)> {
    match address {
        Address::Customer(id) => Some((id, "", "")),
        Address::Contact { customer, email } => Some((customer, email, "")),
        Address::OidcClient(id) => Some(("", "", id)),
        _ => None,
    }
}

/// The passwords to store, read from their sources (a plaintext to hash, or a given hash).
fn hashing_jobs<'a>(
    sources: impl IntoIterator<Item = (&'a Address, &'a SecretRef)>,
    root: &std::path::Path,
    limit: u64,
) -> Result<Vec<Job<'a>>, PasswordError> {
    let mut jobs = Vec::new();
    for (login, source) in sources {
        if key_of(login).is_none() {
            continue;
        }
        let job = match source {
            SecretRef::Argon2 { hash } if hash.is_empty() => {
                return Err(PasswordError::HashNotInPlan {
                    address: login.to_string(),
                });
            }
            SecretRef::Argon2 { hash } => (login, Err(Arc::clone(hash))),
            other => {
                let address = login.to_string();
                let password = resolve(root, &address, &other.clone(), limit)?.unwrap_or_default();
                (login, Ok(password))
            }
        };
        jobs.push(job);
    }
    Ok(jobs)
}

/// One job's row: its hash made (or the given one).
fn row_of((address, secret): &Job) -> Result<PasswordRow, PasswordError> {
    let hash = match secret {
        Ok(password) => Arc::from(hash(password).map_err(|_| PasswordError::Hash {
            address: address.to_string(),
        })?),
        Err(prehashed) => Arc::clone(prehashed),
    };
    let (customer_id, contact, client) = key_of(address).expect("jobs are of logins and clients");
    Ok(PasswordRow {
        customer_id: customer_id.into(),
        contact: contact.into(),
        client: client.into(),
        hash,
    })
}

/// Hashes the password of each (login, source) a plan sets, on all cores, with a progress
/// bar on a terminal.
/// `file` sources are read relative to `root`, the manifest folder, up to `limit` bytes.
///
/// # Errors
/// The first source that cannot be read (checked before any hashing starts).
pub fn hash_all<'a>(
    sources: impl IntoIterator<Item = (&'a Address, &'a SecretRef)>,
    root: &std::path::Path,
    limit: u64,
) -> Result<Vec<PasswordRow>, PasswordError> {
    let jobs = hashing_jobs(sources, root, limit)?;
    let to_hash = jobs.iter().filter(|j| j.1.is_ok()).count() as u64;
    if to_hash == 0 {
        // Hashes given in the manifests only: nothing to spread over the cores.
        return jobs.iter().map(row_of).collect();
    }
    let bar = crate::progress::Progress::start("hashing passwords", Some(to_hash), 8);
    let threads = crate::parallel::cores();
    let chunk = jobs.len().div_ceil(threads).max(1);
    let results: Vec<Result<Vec<PasswordRow>, PasswordError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| {
                let bar = bar.clone();
                scope.spawn(move || {
                    part.iter()
                        .map(|job| {
                            let row = row_of(job);
                            if job.1.is_ok() {
                                bar.inc();
                            }
                            row
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("hashing threads do not panic"))
            .collect()
    });
    bar.finish();
    let mut rows = Vec::with_capacity(jobs.len());
    for part in results {
        rows.extend(part?);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_with_owasp_parameters_and_random_salts() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(is_strong_argon2id(&a));
        let parsed = PasswordHash::new(&a).unwrap();
        use argon2::password_hash::PasswordVerifier;
        assert!(
            argon2::Argon2::default()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
    }

    #[test]
    fn weak_or_foreign_hashes_are_refused() {
        assert!(!is_strong_argon2id(
            "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
        ));
        assert!(!is_strong_argon2id(
            "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
        ));
        assert!(!is_strong_argon2id("plaintext"));
    }

    #[test]
    fn remembered_verdicts_follow_each_hash_parameters() {
        // More parameter sets than a thread remembers, strong and weak in turn, twice over:
        // each verdict is the one its own parameters give.
        let sets: Vec<(String, bool)> = (0..2 * PARAMS_REMEMBERED)
            .map(|i| {
                let strong = i % 2 == 0;
                let m = if strong { 19456 + i } else { 4096 + i };
                (format!("m={m},t=2,p=1"), strong)
            })
            .collect();
        for _ in 0..2 {
            for (params, strong) in &sets {
                let hash = format!("$argon2id$v=19${params}$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo");
                assert_eq!(is_strong_argon2id(&hash), *strong, "{hash}");
                let broken = format!("$argon2id$v=19${params}$c2Fsd!HNhbHQ$aGFzaGhhc2hoYXNo");
                assert!(!is_strong_argon2id(&broken), "{broken}");
            }
        }
        assert!(!is_strong_argon2id(
            "$argon2id$v=19$m=19456,t=2,p=0$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
        ));
    }

    #[test]
    fn debug_never_shows_a_hash() {
        assert_eq!(
            format!(
                "{:?}",
                SecretRef::Argon2 {
                    hash: "$argon2id$secret".into()
                }
            ),
            "Argon2(…)"
        );
    }
}
