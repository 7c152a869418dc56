//! Engine-neutral rows: the plan turned into batches to write, and rows read back into a
//! [`State`]. Each engine only moves these rows in and out with its own SQL.

use std::collections::BTreeMap;

use compact_str::CompactString;
use serde::Serialize;

use super::StoreError;
use crate::catalog::{self, Feature, Level, Permission};
use crate::manifest::model::{Lockout, LoginPolicy, PasswordRules, TwoFactor};
use crate::plan::{Action, Address, Change, Object, Plan};
use crate::state::{CustomerRecord, CustomerState, LoginState, RoleState, State, WebsiteState};

from_row! {
    /// A `features` row.
    #[derive(Clone, Debug, Serialize)]
    pub struct FeatureRow {
        pub name: String,
        pub enabled: bool,
    }
}

from_row! {
    /// The `login_policy` row.
    #[derive(Clone, Debug, Serialize)]
    pub struct PolicyRow {
        pub max_failed_attempts: i64,
        pub lockout_minutes: i64,
        pub session_timeout_minutes: i64,
        pub password_min_length: i64,
        pub session_max_hours: i64,
    }
}

from_row! {
    /// A `policies` row: the rule as JSON.
    #[derive(Clone, Debug, Serialize)]
    pub struct AccessPolicyRow {
        pub id: String,
        pub message: String,
        pub rule: String,
    }
}

from_row! {
    /// A `websites` row.
    #[derive(Clone, Debug, Serialize)]
    pub struct WebsiteRow {
        pub id: String,
        pub name: String,
        pub url: String,
    }
}

from_row! {
    /// An `oidc_clients` row without its secret's hash (which only apply and `serve` touch):
    /// the URI lists as JSON, the scopes space-separated.
    #[derive(Clone, Debug, Serialize)]
    pub struct ClientRow {
        pub id: String,
        pub name: String,
        pub website: Option<String>,
        pub redirect_uris: String,
        pub post_logout_redirect_uris: String,
        pub scopes: String,
        pub secret_marker: Option<i64>,
        /// Read, never written through this row (apply stores it in its own step).
        #[serde(skip)]
        pub secret_hash: Option<String>,
    }
}

impl ClientRow {
    fn new(id: &str, client: &crate::state::OidcClientState) -> ClientRow {
        let list = |uris: &Vec<String>| serde_json::to_string(uris).expect("strings serialise");
        ClientRow {
            id: id.to_string(),
            name: client.name.clone(),
            website: client.website.clone(),
            redirect_uris: list(&client.redirect_uris),
            post_logout_redirect_uris: list(&client.post_logout_redirect_uris),
            scopes: client.scopes.join(" "),
            secret_marker: client.secret.map(i64::from),
            secret_hash: None,
        }
    }

    /// The client as state.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for a row portico never writes.
    pub fn into_state(self) -> Result<(String, crate::state::OidcClientState), StoreError> {
        let corrupt = |what: &str| {
            StoreError::Corrupt(format!("oidc_clients.{what} of `{}` is not valid", self.id))
        };
        let list = |text: &str, what: &str| {
            serde_json::from_str::<Vec<String>>(text).map_err(|_| corrupt(what))
        };
        let state = crate::state::OidcClientState {
            name: self.name.clone(),
            redirect_uris: list(&self.redirect_uris, "redirect_uris")?,
            post_logout_redirect_uris: list(
                &self.post_logout_redirect_uris,
                "post_logout_redirect_uris",
            )?,
            website: self.website.clone(),
            scopes: self
                .scopes
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            secret: self
                .secret_marker
                .map(u32::try_from)
                .transpose()
                .map_err(|_| corrupt("secret_marker"))?,
        };
        Ok((self.id, state))
    }
}

from_row! {
    /// A `roles` row.
    #[derive(Clone, Debug, Serialize)]
    pub struct RoleRow {
        pub id: String,
        pub name: String,
        pub base: Option<String>,
        pub standard: bool,
        pub two_factor: String,
    }
}

from_row! {
    /// A `role_permissions` row.
    #[derive(Clone, Debug, Serialize)]
    pub struct PermissionRow {
        pub role_id: String,
        pub permission: String,
        pub level: String,
    }
}

/// A `customers` row.
#[derive(Clone, Debug, Serialize)]
pub struct CustomerRow {
    pub id: CompactString,
    pub name: CompactString,
    pub protect: bool,
}

/// The managed columns of a `logins` row. `contact` is `""` for the customer's own login.
#[derive(Clone, Debug, Serialize)]
pub struct LoginRow {
    pub customer_id: CompactString,
    pub contact: CompactString,
    pub email: Option<CompactString>,
    pub name: Option<CompactString>,
    pub access: bool,
    pub role_id: CompactString,
    pub website_id: Option<CompactString>,
    pub notify: bool,
    pub password_marker: Option<i64>,
    pub expires_at: Option<CompactString>,
    /// The digest of the object this row holds as portico last wrote it (the customer, for
    /// its own login; else the contact), as the signed 64-bit number its 16 hex digits
    /// spell; drift labels compare it with the live object. Kept in the row rather than in
    /// `applied_objects`, where each address stood again as a key (migration 0017).
    pub applied_digest: Option<i64>,
    /// Write only: the apply writing it ([`Batches::set_apply_id`]).
    pub applied_apply_id: Option<i64>,
    /// Write only: the argon2id hash a login this apply creates is inserted with, and when
    /// ([`LoginWrite::password`]); logins that exist get theirs by an update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_set_at: Option<String>,
    /// Read only: whether a password hash is stored (runtime data).
    #[serde(skip)]
    pub has_password: bool,
}

from_row! {
    /// The `notification_settings` row.
    #[derive(Clone, Debug, Serialize)]
    pub struct NotificationSettingsRow {
        pub url: Option<String>,
        pub auth_env: Option<String>,
        pub smtp_url: Option<String>,
        pub smtp_username: Option<String>,
        pub smtp_password_env: Option<String>,
        pub from_address: Option<String>,
        pub reply_to: Option<String>,
        pub login_url: Option<String>,
        pub token_ttl_hours: i64,
        pub max_attempts: i64,
        pub template_subject: Option<String>,
        pub template_text: Option<String>,
        pub template_html: Option<String>,
        pub reset_ttl_minutes: i64,
        pub reset_subject: Option<String>,
        pub reset_text: Option<String>,
        pub reset_html: Option<String>,
    }
}

impl NotificationSettingsRow {
    fn new(n: &crate::state::NotificationSettings) -> Self {
        let smtp = n.smtp.as_ref();
        let template = n.template.as_ref();
        NotificationSettingsRow {
            url: n.url.clone(),
            auth_env: n.auth_env.clone(),
            smtp_url: smtp.map(|s| s.url.clone()),
            smtp_username: smtp.and_then(|s| s.username.clone()),
            smtp_password_env: smtp.and_then(|s| s.password_env.clone()),
            from_address: n.from.clone(),
            reply_to: n.reply_to.clone(),
            login_url: n.login_url.clone(),
            token_ttl_hours: n.token_ttl_hours.into(),
            max_attempts: n.max_attempts.into(),
            template_subject: template.map(|t| t.subject.clone()),
            template_text: template.map(|t| t.text.clone()),
            template_html: template.and_then(|t| t.html.clone()),
            reset_ttl_minutes: n.reset_ttl_minutes.into(),
            reset_subject: n.reset_template.as_ref().map(|t| t.subject.clone()),
            reset_text: n.reset_template.as_ref().map(|t| t.text.clone()),
            reset_html: n.reset_template.as_ref().and_then(|t| t.html.clone()),
        }
    }

    fn into_settings(self) -> Result<crate::state::NotificationSettings, StoreError> {
        Ok(crate::state::NotificationSettings {
            token_ttl_hours: small(
                "notification_settings.token_ttl_hours",
                self.token_ttl_hours,
            )?,
            max_attempts: small("notification_settings.max_attempts", self.max_attempts)?,
            url: self.url,
            auth_env: self.auth_env,
            smtp: self.smtp_url.map(|url| crate::state::SmtpSettings {
                url,
                username: self.smtp_username,
                password_env: self.smtp_password_env,
            }),
            from: self.from_address,
            reply_to: self.reply_to,
            login_url: self.login_url,
            template: match (self.template_subject, self.template_text) {
                (Some(subject), Some(text)) => Some(crate::state::TemplateSources {
                    subject,
                    text,
                    html: self.template_html,
                }),
                _ => None,
            },
            reset_ttl_minutes: small(
                "notification_settings.reset_ttl_minutes",
                self.reset_ttl_minutes,
            )?,
            reset_template: match (self.reset_subject, self.reset_text) {
                (Some(subject), Some(text)) => Some(crate::state::TemplateSources {
                    subject,
                    text,
                    html: self.reset_html,
                }),
                _ => None,
            },
        })
    }
}

/// A new-access message to queue.
#[derive(Clone, Debug, Serialize)]
pub struct QueuedNotification {
    pub customer_id: String,
    pub contact: String,
    pub email: String,
    pub password_assigned: bool,
}

/// The key of a `logins` row.
#[derive(Clone, Debug, Serialize)]
pub struct LoginKey {
    pub customer_id: String,
    pub contact: String,
}

/// A plan's writes, grouped into the batches apply runs, in this field order.
///
/// Customers, logins and queued messages are kept as the indexes of their changes in the
/// plan, and their rows are built from the plan a batch at a time as they are written: built
/// all at once, they took 160 MB beside the plan at 300,000 logins (a first apply's peak).
#[derive(Debug, Default)]
pub struct Batches {
    /// The plan the rows are built from.
    pub plan: std::sync::Arc<Plan>,
    pub features_on: Vec<FeatureRow>,
    pub login_policy: Vec<PolicyRow>,
    pub websites: Vec<WebsiteRow>,
    pub roles: Vec<RoleRow>,
    pub role_permissions: Vec<PermissionRow>,
    pub delete_contacts: Vec<LoginKey>,
    pub delete_customers: Vec<String>,
    /// Customers the plan creates: any login still filed under their ids is one a hand edit
    /// left without its customer (foreign keys off), removed before theirs are written.
    pub clear_created: Vec<String>,
    /// Customers whose own login changes email: their old email is released first so that
    /// emails can move between logins within one apply.
    pub release_emails: Vec<String>,
    /// Customers written: each its `customers` row and its own login's row.
    pub customers: Upserts<LoginWrite>,
    /// Contacts' logins written.
    pub contacts: Upserts<LoginWrite>,
    pub delete_roles: Vec<String>,
    pub delete_websites: Vec<String>,
    pub policies: Vec<AccessPolicyRow>,
    pub delete_policies: Vec<String>,
    pub clients: Vec<ClientRow>,
    pub delete_clients: Vec<String>,
    pub features_off: Vec<FeatureRow>,
    /// What each written object now looks like, for drift labelling.
    pub applied: Vec<AppliedRow>,
    /// Addresses of deleted objects.
    pub forget: Vec<String>,
    pub notification_settings: Vec<NotificationSettingsRow>,
    /// New-access messages to queue in the outbox: the indexes of their logins' changes.
    pub notify: Vec<u32>,
    /// Logins losing access: their set-password tokens and queued messages are cancelled.
    pub lose_access: Vec<LoginKey>,
    /// Logins keeping access with `notify` turned off: their queued messages are cancelled.
    pub stop_notifying: Vec<LoginKey>,
    /// Logins whose sessions end ([`Change::ends_sessions`]).
    pub end_sessions: Vec<LoginKey>,
    /// Roles that begin to require a second factor: their logins' sessions end.
    pub two_factor_roles: Vec<String>,
    /// Logins whose email changes: links issued to the old address are revoked (queued
    /// messages stay, and go to the new address).
    pub email_changed: Vec<LoginKey>,
    /// Passwords of logins that exist already, set by an update after the rows are written
    /// (a created login's goes in its row: [`LoginWrite::password`]).
    pub passwords: Vec<crate::passwords::PasswordRow>,
    /// OpenID Connect clients' secrets' hashes.
    pub secrets: Vec<crate::passwords::PasswordRow>,
    /// The apply writing the rows ([`Batches::set_apply_id`], once its history row exists).
    pub apply_id: i64,
    /// When the apply writes (the wall clock): password-set, queued and revoked times.
    pub at: String,
}

/// A customer or login row to write: its change in the plan, and the hash of the password a
/// login the apply creates is inserted with. Updated after the insert, every new row was
/// written twice (on PostgreSQL, 13 of the 20 s of writing 400,000 logins with pre-hashed
/// passwords).
#[derive(Debug)]
pub struct LoginWrite {
    /// The index of the change in [`Batches::plan`].
    pub change: u32,
    pub password: Option<std::sync::Arc<str>>,
}

/// Rows to write, split by whether the plan creates them. A created row's key is absent
/// from the live state the plan was made against (apply proves that state is still the
/// live one), so it is inserted plainly: on PostgreSQL an `INSERT … ON CONFLICT` costs
/// about a third more per row, and a first apply is nothing but creates.
#[derive(Debug)]
pub struct Upserts<T> {
    /// Rows of objects the plan creates.
    pub created: Vec<T>,
    /// Rows of objects that exist and change.
    pub changed: Vec<T>,
}

impl<T> Default for Upserts<T> {
    fn default() -> Self {
        Upserts {
            created: Vec::new(),
            changed: Vec::new(),
        }
    }
}

impl<T> Upserts<T> {
    fn push(&mut self, action: Action, row: T) {
        match action {
            Action::Create => self.created.push(row),
            _ => self.changed.push(row),
        }
    }

    /// How many rows, created or changed.
    pub fn len(&self) -> usize {
        self.created.len() + self.changed.len()
    }

    /// Whether there is no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An `applied_objects` row.
#[derive(Clone, Debug, Serialize)]
pub struct AppliedRow {
    pub address: String,
    pub digest: String,
    /// The apply writing it ([`Batches::set_apply_id`], once its history row exists).
    pub apply_id: i64,
}

from_row! {
    /// An `applies` row.
    #[derive(Clone, Debug)]
    pub struct ApplyRow {
        pub id: i64,
        pub kind: String,
        pub applied_at: String,
        pub actor: String,
        pub git_commit: Option<String>,
        pub clock: Option<String>,
        pub manifests_digest: String,
        pub plan_digest: String,
        pub summary: String,
        pub changes: String,
        /// The change list deflated (applies since migration 0008; day-2 events keep `changes`).
        pub changes_z: Option<Vec<u8>>,
    }
}

impl ApplyRow {
    /// The stored record.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when the JSON columns do not parse.
    pub fn into_record(self) -> Result<crate::history::ApplyRecord, StoreError> {
        let bad = |e: serde_json::Error| {
            corrupt(format!("apply {} has unreadable history: {e}", self.id))
        };
        Ok(crate::history::ApplyRecord {
            id: self.id,
            kind: self.kind.clone(),
            applied_at: self.applied_at.clone(),
            actor: self.actor.clone(),
            git_commit: self.git_commit.clone(),
            clock: self.clock.clone(),
            manifests_digest: self.manifests_digest.clone(),
            plan_digest: self.plan_digest.clone(),
            summary: serde_json::from_str(&self.summary).map_err(bad)?,
            changes: match &self.changes_z {
                Some(data) => {
                    let text = super::sql::inflate(data).map_err(|e| {
                        corrupt(format!("apply {} has unreadable history: {e}", self.id))
                    })?;
                    serde_json::from_str(&text).map_err(bad)?
                }
                None if self.changes.is_empty() => Vec::new(),
                None => serde_json::from_str(&self.changes).map_err(bad)?,
            },
        })
    }
}

impl Batches {
    /// Groups a plan's changes into batches. `passwords` are the plan's passwords, in its
    /// order when they come from [`crate::passwords::hash_all`] of its changes' sources: a
    /// login the plan creates is inserted with the password that follows it there; any
    /// other password (of a login that exists, or one out of that order) is set by an
    /// update after the rows are written.
    pub fn from_plan(
        plan: std::sync::Arc<Plan>,
        passwords: Vec<crate::passwords::PasswordRow>,
    ) -> Batches {
        let mut b = Batches {
            at: crate::clock::format(jiff::Timestamp::now()),
            ..Batches::default()
        };
        let mut passwords = passwords.into_iter().peekable();
        for (index, change) in plan.changes.iter().enumerate() {
            let index = u32::try_from(index).expect("a plan has fewer than 2^32 changes");
            let password = change
                .password
                .as_ref()
                .and_then(|_| passwords.next_if(|row| is_password_of(row, change)));
            b.add(index, change, password);
        }
        for row in passwords {
            b.add_password(row);
        }
        b.plan = plan;
        b
    }

    /// A password set by an update after the rows are written.
    fn add_password(&mut self, row: crate::passwords::PasswordRow) {
        if row.is_client() {
            self.secrets.push(row);
        } else {
            self.passwords.push(row);
        }
    }

    /// Marks the objects this apply writes with its history id: written with the rows, not
    /// by a second pass over them (on PostgreSQL, that `UPDATE` rewrote every row again:
    /// 1.3 s of a first apply of 300,000 logins).
    pub fn set_apply_id(&mut self, id: i64) {
        for row in &mut self.applied {
            row.apply_id = id;
        }
        self.apply_id = id;
    }

    /// The change a row is built from.
    fn change(&self, write: &LoginWrite) -> &Change {
        &self.plan.changes[write.change as usize]
    }

    /// The `customers` row of a customer written.
    pub fn customer_row(&self, write: &LoginWrite) -> CustomerRow {
        match (&self.change(write).address, &self.change(write).after) {
            (Address::Customer(id), Some(Object::Customer(record))) => CustomerRow {
                id: id.into(),
                name: record.name.clone(),
                protect: record.protect,
            },
            (address, _) => unreachable!("{address} is not a customer written"),
        }
    }

    /// The `logins` row of a customer's own login or a contact's, written.
    pub fn login_row(&self, write: &LoginWrite) -> LoginRow {
        let change = self.change(write);
        let (after, (customer, contact), login) = match (&change.address, &change.after) {
            (Address::Customer(id), Some(after @ Object::Customer(record))) => {
                (after, (id.as_str(), ""), &record.login)
            }
            (Address::Contact { customer, email }, Some(after @ Object::Contact(login))) => {
                (after, (customer.as_str(), email.as_str()), login)
            }
            (address, _) => unreachable!("{address} is not a login written"),
        };
        let mut row = login_row(customer, contact, login);
        row.applied_digest = Some(object_digest(after));
        row.applied_apply_id = Some(self.apply_id);
        if let Some(hash) = &write.password {
            row.password_hash = Some(hash.to_string());
            row.password_set_at = Some(self.at.clone());
        }
        row
    }

    /// The new-access message a change queues.
    pub fn queued_row(&self, change: u32) -> QueuedNotification {
        let change = &self.plan.changes[change as usize];
        let (customer_id, contact) = login_key(&change.address).expect("a login's change");
        let login = change.login_after().expect("a login");
        let had_password = change.login_before().is_some_and(|l| l.password.is_some());
        QueuedNotification {
            customer_id,
            contact,
            email: login.email.as_deref().unwrap_or_default().to_string(),
            password_assigned: change.password.is_some() || had_password,
        }
    }

    fn add(
        &mut self,
        index: u32,
        change: &Change,
        password: Option<crate::passwords::PasswordRow>,
    ) {
        let key = login_key(&change.address);
        if let Some((customer_id, contact)) = key {
            self.add_login_effects(index, change, customer_id, contact);
        }
        match (&change.after, &change.address) {
            // A login's digest goes in its row (`add_object`); a deleted row takes it along.
            (_, Address::Customer(_) | Address::Contact { .. }) => {}
            (Some(after), address) => self.applied.push(AppliedRow {
                address: address.to_string(),
                digest: after.digest(),
                apply_id: 0,
            }),
            (None, address) => self.forget.push(address.to_string()),
        }
        // A login the apply creates is inserted with its password; any other is updated.
        let password = match password {
            Some(row) if change.action == Action::Create && !row.is_client() => Some(row.hash),
            Some(row) => {
                self.add_password(row);
                None
            }
            None => None,
        };
        self.add_object(index, change, password);
    }

    /// The object's own row: written, or its key to delete.
    fn add_object(&mut self, index: u32, change: &Change, password: Option<std::sync::Arc<str>>) {
        let write = LoginWrite {
            change: index,
            password,
        };
        match (&change.address, &change.after) {
            (Address::Feature(feature), Some(Object::Feature { enabled })) => {
                let row = FeatureRow {
                    name: feature.key().to_string(),
                    enabled: *enabled,
                };
                if *enabled {
                    self.features_on.push(row)
                } else {
                    self.features_off.push(row)
                }
            }
            (Address::Notifications, Some(Object::Notifications(n))) => self
                .notification_settings
                .push(NotificationSettingsRow::new(n)),
            (Address::LoginPolicy, Some(Object::LoginPolicy(policy))) => {
                self.login_policy.push(policy_row(policy))
            }
            (Address::Website(id), Some(Object::Website(w))) => self.websites.push(WebsiteRow {
                id: id.clone(),
                name: w.name.clone(),
                url: w.url.clone(),
            }),
            (Address::Website(id), None) => self.delete_websites.push(id.clone()),
            (Address::Policy(id), Some(Object::Policy(p))) => self.policies.push(AccessPolicyRow {
                id: id.clone(),
                message: p.message.clone(),
                rule: serde_json::to_string(&p.rule).expect("a rule serialises"),
            }),
            (Address::Policy(id), None) => self.delete_policies.push(id.clone()),
            (Address::OidcClient(id), Some(Object::OidcClient(c))) => {
                self.clients.push(ClientRow::new(id, c))
            }
            (Address::OidcClient(id), None) => self.delete_clients.push(id.clone()),
            (Address::Role(id), Some(Object::Role(role))) => {
                let required_before = matches!(
                    &change.before,
                    Some(Object::Role(old)) if old.two_factor == TwoFactor::Required
                );
                if role.two_factor == TwoFactor::Required && !required_before {
                    self.two_factor_roles.push(id.clone());
                }
                let (row, permissions) = role_rows(id, role, false);
                self.roles.push(row);
                self.role_permissions.extend(permissions);
            }
            (Address::Role(id), None) => self.delete_roles.push(id.clone()),
            (Address::Customer(id), Some(Object::Customer(record))) => {
                self.add_customer(change, id, record, write);
            }
            (Address::Customer(id), None) => self.delete_customers.push(id.clone()),
            (Address::Contact { .. }, Some(Object::Contact(_))) => {
                self.contacts.push(change.action, write)
            }
            (Address::Contact { customer, email }, None) => self.delete_contacts.push(LoginKey {
                customer_id: customer.clone(),
                contact: email.clone(),
            }),
            (address, after) => unreachable!("a plan never holds {address} with {after:?}"),
        }
    }

    /// What a change to a login sets off beside its row: sessions ended, a message queued,
    /// links revoked, queued messages cancelled.
    fn add_login_effects(
        &mut self,
        index: u32,
        change: &Change,
        customer_id: String,
        contact: String,
    ) {
        if change.ends_sessions() {
            self.end_sessions.push(LoginKey {
                customer_id: customer_id.clone(),
                contact: contact.clone(),
            });
        }
        if change.notifies() {
            self.notify.push(index);
        }
        if change.removes_access() {
            self.lose_access.push(LoginKey {
                customer_id,
                contact,
            });
        } else if change.stops_notifying() {
            self.stop_notifying.push(LoginKey {
                customer_id,
                contact,
            });
        }
    }

    /// A customer written: its row and its own login, and its old email released first when
    /// it changes.
    fn add_customer(
        &mut self,
        change: &Change,
        id: &str,
        record: &CustomerRecord,
        write: LoginWrite,
    ) {
        let old_email = match &change.before {
            Some(Object::Customer(old)) => old.login.email.as_ref(),
            _ => None,
        };
        if change.action != Action::Create
            && old_email.is_some()
            && old_email != record.login.email.as_ref()
        {
            self.release_emails.push(id.to_string());
            self.email_changed.push(LoginKey {
                customer_id: id.to_string(),
                contact: String::new(),
            });
        }
        if change.action == Action::Create {
            self.clear_created.push(id.to_string());
        }
        self.customers.push(change.action, write);
    }
}

/// The (customer, contact) key of a login's change (`""` for a customer's own login).
fn login_key(address: &Address) -> Option<(String, String)> {
    match address {
        Address::Customer(id) => Some((id.clone(), String::new())),
        Address::Contact { customer, email } => Some((customer.clone(), email.clone())),
        _ => None,
    }
}

/// Whether `row` is the password of `change`'s login or client.
fn is_password_of(row: &crate::passwords::PasswordRow, change: &Change) -> bool {
    let key = (
        row.customer_id.as_str(),
        row.contact.as_str(),
        row.client.as_str(),
    );
    match &change.address {
        Address::Customer(id) => key == (id.as_str(), "", ""),
        Address::Contact { customer, email } => key == (customer.as_str(), email.as_str(), ""),
        Address::OidcClient(id) => key == ("", "", id.as_str()),
        _ => false,
    }
}

/// An object's digest as its login row stores it: the 64-bit number of its 16 hex digits.
fn object_digest(object: &Object) -> i64 {
    crate::state::ObjectDigest::from_hex(&object.digest()).as_i64()
}

fn policy_row(policy: &LoginPolicy) -> PolicyRow {
    PolicyRow {
        max_failed_attempts: policy.lockout.max_failed_attempts.into(),
        lockout_minutes: policy.lockout.duration_minutes.into(),
        session_timeout_minutes: policy.session_timeout_minutes.into(),
        password_min_length: policy.password.min_length.into(),
        session_max_hours: policy.session_max_hours.into(),
    }
}

fn two_factor_key(two_factor: TwoFactor) -> &'static str {
    match two_factor {
        TwoFactor::Off => "off",
        TwoFactor::Required => "required",
    }
}

fn role_rows(id: &str, role: &RoleState, standard: bool) -> (RoleRow, Vec<PermissionRow>) {
    let row = RoleRow {
        id: id.to_string(),
        name: role.name.clone(),
        base: (!standard).then(|| role.base.clone()),
        standard,
        two_factor: two_factor_key(role.two_factor).to_string(),
    };
    let permissions = role
        .permissions
        .iter()
        .map(|(p, l)| PermissionRow {
            role_id: id.to_string(),
            permission: p.key().to_string(),
            level: l.key().to_string(),
        })
        .collect();
    (row, permissions)
}

/// The standard roles from the catalog, written on every apply so the database always
/// describes them for the customer center.
pub fn standard_role_rows() -> (Vec<RoleRow>, Vec<PermissionRow>) {
    let mut roles = Vec::new();
    let mut permissions = Vec::new();
    for standard in catalog::standard_roles() {
        let state = RoleState {
            name: standard.name.to_string(),
            base: String::new(),
            two_factor: TwoFactor::Off,
            permissions: standard.permissions,
        };
        let (row, perms) = role_rows(standard.id, &state, true);
        roles.push(row);
        permissions.extend(perms);
    }
    (roles, permissions)
}

fn login_row(customer: &str, contact: &str, login: &LoginState) -> LoginRow {
    LoginRow {
        customer_id: customer.into(),
        contact: contact.into(),
        email: login.email.clone(),
        name: login.name.clone(),
        access: login.access,
        role_id: login.role.clone(),
        website_id: login.website.clone(),
        notify: login.notify,
        password_marker: login.password.map(i64::from),
        expires_at: login.expires.clone(),
        applied_digest: None,
        applied_apply_id: None,
        password_hash: None,
        password_set_at: None,
        has_password: false,
    }
}

/// A boolean column as JSON: `true`/`false` (PostgreSQL) or `1`/`0` (SQLite).
struct Flag(bool);

impl<'de> serde::Deserialize<'de> for Flag {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Flag, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Flag;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a boolean or 0/1")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Flag, E> {
                Ok(Flag(v != 0))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Flag, E> {
                Ok(Flag(v != 0))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Customers as SQLite's read gives them: `[[id, name, protect], …]`.
///
/// # Errors
/// [`StoreError::Corrupt`] when the value does not have the expected shape.
pub fn customers_from_json(json: &str) -> Result<Vec<CustomerRow>, StoreError> {
    let rows: Vec<(CompactString, CompactString, Flag)> = serde_json::from_str(json)
        .map_err(|e| corrupt(format!("customers could not be read: {e}")))?;
    Ok(rows
        .into_iter()
        .map(|(id, name, protect)| CustomerRow {
            id,
            name,
            protect: protect.0,
        })
        .collect())
}

/// One login as SQLite's read gives it.
type LoginTuple = (
    CompactString,
    CompactString,
    Option<CompactString>,
    Option<CompactString>,
    Flag,
    CompactString,
    Option<CompactString>,
    Flag,
    Option<i64>,
    Option<CompactString>,
    Flag,
    Option<i64>,
);

/// Appends the logins of one JSON page (`[[customer_id, contact, email, name, access,
/// role_id, website_id, notify, password_marker, expires_at, has_password, applied_digest],
/// …]`) to `out`,
/// each decoded straight into its place: no page-sized vector is built and grown on the way
/// (each one was faulted in afresh, page after page).
///
/// # Errors
/// [`StoreError::Corrupt`] when the value does not have the expected shape.
pub fn append_logins_from_json(json: &str, out: &mut Vec<LoginRow>) -> Result<(), StoreError> {
    use serde::de::DeserializeSeed as _;
    let bad = |e: serde_json::Error| corrupt(format!("logins could not be read: {e}"));
    let mut deserializer = serde_json::Deserializer::from_str(json);
    AppendLogins(out)
        .deserialize(&mut deserializer)
        .map_err(bad)?;
    deserializer.end().map_err(bad)
}

/// Pushes each login of a JSON array onto the vector.
struct AppendLogins<'a>(&'a mut Vec<LoginRow>);

impl<'de> serde::de::DeserializeSeed<'de> for AppendLogins<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for AppendLogins<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of logins")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some((
            customer_id,
            contact,
            email,
            name,
            access,
            role_id,
            website_id,
            notify,
            password_marker,
            expires_at,
            has_password,
            applied_digest,
        )) = seq.next_element::<LoginTuple>()?
        {
            self.0.push(LoginRow {
                customer_id,
                contact,
                email,
                name,
                access: access.0,
                role_id,
                website_id,
                notify: notify.0,
                password_marker,
                expires_at,
                applied_digest,
                applied_apply_id: None,
                password_hash: None,
                password_set_at: None,
                has_password: has_password.0,
            });
        }
        Ok(())
    }
}

/// The logins read, a page at a time. Each page's rows become state and its buffer is freed
/// before the next page's rows are used: held whole until the state was built, the rows of
/// 300,000 logins (80 MB) stood beside the state they became (82 MB) at a full read's peak.
pub type LoginPages = Vec<Vec<LoginRow>>;

/// Every managed row of the database, as read.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub features: Vec<FeatureRow>,
    pub login_policy: Option<PolicyRow>,
    pub websites: Vec<WebsiteRow>,
    /// Custom roles only.
    pub roles: Vec<RoleRow>,
    /// Permissions of custom roles only.
    pub role_permissions: Vec<PermissionRow>,
    pub customers: LiveCustomers,
    pub notification_settings: Option<NotificationSettingsRow>,
    pub policies: Vec<AccessPolicyRow>,
    pub clients: Vec<ClientRow>,
}

impl Snapshot {
    /// Builds the live [`State`].
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when a row holds a value portico never writes (edited by hand).
    pub fn into_state(self) -> Result<State, StoreError> {
        let mut state = State::empty();
        for row in self.features {
            // A feature this version does not know (written by a newer portico) is ignored.
            if let Some(feature) = Feature::from_key(&row.name) {
                state.features.insert(feature, row.enabled);
            }
        }
        state.login_policy = self.login_policy.map(PolicyRow::into_policy).transpose()?;
        state.notifications = self
            .notification_settings
            .map(NotificationSettingsRow::into_settings)
            .transpose()?;
        for row in self.policies {
            let rule = serde_json::from_str(&row.rule).map_err(|e| {
                StoreError::Corrupt(format!("policies.rule of `{}` is not a rule: {e}", row.id))
            })?;
            state.policies.insert(
                row.id,
                crate::policy::PolicyState {
                    message: row.message,
                    rule,
                },
            );
        }
        for mut row in self.clients {
            if let Some(hash) = row.secret_hash.take() {
                state.client_secret_hashes.insert(row.id.clone(), hash);
            }
            let (id, client) = row.into_state()?;
            state.oidc_clients.insert(id, client);
        }
        state.websites = self
            .websites
            .into_iter()
            .map(|w| {
                (
                    w.id,
                    WebsiteState {
                        name: w.name,
                        url: w.url,
                    },
                )
            })
            .collect();
        state.roles = roles_of(self.roles, self.role_permissions)?;
        state.customers = self.customers.customers;
        state.password_holders = self.customers.password_holders;
        Ok(state)
    }
}

impl PolicyRow {
    /// The stored login policy as portico's type.
    fn into_policy(self) -> Result<LoginPolicy, StoreError> {
        let p = self;
        Ok(LoginPolicy {
            lockout: Lockout {
                max_failed_attempts: small(
                    "login_policy.max_failed_attempts",
                    p.max_failed_attempts,
                )?,
                duration_minutes: small("login_policy.lockout_minutes", p.lockout_minutes)?,
            },
            session_timeout_minutes: small(
                "login_policy.session_timeout_minutes",
                p.session_timeout_minutes,
            )?,
            session_max_hours: small("login_policy.session_max_hours", p.session_max_hours)?,
            password: PasswordRules {
                min_length: small("login_policy.password_min_length", p.password_min_length)?,
            },
        })
    }
}

/// The custom roles with their permissions.
fn roles_of(
    rows: Vec<RoleRow>,
    permission_rows: Vec<PermissionRow>,
) -> Result<BTreeMap<String, RoleState>, StoreError> {
    let mut roles = BTreeMap::new();
    let mut permissions: BTreeMap<String, BTreeMap<Permission, Level>> = BTreeMap::new();
    for row in permission_rows {
        let permission = Permission::from_key(&row.permission).ok_or_else(|| {
            corrupt(format!(
                "role `{}` has unknown permission `{}`",
                row.role_id, row.permission
            ))
        })?;
        let level = Level::from_key(&row.level).ok_or_else(|| {
            corrupt(format!(
                "role `{}` has unknown level `{}`",
                row.role_id, row.level
            ))
        })?;
        permissions
            .entry(row.role_id)
            .or_default()
            .insert(permission, level);
    }
    for row in rows {
        let two_factor = match row.two_factor.as_str() {
            "off" => TwoFactor::Off,
            "required" => TwoFactor::Required,
            other => {
                return Err(corrupt(format!(
                    "role `{}` has unknown two_factor `{other}`",
                    row.id
                )));
            }
        };
        let role = RoleState {
            name: row.name,
            base: row
                .base
                .unwrap_or_else(|| catalog::DEFAULT_ROLE.to_string()),
            two_factor,
            permissions: permissions.remove(&row.id).unwrap_or_default(),
        };
        roles.insert(row.id, role);
    }
    Ok(roles)
}

/// The customers with their logins (the pages in any order), and the logins' drift
/// digests.
///
/// # Errors
/// [`StoreError::Corrupt`] when a row holds a value portico never writes.
pub fn build_customers(
    customers: Vec<CustomerRow>,
    pages: LoginPages,
) -> Result<(LiveCustomers, crate::state::LoginDigests), StoreError> {
    let mut builder = CustomersBuilder::new(customers);
    // A page's buffer is freed as soon as its last row is taken.
    for page in sorted_pages(pages) {
        builder.add_page(page)?;
    }
    Ok(builder.finish())
}

/// The live customers built from their rows, with the logins holding a password.
#[derive(Debug, Default)]
pub struct LiveCustomers {
    pub customers: crate::state::Customers,
    pub password_holders: crate::state::LoginKeys,
}

/// Builds the customers' state as pages of their logins arrive in key order, so a full read
/// holds one page of rows at a time beside the state (the rows of 300,000 logins, 80 MB,
/// were held whole until the last customer was built); the logins' drift digests are taken
/// on the way.
pub struct CustomersBuilder {
    /// The customers not yet given their logins, by id.
    customers: std::iter::Peekable<std::vec::IntoIter<CustomerRow>>,
    /// The customer whose logins are being taken.
    open: Option<OpenCustomer>,
    built: Vec<(CompactString, CustomerState)>,
    holders: Vec<(CompactString, CompactString)>,
    digests: Vec<((CompactString, CompactString), crate::state::ObjectDigest)>,
    /// The greatest key taken so far: pages must come in key order.
    last: Option<(CompactString, CompactString)>,
}

/// A customer and the logins taken for it so far.
struct OpenCustomer {
    row: CustomerRow,
    own: Option<LoginState>,
    contacts: Vec<(CompactString, LoginState)>,
}

impl OpenCustomer {
    fn new(row: CustomerRow) -> Self {
        OpenCustomer {
            row,
            own: None,
            contacts: Vec::new(),
        }
    }

    fn finish(self) -> (CompactString, CustomerState) {
        // A customer whose own login row went missing gets an impossible role, so the
        // next plan shows the row being written back.
        let login = self.own.unwrap_or_else(|| LoginState {
            email: None,
            name: None,
            access: false,
            role: "(missing)".into(),
            website: None,
            notify: false,
            password: None,
            expires: None,
        });
        let record = CustomerRecord {
            name: self.row.name,
            protect: self.row.protect,
            login,
        };
        let state = CustomerState {
            record,
            contacts: crate::state::contacts_of(self.contacts),
        };
        (self.row.id, state)
    }
}

impl CustomersBuilder {
    /// A builder for these customers (in any order).
    pub fn new(mut customers: Vec<CustomerRow>) -> Self {
        customers.sort_by(|a, b| a.id.cmp(&b.id));
        let count = customers.len();
        CustomersBuilder {
            customers: customers.into_iter().peekable(),
            open: None,
            built: Vec::with_capacity(count),
            holders: Vec::new(),
            digests: Vec::new(),
            last: None,
        }
    }

    /// Takes the next page of logins: its rows in any order, every key after those of the
    /// pages before (else the read is reported as corrupt: keys out of order would lose
    /// logins).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for a value portico never writes, or a page out of order.
    pub fn add_page(&mut self, mut page: Vec<LoginRow>) -> Result<(), StoreError> {
        page.sort_by(|a, b| (&a.customer_id, &a.contact).cmp(&(&b.customer_id, &b.contact)));
        let (Some(first), Some(end)) = (page.first(), page.last()) else {
            return Ok(());
        };
        if let Some((customer, contact)) = &self.last
            && (&first.customer_id, &first.contact) <= (customer, contact)
        {
            return Err(corrupt(format!(
                "the logins were read out of key order (customer `{}` after `{customer}`)",
                first.customer_id
            )));
        }
        self.last = Some((end.customer_id.clone(), end.contact.clone()));
        self.holders.reserve(page.len());
        self.digests.reserve(page.len());
        for login in page {
            self.add(login)?;
        }
        Ok(())
    }

    fn add(&mut self, login: LoginRow) -> Result<(), StoreError> {
        let key = || (login.customer_id.clone(), login.contact.clone());
        if let Some(digest) = login.applied_digest {
            let digest = crate::state::ObjectDigest::from_i64(digest);
            self.digests.push((key(), digest));
        }
        // The customers before this login's have all their logins.
        while self
            .open
            .as_ref()
            .is_none_or(|open| open.row.id < login.customer_id)
        {
            if let Some(open) = self.open.take() {
                self.built.push(open.finish());
            }
            match self.customers.next_if(|c| c.id <= login.customer_id) {
                Some(row) => self.open = Some(OpenCustomer::new(row)),
                None => break,
            }
        }
        // Logins of customers that do not exist (edited by hand) are not part of the state.
        let Some(open) = self.open.as_mut().filter(|o| o.row.id == login.customer_id) else {
            return Ok(());
        };
        if login.has_password {
            self.holders.push(key());
        }
        if login.contact.is_empty() {
            open.own = Some(login_state(login)?);
        } else {
            let contact = login.contact.clone();
            open.contacts.push((contact, login_state(login)?));
        }
        Ok(())
    }

    /// The customers with their logins, and the logins' drift digests.
    pub fn finish(mut self) -> (LiveCustomers, crate::state::LoginDigests) {
        if let Some(open) = self.open.take() {
            self.built.push(open.finish());
        }
        self.built
            .extend(self.customers.map(|row| OpenCustomer::new(row).finish()));
        self.holders.shrink_to_fit();
        self.digests.shrink_to_fit();
        let live = LiveCustomers {
            customers: crate::state::customers_of(self.built),
            password_holders: crate::state::LoginKeys::new(self.holders),
        };
        (live, crate::state::LoginDigests::new(self.digests))
    }
}

/// The pages with their logins in customer order: each page sorted, and the pages kept apart
/// when each begins at or after the end of the one before (pages read by key, as SQLite's
/// are); else all of them as one sorted page.
fn sorted_pages(mut pages: LoginPages) -> LoginPages {
    for page in &mut pages {
        page.sort_by(|a, b| a.customer_id.cmp(&b.customer_id));
    }
    let mut bounds = pages
        .iter()
        .filter_map(|page| Some((&page.first()?.customer_id, &page.last()?.customer_id)));
    let mut in_order = true;
    if let Some((_, mut end)) = bounds.next() {
        for (first, last) in bounds {
            in_order &= first >= end;
            end = last;
        }
    }
    if in_order {
        return pages;
    }
    let mut all: Vec<LoginRow> = pages.into_iter().flatten().collect();
    all.sort_by(|a, b| a.customer_id.cmp(&b.customer_id));
    vec![all]
}

/// A stored count or duration as portico's type; a value portico never writes (negative,
/// or past `u32`) is corruption to report, not to clamp silently.
fn small(column: &str, value: i64) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| {
        corrupt(format!(
            "{column} holds {value}, which portico never writes"
        ))
    })
}

/// The reset markers of `(customer id, contact, marker)` rows.
///
/// # Errors
/// [`StoreError::Corrupt`] for a marker portico never writes.
pub fn password_markers(
    rows: Vec<(CompactString, CompactString, i64)>,
) -> Result<crate::state::PasswordMarkers, StoreError> {
    let markers = rows
        .into_iter()
        .map(|(customer, contact, marker)| {
            Ok((
                (customer, contact),
                small("logins.password_marker", marker)?,
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(crate::state::PasswordMarkers::new(markers))
}

fn corrupt(message: String) -> StoreError {
    StoreError::Corrupt(message)
}

fn login_state(row: LoginRow) -> Result<LoginState, StoreError> {
    Ok(LoginState {
        password: row
            .password_marker
            .map(|m| small("logins.password_marker", m))
            .transpose()?,
        email: row.email,
        name: row.name,
        access: row.access,
        role: row.role_id,
        website: row.website_id,
        notify: row.notify,
        expires: row.expires_at,
    })
}

/// The builder a blocking task (building a page into state while the next is read) handed
/// back; its panic goes on.
pub(super) async fn joined(
    task: tokio::task::JoinHandle<Result<CustomersBuilder, StoreError>>,
) -> Result<CustomersBuilder, StoreError> {
    match task.await {
        Ok(built) => built,
        Err(panicked) => std::panic::resume_unwind(panicked.into_panic()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_of_logins_is_appended_after_the_rows_already_read() {
        let mut logins = Vec::new();
        append_logins_from_json(
            r#"[["C1","","c1@x.example","C one",1,"customer_center",null,0,null,null,0,-5]]"#,
            &mut logins,
        )
        .unwrap();
        append_logins_from_json(
            r#"[["C1","a@x.example","a@x.example",null,true,"r","eu",true,3,"2027-01-01T00:00:00Z",true,9223372036854775807],
                ["C2","","c2@x.example","C \"two\"",0,"customer_center",null,1,null,null,0,null]]"#,
            &mut logins,
        )
        .unwrap();
        let read: Vec<_> = logins
            .iter()
            .map(|l| {
                (
                    l.customer_id.as_str(),
                    l.contact.as_str(),
                    l.name.as_deref(),
                    l.access,
                    l.website_id.as_deref(),
                    l.password_marker,
                    l.has_password,
                )
            })
            .collect();
        assert_eq!(
            read,
            [
                ("C1", "", Some("C one"), true, None, None, false),
                ("C1", "a@x.example", None, true, Some("eu"), Some(3), true),
                ("C2", "", Some("C \"two\""), false, None, None, false),
            ]
        );
        assert_eq!(
            logins[1].expires_at.as_deref(),
            Some("2027-01-01T00:00:00Z")
        );
        let digests: Vec<_> = logins.iter().map(|l| l.applied_digest).collect();
        assert_eq!(digests, [Some(-5), Some(i64::MAX), None]);
    }

    #[test]
    fn a_page_of_another_shape_is_reported_as_corrupt() {
        for bad in [
            r#"[["C1","","c1@x.example"]]"#,
            r#"[["C1","","c1@x.example","C",1,"customer_center",null,0,null,null,0,null]] x"#,
            r#"{"C1": 1}"#,
            r#"[["C1","","c1@x.example","C","yes","customer_center",null,0,null,null,0,null]]"#,
        ] {
            let error = append_logins_from_json(bad, &mut Vec::new()).unwrap_err();
            assert!(
                matches!(&error, StoreError::Corrupt(m) if m.starts_with("logins could not be read")),
                "{bad}: {error:?}"
            );
        }
    }

    fn login(email: &str, name: Option<&str>) -> LoginState {
        LoginState {
            email: Some(email.into()),
            name: name.map(Into::into),
            access: true,
            role: "customer_center".into(),
            website: None,
            notify: true,
            password: Some(1),
            expires: None,
        }
    }

    fn change(address: Address, before: Option<Object>, after: Object, hash: &str) -> Change {
        Change {
            action: if before.is_some() {
                Action::Update
            } else {
                Action::Create
            },
            address,
            origin: crate::plan::Origin::Manifests,
            fields: crate::plan::Fields::default(),
            before,
            after: Some(after),
            password: Some(crate::state::SecretRef::Argon2 { hash: hash.into() }),
            reason: None,
        }
    }

    fn password(customer: &str, contact: &str, hash: &str) -> crate::passwords::PasswordRow {
        crate::passwords::PasswordRow {
            customer_id: customer.into(),
            contact: contact.into(),
            client: "".into(),
            hash: hash.into(),
        }
    }

    /// A created customer, an updated contact and a created contact, each setting a password.
    fn plan() -> std::sync::Arc<Plan> {
        let customer = Object::Customer(CustomerRecord {
            name: "Customer one".into(),
            protect: false,
            login: login("c1@x.example", None),
        });
        let contact = |name| Object::Contact(login("p@x.example", Some(name)));
        std::sync::Arc::new(Plan {
            changes: vec![
                change(Address::Customer("C1".into()), None, customer, "h1"),
                change(
                    Address::login("C2", "p@x.example"),
                    Some(contact("Old")),
                    contact("New"),
                    "h2",
                ),
                change(
                    Address::login("C1", "q@x.example"),
                    None,
                    Object::Contact(login("q@x.example", Some("Q"))),
                    "h3",
                ),
            ],
            ..Plan::default()
        })
    }

    #[test]
    fn created_logins_are_written_with_their_passwords_and_the_others_updated() {
        let passwords = vec![
            password("C1", "", "h1"),
            password("C2", "p@x.example", "h2"),
            password("C1", "q@x.example", "h3"),
        ];
        let mut b = Batches::from_plan(plan(), passwords);
        b.set_apply_id(7);
        let customer = b.login_row(&b.customers.created[0]);
        assert_eq!(customer.password_hash.as_deref(), Some("h1"));
        assert_eq!(customer.password_set_at.as_deref(), Some(b.at.as_str()));
        assert_eq!(customer.applied_apply_id, Some(7));
        assert_eq!(
            (customer.customer_id.as_str(), customer.contact.as_str()),
            ("C1", "")
        );
        let row = b.customer_row(&b.customers.created[0]);
        assert_eq!((row.id.as_str(), row.name.as_str()), ("C1", "Customer one"));
        let created = b.login_row(&b.contacts.created[0]);
        assert_eq!(created.password_hash.as_deref(), Some("h3"));
        assert_eq!(created.name.as_deref(), Some("Q"));
        // The contact that exists keeps its row free of the hash: an update sets it.
        let changed = b.login_row(&b.contacts.changed[0]);
        assert_eq!(
            (changed.password_hash, changed.name.as_deref()),
            (None, Some("New"))
        );
        let updated: Vec<_> = b.passwords.iter().map(|p| p.contact.as_str()).collect();
        assert_eq!(updated, ["p@x.example"]);
        // Each created login is notified; the messages are built from the plan.
        assert_eq!(b.notify, [0, 2]);
        let queued = b.queued_row(2);
        assert_eq!(
            (queued.customer_id.as_str(), queued.email.as_str()),
            ("C1", "q@x.example")
        );
        assert!(queued.password_assigned);
    }

    #[test]
    fn passwords_out_of_the_plans_order_are_all_still_set() {
        // The customer's password comes after the contact's: the contact's row takes its
        // own, the customer's is set by an update instead of being lost.
        let passwords = vec![
            password("C1", "q@x.example", "h3"),
            password("C9", "", "h9"),
            password("C1", "", "h1"),
        ];
        let b = Batches::from_plan(plan(), passwords);
        assert_eq!(b.login_row(&b.customers.created[0]).password_hash, None);
        assert_eq!(
            b.login_row(&b.contacts.created[0]).password_hash.as_deref(),
            Some("h3")
        );
        let updated: Vec<_> = b
            .passwords
            .iter()
            .map(|p| (p.customer_id.as_str(), &*p.hash))
            .collect();
        assert_eq!(updated, [("C9", "h9"), ("C1", "h1")]);
    }

    fn login_rows(customers: &[&str]) -> Vec<LoginRow> {
        customers
            .iter()
            .map(|c| login_row(c, "", &login("x@x.example", None)))
            .collect()
    }

    fn customer_ids(pages: &LoginPages) -> Vec<Vec<&str>> {
        pages
            .iter()
            .map(|p| p.iter().map(|l| l.customer_id.as_str()).collect())
            .collect()
    }

    #[test]
    fn pages_read_in_key_order_stay_apart_and_others_become_one_sorted_page() {
        // Read by key (SQLite): kept as pages, so each is freed once used; an empty page
        // between two is no reason to merge them.
        let pages = vec![login_rows(&["A", "B"]), vec![], login_rows(&["B", "C"])];
        assert_eq!(
            customer_ids(&sorted_pages(pages)),
            [vec!["A", "B"], vec![], vec!["B", "C"]]
        );
        // Each page is sorted on its own.
        let pages = vec![login_rows(&["B", "A"]), login_rows(&["D", "C"])];
        assert_eq!(customer_ids(&sorted_pages(pages)), [["A", "B"], ["C", "D"]]);
        // Pages that overlap become one: every customer still gets all its logins.
        let pages = vec![login_rows(&["A", "C"]), vec![], login_rows(&["B", "D"])];
        assert_eq!(customer_ids(&sorted_pages(pages)), [["A", "B", "C", "D"]]);
        let customers = ["A", "B", "C", "D"].map(|id| CustomerRow {
            id: id.into(),
            name: id.into(),
            protect: false,
        });
        let (built, _) = build_customers(
            customers.to_vec(),
            vec![login_rows(&["C", "A"]), login_rows(&["B", "D"])],
        )
        .unwrap();
        let emails: Vec<_> = built
            .customers
            .iter()
            .map(|(_, c)| c.record.login.email.as_deref())
            .collect();
        assert_eq!(emails, [Some("x@x.example"); 4]);
    }

    /// A login row of `customer` (`contact` `""`: its own), with a digest and a password.
    fn row(customer: &str, contact: &str, digest: Option<i64>, password: bool) -> LoginRow {
        let email = if contact.is_empty() {
            "own@x.example"
        } else {
            contact
        };
        LoginRow {
            applied_digest: digest,
            has_password: password,
            ..login_row(customer, contact, &login(email, None))
        }
    }

    #[test]
    fn customers_are_built_as_their_logins_arrive_a_page_at_a_time() {
        let customers = ["A", "B", "C", "E"].map(|id| CustomerRow {
            id: id.into(),
            name: id.into(),
            protect: false,
        });
        let mut builder = CustomersBuilder::new(customers.to_vec());
        // B's logins are split across two pages; "D" has no customer row (edited by hand);
        // C has no login at all; E's page comes last.
        builder
            .add_page(vec![
                row("B", "b1@x.example", Some(2), true),
                row("A", "", Some(1), false),
                row("B", "", None, true),
            ])
            .unwrap();
        builder
            .add_page(vec![
                row("B", "b2@x.example", Some(3), false),
                row("D", "", Some(4), true),
            ])
            .unwrap();
        builder.add_page(vec![]).unwrap();
        builder.add_page(vec![row("E", "", Some(5), true)]).unwrap();
        // A page that starts before the last key taken would lose logins: refused.
        let mut late = CustomersBuilder::new(customers.to_vec());
        late.add_page(vec![row("B", "", None, false)]).unwrap();
        let refused = late.add_page(vec![row("A", "", None, false)]).unwrap_err();
        assert!(
            refused.to_string().contains("out of key order"),
            "{refused}"
        );

        let (live, digests) = builder.finish();
        let customers = &live.customers;
        let ids: Vec<&str> = customers.keys().map(|k| k.as_str()).collect();
        assert_eq!(ids, ["A", "B", "C", "E"]);
        let b = customers.get("B").unwrap();
        let contacts: Vec<&str> = b.contacts.keys().map(|k| k.as_str()).collect();
        assert_eq!(contacts, ["b1@x.example", "b2@x.example"]);
        assert_eq!(b.record.login.email.as_deref(), Some("own@x.example"));
        // A customer without its own login row gets an impossible role (written back).
        assert_eq!(customers.get("C").unwrap().record.login.role, "(missing)");
        // Holders of a password: only the logins of customers that exist.
        let holders = &live.password_holders;
        assert!(holders.contains("B", "") && holders.contains("B", "b1@x.example"));
        assert!(holders.contains("E", "") && !holders.contains("A", ""));
        assert!(!holders.contains("D", "") && !holders.contains("B", "b2@x.example"));
        assert_eq!(holders.len(), 3);
        // Every row's digest, by its key.
        let digest = |c: &str, k: &str| digests.get(c, k).map(|d| d.as_i64());
        assert_eq!(digest("A", ""), Some(1));
        assert_eq!(digest("B", "b2@x.example"), Some(3));
        assert_eq!(digest("D", ""), Some(4));
        assert_eq!(digest("B", ""), None);
    }
}
