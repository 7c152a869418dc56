//! The `oidc_clients:` section: the applications that sign their users in through
//! `portico serve`'s OpenID Connect provider (DESIGN §11).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::model::PasswordSource;

/// The scopes a client may ask for, and the claims each one releases.
pub const SCOPES: [&str; 4] = ["openid", "email", "profile", "access"];

/// An OpenID Connect relying party. Either `secret` (a confidential client, which
/// authenticates at the token endpoint) or `public: true` (a browser or mobile app, which
/// proves itself with PKCE alone).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcClient {
    /// The `client_id`: stable, the key.
    pub id: String,
    /// Shown on the sign-in page ("Sign in to continue to …").
    pub name: String,
    /// Where the provider may send the browser back with a code: compared exactly, `https://`
    /// except on a loopback host (`http://127.0.0.1:…`, `http://localhost:…`).
    #[schemars(length(min = 1))]
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send the browser afterwards (exact, like
    /// `redirect_uris`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    /// Admit only logins of this website (and logins without one). Default: any login that
    /// may sign in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    /// The scopes it may ask for: `openid` (always), `email`, `profile`, `access` (customer,
    /// role, website and permission levels). Default: all four.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// The client secret of a confidential client, from an environment variable, a file, or
    /// an argon2id hash; stored hashed, never printed. Change `reset` to store it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<PasswordSource>,
    /// A public client: no secret; PKCE alone binds the code to the app that asked for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public: bool,
}
