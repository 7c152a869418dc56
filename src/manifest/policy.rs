//! The rule types of `policies:` (DESIGN §9), as the manifests write them; checking them is
//! the `policy` module's job.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::catalog::{Level, Permission};

/// No login may hold `permission` above `level`, unless its role is listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaxLevel {
    /// The permission.
    pub permission: Permission,
    /// The highest level allowed.
    pub level: Level,
    /// Roles allowed more.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except_roles: Vec<String>,
}

/// Logins whose role grants `permission` at `at_least` or more need a role with two-factor
/// authentication required.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequireTwoFactor {
    /// When two-factor is required.
    pub when: Threshold,
}

/// A permission at or above a level.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// The permission.
    pub permission: Permission,
    /// The lowest level that counts.
    pub at_least: Level,
}

/// No login's email may match these globs (`*` any run, `?` one character; case-insensitive).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForbidEmails {
    /// For example `info@*`, `*@gmail.com`.
    pub patterns: Vec<String>,
}

/// A login's email must be in one of these domains.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AllowedEmailDomains {
    /// The domain of the login's customer's own email is allowed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub customer_email_domain: bool,
    /// These domains are allowed (exact, case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
}

/// One rule kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    MaxLevel(MaxLevel),
    RequireTwoFactor(RequireTwoFactor),
    ForbidEmails(ForbidEmails),
    AllowedEmailDomains(AllowedEmailDomains),
    MaxLoginsPerCustomer(u32),
}

impl Rule {
    /// The manifest key of this kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Rule::MaxLevel(_) => "max_level",
            Rule::RequireTwoFactor(_) => "require_two_factor",
            Rule::ForbidEmails(_) => "forbid_emails",
            Rule::AllowedEmailDomains(_) => "allowed_email_domains",
            Rule::MaxLoginsPerCustomer(_) => "max_logins_per_customer",
        }
    }
}
