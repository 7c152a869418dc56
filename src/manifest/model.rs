//! The manifest file format: serde types whose JSON Schema is `schemas/manifest.schema.json`.

use std::collections::BTreeMap;

use compact_str::CompactString;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::catalog::{Feature, Level, Permission};

/// One YAML document of a manifest set. Every section is optional; sections merge across
/// documents and files.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "portico manifest")]
pub struct Document {
    /// Account features from the built-in catalog. When the section is present, a feature not
    /// listed is off.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "unique_keys::optional"
    )]
    #[schemars(schema_with = "features_schema")]
    pub features: Option<BTreeMap<Feature, bool>>,
    /// Websites logins can be assigned to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub websites: Option<Vec<Website>>,
    /// Lockout, session timeout and password rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_policy: Option<LoginPolicy>,
    /// Where new-access notifications are delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Notifications>,
    /// Custom roles, each a copy of a standard or custom role with overrides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<Role>>,
    /// Customers, their own login and their contacts' logins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customers: Option<Vec<Customer>>,
    /// Organisation rules every validate and plan checks (guardrails).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<Policy>>,
    /// Applications that sign their users in through `portico serve` (OpenID Connect).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc_clients: Option<Vec<super::oidc::OidcClient>>,
}

/// An organisation rule: an id, the message shown when it is broken, and exactly one rule
/// kind. Rules apply to logins that have access.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Stable identifier: the key.
    pub id: String,
    /// What a violation says, for example "only finance-approved roles may pay online".
    pub message: String,
    /// No login above `level` on `permission`, except through `except_roles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_level: Option<super::policy::MaxLevel>,
    /// Logins with `permission` at `at_least` or more need a role requiring two-factor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_two_factor: Option<super::policy::RequireTwoFactor>,
    /// No login email may match these globs (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forbid_emails: Option<super::policy::ForbidEmails>,
    /// Login emails must be in the customer's own email domain and/or these domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_email_domains: Option<super::policy::AllowedEmailDomains>,
    /// At most this many logins with access per customer (its own and its contacts').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_logins_per_customer: Option<u32>,
}

impl Policy {
    /// The rules given (exactly one is valid).
    pub fn rules(&self) -> Vec<super::policy::Rule> {
        use super::policy::Rule;
        let mut rules = Vec::new();
        rules.extend(self.max_level.clone().map(Rule::MaxLevel));
        rules.extend(self.require_two_factor.clone().map(Rule::RequireTwoFactor));
        rules.extend(self.forbid_emails.clone().map(Rule::ForbidEmails));
        rules.extend(
            self.allowed_email_domains
                .clone()
                .map(Rule::AllowedEmailDomains),
        );
        rules.extend(self.max_logins_per_customer.map(Rule::MaxLoginsPerCustomer));
        rules
    }

    /// The manifest form of a stored policy.
    pub fn from_rule(id: &str, message: &str, rule: &super::policy::Rule) -> Policy {
        use super::policy::Rule;
        let mut out = Policy {
            id: id.to_string(),
            message: message.to_string(),
            max_level: None,
            require_two_factor: None,
            forbid_emails: None,
            allowed_email_domains: None,
            max_logins_per_customer: None,
        };
        match rule.clone() {
            Rule::MaxLevel(r) => out.max_level = Some(r),
            Rule::RequireTwoFactor(r) => out.require_two_factor = Some(r),
            Rule::ForbidEmails(r) => out.forbid_emails = Some(r),
            Rule::AllowedEmailDomains(r) => out.allowed_email_domains = Some(r),
            Rule::MaxLoginsPerCustomer(n) => out.max_logins_per_customer = Some(n),
        }
        out
    }
}

/// A website that customers log in to.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Website {
    /// Stable identifier, referenced by `access.website`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Base URL; the login page is derived from it.
    pub url: String,
}

/// Login security for every customer-center login.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginPolicy {
    /// Lock a login after repeated failed attempts. Default: 5 attempts, 30 minutes.
    #[serde(default, skip_serializing_if = "is_default")]
    #[schemars(extend("default" = {"max_failed_attempts": 5, "duration_minutes": 30}))]
    pub lockout: Lockout,
    /// Idle minutes before a session ends. Default: 60.
    #[serde(
        default = "default_session_timeout",
        skip_serializing_if = "is_default_session_timeout"
    )]
    #[schemars(extend("default" = 60), range(min = 1))]
    pub session_timeout_minutes: u32,
    /// Hours a session lasts at most, however busy (`portico serve`). Default: 12.
    #[serde(
        default = "default_session_max_hours",
        skip_serializing_if = "is_default_session_max_hours"
    )]
    #[schemars(extend("default" = 12), range(min = 1, max = 720))]
    pub session_max_hours: u32,
    /// Rules for passwords. Default: at least 10 characters.
    #[serde(default, skip_serializing_if = "is_default")]
    #[schemars(extend("default" = {"min_length": 10}))]
    pub password: PasswordRules,
}

/// Lockout after failed login attempts.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lockout {
    /// Failed attempts before the login is locked.
    #[schemars(range(min = 1))]
    pub max_failed_attempts: u32,
    /// How long the lock lasts.
    #[schemars(range(min = 1))]
    pub duration_minutes: u32,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        LoginPolicy {
            lockout: Lockout::default(),
            session_timeout_minutes: default_session_timeout(),
            session_max_hours: default_session_max_hours(),
            password: PasswordRules::default(),
        }
    }
}

impl Default for Lockout {
    fn default() -> Self {
        Lockout {
            max_failed_attempts: 5,
            duration_minutes: 30,
        }
    }
}

/// Password rules.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordRules {
    /// Minimum length in characters.
    #[schemars(range(min = 1))]
    pub min_length: u32,
}

impl Default for PasswordRules {
    fn default() -> Self {
        PasswordRules { min_length: 10 }
    }
}

fn default_session_timeout() -> u32 {
    60
}

fn is_default_session_timeout(minutes: &u32) -> bool {
    *minutes == default_session_timeout()
}

fn default_session_max_hours() -> u32 {
    12
}

fn is_default_session_max_hours(hours: &u32) -> bool {
    *hours == default_session_max_hours()
}

fn default_reset_ttl() -> u32 {
    60
}

fn is_default_reset_ttl(minutes: &u32) -> bool {
    *minutes == default_reset_ttl()
}

/// How new-access notifications are delivered: by email over SMTP, or as JSON POSTed to a
/// webhook (a mail API). Exactly one of `smtp` and `url`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Notifications {
    /// Send email through this SMTP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<Smtp>,
    /// Webhook endpoint URL (a mail API): each message is POSTed as JSON, with the rendered
    /// subject, text and HTML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Value of the webhook's `Authorization` header, read from the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_header: Option<EnvRef>,
    /// The sender, as `Name <address>` or a bare address. Required with `smtp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The administrator's address that replies go to (`Reply-To`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Login page for logins without a website (a website's is `<url>/login`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_url: Option<String>,
    /// Hours a set-password link stays valid. Default: 24.
    #[serde(
        default = "default_token_ttl",
        skip_serializing_if = "is_default_token_ttl"
    )]
    #[schemars(extend("default" = 24), range(min = 1, max = 720))]
    pub token_ttl_hours: u32,
    /// Delivery attempts per message, over all runs, before it is marked `failed` (listed by
    /// `portico notify --status`, re-queued by `portico notify --retry-failed`). Default: 10.
    #[serde(
        default = "default_max_attempts",
        skip_serializing_if = "is_default_max_attempts"
    )]
    #[schemars(extend("default" = 10), range(min = 1))]
    pub max_attempts: u32,
    /// The message's template files, relative to the manifest folder. Without it, a built-in
    /// template is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateFiles>,
    /// Minutes a password-reset link ("forgot password" on `portico serve`) stays valid.
    /// Default: 60.
    #[serde(
        default = "default_reset_ttl",
        skip_serializing_if = "is_default_reset_ttl"
    )]
    #[schemars(extend("default" = 60), range(min = 5, max = 1440))]
    pub reset_ttl_minutes: u32,
    /// The password-reset message's template files (same variables as `template`). Without
    /// it, a built-in template is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_template: Option<TemplateFiles>,
}

/// An SMTP server.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    /// `smtps://host:465` (TLS), `smtp://host:587` (STARTTLS required), or
    /// `smtp://127.0.0.1:2525?tls=none` (plain text, loopback addresses only).
    pub url: String,
    /// User name for authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password for authentication, read from the environment (never stored or printed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<EnvRef>,
}

/// Template files of the new-access message (minijinja syntax).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateFiles {
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body (values are HTML-escaped). Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
}

fn default_max_attempts() -> u32 {
    10
}

fn is_default_max_attempts(n: &u32) -> bool {
    *n == default_max_attempts()
}

fn default_token_ttl() -> u32 {
    24
}

fn is_default_token_ttl(hours: &u32) -> bool {
    *hours == default_token_ttl()
}

/// A value read from an environment variable at run time.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvRef {
    /// Name of the environment variable.
    pub env: String,
}

/// Whether a role requires two-factor authentication.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TwoFactor {
    /// Not required.
    #[default]
    Off,
    /// Required at every login (needs the `two_factor_authentication` feature).
    Required,
}

/// A custom role: a copy of `base` with `permissions` overriding its levels.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// Stable identifier, referenced by `access.role` and `base`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The role copied. Default: `customer_center`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Levels that differ from the base role.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique_keys::map"
    )]
    #[schemars(schema_with = "permissions_schema")]
    pub permissions: BTreeMap<Permission, Level>,
    /// Two-factor authentication for logins with this role. Default: `off`.
    #[serde(default, skip_serializing_if = "is_default")]
    #[schemars(extend("default" = "off"))]
    pub two_factor: TwoFactor,
}

/// A customer record and its logins.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    /// Stable external id: the key.
    pub id: CompactString,
    /// Company or person name.
    pub name: CompactString,
    /// The customer's own login email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<CompactString>,
    /// Access for the customer's own login. Default: no access.
    #[serde(default, skip_serializing_if = "is_default")]
    #[schemars(extend("default" = {"give_access": false}))]
    pub access: CustomerAccess,
    /// Never deleted by apply, even when no manifest declares it any more.
    #[serde(default, skip_serializing_if = "is_false")]
    pub protect: bool,
    /// Contacts with their own logins. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<Contact>,
}

/// Access settings of a customer's own login.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerAccess {
    /// Whether the customer can log in. Default: false.
    #[serde(default)]
    pub give_access: bool,
    /// Role of the login. Default: `customer_center`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<CompactString>,
    /// Website the login belongs to (needs the `websites` feature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<CompactString>,
    /// Send the new-access notification when access is granted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub notify: bool,
    /// Initial password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Box<PasswordSource>>,
    /// Access ends by itself at this time: a date (`2027-03-31`, the end of that day, UTC) or
    /// an RFC 3339 time. Contacts without their own `expires` inherit it. Once past, plan revokes the login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<CompactString>,
}

/// A contact of a customer with a login of its own.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// Login email: the key, unique across every login.
    pub email: CompactString,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<CompactString>,
    /// Whether the contact can log in. Default: false.
    #[serde(default, skip_serializing_if = "is_false")]
    #[schemars(extend("default" = false))]
    pub access: bool,
    /// Role of the login. Default: the customer's role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<CompactString>,
    /// Website of the login. Default: the customer's website.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<CompactString>,
    /// Send the new-access notification when access is granted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub notify: bool,
    /// Initial password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Box<PasswordSource>>,
    /// Access ends by itself at this time: a date (`2027-03-31`, the end of that day, UTC) or
    /// an RFC 3339 time. Default: the customer's. Once past, plan revokes the login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<CompactString>,
}

/// Where an initial password comes from. Manifests never hold a plaintext password.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordSource {
    /// Read the password from this environment variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// Read the password from this file (relative to the manifest file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// An argon2id hash (`$argon2id$...`) to store as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argon2: Option<std::sync::Arc<str>>,
    /// Change this marker to set the password again on the next apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<u32>,
}

/// Maps that refuse a key given twice: YAML readers keep the last one silently, so a
/// reviewer could read `none` where apply writes `edit`.
mod unique_keys {
    use std::collections::BTreeMap;
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

    struct Unique<K, V>(PhantomData<(K, V)>);

    impl<'de, K, V> Visitor<'de> for Unique<K, V>
    where
        K: Deserialize<'de> + Ord + fmt::Display,
        V: Deserialize<'de>,
    {
        type Value = BTreeMap<K, V>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a mapping")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
            let mut map = BTreeMap::new();
            while let Some(key) = access.next_key::<K>()? {
                if map.contains_key(&key) {
                    return Err(de::Error::custom(format!(
                        "duplicate entry with key \"{key}\""
                    )));
                }
                let value = access.next_value()?;
                map.insert(key, value);
            }
            Ok(map)
        }
    }

    /// A map whose keys are all different.
    pub fn map<'de, D, K, V>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        D: Deserializer<'de>,
        K: Deserialize<'de> + Ord + fmt::Display,
        V: Deserialize<'de>,
    {
        deserializer.deserialize_map(Unique(PhantomData))
    }

    /// An optional map whose keys are all different.
    pub fn optional<'de, D, K, V>(deserializer: D) -> Result<Option<BTreeMap<K, V>>, D::Error>
    where
        D: Deserializer<'de>,
        K: Deserialize<'de> + Ord + fmt::Display,
        V: Deserialize<'de>,
    {
        struct Optional<K, V>(PhantomData<(K, V)>);
        impl<'de, K, V> Visitor<'de> for Optional<K, V>
        where
            K: Deserialize<'de> + Ord + fmt::Display,
            V: Deserialize<'de>,
        {
            type Value = Option<BTreeMap<K, V>>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping or nothing")
            }

            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }

            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
                map(d).map(Some)
            }
        }
        deserializer.deserialize_option(Optional(PhantomData))
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// The catalog's features as named properties, so editors complete them.
fn features_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let properties: serde_json::Map<String, serde_json::Value> = Feature::ALL
        .iter()
        .map(|f| {
            let info = f.info();
            let needs: Vec<&str> = info.requires.iter().map(|r| r.key()).collect();
            let description = if needs.is_empty() {
                info.label.to_string()
            } else {
                format!("{} (needs {})", info.label, needs.join(", "))
            };
            (
                f.key().to_string(),
                serde_json::json!({ "type": "boolean", "description": description }),
            )
        })
        .collect();
    schemars::json_schema!({ "type": "object", "properties": properties, "additionalProperties": false })
}

/// The catalog's permissions as named properties, each limited to the levels it may take.
fn permissions_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let properties: serde_json::Map<String, serde_json::Value> = Permission::ALL
        .iter()
        .map(|p| {
            let info = p.info();
            let levels: Vec<&str> = Level::ALL
                .iter()
                .filter(|l| **l <= info.max)
                .map(|l| l.key())
                .collect();
            let description = format!(
                "{} (standard: {}, at most: {})",
                info.label, info.standard, info.max
            );
            (
                p.key().to_string(),
                serde_json::json!({ "enum": levels, "description": description }),
            )
        })
        .collect();
    schemars::json_schema!({ "type": "object", "properties": properties, "additionalProperties": false })
}
