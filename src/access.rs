//! `portico access EMAIL`: what one login can do and why, explained from the managed state
//! (live or intended) and, when read from the database, the login's runtime data.

use schemars::JsonSchema;
use serde::Serialize;

use crate::catalog::{self, Feature, Level, Permission};
use crate::manifest::model::TwoFactor;
use crate::state::{LoginState, State, normalize_email};
use crate::store::LoginRuntime;

/// Everything `access` reports about one login (`--format json`).
#[derive(Clone, Debug, Serialize, JsonSchema)]
#[schemars(title = "portico access report")]
pub struct AccessReport {
    /// The login's email (lower case).
    pub email: String,
    /// Whether the login can log in now.
    pub can_log_in: bool,
    /// Each condition that refuses the login, in the order the customer center checks them.
    pub refused_because: Vec<String>,
    /// `live` (database) or `manifests` (the intended state, `-f`).
    pub source: String,
    /// Resource address.
    pub address: String,
    /// The customer.
    pub customer: Named,
    /// `customer` (the customer's own login) or `contact`.
    pub login_kind: String,
    /// Contact name, when it has one.
    pub name: Option<String>,
    /// Whether access is given.
    pub access: bool,
    /// Whether the account's Customer Access feature is on.
    pub customer_access_feature: bool,
    /// The website, when assigned.
    pub website: Option<NamedUrl>,
    /// The role and where its levels come from.
    pub role: RoleReport,
    /// Whether a second factor is required at login.
    pub two_factor_required: bool,
    /// When access ends (UTC), when it does.
    pub expires: Option<String>,
    /// Organisation policies (`policies:`) and whether this login keeps each.
    pub policies: Vec<PolicyCheck>,
    /// Runtime facts from the database (absent for `-f`).
    pub runtime: Option<RuntimeReport>,
}

pub use crate::policy::PolicyCheck;

/// An id and display name.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Named {
    /// Identifier.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// A website.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct NamedUrl {
    /// Identifier.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Base URL.
    pub url: String,
}

/// The login's role.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct RoleReport {
    /// Role id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Whether it is a read-only standard role.
    pub standard: bool,
    /// The role it was copied from (custom roles).
    pub base: Option<String>,
    /// Every catalog permission with its effective level.
    pub permissions: Vec<PermissionReport>,
}

/// One permission's effective level and where it comes from.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct PermissionReport {
    /// Permission key.
    pub permission: String,
    /// Effective level.
    pub level: String,
    /// `standard role customer_center`, `base role X` or `role X`.
    pub from: String,
}

/// Runtime data the customer center owns.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct RuntimeReport {
    /// A password hash is stored.
    pub password_set: bool,
    /// When the password was last set.
    pub password_set_at: Option<String>,
    /// Failed attempts since the last successful login.
    pub failed_attempts: i64,
    /// Locked until (when locked now).
    pub locked_until: Option<String>,
    /// Last successful login.
    pub last_login_at: Option<String>,
    /// The newest new-access notification: status and when queued.
    pub notification: Option<String>,
    /// The newest set-password link: usable / used / revoked / expired, and its expiry.
    pub set_password_link: Option<String>,
    /// The newest history entry that touched this login.
    pub last_change: Option<String>,
    /// Its newest sign-in events (`portico serve`), newest first.
    pub recent_events: Vec<crate::store::serve::EventRow>,
    /// Its passkeys (registered on `portico serve`'s home page).
    #[serde(default)]
    pub passkeys: Vec<crate::store::serve::PasskeySummary>,
}

/// Finds the login with `email` in `state`: (customer id, contact email or `None`, login).
pub fn find<'a>(
    state: &'a State,
    email: &str,
) -> Option<(&'a str, Option<&'a str>, &'a LoginState)> {
    let email = normalize_email(email);
    state.customers.iter().find_map(|(id, customer)| {
        if customer.record.login.email.as_deref() == Some(email.as_str()) {
            return Some((id.as_str(), None, &customer.record.login));
        }
        customer
            .contacts
            .find_index(&email)
            .ok()
            .and_then(|index| customer.contacts.get_indexed(index))
            .map(|(key, login)| (id.as_str(), Some(key.as_str()), login))
    })
}

/// Emails close to `email`, for "did you mean" (at most three).
pub fn near_matches(state: &State, email: &str) -> Vec<String> {
    let email = normalize_email(email);
    let mut scored: Vec<(f64, &str)> = state
        .customers
        .values()
        .flat_map(|c| {
            std::iter::once(c.record.login.email.as_deref())
                .chain(c.contacts.keys().map(|k| Some(k.as_str())))
        })
        .flatten()
        .map(|candidate| (strsim::jaro_winkler(&email, candidate), candidate))
        .filter(|(score, _)| *score >= 0.85)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored
        .into_iter()
        .take(3)
        .map(|(_, e)| e.to_string())
        .collect()
}

/// Explains the login with `email`; `None` when no login has it.
pub fn report(
    state: &State,
    email: &str,
    runtime: Option<&LoginRuntime>,
    source: &str,
) -> Option<AccessReport> {
    let (customer_id, contact, login) = find(state, email)?;
    let customer = state.customers.get(customer_id)?;
    let address = match contact {
        None => crate::plan::Address::Customer(customer_id.to_string()),
        Some(email) => crate::plan::Address::Contact {
            customer: customer_id.to_string(),
            email: email.to_string(),
        },
    };
    let role = switched_off(state, role_report(state, &login.role));
    let two_factor_required = state
        .roles
        .get(login.role.as_str())
        .is_some_and(|r| r.two_factor == TwoFactor::Required);
    let feature = state.feature(Feature::CustomerAccess);
    let mut report = AccessReport {
        email: login.email.as_deref().unwrap_or_default().to_string(),
        can_log_in: false,
        refused_because: Vec::new(),
        source: source.to_string(),
        address: address.to_string(),
        customer: Named {
            id: customer_id.to_string(),
            name: customer.record.name.to_string(),
        },
        login_kind: if contact.is_some() {
            "contact"
        } else {
            "customer"
        }
        .into(),
        name: login.name.as_deref().map(str::to_string),
        access: login.access,
        customer_access_feature: feature,
        website: login.website.as_ref().map(|id| NamedUrl {
            id: id.to_string(),
            name: state
                .websites
                .get(id.as_str())
                .map(|w| w.name.clone())
                .unwrap_or_default(),
            url: state
                .websites
                .get(id.as_str())
                .map(|w| w.url.clone())
                .unwrap_or_default(),
        }),
        role,
        two_factor_required,
        expires: login.expires.as_deref().map(str::to_string),
        policies: crate::policy::checks_for(state, customer_id, login),
        runtime: runtime.map(runtime_report),
    };
    report.refused_because = refusals(state, login, &report, runtime);
    report.can_log_in = report.refused_because.is_empty();
    Some(report)
}

/// Every condition that keeps the login out, first the account's, then the login's: the
/// sign-in decision's refusals (DESIGN §10.1), each said with what to do about it.
fn refusals(
    state: &State,
    login: &crate::state::LoginState,
    report: &AccessReport,
    runtime: Option<&LoginRuntime>,
) -> Vec<String> {
    use crate::signin::Refusal;
    let facts = runtime.map(|r| crate::signin::Runtime {
        password_set: r.password_set,
        locked_until: r.locked_until.clone(),
        failed_attempts: r.failed_attempts,
        // Whether a second factor is asked for changes no reason why not.
        second_factor: false,
    });
    let now = crate::clock::format(crate::clock::now());
    let decision = crate::signin::decide(
        state,
        login,
        facts.as_ref(),
        crate::signin::Site::Anywhere,
        &now,
    );
    let mut out = Vec::new();
    for refusal in decision.refusals {
        match refusal {
            Refusal::FeatureOff => out.push(
                "the account's Customer Access feature (`customer_access`) is off".into(),
            ),
            Refusal::NoAccess => out.push(
                "access is not given to this login (`give_access` / `access` is false)".into(),
            ),
            Refusal::Expired(at) => out.push(format!(
                "access expired {} (the customer center refuses it; the next apply revokes it)",
                crate::clock::display(&at)
            )),
            Refusal::Locked {
                until,
                failed_attempts,
            } => out.push(format!(
                "locked after {failed_attempts} failed attempts until {until} (`portico unlock {}` clears it)",
                report.email
            )),
            // Said only when access is given: otherwise that is the reason to fix first.
            Refusal::NoPassword if report.access => {
                if let Some(runtime) = runtime {
                    out.push(format!("no password is set yet: {}", no_password(report, runtime)));
                }
            }
            Refusal::NoPassword => {}
            Refusal::WrongWebsite { allowed } => {
                out.push(format!("this login signs in only on website `{allowed}`"));
            }
        }
    }
    out
}

/// Why a login with access has no password yet: what happened to its email and link.
fn no_password(report: &AccessReport, runtime: &LoginRuntime) -> String {
    let undelivered = runtime
        .notification
        .as_ref()
        .filter(|n| n.status == "pending" || n.status == "failed");
    match (&runtime.link, undelivered) {
        // A link issued for a message that never left is not waiting for anyone.
        (_, Some(n)) if n.attempts > 0 || n.status == "failed" => format!(
            "its new-access email was never delivered ({} after {} attempt(s){}): fix the cause, then `portico notify{}`",
            n.status,
            n.attempts,
            n.last_error
                .as_deref()
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default(),
            if n.status == "failed" {
                " --retry-failed"
            } else {
                " --retry-now"
            }
        ),
        (Some(link), _) if link.state == "usable" => {
            format!(
                "a set-password link is waiting to be used (expires {})",
                link.expires_at
            )
        }
        (Some(link), _) => format!(
            "its last set-password link is {} (`portico resend {}` sends a fresh one)",
            link.state, report.email
        ),
        (None, _)
            if runtime
                .notification
                .as_ref()
                .is_some_and(|n| n.status == "pending") =>
        {
            "its new-access notification is still queued (deliver it with `portico notify`)"
                .to_string()
        }
        (None, _) => format!(
            "no set-password link was sent (`portico resend {}`)",
            report.email
        ),
    }
}

fn runtime_report(runtime: &LoginRuntime) -> RuntimeReport {
    RuntimeReport {
        password_set: runtime.password_set,
        password_set_at: runtime.password_set_at.clone(),
        failed_attempts: runtime.failed_attempts,
        locked_until: runtime.locked_until.clone().filter(|_| runtime.locked),
        last_login_at: runtime.last_login_at.clone(),
        notification: runtime.notification.as_ref().map(|n| {
            let mut text = format!("{} (queued {}", n.status, n.created_at);
            if let Some(sent) = &n.sent_at {
                text.push_str(&format!(", sent {sent}"));
            } else if n.attempts > 0 {
                text.push_str(&format!(", {} attempt(s)", n.attempts));
                if let Some(error) = &n.last_error {
                    text.push_str(&format!(", last error: {error}"));
                }
            }
            text.push(')');
            text
        }),
        set_password_link: runtime
            .link
            .as_ref()
            .map(|l| format!("{} (expires {})", l.state, l.expires_at)),
        last_change: runtime.last_change.as_ref().map(|c| {
            format!(
                "{} {} at {} by {}{}",
                c.kind,
                c.id,
                c.applied_at,
                c.actor,
                c.git_commit
                    .as_ref()
                    .map(|g| format!(", commit {}", g.chars().take(12).collect::<String>()))
                    .unwrap_or_default()
            )
        }),
        recent_events: Vec::new(),
        passkeys: Vec::new(),
    }
}

/// A permission whose account feature is off gives nothing, whatever the role grants: its
/// level becomes `none`, and its origin says why.
fn switched_off(state: &State, mut role: RoleReport) -> RoleReport {
    for (line, permission) in role.permissions.iter_mut().zip(Permission::ALL) {
        if let Some(feature) = crate::policy::switched_off(state, *permission)
            && line.level != Level::None.key()
        {
            line.from = format!(
                "feature {} is off ({} grants {})",
                feature.key(),
                line.from,
                line.level
            );
            line.level = Level::None.key().into();
        }
    }
    role
}

/// The role with each permission's level as granted and its origin.
fn role_report(state: &State, id: &str) -> RoleReport {
    if let Some(standard) = catalog::standard_role(id) {
        let permissions = Permission::ALL
            .iter()
            .map(|p| PermissionReport {
                permission: p.key().into(),
                level: standard
                    .permissions
                    .get(p)
                    .copied()
                    .unwrap_or(Level::None)
                    .key()
                    .into(),
                from: format!("standard role {id}"),
            })
            .collect();
        return RoleReport {
            id: id.to_string(),
            name: standard.name.to_string(),
            standard: true,
            base: None,
            permissions,
        };
    }
    let Some(role) = state.roles.get(id) else {
        return RoleReport {
            id: id.to_string(),
            name: String::new(),
            standard: false,
            base: None,
            permissions: Vec::new(),
        };
    };
    let base = role_report(state, &role.base);
    let permissions = Permission::ALL
        .iter()
        .zip(&base.permissions)
        .map(|(p, inherited)| {
            let level = role.permissions.get(p).copied().unwrap_or(Level::None);
            let from = if level.key() == inherited.level {
                format!("base role {}", role.base)
            } else {
                format!("role {id}")
            };
            PermissionReport {
                permission: p.key().into(),
                level: level.key().into(),
                from,
            }
        })
        .collect();
    RoleReport {
        id: id.to_string(),
        name: role.name.clone(),
        standard: false,
        base: Some(role.base.clone()),
        permissions,
    }
}

/// The report as text for people.
pub fn render_text(r: &AccessReport) -> String {
    let mut out = String::new();
    verdict_text(&mut out, r);
    login_text(&mut out, r);
    if let Some(rt) = &r.runtime {
        runtime_text(&mut out, rt);
    }
    permissions_text(&mut out, r);
    out
}

/// The verdict and the reasons for a refusal.
fn verdict_text(out: &mut String, r: &AccessReport) {
    let verdict = if r.can_log_in {
        "CAN log in".to_string()
    } else {
        "CANNOT log in".to_string()
    };
    out.push_str(&format!("{}: {verdict}  ({} state)\n", r.email, r.source));
    for reason in &r.refused_because {
        out.push_str(&format!("  refused: {reason}\n"));
    }
}

/// What the manifests say of the login: customer, access, website, role, expiry, policies.
fn login_text(out: &mut String, r: &AccessReport) {
    out.push_str(&format!("  address:          {}\n", r.address));
    out.push_str(&format!(
        "  customer:         {} ({}), {} login{}\n",
        r.customer.id,
        r.customer.name,
        r.login_kind,
        r.name
            .as_ref()
            .map(|n| format!(" of {n}"))
            .unwrap_or_default()
    ));
    out.push_str(&format!(
        "  access:           {} (feature customer_access {})\n",
        if r.access { "given" } else { "not given" },
        if r.customer_access_feature {
            "on"
        } else {
            "off"
        }
    ));
    out.push_str(&format!(
        "  website:          {}\n",
        r.website
            .as_ref()
            .map(|w| format!("{} ({}, {})", w.id, w.name, w.url))
            .unwrap_or_else(|| "(none)".into())
    ));
    let base = r
        .role
        .base
        .as_ref()
        .map(|b| format!(", copy of {b}"))
        .unwrap_or_default();
    let kind = if r.role.standard {
        "standard role"
    } else {
        "custom role"
    };
    out.push_str(&format!(
        "  role:             {} ({}; {kind}{base})\n",
        r.role.id, r.role.name
    ));
    out.push_str(&format!(
        "  two-factor:       {}\n",
        if r.two_factor_required {
            "required"
        } else {
            "not required"
        }
    ));
    if let Some(expires) = &r.expires {
        out.push_str(&format!(
            "  expires:          {}\n",
            crate::clock::display(expires)
        ));
    }
    for p in &r.policies {
        out.push_str(&format!(
            "  policy:           {} — {} ({})\n",
            p.id,
            if p.kept { "kept" } else { "BROKEN" },
            p.message
        ));
    }
}

/// What the database knows beyond the manifests: password, lockout, messages, events.
fn runtime_text(out: &mut String, rt: &RuntimeReport) {
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    out.push_str(&format!(
        "  password:         {}\n",
        if rt.password_set {
            format!(
                "set{}",
                rt.password_set_at
                    .as_ref()
                    .map(|t| format!(" at {t}"))
                    .unwrap_or_default()
            )
        } else {
            "not set".into()
        }
    ));
    out.push_str(&format!(
        "  lockout:          {}\n",
        match &rt.locked_until {
            Some(until) => format!(
                "LOCKED until {until} ({} failed attempts)",
                rt.failed_attempts
            ),
            None => format!("not locked ({} failed attempts)", rt.failed_attempts),
        }
    ));
    out.push_str(&format!(
        "  last login:       {}\n",
        show(&rt.last_login_at)
    ));
    out.push_str(&format!("  notification:     {}\n", show(&rt.notification)));
    out.push_str(&format!(
        "  password link:    {}\n",
        show(&rt.set_password_link)
    ));
    out.push_str(&format!("  last changed by:  {}\n", show(&rt.last_change)));
    if !rt.recent_events.is_empty() {
        out.push_str("  recent sign-in activity (newest first):\n");
        for e in &rt.recent_events {
            out.push_str(&format!(
                "    {}  {}{}{}\n",
                e.at,
                e.kind,
                e.address
                    .as_ref()
                    .map(|a| format!(" from {a}"))
                    .unwrap_or_default(),
                e.detail
                    .as_ref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default(),
            ));
        }
    }
    if !rt.passkeys.is_empty() {
        out.push_str("  passkeys:\n");
        for p in &rt.passkeys {
            let used = p.last_used_at.as_deref().unwrap_or("never");
            out.push_str(&format!(
                "    {}  added {}, last used {used}\n",
                crate::unicode::escape_invisible(&p.name),
                p.created_at
            ));
        }
    }
}

/// The role's effective permissions.
fn permissions_text(out: &mut String, r: &AccessReport) {
    out.push_str("  permissions:\n");
    for p in &r.role.permissions {
        out.push_str(&format!(
            "    {:<22} {:<7} from {}\n",
            p.permission, p.level, p.from
        ));
    }
}
