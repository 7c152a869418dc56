//! Access guardrails as code (DESIGN §9): declarative rules that every validate and plan
//! checks against the logins that have access, and that are stored in the live database so
//! the customer center and `portico access` can explain them.

use crate::catalog::{self, Level, Permission};
use crate::manifest::model::TwoFactor;
use crate::state::{LoginState, State};

pub use crate::manifest::policy::{
    AllowedEmailDomains, ForbidEmails, MaxLevel, RequireTwoFactor, Rule, Threshold,
};
pub use crate::state::PolicyState;

/// One policy as it applies to this login.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct PolicyCheck {
    /// The policy's id.
    pub id: String,
    /// Its message.
    pub message: String,
    /// Whether this login keeps it.
    pub kept: bool,
}

/// Compiles a forbid pattern.
///
/// # Errors
/// A malformed glob.
pub fn glob(pattern: &str) -> Result<globset::GlobMatcher, String> {
    globset::GlobBuilder::new(pattern)
        .case_insensitive(true)
        .literal_separator(false)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("`{pattern}` is not a valid pattern: {e}"))
}

/// One broken policy: where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The customer.
    pub customer: String,
    /// The contact's email, or `None` for the customer itself (its login, or its count).
    pub contact: Option<String>,
    /// What is wrong with it.
    pub detail: String,
}

/// A role's level for a permission: a custom role's own, else the standard role's.
pub fn level_of(state: &State, role: &str, permission: Permission) -> Level {
    match state.roles.get(role) {
        Some(r) => r
            .permissions
            .get(&permission)
            .copied()
            .unwrap_or(Level::None),
        None => catalog::standard_level(role, permission).unwrap_or(Level::None),
    }
}

/// What `role` gives for `permission` in this account: its level, or `none` while the
/// account feature the permission needs is off (Cases without Case Management, Customer
/// Payment without Online Customer Payments). What the report, `access` and `serve` show.
pub fn effective_level(state: &State, role: &str, permission: Permission) -> Level {
    match switched_off(state, permission) {
        Some(_) => Level::None,
        None => level_of(state, role, permission),
    }
}

/// The account feature that is off and so makes `permission` give nothing, if any.
pub fn switched_off(state: &State, permission: Permission) -> Option<crate::catalog::Feature> {
    permission.info().feature.filter(|f| !state.feature(*f))
}

fn two_factor(state: &State, role: &str) -> bool {
    state
        .roles
        .get(role)
        .is_some_and(|r| r.two_factor == TwoFactor::Required)
}

/// Why `login` (of customer `customer_id`) breaks `rule`, if it does. Count rules are
/// checked per customer by [`check`].
fn breaks(
    state: &State,
    customer_id: &str,
    login: &LoginState,
    rule: &Rule,
    globs: &[(String, globset::GlobMatcher)],
) -> Option<String> {
    let email = login.email.as_deref().unwrap_or_default();
    match rule {
        Rule::MaxLevel(r) => {
            let level = level_of(state, &login.role, r.permission);
            (level > r.level && !r.except_roles.iter().any(|e| *e == login.role)).then(|| {
                format!(
                    "{email} has `{}` at {} through role `{}` (the limit is {})",
                    r.permission.key(),
                    level.key(),
                    login.role,
                    r.level.key()
                )
            })
        }
        Rule::RequireTwoFactor(r) => {
            let level = level_of(state, &login.role, r.when.permission);
            (level >= r.when.at_least && !two_factor(state, &login.role)).then(|| {
                format!(
                    "{email} has `{}` at {} through role `{}`, which does not require two-factor authentication",
                    r.when.permission.key(),
                    level.key(),
                    login.role
                )
            })
        }
        Rule::ForbidEmails(_) => {
            let forms = email_forms(email);
            globs
                .iter()
                .find(|(_, g)| forms.iter().any(|form| g.is_match(form)))
                .map(|(p, _)| format!("{email} matches the forbidden pattern `{p}`"))
        }
        Rule::AllowedEmailDomains(r) => {
            let domain = email.rsplit_once('@').map(|(_, d)| d.to_lowercase())?;
            let customer_domain = state
                .customers
                .get(customer_id)
                .and_then(|c| c.record.login.email.as_deref())
                .and_then(|e| e.rsplit_once('@'))
                .map(|(_, d)| d.to_lowercase());
            let allowed = r.domains.iter().any(|d| d.eq_ignore_ascii_case(&domain))
                || (r.customer_email_domain && customer_domain.as_deref() == Some(domain.as_str()));
            (!allowed).then(|| {
                let mut ok: Vec<String> = r.domains.clone();
                if r.customer_email_domain {
                    ok.push(match customer_domain {
                        Some(d) => format!("the customer's own domain {d}"),
                        None => "the customer's own domain (the customer has no email)".into(),
                    });
                }
                format!("{email} is not in an allowed domain ({})", ok.join(", "))
            })
        }
        Rule::MaxLoginsPerCustomer(_) => None,
    }
}

/// A `forbid_emails` rule's globs, compiled once (invalid ones were refused by validation):
/// each pattern as written and as its confusable skeleton.
fn compiled(rule: &Rule) -> Vec<(String, globset::GlobMatcher)> {
    match rule {
        Rule::ForbidEmails(r) => r
            .patterns
            .iter()
            .flat_map(|p| [(p.clone(), p.clone()), (p.clone(), skeleton(p))])
            .filter_map(|(shown, p)| glob(&p).ok().map(|g| (shown, g)))
            .collect(),
        _ => Vec::new(),
    }
}

/// The forms of an address a forbidden pattern is matched against: as written, without a
/// `+tag` in the local part (`admin+x@` is delivered to `admin@`), and the confusable
/// skeleton of both (Unicode UTS #39: a Cyrillic `а` reads as a Latin `a`).
pub fn email_forms(email: &str) -> Vec<String> {
    let untagged = match email.split_once('@') {
        Some((local, domain)) => match local.split_once('+') {
            Some((base, _)) => format!("{base}@{domain}"),
            None => email.to_string(),
        },
        None => email.to_string(),
    };
    let mut forms = vec![
        email.to_string(),
        skeleton(email),
        skeleton(&untagged),
        untagged,
    ];
    forms.dedup();
    forms
}

/// The UTS #39 skeleton of lower-cased text.
fn skeleton(text: &str) -> String {
    unicode_security::skeleton(&text.to_lowercase()).collect()
}

/// Every violation of one policy by the logins that have access.
pub fn check(state: &State, policy: &PolicyState) -> Vec<Violation> {
    let globs = compiled(&policy.rule);
    let mut out = Vec::new();
    for (id, customer) in &state.customers {
        let logins = std::iter::once((None, &customer.record.login))
            .chain(customer.contacts.iter().map(|(e, l)| (Some(e), l)))
            .filter(|(_, l)| l.access);
        let mut with_access = 0u32;
        for (contact, login) in logins {
            with_access += 1;
            if let Some(detail) = breaks(state, id, login, &policy.rule, &globs) {
                out.push(Violation {
                    customer: id.to_string(),
                    contact: contact.map(|c| c.to_string()),
                    detail,
                });
            }
        }
        if let Rule::MaxLoginsPerCustomer(max) = policy.rule
            && with_access > max
        {
            out.push(Violation {
                customer: id.to_string(),
                contact: None,
                detail: format!(
                    "customer `{id}` has {with_access} logins with access (the limit is {max})"
                ),
            });
        }
    }
    out
}

/// How one login fares against every policy of `state`, for `portico access`.
pub fn checks_for(state: &State, customer_id: &str, login: &LoginState) -> Vec<PolicyCheck> {
    state
        .policies
        .iter()
        .map(|(id, policy)| {
            let kept = match &policy.rule {
                Rule::MaxLoginsPerCustomer(max) => {
                    state.customers.get(customer_id).is_none_or(|c| {
                        let n = std::iter::once(&c.record.login)
                            .chain(c.contacts.values())
                            .filter(|l| l.access)
                            .count();
                        n <= *max as usize
                    })
                }
                rule => {
                    !login.access
                        || breaks(state, customer_id, login, rule, &compiled(rule)).is_none()
                }
            };
            PolicyCheck {
                id: id.clone(),
                message: policy.message.clone(),
                kept,
            }
        })
        .collect()
}

#[cfg(test)]
mod forbid_tests {
    use super::*;

    fn forbidden(pattern: &str, email: &str) -> bool {
        let rule = Rule::ForbidEmails(ForbidEmails {
            patterns: vec![pattern.into()],
        });
        let globs = compiled(&rule);
        let forms = email_forms(email);
        globs
            .iter()
            .any(|(_, g)| forms.iter().any(|f| g.is_match(f)))
    }

    #[test]
    fn forbidden_patterns_see_through_tags_and_lookalikes() {
        for email in [
            "admin@acme.example",
            "ADMIN@acme.example",
            "admin+tag@acme.example",
            "\u{0430}dmin@acme.example",
            "\u{0430}dmin+x@acme.example",
            "adm\u{0456}n@acme.example",
        ] {
            assert!(forbidden("admin@*", email), "{email}");
        }
        for email in [
            "jane@acme.example",
            "administrator@acme.example",
            "badmin@x.example",
        ] {
            assert!(!forbidden("admin@*", email), "{email}");
        }
    }
}

#[cfg(test)]
mod level_tests {
    use super::*;
    use crate::catalog::Feature;

    #[test]
    fn a_permission_gives_nothing_while_its_feature_is_off() {
        let mut state = State::default();
        state.features.insert(Feature::CustomerAccess, true);
        state.roles.insert(
            "finance".into(),
            crate::state::RoleState {
                name: "Finance".into(),
                base: crate::catalog::DEFAULT_ROLE.into(),
                two_factor: TwoFactor::Off,
                permissions: [(Permission::CustomerPayment, Level::Edit)].into(),
            },
        );
        // Granted, but Online Customer Payments is off: nothing, for a custom role and for
        // the standard one alike; the granted level itself is unchanged.
        for role in ["finance", crate::catalog::DEFAULT_ROLE] {
            assert_eq!(
                level_of(&state, role, Permission::CustomerPayment),
                Level::Edit
            );
            assert_eq!(
                effective_level(&state, role, Permission::CustomerPayment),
                Level::None,
                "{role}"
            );
        }
        assert_eq!(
            effective_level(&state, crate::catalog::DEFAULT_ROLE, Permission::Cases),
            Level::None,
            "Cases needs Case Management"
        );
        // A permission no feature gates keeps its level.
        assert_eq!(
            effective_level(&state, crate::catalog::DEFAULT_ROLE, Permission::Invoice),
            Level::View
        );
        state.features.insert(Feature::OnlineCustomerPayments, true);
        state.features.insert(Feature::CaseManagement, true);
        assert_eq!(
            effective_level(&state, "finance", Permission::CustomerPayment),
            Level::Edit
        );
        assert_eq!(
            effective_level(&state, crate::catalog::DEFAULT_ROLE, Permission::Cases),
            Level::Edit
        );
    }
}
