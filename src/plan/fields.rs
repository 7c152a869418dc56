//! Objects as flat `field = value` lists: what plans show and `--diff` compares.

use super::{FieldChange, Object};
use crate::catalog::Permission;
use crate::state::LoginState;

/// One displayed field of an object.
pub type Field = (String, String);

impl Object {
    /// The object's fields in display order; absent optional fields are left out.
    pub fn fields(&self) -> Vec<Field> {
        let mut out = Vec::new();
        let mut put = |name: &str, value: String| out.push((name.to_string(), value));
        match self {
            Object::Feature { enabled } => put("enabled", enabled.to_string()),
            Object::LoginPolicy(policy) => policy_fields(policy, &mut put),
            Object::Notifications(n) => notification_fields(n, &mut put),
            Object::Policy(policy) => {
                put("message", policy.message.clone());
                put("kind", policy.rule.kind().to_string());
                let rule = serde_json::to_value(&policy.rule).expect("a rule serialises");
                if let Some(body) = rule.as_object().and_then(|o| o.values().next()) {
                    put("rule", body.to_string());
                }
            }
            Object::Website(website) => {
                put("name", website.name.clone());
                put("url", website.url.clone());
            }
            Object::Role(role) => {
                put("name", role.name.clone());
                put("base", role.base.clone());
                put(
                    "two_factor",
                    format!("{:?}", role.two_factor).to_lowercase(),
                );
                // Every permission, `none` included, so a level that goes away reads `→ none`.
                for permission in Permission::ALL {
                    let level = role
                        .permissions
                        .get(permission)
                        .copied()
                        .unwrap_or_default();
                    put(&format!("permissions.{permission}"), level.to_string());
                }
            }
            Object::Customer(customer) => {
                put("name", customer.name.to_string());
                put("protect", customer.protect.to_string());
                login_fields(&customer.login, &mut put);
            }
            Object::Contact(login) => login_fields(login, &mut put),
            Object::OidcClient(client) => client_fields(client, &mut put),
        }
        out
    }
}

/// A client's fields; the secret shows only as stored and its `reset` marker, never a value.
fn client_fields(client: &crate::state::OidcClientState, put: &mut impl FnMut(&str, String)) {
    put("name", client.name.clone());
    for (i, uri) in client.redirect_uris.iter().enumerate() {
        put(&format!("redirect_uris[{i}]"), uri.clone());
    }
    for (i, uri) in client.post_logout_redirect_uris.iter().enumerate() {
        put(&format!("post_logout_redirect_uris[{i}]"), uri.clone());
    }
    if let Some(website) = &client.website {
        put("website", website.clone());
    }
    put("scopes", client.scopes.join(" "));
    match client.secret {
        None => put("public", "true".into()),
        Some(marker) => put("secret", format!("stored hashed (reset {marker})")),
    }
}

fn policy_fields(policy: &crate::manifest::model::LoginPolicy, put: &mut impl FnMut(&str, String)) {
    put(
        "lockout.max_failed_attempts",
        policy.lockout.max_failed_attempts.to_string(),
    );
    put(
        "lockout.duration_minutes",
        policy.lockout.duration_minutes.to_string(),
    );
    put(
        "session_timeout_minutes",
        policy.session_timeout_minutes.to_string(),
    );
    put("session_max_hours", policy.session_max_hours.to_string());
    put(
        "password.min_length",
        policy.password.min_length.to_string(),
    );
}

/// The notification settings, with a custom template's text, so a change reads as a diff
/// of its lines.
fn notification_fields(n: &crate::state::NotificationSettings, put: &mut impl FnMut(&str, String)) {
    let optional = [
        ("smtp.url", n.smtp.as_ref().map(|s| &s.url)),
        (
            "smtp.username",
            n.smtp.as_ref().and_then(|s| s.username.as_ref()),
        ),
        (
            "smtp.password.env",
            n.smtp.as_ref().and_then(|s| s.password_env.as_ref()),
        ),
        ("url", n.url.as_ref()),
        ("auth_header.env", n.auth_env.as_ref()),
        ("from", n.from.as_ref()),
        ("reply_to", n.reply_to.as_ref()),
        ("login_url", n.login_url.as_ref()),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            put(name, value.clone());
        }
    }
    put("token_ttl_hours", n.token_ttl_hours.to_string());
    put("max_attempts", n.max_attempts.to_string());
    // A custom template's text, so a change reads as a diff of its lines.
    if let Some(t) = &n.template {
        put("template.subject", t.subject.clone());
        put("template.text", t.text.clone());
        put(
            "template.html",
            t.html.clone().unwrap_or_else(|| "(none)".into()),
        );
    }
    put("reset_ttl_minutes", n.reset_ttl_minutes.to_string());
    if let Some(t) = &n.reset_template {
        put("reset_template.subject", t.subject.clone());
        put("reset_template.text", t.text.clone());
        put(
            "reset_template.html",
            t.html.clone().unwrap_or_else(|| "(none)".into()),
        );
    }
}

fn login_fields(login: &LoginState, put: &mut impl FnMut(&str, String)) {
    if let Some(name) = &login.name {
        put("name", name.to_string());
    }
    if let Some(email) = &login.email {
        put("email", email.to_string());
    }
    put("access", login.access.to_string());
    put("role", login.role.to_string());
    if let Some(website) = &login.website {
        put("website", website.to_string());
    }
    put("notify", login.notify.to_string());
    if let Some(expires) = &login.expires {
        put("expires", crate::clock::display(expires));
    }
    if let Some(marker) = login.password {
        put("password", format!("set by portico (reset {marker})"));
    }
}

/// The fields that differ between two versions of an object, in display order.
pub fn field_changes(before: Option<&Object>, after: Option<&Object>) -> Vec<FieldChange> {
    let old = before.map(Object::fields).unwrap_or_default();
    let new = after.map(Object::fields).unwrap_or_default();
    let lookup = |fields: &[Field], name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut names: Vec<&String> = new.iter().map(|(n, _)| n).collect();
    for (name, _) in &old {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
        .into_iter()
        .filter_map(|name| {
            let (o, n) = (lookup(&old, name), lookup(&new, name));
            // Never a value: only whether apply sets the password.
            if name == "password" {
                let change = match (&o, &n) {
                    (_, None) => return None,
                    (None, Some(_)) => "will be set",
                    (Some(a), Some(b)) if a != b => "will be reset",
                    _ => return None,
                };
                return Some(FieldChange {
                    field: name.clone(),
                    old: None,
                    new: Some(change.into()),
                });
            }
            (o != n).then(|| FieldChange {
                field: name.clone(),
                old: o,
                new: n,
            })
        })
        .collect()
}
