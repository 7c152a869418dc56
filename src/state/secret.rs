//! Where an initial password comes from, as plans and apply name it (never the value).

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where an initial password comes from. Serialised into plans without any secret: an
/// `argon2` hash stays in memory only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretRef {
    /// An environment variable's name.
    Env(String),
    /// A file's path.
    File(PathBuf),
    /// A pre-hashed argon2id password from the manifests. The hash is never written to a
    /// plan file: a saved plan holds `{"argon2": {}}` and apply takes the hash from the
    /// manifests the plan was computed from.
    Argon2 {
        /// The PHC string (empty when read back from a saved plan), shared with the
        /// manifests it was read from rather than copied for every login.
        #[serde(skip)]
        hash: std::sync::Arc<str>,
    },
}

impl std::fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "Env({name})"),
            SecretRef::File(path) => write!(f, "File({})", path.display()),
            SecretRef::Argon2 { .. } => f.write_str("Argon2(…)"),
        }
    }
}
