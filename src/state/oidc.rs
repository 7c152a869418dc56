//! An OpenID Connect client as applied (its secret's hash is never part of the state).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A relying party of `portico serve`'s provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcClientState {
    /// Display name.
    pub name: String,
    /// Exact redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Exact post-logout redirect URIs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    /// The only website whose logins it admits (with logins that have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    /// Allowed scopes, sorted.
    pub scopes: Vec<String>,
    /// `None` for a public client; for a confidential one, the `reset` marker of the secret
    /// last stored (the hash itself stays in the database).
    pub secret: Option<u32>,
}

impl OidcClientState {
    /// Whether the client authenticates with a secret at the token endpoint.
    pub fn confidential(&self) -> bool {
        self.secret.is_some()
    }
}
