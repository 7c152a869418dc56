//! Custom roles: uniqueness, base roles, permission maximums and effective levels.

use std::collections::BTreeMap;

use super::{Context, Desired};
use crate::catalog::{self, Feature, Level, Permission};
use crate::manifest::diagnostic::{Diagnostic, Site};
use crate::manifest::load::{Declared, duplicate};
use crate::manifest::model::{Role, TwoFactor};
use crate::state::RoleState;

pub(super) fn roles(cx: &mut Context<'_>, desired: &Desired) -> BTreeMap<String, RoleState> {
    let mut declared: BTreeMap<&str, &Declared<Role>> = BTreeMap::new();
    for role in cx.set.roles.iter().flatten() {
        let id = role.value.id.as_str();
        if catalog::standard_role(id).is_some() {
            cx.error(
                &role.site.key("id"),
                format!("`{id}` is a standard role and cannot be redefined"),
            )
            .hint = Some(format!(
                "copy it instead: give your role another id and `base: {id}`"
            ));
        } else if let Some(first) = declared.get(id) {
            let d = duplicate(
                &format!("role `{id}`"),
                &cx.set.sources,
                &first.site.key("id"),
                role.site.key("id"),
            );
            cx.diagnostics.push(d);
        } else {
            cx.non_empty(&role.site, "id", id);
            cx.non_empty(&role.site, "name", &role.value.name);
            declared.insert(id, role);
        }
    }
    let mut resolved = BTreeMap::new();
    for id in declared.keys() {
        resolve(cx, desired, &declared, id, &mut Vec::new(), &mut resolved);
    }
    resolved
        .into_iter()
        .filter_map(|(id, state)| state.map(|s| (id, s)))
        .collect()
}

/// Computes a role's effective levels, resolving custom bases first. `None` marks a role
/// whose base is broken (already reported).
fn resolve(
    cx: &mut Context<'_>,
    desired: &Desired,
    declared: &BTreeMap<&str, &Declared<Role>>,
    id: &str,
    visiting: &mut Vec<String>,
    resolved: &mut BTreeMap<String, Option<RoleState>>,
) -> Option<BTreeMap<Permission, Level>> {
    if let Some(done) = resolved.get(id) {
        return done.as_ref().map(|role| role.permissions.clone());
    }
    if let Some(standard) = catalog::standard_role(id) {
        return Some(standard.permissions);
    }
    let role = declared.get(id)?;
    let base = role
        .value
        .base
        .clone()
        .unwrap_or_else(|| catalog::DEFAULT_ROLE.to_string());
    let base_site = role.site.key("base");
    if visiting.iter().any(|v| v == id) {
        let cycle = visiting.join(" → ");
        cx.error(
            &base_site,
            format!("role bases form a cycle: {cycle} → {id}"),
        );
        resolved.insert(id.to_string(), None);
        return None;
    }
    let base_levels =
        if declared.contains_key(base.as_str()) || catalog::standard_role(&base).is_some() {
            visiting.push(id.to_string());
            let levels = resolve(cx, desired, declared, &base, visiting, resolved);
            visiting.pop();
            levels
        } else {
            let known: Vec<String> = catalog::standard_roles()
                .iter()
                .map(|r| r.id.to_string())
                .chain(declared.keys().map(|k| k.to_string()))
                .collect();
            let d = Diagnostic::error(base_site, format!("base role `{base}` is not defined"))
                .suggest(&base, known.iter().map(String::as_str));
            cx.diagnostics.push(d);
            None
        };
    let state = base_levels.map(|levels| effective(cx, desired, role, base, levels));
    resolved.insert(id.to_string(), state.clone());
    state.map(|s| s.permissions)
}

fn effective(
    cx: &mut Context<'_>,
    desired: &Desired,
    role: &Declared<Role>,
    base: String,
    mut levels: BTreeMap<Permission, Level>,
) -> RoleState {
    for (permission, level) in &role.value.permissions {
        let max = permission.info().max;
        if *level > max {
            let site = role.site.key("permissions").key(permission.key());
            cx.error(&site, format!("`{permission}` can be at most `{max}` for a customer-center role, not `{level}`"));
        }
        levels.insert(*permission, *level);
    }
    levels.retain(|_, level| *level != Level::None);
    if role.value.two_factor == TwoFactor::Required {
        cx.require_feature(
            desired,
            Feature::TwoFactorAuthentication,
            || role.site.key("two_factor"),
            "a role with `two_factor: required`",
        );
    }
    RoleState {
        name: role.value.name.clone(),
        base,
        two_factor: role.value.two_factor,
        permissions: levels,
    }
}

/// Role ids that exist for logins to use: standard ones, declared ones, or live ones when
/// roles are not managed (`None` when that cannot be known offline).
pub(super) fn known_roles(cx: &Context<'_>, desired: &Desired) -> Option<Vec<String>> {
    let standard = catalog::standard_roles()
        .into_iter()
        .map(|r| r.id.to_string());
    let custom: Vec<String> = if desired.managed.roles {
        cx.set
            .roles
            .iter()
            .flatten()
            .map(|r| r.value.id.clone())
            .collect()
    } else {
        cx.live?.roles.keys().cloned().collect()
    };
    Some(standard.chain(custom).collect())
}

/// Warns about declared roles no login uses.
pub(super) fn warn_unused(
    cx: &mut Context<'_>,
    desired: &Desired,
    used: &std::collections::BTreeSet<String>,
) {
    if !desired.managed.customers {
        return;
    }
    for role in cx.set.roles.iter().flatten() {
        if desired.state.roles.contains_key(&role.value.id) && !used.contains(&role.value.id) {
            let site: Site = role.site.key("id");
            let message = format!("role `{}` is not used by any login", role.value.id);
            cx.diagnostics
                .push(Diagnostic::warning(Some(site), message));
        }
    }
}
