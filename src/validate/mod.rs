//! Offline validation (DESIGN §2) and turning a manifest set into the desired [`State`].

mod index;
mod logins;
mod oidc;
mod passwords;
mod roles;

pub use index::{file_digest, file_digest_of, index_of, relative_name, template_digest};
pub use logins::is_valid_email;
pub use oidc::{MIN_CLIENT_SECRET, redirect_uri_problem};
pub use passwords::Passwords;

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::Feature;
use crate::manifest::diagnostic::{Diagnostic, Site};
use crate::manifest::load::{ManifestSet, duplicate};
use crate::manifest::model::LoginPolicy;
use crate::state::{State, WebsiteState};

/// The longest a set-password link may stay valid, in hours.
pub const MAX_TOKEN_TTL_HOURS: u32 = 720;
/// The longest absolute session limit, in hours (30 days).
pub const MAX_SESSION_HOURS: u32 = 720;
/// The shortest reset-link lifetime, in minutes: mail can take minutes.
pub const MIN_RESET_TTL_MINUTES: u32 = 5;
/// The longest reset-link lifetime, in minutes (a day).
pub const MAX_RESET_TTL_MINUTES: u32 = 1440;

/// Which sections the manifest set declares. Only declared sections are managed (and pruned).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sections {
    /// `features:` present.
    pub features: bool,
    /// `websites:` present.
    pub websites: bool,
    /// `login_policy:` present.
    pub login_policy: bool,
    /// `notifications:` present.
    #[serde(default)]
    pub notifications: bool,
    /// `roles:` present.
    pub roles: bool,
    /// `customers:` present.
    pub customers: bool,
    /// `policies:` present.
    #[serde(default)]
    pub policies: bool,
    /// `oidc_clients:` present.
    #[serde(default)]
    pub oidc_clients: bool,
}

/// What the manifests ask for.
#[derive(Clone, Debug, Default)]
pub struct Desired {
    /// The desired objects of the managed sections (others are left empty).
    pub state: State,
    /// Which sections are managed.
    pub managed: Sections,
    /// Initial password sources (logins' and OpenID Connect clients').
    pub passwords: Passwords,
    /// Validation needed to know whether a login has access in the live database, but the
    /// live customers were not read ([`crate::state::LiveAccess::Unread`]): validate again
    /// with the keys of the logins with access.
    pub needs_live_access: bool,
}

/// Validates a manifest set. `live` is the database's state when there is one (plan and
/// apply): references into sections the manifests do not manage are then checked against it.
///
/// Returns the desired state, meaningful only when no returned diagnostic is an error.
pub fn validate(set: &ManifestSet, live: Option<&State>) -> (Desired, Vec<Diagnostic>) {
    let asked_access = std::sync::atomic::AtomicBool::new(false);
    let mut cx = Context {
        set,
        live,
        diagnostics: Vec::new(),
        now: crate::clock::format(crate::clock::now()),
        asked_access: &asked_access,
    };
    let mut desired = Desired {
        managed: sections(set),
        ..Desired::default()
    };
    desired.state.features = cx.features();
    desired.state.websites = cx.websites();
    desired.state.login_policy = set.login_policy.as_ref().map(|p| p.value.clone());
    cx.login_policy();
    desired.state.notifications = cx.notifications();
    desired.state.roles = roles::roles(&mut cx, &desired);
    let (customers, passwords) = logins::customers(&mut cx, &desired);
    desired.state.customers = customers;
    desired.passwords = passwords;
    desired.state.policies = cx.policies();
    desired.state.oidc_clients = oidc::clients(&mut cx, &mut desired);
    cx.check_policies(&desired);
    if !desired.managed.customers {
        cx.diagnostics.push(Diagnostic::warning(
            None,
            "no `customers:` section: customers and their logins are not managed by these manifests",
        ));
    }
    desired.needs_live_access = asked_access.load(std::sync::atomic::Ordering::Relaxed);
    (desired, cx.diagnostics)
}

fn sections(set: &ManifestSet) -> Sections {
    Sections {
        features: set.features.is_some(),
        websites: set.websites.is_some(),
        login_policy: set.login_policy.is_some(),
        notifications: set.notifications.is_some(),
        roles: set.roles.is_some(),
        customers: set.customers.is_some(),
        policies: set.policies.is_some(),
        oidc_clients: set.oidc_clients.is_some(),
    }
}

/// Shared inputs and the diagnostics found so far.
pub(crate) struct Context<'a> {
    set: &'a ManifestSet,
    live: Option<&'a State>,
    diagnostics: Vec<Diagnostic>,
    /// The clock (`PORTICO_NOW` or the system's), in the stored expiry form.
    now: String,
    /// Set when a login's live access was needed but the customers were not read.
    asked_access: &'a std::sync::atomic::AtomicBool,
}

impl Context<'_> {
    /// A context for checking part of the set on another thread: the same inputs, its own
    /// diagnostics.
    fn fork(&self) -> Context<'_> {
        Context {
            set: self.set,
            live: self.live,
            diagnostics: Vec::new(),
            now: self.now.clone(),
            asked_access: self.asked_access,
        }
    }

    fn error(&mut self, site: &Site, message: impl Into<String>) -> &mut Diagnostic {
        self.diagnostics
            .push(Diagnostic::error(site.clone(), message));
        self.diagnostics.last_mut().expect("just pushed")
    }

    /// Whether a feature will be on, or `None` when nobody can tell offline.
    fn feature_on(&self, desired: &Desired, feature: Feature) -> Option<bool> {
        if desired.managed.features {
            Some(desired.state.feature(feature))
        } else {
            self.live.map(|live| live.feature(feature))
        }
    }

    /// Reports `what` when `feature` is off, at `site` (the object that needs it), which is
    /// built only then: this runs for every login.
    fn require_feature(
        &mut self,
        desired: &Desired,
        feature: Feature,
        site: impl FnOnce() -> Site,
        what: &str,
    ) {
        if self.feature_on(desired, feature) == Some(false) {
            self.error(
                &site(),
                format!("{what} needs the `{feature}` feature, which is off"),
            )
            .hint = Some(format!("add `{feature}: true` under `features:`"));
        }
    }

    fn features(&mut self) -> BTreeMap<Feature, bool> {
        let Some(features) = &self.set.features else {
            return BTreeMap::new();
        };
        let wanted: BTreeMap<Feature, bool> = Feature::ALL
            .iter()
            .map(|f| (*f, features.get(f).is_some_and(|d| d.value)))
            .collect();
        for (feature, declared) in features {
            for required in feature.info().requires {
                if declared.value && !wanted[required] {
                    self.error(
                        &declared.site,
                        format!("feature `{feature}` needs `{required}`, which is off"),
                    )
                    .hint = Some(format!("add `{required}: true`"));
                }
            }
        }
        wanted
    }

    fn websites(&mut self) -> BTreeMap<String, WebsiteState> {
        let mut websites = BTreeMap::new();
        let mut first_site: BTreeMap<&str, &Site> = BTreeMap::new();
        for declared in self.set.websites.iter().flatten() {
            let website = &declared.value;
            let site = &declared.site;
            if let Some(first) = first_site.insert(&website.id, site) {
                let d = duplicate(
                    &format!("website `{}`", website.id),
                    &self.set.sources,
                    &first.key("id"),
                    site.key("id"),
                );
                self.diagnostics.push(d);
                continue;
            }
            self.non_empty(site, "id", &website.id);
            self.non_empty(site, "name", &website.name);
            if website.url.trim().is_empty() {
                self.error(&site.key("url"), "website url is empty")
                    .hint = Some("write the address its customers sign in at, for example `https://shop.example.com`".into());
            } else if !(website.url.starts_with("https://") || website.url.starts_with("http://")) {
                self.error(
                    &site.key("url"),
                    format!(
                        "website url `{}` must start with https:// or http://",
                        website.url
                    ),
                );
            }
            websites.insert(
                website.id.clone(),
                WebsiteState {
                    name: website.name.clone(),
                    url: website.url.clone(),
                },
            );
        }
        websites
    }

    fn login_policy(&mut self) {
        let Some(declared) = &self.set.login_policy else {
            return;
        };
        let LoginPolicy {
            lockout,
            session_timeout_minutes,
            session_max_hours,
            password,
        } = &declared.value;
        let site = declared.site.clone();
        let checks = [
            (
                lockout.max_failed_attempts,
                "lockout.max_failed_attempts",
                site.key("lockout").key("max_failed_attempts"),
            ),
            (
                lockout.duration_minutes,
                "lockout.duration_minutes",
                site.key("lockout").key("duration_minutes"),
            ),
            (
                *session_timeout_minutes,
                "session_timeout_minutes",
                site.key("session_timeout_minutes"),
            ),
            (
                password.min_length,
                "password.min_length",
                site.key("password").key("min_length"),
            ),
        ];
        for (value, name, at) in checks {
            if value == 0 {
                self.error(&at, format!("`{name}` must be at least 1"));
            }
        }
        if !(1..=MAX_SESSION_HOURS).contains(session_max_hours) {
            self.error(
                &site.key("session_max_hours"),
                format!("`session_max_hours` must be between 1 and {MAX_SESSION_HOURS} (30 days)"),
            );
        }
    }

    fn notifications(&mut self) -> Option<crate::state::NotificationSettings> {
        let declared = self.set.notifications.as_ref()?;
        let n = &declared.value;
        let site = declared.site.clone();
        self.notification_urls(n, &site);
        self.notification_transport(n, &site);
        self.notification_mailboxes_and_limits(n, &site);
        let template = n
            .template
            .as_ref()
            .and_then(|files| self.templates(&site.key("template"), files));
        let reset_template = n
            .reset_template
            .as_ref()
            .and_then(|files| self.templates(&site.key("reset_template"), files));
        Some(crate::state::NotificationSettings {
            url: n.url.clone(),
            auth_env: n.auth_header.as_ref().map(|h| h.env.clone()),
            smtp: n.smtp.as_ref().map(|s| crate::state::SmtpSettings {
                url: s.url.clone(),
                username: s.username.clone(),
                password_env: s.password.as_ref().map(|p| p.env.clone()),
            }),
            from: n.from.clone(),
            reply_to: n.reply_to.clone(),
            login_url: n.login_url.clone(),
            token_ttl_hours: n.token_ttl_hours,
            max_attempts: n.max_attempts,
            template,
            reset_ttl_minutes: n.reset_ttl_minutes,
            reset_template,
        })
    }

    /// The webhook URL and the login URL.
    fn notification_urls(&mut self, n: &crate::manifest::model::Notifications, site: &Site) {
        if let Some(url) = &n.url
            && let Err(why) = crate::message::endpoint::check_webhook_url(url)
        {
            self.error(&site.key("url"), why);
        }
        if let Some(url) = &n.login_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            let why = if url.trim().is_empty() {
                "`login_url` is empty: write an address that starts with https:// or leave it out"
                    .to_string()
            } else {
                format!("`{url}` must start with https:// or http://")
            };
            self.error(&site.key("login_url"), why);
        }
    }

    /// Exactly one transport, and what SMTP needs.
    fn notification_transport(&mut self, n: &crate::manifest::model::Notifications, site: &Site) {
        match (&n.smtp, &n.url) {
            (Some(_), Some(_)) => {
                self.error(
                    &site.key("url"),
                    "give either `smtp` (email) or `url` (webhook), not both",
                )
                .hint = Some("one transport delivers every message".into());
            }
            (None, None) => {
                self.error(site, "`notifications:` needs a transport: `smtp` (email) or `url` (a webhook or mail API)")
                    .hint = Some("for example `smtp: { url: smtps://mail.example.com:465 }` and `from: \"Acme <no-reply@acme.example>\"`".into());
            }
            (Some(smtp), None) => {
                let at = site.key("smtp");
                if let Err(why) = crate::message::endpoint::smtp_endpoint(&smtp.url) {
                    self.error(&at.key("url"), why);
                }
                if smtp.password.is_some() && smtp.username.is_none() {
                    self.error(&at.key("password"), "a `password` needs a `username`");
                }
                if n.from.is_none() {
                    self.error(site, "email needs a sender: add `from: \"Name <address>\"`");
                }
                if n.auth_header.is_some() {
                    self.error(&site.key("auth_header"), "`auth_header` belongs to a webhook `url`; SMTP authenticates with `smtp.username` and `smtp.password`");
                }
            }
            (None, Some(_)) => {}
        }
    }

    /// The sender and reply-to addresses, and the numbers' ranges.
    fn notification_mailboxes_and_limits(
        &mut self,
        n: &crate::manifest::model::Notifications,
        site: &Site,
    ) {
        for (field, value) in [("from", &n.from), ("reply_to", &n.reply_to)] {
            if let Some(value) = value
                && let Err(why) = crate::message::endpoint::check_mailbox(value)
            {
                self.error(
                    &site.key(field),
                    format!("`{value}` is not an email address: {why}"),
                )
                .hint = Some("write `Name <address@example.com>` or a bare address".into());
            }
        }
        if !(1..=MAX_TOKEN_TTL_HOURS).contains(&n.token_ttl_hours) {
            self.error(
                &site.key("token_ttl_hours"),
                format!("`token_ttl_hours` must be between 1 and {MAX_TOKEN_TTL_HOURS} (30 days): a set-password link is a credential"),
            );
        }
        if n.max_attempts == 0 {
            self.error(
                &site.key("max_attempts"),
                "`max_attempts` must be at least 1",
            );
        }
        if !(MIN_RESET_TTL_MINUTES..=MAX_RESET_TTL_MINUTES).contains(&n.reset_ttl_minutes) {
            self.error(
                &site.key("reset_ttl_minutes"),
                format!("`reset_ttl_minutes` must be between {MIN_RESET_TTL_MINUTES} and {MAX_RESET_TTL_MINUTES} (a day): a reset link is a credential, and mail can take minutes"),
            );
        }
    }

    /// Reads the template files (relative to the manifest folder) and checks them: every
    /// problem is an error at the `template.<part>` key, naming the file and line.
    fn templates(
        &mut self,
        site: &Site,
        files: &crate::manifest::model::TemplateFiles,
    ) -> Option<crate::state::TemplateSources> {
        let mut read = |part: &'static str, path: &str| -> Option<String> {
            let root = &self.set.root;
            let limit = self.set.reading.max_file_bytes;
            match crate::files::read_inside("template", root, root, path, limit) {
                Ok(text) => Some(text),
                Err(e) => {
                    self.error(&site.key(part), e.to_string());
                    None
                }
            }
        };
        let subject = read("subject", &files.subject);
        let text = read("text", &files.text);
        let html = match &files.html {
            Some(path) => Some(read("html", path)?),
            None => None,
        };
        let sources = crate::state::TemplateSources {
            subject: subject?,
            text: text?,
            html,
        };
        for problem in crate::message::template::check(&sources) {
            let part = problem.part.key();
            let path = match problem.part {
                crate::message::template::Part::Subject => &files.subject,
                crate::message::template::Part::Text => &files.text,
                crate::message::template::Part::Html => {
                    files.html.as_ref().expect("checked only when given")
                }
            };
            let place = problem
                .line
                .map(|l| format!("{path}:{l}"))
                .unwrap_or_else(|| path.clone());
            self.error(&site.key(part), format!("{place}: {}", problem.message))
                .hint = Some(format!(
                "templates may use: {}",
                crate::message::template::VARIABLES
                    .iter()
                    .map(|(v, _)| *v)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Some(sources)
    }

    /// The declared policies, each checked: a unique id, exactly one rule kind, valid globs.
    fn policies(&mut self) -> BTreeMap<String, crate::policy::PolicyState> {
        let mut out = BTreeMap::new();
        let mut first: BTreeMap<&str, &Site> = BTreeMap::new();
        for declared in self.set.policies.iter().flatten() {
            let policy = &declared.value;
            let site = &declared.site;
            self.non_empty(site, "id", &policy.id);
            if let Some(earlier) = first.insert(&policy.id, site) {
                let d = duplicate(
                    &format!("policy `{}`", policy.id),
                    &self.set.sources,
                    &earlier.key("id"),
                    site.key("id"),
                );
                self.diagnostics.push(d);
                continue;
            }
            let rules = policy.rules();
            let [rule] = rules.as_slice() else {
                self.error(site, format!("policy `{}` needs exactly one rule: max_level, require_two_factor, forbid_emails, allowed_email_domains or max_logins_per_customer (it has {})", policy.id, rules.len()));
                continue;
            };
            match rule {
                crate::policy::Rule::ForbidEmails(r) => {
                    for (i, pattern) in r.patterns.iter().enumerate() {
                        if let Err(why) = crate::policy::glob(pattern) {
                            let at = Site {
                                path: site.path.key("forbid_emails").key("patterns").index(i),
                                ..site.clone()
                            };
                            self.error(&at, why);
                        }
                    }
                }
                crate::policy::Rule::AllowedEmailDomains(r)
                    if !r.customer_email_domain && r.domains.is_empty() =>
                {
                    self.error(&site.key("allowed_email_domains"), "allow `customer_email_domain: true`, a list of `domains`, or both: as written no email is allowed");
                }
                crate::policy::Rule::MaxLoginsPerCustomer(0) => {
                    self.error(&site.key("max_logins_per_customer"), "`max_logins_per_customer` must be at least 1 (to forbid logins, give no access)");
                }
                _ => {}
            }
            out.insert(
                policy.id.clone(),
                crate::policy::PolicyState {
                    message: policy.message.clone(),
                    rule: rule.clone(),
                },
            );
        }
        out
    }

    /// Checks the desired logins against the policies in force (the manifests', else the
    /// live database's). A violation is an error at the login (a warning with
    /// `--policy-warn-only`); each policy reports its first 20 and counts the rest.
    fn check_policies(&mut self, desired: &Desired) {
        const SHOWN: usize = 20;
        let policies = if desired.managed.policies {
            desired.state.policies.clone()
        } else {
            self.live.map(|l| l.policies.clone()).unwrap_or_default()
        };
        if policies.is_empty() || !desired.managed.customers {
            return;
        }
        let warn = self.set.reading.policy_warn_only;
        for (id, policy) in &policies {
            let violations = crate::policy::check(&desired.state, policy);
            for v in violations.iter().take(SHOWN) {
                let site = logins::login_site(self.set, &v.customer, v.contact.as_deref())
                    .or_else(|| logins::login_site(self.set, &v.customer, None))
                    .map(|site| match policy.rule {
                        crate::policy::Rule::MaxLoginsPerCustomer(_) => site.clone(),
                        _ => site.key("email"),
                    });
                let message = format!("policy `{id}` ({}): {}", policy.message, v.detail);
                let mut d = match (&site, warn) {
                    (Some(site), false) => Diagnostic::error(site.clone(), message),
                    (None, false) => Diagnostic::file_error(None, message),
                    (site, true) => Diagnostic::warning(site.clone(), message),
                };
                d.hint = Some(if warn {
                    "--policy-warn-only: a warning for now; it becomes an error without the flag"
                        .into()
                } else {
                    format!(
                        "change the login, or the policy `{id}` (`--policy-warn-only` makes violations warnings during a migration)"
                    )
                });
                self.diagnostics.push(d);
            }
            if violations.len() > SHOWN {
                let message = format!(
                    "policy `{id}` ({}): … and {} more violations",
                    policy.message,
                    violations.len() - SHOWN
                );
                self.diagnostics.push(if warn {
                    Diagnostic::warning(None, message)
                } else {
                    Diagnostic::file_error(None, message)
                });
            }
        }
    }

    fn non_empty(&mut self, site: &Site, field: &'static str, value: &str) {
        if value.trim().is_empty() {
            self.error(&site.key(field), format!("`{field}` must not be empty"));
        }
        self.visible(site, field, value, field != "name");
    }

    /// Invisible format characters (bidi overrides, zero-width spaces) make text read
    /// differently from what it is: an error in ids and emails (keys must be what they look
    /// like), a warning in names (plans show them escaped).
    fn visible(&mut self, site: &Site, field: &'static str, value: &str, key: bool) {
        let Some(c) = value.chars().find(|c| crate::unicode::is_invisible(*c)) else {
            return;
        };
        let message = format!(
            "`{field}` contains the invisible character U+{:04X}, so it reads differently from what it is: {}",
            c as u32,
            crate::unicode::escape_invisible(value)
        );
        if key {
            self.error(&site.key(field), message).hint =
                Some("retype the value; copy-pasted text can carry such characters".into());
        } else {
            self.diagnostics
                .push(Diagnostic::warning(Some(site.key(field)), message));
        }
    }

    /// Website ids that exist: declared, or live when websites are not managed.
    fn website_ids(&self, desired: &Desired) -> Option<BTreeSet<String>> {
        if desired.managed.websites {
            Some(desired.state.websites.keys().cloned().collect())
        } else {
            self.live
                .map(|live| live.websites.keys().cloned().collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Level, Permission};
    use crate::manifest::load_text;

    fn check(text: &str, live: Option<&State>) -> (Desired, Vec<String>) {
        let (set, mut diagnostics) = load_text("t.yaml", text);
        let (desired, found) = validate(&set, live);
        diagnostics.extend(found);
        let errors = diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.message.clone())
            .collect();
        (desired, errors)
    }

    #[test]
    fn logins_gaining_access_are_known_from_the_access_keys_when_customers_were_not_read() {
        use crate::state::{LiveAccess, LoginKeys};
        // A full plan validates before it reads the customers: the live state holds only
        // the small tables, then (when validation asks) the keys of the logins with access.
        let text = "customers:\n  - id: C\n    name: C\n    email: c@x.example\n    access: { give_access: true }\n    contacts:\n      - { email: K@x.example, name: K, access: true }\n";
        let mut live = State::empty();
        live.features.insert(Feature::CustomerAccess, true);
        let nobody = |errors: &[String]| {
            errors
                .iter()
                .filter(|e| e.contains("nobody could ever log in"))
                .count()
        };
        // Not read: validation says it needs them, and says nothing about those logins yet.
        live.access = LiveAccess::Unread;
        let (desired, errors) = check(text, Some(&live));
        assert!(desired.needs_live_access);
        assert_eq!(nobody(&errors), 0, "{errors:?}");
        // Neither login has access live: both would gain it with no way to log in.
        live.access = LiveAccess::Keys(LoginKeys::new(vec![]));
        let (desired, errors) = check(text, Some(&live));
        assert!(!desired.needs_live_access);
        assert_eq!(nobody(&errors), 2, "{errors:?}");
        // The customer's own login has access already (as an exported account's do); the
        // contact's key is its normalised email.
        let key = |c: &str, k: &str| (c.into(), k.into());
        live.access = LiveAccess::Keys(LoginKeys::new(vec![key("C", "")]));
        let (_, errors) = check(text, Some(&live));
        assert_eq!(nobody(&errors), 1, "{errors:?}");
        live.access = LiveAccess::Keys(LoginKeys::new(vec![key("C", "k@x.example"), key("C", "")]));
        let (_, errors) = check(text, Some(&live));
        assert_eq!(nobody(&errors), 0, "{errors:?}");
        // Logins that have a way to log in never need the live customers.
        let with_passwords = text
            .replace("access: true }", "access: true, password: { env: P } }")
            .replace(
                "give_access: true }",
                "give_access: true, password: { env: P } }",
            );
        live.access = LiveAccess::Unread;
        let (desired, _) = check(&with_passwords, Some(&live));
        assert!(!desired.needs_live_access);
    }

    #[test]
    fn effective_levels_copy_the_base_and_apply_overrides() {
        let text = "roles:\n  - id: a\n    name: A\n    permissions: { invoice: none, estimate: edit }\n  - id: b\n    name: B\n    base: a\n    permissions: { cases: full }\n";
        let (desired, errors) = check(text, None);
        assert!(errors.is_empty(), "{errors:?}");
        let b = &desired.state.roles["b"];
        assert_eq!(b.base, "a");
        assert_eq!(b.permissions.get(&Permission::Estimate), Some(&Level::Edit));
        assert_eq!(b.permissions.get(&Permission::Cases), Some(&Level::Full));
        assert_eq!(
            b.permissions.get(&Permission::Invoice),
            None,
            "none is not stored"
        );
        assert_eq!(
            b.permissions.get(&Permission::SalesOrder),
            Some(&Level::Edit),
            "inherited from customer_center"
        );
    }

    #[test]
    fn contacts_default_to_the_customers_role_and_website() {
        let text = "features: { customer_access: true, websites: true }\nwebsites: [{ id: w, name: W, url: https://w.example }]\nroles: [{ id: r, name: R }]\ncustomers:\n  - id: C\n    name: C\n    email: c@x.example\n    access: { give_access: true, notify: true, role: r, website: w }\n    contacts:\n      - { email: Jane@X.example, access: true, notify: true }\n";
        let (desired, errors) = check(text, None);
        assert!(errors.is_empty(), "{errors:?}");
        let jane = &desired
            .state
            .customers
            .get("C")
            .unwrap()
            .contacts
            .get("jane@x.example")
            .unwrap();
        assert_eq!(
            (jane.role.as_str(), jane.website.as_deref()),
            ("r", Some("w"))
        );
        assert_eq!(
            jane.email.as_deref(),
            Some("jane@x.example"),
            "emails are stored in lower case"
        );
    }

    #[test]
    fn unmanaged_sections_are_checked_against_the_live_state() {
        let text = "customers:\n  - id: C\n    name: C\n    email: c@x.example\n    access: { give_access: true, notify: true, role: live-role }\n";
        let (_, offline) = check(text, None);
        assert!(
            offline.is_empty(),
            "offline, an unmanaged role cannot be checked: {offline:?}"
        );
        let mut live = State::empty();
        let (_, errors) = check(text, Some(&live));
        assert!(
            errors
                .iter()
                .any(|e| e.contains("role `live-role` is not defined")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.contains("`customer_access` feature")),
            "{errors:?}"
        );
        live.features.insert(Feature::CustomerAccess, true);
        live.notifications = Some(crate::state::NotificationSettings {
            url: Some("https://mail.example/hook".into()),
            auth_env: None,
            smtp: None,
            from: None,
            reply_to: None,
            login_url: Some("https://portal.example/login".into()),
            token_ttl_hours: 24,
            max_attempts: 10,
            template: None,
            reset_ttl_minutes: 60,
            reset_template: None,
        });
        live.roles.insert(
            "live-role".into(),
            crate::state::RoleState {
                name: "L".into(),
                base: "customer_center".into(),
                two_factor: Default::default(),
                permissions: Default::default(),
            },
        );
        let (_, errors) = check(text, Some(&live));
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn sections_present_are_managed_even_when_empty() {
        let (desired, _) = check("customers: []\nroles: []\n", None);
        assert!(desired.managed.customers && desired.managed.roles);
        assert!(!desired.managed.features && !desired.managed.websites);
    }

    fn notification_errors(block: &str) -> Vec<String> {
        check(&format!("notifications:\n{block}"), None).1
    }

    #[test]
    fn notifications_need_exactly_one_transport_and_what_it_needs() {
        let both = notification_errors(
            "  smtp: { url: smtp://127.0.0.1:25 }\n  url: https://hooks.example/x\n  from: a@x.example\n",
        );
        assert!(both.iter().any(|e| e.contains("not both")), "{both:?}");
        let none = notification_errors("  from: a@x.example\n");
        assert!(
            none.iter().any(|e| e.contains("needs a transport")),
            "{none:?}"
        );
        let smtp = notification_errors(
            "  smtp: { url: smtp://127.0.0.1:25, password: { env: P } }\n  auth_header: { env: H }\n",
        );
        for expected in [
            "needs a `username`",
            "email needs a sender",
            "`auth_header` belongs to a webhook",
        ] {
            assert!(
                smtp.iter().any(|e| e.contains(expected)),
                "{expected}: {smtp:?}"
            );
        }
        let fine = notification_errors(
            "  smtp: { url: smtp://127.0.0.1:25 }\n  from: \"Acme <no-reply@acme.example>\"\n",
        );
        assert!(fine.is_empty(), "{fine:?}");
    }

    #[test]
    fn notification_numbers_and_addresses_are_checked() {
        let errors = notification_errors(
            "  url: https://hooks.example/x\n  token_ttl_hours: 0\n  max_attempts: 0\n  reset_ttl_minutes: 100000\n  reply_to: not-an-address\n  login_url: \"\"\n",
        );
        for expected in [
            "`token_ttl_hours` must be between 1",
            "`max_attempts` must be at least 1",
            "`reset_ttl_minutes` must be between",
            "is not an email address",
            "`login_url` is empty",
        ] {
            assert!(
                errors.iter().any(|e| e.contains(expected)),
                "{expected}: {errors:?}"
            );
        }
    }

    #[test]
    fn a_repeated_email_and_an_unknown_role_are_errors_with_advice() {
        let text = "features: { customer_access: true }\nroles: [{ id: sales, name: Sales }]\ncustomers:\n  - { id: A, name: A, email: same@x.example, access: { give_access: true, role: sale } }\n  - { id: B, name: B, email: Same@X.example }\n";
        let (set, _) = load_text("t.yaml", text);
        let (_, found) = validate(&set, None);
        let role = found
            .iter()
            .find(|d| d.message.contains("role `sale` is not defined"))
            .expect("the unknown role is an error");
        assert_eq!(role.hint.as_deref(), Some("did you mean `sales`?"));
        let email = found
            .iter()
            .find(|d| d.message.contains("login email `same@x.example`"))
            .expect("the repeated email (compared in lower case) is an error");
        assert!(email.is_error());
    }

    #[test]
    fn access_past_its_expiry_is_planned_as_revoked() {
        let text = "features: { customer_access: true }\ncustomers:\n  - { id: A, name: A, email: a@x.example, access: { give_access: true, expires: 2001-01-01 } }\n";
        let (desired, errors) = check(text, None);
        assert!(errors.is_empty(), "{errors:?}");
        let login = &desired.state.customers.get("A").unwrap().record.login;
        assert!(!login.access, "expired access is not given");
        assert_eq!(login.expires.as_deref(), Some("2001-01-01T23:59:59Z"));
    }
}
