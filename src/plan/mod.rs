//! The plan: an ordered list of changes from the live state to the desired one. One `Plan`
//! value feeds every renderer and apply; apply never re-derives what the plan says.

mod diff;
mod fields;

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use diff::{DiffOptions, diff, diff_with_fingerprint, label_origins};
pub use fields::Field;

use crate::manifest::model::LoginPolicy;
use crate::state::{CustomerRecord, LoginState, NotificationSettings, RoleState, WebsiteState};

/// What happens to an object.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The object does not exist yet.
    Create,
    /// Some fields change.
    Update,
    /// A login loses access (it stays, and can be granted again).
    Revoke,
    /// The object is removed.
    Delete,
}

impl Action {
    /// The word shown in plans.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Revoke => "revoke",
            Action::Delete => "delete",
        }
    }
}

pub use crate::state::Address;

/// The full value of an object, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Object {
    /// A feature switch.
    Feature {
        /// On or off.
        enabled: bool,
    },
    /// The login policy.
    LoginPolicy(LoginPolicy),
    /// Notification delivery settings.
    Notifications(Box<NotificationSettings>),
    /// A website.
    Website(WebsiteState),
    /// A custom role.
    Role(RoleState),
    /// A customer and its own login.
    Customer(CustomerRecord),
    /// A contact's login.
    Contact(LoginState),
    /// An access policy.
    Policy(crate::policy::PolicyState),
    /// An OpenID Connect client.
    OidcClient(crate::state::OidcClientState),
}

impl Object {
    /// A short digest of the object's value, recorded by apply to recognise later edits.
    pub fn digest(&self) -> String {
        // An object's JSON is a few hundred bytes: hashed whole, without the 64 KB buffer
        // that `digest_of` streams a plan through (one per object was most of a first
        // apply's page faults).
        use sha2::Digest as _;
        let json = serde_json::to_vec(self).expect("plan values serialise");
        let mut digest = crate::state::hex(&sha2::Sha256::digest(&json));
        digest.truncate(16);
        digest
    }
}

/// One field's old and new value, as shown to people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldChange {
    /// Field name, dotted for nested fields (`permissions.invoice`).
    pub field: String,
    /// Value before; `None` when the field is new.
    pub old: Option<String>,
    /// Value after; `None` when the field goes away.
    pub new: Option<String>,
}

/// Where a change comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The manifests changed: the live object is what portico last wrote.
    #[default]
    Manifests,
    /// The live object was changed outside portico since the last apply; this change
    /// undoes that edit.
    Outside,
}

/// One change to one object.
#[derive(Clone, Debug, Deserialize)]
#[serde(from = "ChangeData")]
pub struct Change {
    /// The object.
    pub address: Address,
    /// What happens to it.
    pub action: Action,
    /// Whether it comes from the manifests or undoes an edit made outside portico.
    pub origin: Origin,
    /// Changed fields, old → new: see [`Change::fields`].
    pub fields: Fields,
    /// The live object (`None` on create).
    pub before: Option<Object>,
    /// The desired object (`None` on delete).
    pub after: Option<Object>,
    /// Where the login's initial password comes from, when apply sets or resets it.
    pub password: Option<crate::state::SecretRef>,
    /// Why, when the manifests alone do not say: `access expired 2027-03-31`.
    pub reason: Option<String>,
}

/// How a change knows its changed fields. A plan derives them from `before` and `after`
/// when they are shown, written or recorded: stored, they took a third of the memory of a
/// 300,000-change plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fields {
    /// Those of `before` → `after`.
    Derived {
        /// The password apply sets replaces one its user set (said on the password field).
        replaces_user_password: bool,
    },
    /// As given: read from a plan file, or a day-2 operation's.
    Listed(Vec<FieldChange>),
}

impl Default for Fields {
    fn default() -> Self {
        Fields::Derived {
            replaces_user_password: false,
        }
    }
}

impl Change {
    /// The changed fields, old → new, in display order.
    pub fn fields(&self) -> std::borrow::Cow<'_, [FieldChange]> {
        match &self.fields {
            Fields::Listed(fields) => std::borrow::Cow::Borrowed(fields),
            Fields::Derived {
                replaces_user_password,
            } => {
                let mut fields = fields::field_changes(self.before.as_ref(), self.after.as_ref());
                if *replaces_user_password
                    && let Some(field) = fields.iter_mut().find(|f| f.field == "password")
                {
                    field.new = Some("will be reset (replaces the password its user set)".into());
                }
                std::borrow::Cow::Owned(fields)
            }
        }
    }
}

impl PartialEq for Change {
    fn eq(&self, other: &Self) -> bool {
        self.address == other.address
            && self.action == other.action
            && self.origin == other.origin
            && self.before == other.before
            && self.after == other.after
            && self.password == other.password
            && self.reason == other.reason
            && self.fields() == other.fields()
    }
}

impl Eq for Change {}

/// A change as serialised (and digested): its fields written out, whichever way it knows
/// them.
#[derive(Serialize)]
struct ChangeView<'a> {
    address: &'a Address,
    action: Action,
    origin: Origin,
    fields: std::borrow::Cow<'a, [FieldChange]>,
    before: &'a Option<Object>,
    after: &'a Option<Object>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: &'a Option<crate::state::SecretRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: &'a Option<String>,
}

impl Serialize for Change {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ChangeView {
            address: &self.address,
            action: self.action,
            origin: self.origin,
            fields: self.fields(),
            before: &self.before,
            after: &self.after,
            password: &self.password,
            reason: &self.reason,
        }
        .serialize(serializer)
    }
}

/// A change as read back.
#[derive(Deserialize)]
struct ChangeData {
    address: Address,
    action: Action,
    origin: Origin,
    fields: Vec<FieldChange>,
    before: Option<Object>,
    after: Option<Object>,
    #[serde(default)]
    password: Option<crate::state::SecretRef>,
    #[serde(default)]
    reason: Option<String>,
}

impl From<ChangeData> for Change {
    fn from(c: ChangeData) -> Change {
        Change {
            address: c.address,
            action: c.action,
            origin: c.origin,
            fields: Fields::Listed(c.fields),
            before: c.before,
            after: c.after,
            password: c.password,
            reason: c.reason,
        }
    }
}

/// Labels revocations caused by an expiry (`access expired 2027-03-31`) and warns about
/// logins whose access ends within `warn_days` of `now`.
pub fn annotate_expiry(
    plan: &mut Plan,
    desired: &crate::state::State,
    now: jiff::Timestamp,
    warn_days: u32,
) {
    let now_text = crate::clock::format(now);
    plan.changes_edited();
    for change in &mut plan.changes {
        if change.removes_access()
            && let Some(expires) = change.login_after().and_then(|l| l.expires.clone())
            && crate::clock::expired(expires.as_str(), &now_text)
        {
            change.reason = Some(format!(
                "access expired {}",
                crate::clock::display(&expires)
            ));
        }
    }
    const SHOWN: usize = 20;
    let mut soon: Vec<(String, String, i64)> = Vec::new();
    for customer in desired.customers.values() {
        let logins = std::iter::once(&customer.record.login).chain(customer.contacts.values());
        for login in logins.filter(|l| l.access) {
            let (Some(email), Some(expires)) = (&login.email, &login.expires) else {
                continue;
            };
            let Ok(at) = crate::clock::parse(expires) else {
                continue;
            };
            let days = crate::clock::days_until(now, at);
            if days < i64::from(warn_days) {
                soon.push((expires.to_string(), email.to_string(), days));
            }
        }
    }
    soon.sort();
    for (expires, email, days) in soon.iter().take(SHOWN) {
        let when = match days {
            0 => "today".to_string(),
            1 => "tomorrow".to_string(),
            n => format!("in {n} days"),
        };
        plan.warnings.push(format!(
            "access of {email} expires {} ({when}); extend `expires` to keep it",
            crate::clock::display(expires)
        ));
    }
    if soon.len() > SHOWN {
        plan.warnings.push(format!(
            "… and {} more logins expire within {warn_days} days",
            soon.len() - SHOWN
        ));
    }
}

impl Change {
    /// The login after the change, for customers and contacts.
    pub fn login_after(&self) -> Option<&LoginState> {
        match &self.after {
            Some(Object::Customer(record)) => Some(&record.login),
            Some(Object::Contact(login)) => Some(login),
            _ => None,
        }
    }

    /// The login before the change.
    pub fn login_before(&self) -> Option<&LoginState> {
        match &self.before {
            Some(Object::Customer(record)) => Some(&record.login),
            Some(Object::Contact(login)) => Some(login),
            _ => None,
        }
    }

    /// Whether this change grants access to a login with `notify`: apply then queues the
    /// new-access notification.
    pub fn notifies(&self) -> bool {
        let granted = self
            .login_after()
            .is_some_and(|l| l.access && l.notify && l.email.is_some());
        granted && !self.login_before().is_some_and(|l| l.access)
    }

    /// Whether this change keeps a login's access but turns its `notify` off: a message
    /// still queued for it is cancelled (a CSV's "Send New Access Notification Email = No").
    pub fn stops_notifying(&self) -> bool {
        self.login_before().is_some_and(|l| l.notify)
            && self.login_after().is_some_and(|l| l.access && !l.notify)
    }

    /// Whether this change ends the login's sessions (DESIGN §10.2): it loses access or is
    /// deleted, or its email, website or role changes.
    pub fn ends_sessions(&self) -> bool {
        match (self.login_before(), self.login_after()) {
            (Some(_), None) => true,
            (Some(before), Some(after)) => {
                (before.access && !after.access)
                    || before.email != after.email
                    || before.website != after.website
                    || before.role != after.role
            }
            _ => false,
        }
    }

    /// Whether this change takes access away from a login (revoke or delete).
    pub fn removes_access(&self) -> bool {
        self.login_before().is_some_and(|l| l.access)
            && !self.login_after().is_some_and(|l| l.access)
    }
}

/// Counts per action, for the summary line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// Objects created.
    pub create: usize,
    /// Objects updated.
    pub update: usize,
    /// Logins whose access is revoked.
    pub revoke: usize,
    /// Objects deleted.
    pub delete: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Plan: {} to create, {} to update, {} to revoke, {} to delete.",
            self.create, self.update, self.revoke, self.delete
        )
    }
}

/// Everything apply will do, in the order it will do it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Changes in apply order.
    pub changes: Vec<Change>,
    /// Things worth knowing that do not stop the plan (protected objects kept, unmanaged
    /// sections).
    pub warnings: Vec<String>,
    /// Fingerprint of the live state the plan was computed from; apply refuses when the
    /// live state no longer has it.
    pub live_fingerprint: String,
    /// Digest of the manifest files the plan was computed from.
    pub manifests_digest: String,
    /// Logins in the live account (for the destroy guard's share).
    pub live_logins: usize,
    /// The read this plan was computed from, when the store can vouch that nothing changed
    /// since (runtime only: never part of a saved plan).
    #[serde(skip)]
    pub read_mark: Option<crate::state::ReadMark>,
    /// The digest, once computed (runtime only). Whatever changes `changes` after the plan
    /// is made must call [`Plan::changes_edited`].
    #[serde(skip)]
    pub digest_memo: DigestMemo,
}

/// A plan's digest, computed once: apply shows it, records it and reports it, and each
/// computation serialises every change (half a second at 300,000 changes).
#[derive(Clone, Debug, Default)]
pub struct DigestMemo(std::sync::OnceLock<String>);

/// Plans are equal by their content; whether the digest was computed yet does not count.
impl PartialEq for DigestMemo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for DigestMemo {}

impl Plan {
    /// Counts per action.
    pub fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        for change in &self.changes {
            match change.action {
                Action::Create => summary.create += 1,
                Action::Update => summary.update += 1,
                Action::Revoke => summary.revoke += 1,
                Action::Delete => summary.delete += 1,
            }
        }
        summary
    }

    /// Whether applying would change nothing.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// A short digest of the change list: what a reviewer approved. Equal change lists
    /// (addresses, actions, old and new values) have equal digests.
    pub fn digest(&self) -> String {
        self.digest_memo
            .0
            .get_or_init(|| digest_of(&self.changes)[..12].to_string())
            .clone()
    }

    /// Forgets the digest computed so far: `changes` were edited.
    pub fn changes_edited(&mut self) {
        self.digest_memo = DigestMemo::default();
    }

    /// Deletions plus revocations.
    pub fn destroy_count(&self) -> usize {
        let s = self.summary();
        s.delete + s.revoke
    }

    /// The logins the live account holds once this plan is applied: every customer's own
    /// login and every contact's are a row, created or deleted by a change of their own (a
    /// removed customer's contacts each have their delete), so the count follows from the
    /// live count and the changes, with no count of the table.
    pub fn logins_after(&self) -> usize {
        self.changes
            .iter()
            .filter(|c| matches!(c.address, Address::Customer(_) | Address::Contact { .. }))
            .fold(self.live_logins, |logins, c| match c.action {
                Action::Create => logins + 1,
                Action::Delete => logins.saturating_sub(1),
                Action::Update | Action::Revoke => logins,
            })
    }
}

/// Full lower-case hex SHA-256 of a value's JSON.
pub fn digest_of<T: Serialize + ?Sized>(value: &T) -> String {
    // The JSON streams into the hasher: a plan of 300,000 changes is never one buffer.
    crate::state::HashWriter::digest(|out| Ok(serde_json::to_writer(out, value)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::LoginState;

    #[test]
    fn derived_fields_read_back_as_listed_ones_with_the_same_digest() {
        let login = |access| LoginState {
            email: Some("jane@x.example".into()),
            name: None,
            access,
            role: "customer_center".into(),
            website: None,
            notify: false,
            password: Some(1),
            expires: None,
        };
        let change = Change {
            address: Address::Contact {
                customer: "C".into(),
                email: "jane@x.example".into(),
            },
            action: Action::Update,
            origin: Origin::Manifests,
            fields: Fields::Derived {
                replaces_user_password: true,
            },
            before: Some(Object::Contact(login(false))),
            after: Some(Object::Contact(login(true))),
            password: None,
            reason: None,
        };
        let fields = change.fields();
        assert!(fields.iter().any(|f| f.field == "access"));
        let plan = Plan {
            changes: vec![change.clone()],
            ..Plan::default()
        };
        let back: Vec<Change> =
            serde_json::from_str(&serde_json::to_string(&plan.changes).unwrap()).unwrap();
        assert!(matches!(back[0].fields, Fields::Listed(_)));
        assert_eq!(back[0], change);
        assert_eq!(digest_of(&back)[..12], plan.digest());

        // The digest is computed once, and again after an edit that says so.
        let mut edited = plan.clone();
        let first = edited.digest();
        assert_eq!(edited, plan, "a computed digest does not make plans differ");
        edited.changes[0].action = Action::Revoke;
        edited.changes_edited();
        assert_ne!(edited.digest(), first);
        assert_eq!(edited.digest(), digest_of(&edited.changes)[..12]);
    }

    /// Object digests are stored (in login rows and `applied_objects`): whichever way they are computed, they
    /// must stay the same value (else every object would read as changed outside portico).
    #[test]
    fn an_object_digest_is_the_sha256_of_its_json() {
        let object = Object::Contact(LoginState {
            email: Some("jane@x.example".into()),
            name: Some("Jane".into()),
            access: true,
            role: "customer_center".into(),
            website: None,
            notify: true,
            password: None,
            expires: None,
        });
        assert_eq!(object.digest(), digest_of(&object)[..16]);
        assert_eq!(
            object.digest(),
            "79d2f743b3701e76",
            "the digest of releases before"
        );
    }
}
