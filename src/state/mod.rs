//! The account's access configuration as plain data: what the manifests want and what the
//! database holds are both a [`State`], so the diff compares like with like.

mod address;
mod drift;
mod index;
mod oidc;
mod secret;

pub use address::Address;
pub use drift::{Applied, LoginDigests, LoginKeys, ObjectDigest, PasswordMarkers, ReadMark};
pub use index::{
    FileId, FileRow, FileWrites, INLINE_IDS, Ids, IndexToRecord, IndexedFile, LiveVersion,
    NextPage, PageInfo, Pages, PlanIndex, Reuse, Sealed, SealingIndex, SecretCheck,
    WHOLE_FILE_AS_IDS, content_of,
};
pub use oidc::OidcClientState;
pub use secret::SecretRef;

use std::collections::BTreeMap;

use compact_str::CompactString;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::catalog::{Feature, Level, Permission};
use crate::manifest::model::{LoginPolicy, TwoFactor};

/// Every object portico manages, keyed by its identifier.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Feature switches; a feature without an entry is off.
    pub features: BTreeMap<Feature, bool>,
    /// Websites by id.
    pub websites: BTreeMap<String, WebsiteState>,
    /// The login policy, once one was applied.
    pub login_policy: Option<LoginPolicy>,
    /// Where new-access notifications go, once configured.
    pub notifications: Option<NotificationSettings>,
    /// Custom roles by id (standard roles are not part of the state: they never change).
    pub roles: BTreeMap<String, RoleState>,
    /// Customers by id.
    pub customers: Customers,
    /// Access policies by id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policies: BTreeMap<String, PolicyState>,
    /// OpenID Connect clients by id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub oidc_clients: BTreeMap<String, OidcClientState>,
    /// The live logins that have a password hash (runtime data: never part of the
    /// fingerprint or a plan; it only tells apply not to assign a password over one a user
    /// set).
    #[serde(skip)]
    pub password_holders: LoginKeys,
    /// Where the live logins' access is known (runtime data, like `password_holders`): a
    /// plan that reads everything validates the manifests against the small tables first
    /// and reads the customers once the manifests are gone (see `commands::compute`).
    #[serde(skip)]
    pub access: LiveAccess,
    /// The argon2id hash of each confidential client's stored secret (runtime data, like
    /// `password_holders`; only export reads it).
    #[serde(skip)]
    pub client_secret_hashes: BTreeMap<String, String>,
}

/// What a [`State`] knows of its live logins' access (validation asks whether a login
/// gains access: one that does needs a way to log in).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LiveAccess {
    /// `customers` holds every live customer with its logins.
    #[default]
    Customers,
    /// The customers were not read: validation says whether it needed them
    /// (`Desired::needs_live_access`), and is then run again with the keys.
    Unread,
    /// The customers were not read; these are the logins with access.
    Keys(LoginKeys),
}

impl State {
    /// This state with the keys of its logins with access in place of its customers
    /// ([`LiveAccess::Keys`]): all validation needs of them, in a fifth of the memory.
    pub fn for_validation(mut self) -> State {
        let mut keys = Vec::new();
        for (id, customer) in self.customers.iter() {
            if customer.record.login.access {
                keys.push((id.clone(), CompactString::default()));
            }
            let contacts = customer.contacts.iter().filter(|(_, login)| login.access);
            keys.extend(contacts.map(|(email, _)| (id.clone(), email.clone())));
        }
        self.customers = Customers::default();
        self.password_holders = LoginKeys::default();
        self.access = LiveAccess::Keys(LoginKeys::new(keys));
        self
    }

    /// An account nobody configured yet: every feature off, nothing else.
    pub fn empty() -> State {
        State {
            features: Feature::ALL.iter().map(|f| (*f, false)).collect(),
            ..State::default()
        }
    }

    /// Whether a feature is on.
    pub fn feature(&self, feature: Feature) -> bool {
        self.features.get(&feature).copied().unwrap_or(false)
    }

    /// Number of logins (customers' own and contacts').
    pub fn login_count(&self) -> usize {
        self.customers.values().map(|c| 1 + c.contacts.len()).sum()
    }
}

/// Delivery settings of new-access notifications (no secret: the webhook's auth header and
/// the SMTP password are named by their environment variables).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettings {
    /// Webhook endpoint URL (when delivering by webhook).
    pub url: Option<String>,
    /// Environment variable holding the webhook's `Authorization` header value.
    pub auth_env: Option<String>,
    /// The SMTP server (when delivering by email).
    pub smtp: Option<SmtpSettings>,
    /// The sender.
    pub from: Option<String>,
    /// Where replies go.
    pub reply_to: Option<String>,
    /// Login page for logins without a website.
    pub login_url: Option<String>,
    /// Hours a set-password link stays valid.
    pub token_ttl_hours: u32,
    /// Attempts per message before it is marked failed.
    pub max_attempts: u32,
    /// The message template's sources; `None` for the built-in one.
    pub template: Option<TemplateSources>,
    /// Minutes a password-reset link stays valid.
    pub reset_ttl_minutes: u32,
    /// The reset message's template sources; `None` for the built-in one.
    pub reset_template: Option<TemplateSources>,
}

/// An SMTP server (no secret: the password is named by its environment variable).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    /// `smtps://…`, `smtp://…` (STARTTLS) or `smtp://…?tls=none` (loopback only).
    pub url: String,
    /// User name.
    pub username: Option<String>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
}

/// The text of the new-access message's templates, as applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateSources {
    /// Subject template.
    pub subject: String,
    /// Plain-text body template.
    pub text: String,
    /// HTML body template.
    pub html: Option<String>,
}

/// A website.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebsiteState {
    /// Display name.
    pub name: String,
    /// Base URL.
    pub url: String,
}

/// A custom role with its effective permission levels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleState {
    /// Display name.
    pub name: String,
    /// The role it was copied from.
    pub base: String,
    /// Two-factor requirement.
    pub two_factor: TwoFactor,
    /// Effective levels after applying overrides to the base; `none` levels are left out.
    pub permissions: BTreeMap<Permission, Level>,
}

/// Customers by id, in id order: a sorted vector, built in place from the customers as found
/// ([`customers_of`]). A B-tree collected from them held both while it was being built.
pub type Customers = litemap::LiteMap<CompactString, CustomerState>;

/// The customers map of these customers; for an id given twice, the last one stays.
pub fn customers_of(customers: Vec<(CompactString, CustomerState)>) -> Customers {
    Customers::from_sorted_store_unchecked(sorted_last_wins(customers))
}

/// Sorts by key in place (nothing to do when already in order, the usual case) and keeps
/// the last entry of a key given twice.
fn sorted_last_wins<V>(mut entries: Vec<(CompactString, V)>) -> Vec<(CompactString, V)> {
    if !entries.is_sorted_by(|a, b| a.0 < b.0) {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut kept: Vec<(CompactString, V)> = Vec::with_capacity(entries.len());
        for entry in entries {
            match kept.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => kept.push(entry),
            }
        }
        entries = kept;
    }
    entries.shrink_to_fit();
    entries
}

/// A customer's contact logins by normalised email, in email order.
pub type Contacts = litemap::LiteMap<CompactString, LoginState>;

/// The contacts map of these logins, each under its email; for a key given twice, the last
/// one stays (like inserting into a map). Takes no more memory than the logins need: a
/// vector that grew by pushing holds room for twice as many, at every customer.
pub fn contacts_of(logins: Vec<(CompactString, LoginState)>) -> Contacts {
    Contacts::from_sorted_store_unchecked(sorted_last_wins(logins))
}

/// A customer and its logins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerState {
    /// The customer record and its own login.
    pub record: CustomerRecord,
    /// Contacts by normalised (lower-case) email: a sorted vector, as most customers have a
    /// few contacts (a B-tree node per customer took 1.8 KB, 180 MB at 100,000 customers).
    pub contacts: Contacts,
}

/// The customer's own fields, without its contacts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerRecord {
    /// Display name.
    pub name: CompactString,
    /// Never deleted by apply.
    pub protect: bool,
    /// The customer's own login.
    pub login: LoginState,
}

/// One login's managed settings. Runtime data (password hash, failed attempts, lockout, last
/// login) lives beside it in the database and is never read into a `State`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginState {
    /// Normalised (lower-case) email, when the login has one.
    pub email: Option<CompactString>,
    /// Display name (contacts only).
    pub name: Option<CompactString>,
    /// Whether it can log in.
    pub access: bool,
    /// Effective role id.
    pub role: CompactString,
    /// Effective website id.
    pub website: Option<CompactString>,
    /// Whether granting access sends the new-access notification.
    pub notify: bool,
    /// The `reset` marker of the initial password portico last set (`None`: never set one).
    pub password: Option<u32>,
    /// When access ends (`YYYY-MM-DDTHH:MM:SSZ`, UTC), when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<CompactString>,
}

/// Normalises an email for comparison and storage: Unicode NFC (so `jürgen` typed with a
/// combining diaeresis is the same login as the precomposed one) and lower case.
pub fn normalize_email(email: &str) -> CompactString {
    use unicode_normalization::UnicodeNormalization;
    let email = email.trim();
    if email.is_ascii() {
        // ASCII is its own NFC form: lower-casing is all there is to do.
        let mut email = CompactString::new(email);
        email.make_ascii_lowercase();
        return email;
    }
    email.nfc().collect::<String>().to_lowercase().into()
}

impl State {
    /// A digest of the whole managed state: equal states, equal fingerprints. Runtime login
    /// data is not part of a `State`, so logins and lockouts never change it.
    pub fn fingerprint(&self) -> String {
        HashWriter::digest(|out| Ok(serde_json::to_writer(out, self)?))
    }
}

/// SHA-256 of everything written to it, so a value's JSON can be hashed without holding it.
#[derive(Default)]
pub struct HashWriter(sha2::Sha256);

impl HashWriter {
    /// Lower-case hex of the digest.
    pub fn finish(self) -> String {
        use sha2::Digest;
        hex(&self.0.finalize())
    }

    /// Lower-case hex of the SHA-256 of what `write` writes, gathered in 64 KiB before it is
    /// hashed (hashed piece by piece, a file list's small pieces cost as much again as the
    /// hash), and never held whole (a plan of 300,000 changes is not one buffer).
    pub fn digest(
        write: impl FnOnce(&mut std::io::BufWriter<&mut HashWriter>) -> std::io::Result<()>,
    ) -> String {
        use std::io::Write as _;
        let mut hasher = HashWriter::default();
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, &mut hasher);
        write(&mut out)
            .and_then(|()| out.flush())
            .expect("writing to memory");
        drop(out);
        hasher.finish()
    }
}

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// A policy as applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyState {
    /// Said when it is broken.
    pub message: String,
    /// The rule.
    pub rule: crate::manifest::policy::Rule,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(name: &str) -> LoginState {
        LoginState {
            email: None,
            name: Some(name.into()),
            access: true,
            role: "customer_center".into(),
            website: None,
            notify: false,
            password: None,
            expires: None,
        }
    }

    #[test]
    fn contacts_are_in_email_order_and_the_last_of_a_key_stays() {
        let contacts = contacts_of(vec![
            ("b@x".into(), login("first b")),
            ("a@x".into(), login("a")),
            ("b@x".into(), login("second b")),
        ]);
        let names: Vec<(&str, &str)> = contacts
            .iter()
            .map(|(k, l)| (k.as_str(), l.name.as_deref().unwrap()))
            .collect();
        assert_eq!(names, [("a@x", "a"), ("b@x", "second b")]);
        assert_eq!(
            contacts.get("b@x").unwrap().name.as_deref(),
            Some("second b")
        );
    }

    #[test]
    fn customers_are_in_id_order_and_the_last_of_an_id_stays() {
        let customer = |name: &str| CustomerState {
            record: CustomerRecord {
                name: name.into(),
                protect: false,
                login: login(name),
            },
            contacts: Contacts::default(),
        };
        let customers = customers_of(vec![
            ("C2".into(), customer("first two")),
            ("C1".into(), customer("one")),
            ("C2".into(), customer("second two")),
        ]);
        let names: Vec<(&str, &str)> = customers
            .iter()
            .map(|(id, c)| (id.as_str(), c.record.name.as_str()))
            .collect();
        assert_eq!(names, [("C1", "one"), ("C2", "second two")]);
        assert_eq!(customers.get("C2").unwrap().record.name, "second two");
    }

    #[test]
    fn a_state_for_validation_keeps_the_keys_of_the_logins_with_access() {
        let without = LoginState {
            access: false,
            ..login("no")
        };
        let mut state = State::empty();
        state.customers = customers_of(vec![
            (
                "C1".into(),
                CustomerState {
                    record: CustomerRecord {
                        name: "One".into(),
                        protect: false,
                        login: login("one"),
                    },
                    contacts: contacts_of(vec![
                        ("a@x".into(), login("a")),
                        ("b@x".into(), without.clone()),
                    ]),
                },
            ),
            (
                "C2".into(),
                CustomerState {
                    record: CustomerRecord {
                        name: "Two".into(),
                        protect: false,
                        login: without,
                    },
                    contacts: contacts_of(vec![("c@x".into(), login("c"))]),
                },
            ),
        ]);
        state.password_holders = LoginKeys::new(vec![("C1".into(), "".into())]);
        let lean = state.clone().for_validation();
        assert!(lean.customers.is_empty() && lean.password_holders.is_empty());
        assert_eq!(lean.features, state.features);
        let LiveAccess::Keys(keys) = &lean.access else {
            panic!("keys expected, got {:?}", lean.access)
        };
        assert_eq!(keys.len(), 3);
        assert!(
            keys.contains("C1", "") && keys.contains("C1", "a@x") && keys.contains("C2", "c@x")
        );
        assert!(!keys.contains("C1", "b@x") && !keys.contains("C2", ""));
    }

    #[test]
    fn sorted_contacts_are_kept_as_given() {
        let contacts = contacts_of(vec![("a@x".into(), login("a")), ("b@x".into(), login("b"))]);
        assert_eq!(contacts.keys().collect::<Vec<_>>(), ["a@x", "b@x"]);
        assert!(contacts.contains_key("b@x"));
        assert!(!contacts.contains_key("c@x"));
    }
}
