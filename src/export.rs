//! Writing manifests from a live [`State`], in the shortest form that means the same thing,
//! so an existing account is adopted in one step (`export`, then `plan` shows no changes).

use std::collections::BTreeMap;
use std::path::PathBuf;

use compact_str::CompactString;

use crate::catalog::{self, Level, Permission};
use crate::manifest::model::{
    Contact, Customer, CustomerAccess, Document, EnvRef, Notifications, Role, Smtp, TemplateFiles,
    Website,
};
use crate::state::{CustomerState, RoleState, State};
use crate::validate::Sections;

/// The schema file written beside exported manifests, so editors check them offline.
pub const SCHEMA_FILE: &str = "manifest.schema.json";

/// What to export and how to split it.
#[derive(Clone, Copy, Debug)]
pub struct ExportOptions {
    /// The sections to write; others are left out (and so stay unmanaged).
    pub sections: Sections,
    /// Customers per file.
    pub per_file: usize,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            sections: Sections {
                features: true,
                websites: true,
                login_policy: true,
                notifications: true,
                roles: true,
                customers: true,
                policies: true,
                oidc_clients: true,
            },
            per_file: 2_000,
        }
    }
}

/// Where export writes the applied message templates.
const TEMPLATE_FILES: [&str; 3] = [
    "templates/access.subject",
    "templates/access.txt",
    "templates/access.html",
];

/// Where export writes the applied password-reset templates.
const RESET_FILES: [&str; 3] = [
    "templates/reset.subject",
    "templates/reset.txt",
    "templates/reset.html",
];

/// The file names of a template whose sources are `t`, under `names`.
fn template_files(names: [&str; 3], t: &crate::state::TemplateSources) -> TemplateFiles {
    TemplateFiles {
        subject: names[0].into(),
        text: names[1].into(),
        html: t.html.as_ref().map(|_| names[2].into()),
    }
}

/// One file to write, relative to the export folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportFile {
    /// Path relative to the export folder.
    pub path: PathBuf,
    /// The YAML text, starting with the editor schema comment.
    pub text: String,
}

/// What an export produced, and what it could not express.
#[derive(Clone, Debug, Default)]
pub struct Export {
    /// Files in write order.
    pub files: Vec<ExportFile>,
    /// Live values manifests cannot express; plan will show them as changes.
    pub warnings: Vec<String>,
}

/// Turns the live state into manifest files: `account.yaml` (features, login policy,
/// notifications), `websites.yaml`, `roles.yaml` and `customers/customers-NNNN.yaml`, customers
/// sorted by id. Managed sections are always written, empty ones as `[]`, so that pruning
/// covers them exactly as it covered the exported account. Passwords are never exported.
pub fn export(state: &State, options: ExportOptions) -> Export {
    let sections = options.sections;
    let mut out = Export::default();
    let account = Document {
        features: sections.features.then(|| {
            state
                .features
                .iter()
                .filter(|(_, on)| **on)
                .map(|(f, on)| (*f, *on))
                .collect()
        }),
        login_policy: state.login_policy.clone().filter(|_| sections.login_policy),
        notifications: state
            .notifications
            .as_ref()
            .filter(|_| sections.notifications)
            .map(notifications_document),
        ..Document::default()
    };
    // The applied templates' text, as the files `account.yaml` names.
    if let Some(n) = state
        .notifications
        .as_ref()
        .filter(|_| sections.notifications)
    {
        out.files.extend(template_texts(n));
    }
    if account.features.is_some()
        || account.login_policy.is_some()
        || account.notifications.is_some()
    {
        out.push("account.yaml", "", &account);
    }
    if sections.websites {
        out.push("websites.yaml", "", &websites_document(state));
    }
    if sections.roles {
        out.push("roles.yaml", "", &roles_document(state));
    }
    if sections.customers {
        export_customers(state, options.per_file.max(1), &mut out);
    }
    if sections.policies && !state.policies.is_empty() {
        out.push("policies.yaml", "", &policies_document(state));
    }
    if sections.oidc_clients && !state.oidc_clients.is_empty() {
        let (document, warnings) = clients_document(state);
        out.push("oidc_clients.yaml", "", &document);
        out.warnings.extend(warnings);
    }
    out
}

/// The environment variable an exported confidential client's secret is named by.
fn client_secret_env(id: &str) -> String {
    let upper: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("OIDC_CLIENT_SECRET_{upper}")
}

/// `oidc_clients.yaml`. A confidential client's secret is written as the argon2id hash it is
/// stored as (with its `reset` marker): a secret from `env` or `file` is at least
/// [`crate::validate::MIN_CLIENT_SECRET`] characters, so its hash reveals nothing usable.
/// One without a stored hash is written naming an environment variable, with a warning.
fn clients_document(state: &State) -> (Document, Vec<String>) {
    use crate::manifest::model::PasswordSource;
    let mut warnings = Vec::new();
    let clients = state
        .oidc_clients
        .iter()
        .map(|(id, c)| crate::manifest::oidc::OidcClient {
            id: id.clone(),
            name: c.name.clone(),
            redirect_uris: c.redirect_uris.clone(),
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
            website: c.website.clone(),
            scopes: (c.scopes.len() != crate::manifest::oidc::SCOPES.len())
                .then(|| c.scopes.clone()),
            secret: c.secret.map(|marker| {
                let hash = state.client_secret_hashes.get(id).cloned();
                let env = hash.is_none().then(|| client_secret_env(id));
                if let Some(env) = &env {
                    warnings.push(format!(
                        "oidc_client[{id:?}]: no secret is stored; `secret` names ${env}: set it to the client's secret before planning"
                    ));
                }
                PasswordSource {
                    env,
                    file: None,
                    argon2: hash.map(Into::into),
                    reset: (marker != 0).then_some(marker),
                }
            }),
            public: c.secret.is_none(),
        })
        .collect();
    let document = Document {
        oidc_clients: Some(clients),
        ..Document::default()
    };
    (document, warnings)
}

/// `websites.yaml`.
fn websites_document(state: &State) -> Document {
    let websites = state
        .websites
        .iter()
        .map(|(id, w)| Website {
            id: id.clone(),
            name: w.name.clone(),
            url: w.url.clone(),
        })
        .collect();
    Document {
        websites: Some(websites),
        ..Document::default()
    }
}

/// `roles.yaml`: the custom roles, as their differences from their base.
fn roles_document(state: &State) -> Document {
    let roles = state
        .roles
        .iter()
        .map(|(id, role)| export_role(state, id, role))
        .collect();
    Document {
        roles: Some(roles),
        ..Document::default()
    }
}

/// `policies.yaml`.
fn policies_document(state: &State) -> Document {
    let policies = state
        .policies
        .iter()
        .map(|(id, p)| crate::manifest::model::Policy::from_rule(id, &p.message, &p.rule))
        .collect();
    Document {
        policies: Some(policies),
        ..Document::default()
    }
}

/// The notification settings as the manifest writes them: secrets as the names of the
/// variables that hold them, templates as the files beside `account.yaml`.
fn notifications_document(n: &crate::state::NotificationSettings) -> Notifications {
    Notifications {
        smtp: n.smtp.as_ref().map(|s| Smtp {
            url: s.url.clone(),
            username: s.username.clone(),
            password: s.password_env.clone().map(|env| EnvRef { env }),
        }),
        url: n.url.clone(),
        auth_header: n.auth_env.clone().map(|env| EnvRef { env }),
        from: n.from.clone(),
        reply_to: n.reply_to.clone(),
        login_url: n.login_url.clone(),
        token_ttl_hours: n.token_ttl_hours,
        max_attempts: n.max_attempts,
        template: n
            .template
            .as_ref()
            .map(|t| template_files(TEMPLATE_FILES, t)),
        reset_ttl_minutes: n.reset_ttl_minutes,
        reset_template: n
            .reset_template
            .as_ref()
            .map(|t| template_files(RESET_FILES, t)),
    }
}

/// The applied templates' texts, as files.
fn template_texts(n: &crate::state::NotificationSettings) -> Vec<ExportFile> {
    let mut files = Vec::new();
    let templates = [
        (TEMPLATE_FILES, n.template.as_ref()),
        (RESET_FILES, n.reset_template.as_ref()),
    ];
    for (names, t) in templates {
        let Some(t) = t else { continue };
        let texts = [Some(&t.subject), Some(&t.text), t.html.as_ref()];
        for (path, text) in names.iter().zip(texts) {
            if let Some(text) = text {
                files.push(ExportFile {
                    path: PathBuf::from(path),
                    text: text.clone(),
                });
            }
        }
    }
    files
}

impl Export {
    fn push(&mut self, path: &str, schema_prefix: &str, document: &Document) {
        let yaml = serde_yaml::to_string(document).expect("a manifest serialises");
        let text = format!(
            "# yaml-language-server: $schema={schema_prefix}{SCHEMA_FILE}\n# Exported by portico from the live database.\n{yaml}"
        );
        self.files.push(ExportFile {
            path: PathBuf::from(path),
            text,
        });
    }
}

fn export_customers(state: &State, per_file: usize, out: &mut Export) {
    let customers: Vec<(&CompactString, &CustomerState)> = state.customers.iter().collect();
    let chunks: Vec<&[(&CompactString, &CustomerState)]> = if customers.is_empty() {
        vec![&[]]
    } else {
        customers.chunks(per_file).collect()
    };
    for (index, chunk) in chunks.into_iter().enumerate() {
        let list = chunk
            .iter()
            .map(|(id, customer)| export_customer(id, customer, &mut out.warnings))
            .collect();
        let document = Document {
            customers: Some(list),
            ..Document::default()
        };
        let path = format!("customers/customers-{:04}.yaml", index + 1);
        out.push(&path, "../", &document);
    }
}

/// A role as its base plus the permissions whose level differs from the base's.
fn export_role(state: &State, id: &str, role: &RoleState) -> Role {
    let base_levels = levels_of(state, &role.base);
    let permissions = Permission::ALL
        .iter()
        .filter_map(|p| {
            let mine = role.permissions.get(p).copied().unwrap_or(Level::None);
            let base = base_levels.get(p).copied().unwrap_or(Level::None);
            (mine != base).then_some((*p, mine))
        })
        .collect();
    Role {
        id: id.to_string(),
        name: role.name.clone(),
        base: (role.base != catalog::DEFAULT_ROLE).then(|| role.base.clone()),
        permissions,
        two_factor: role.two_factor,
    }
}

/// Effective levels of a standard or custom role (empty when unknown).
fn levels_of(state: &State, id: &str) -> BTreeMap<Permission, Level> {
    if let Some(standard) = catalog::standard_role(id) {
        return standard.permissions;
    }
    state
        .roles
        .get(id)
        .map(|r| r.permissions.clone())
        .unwrap_or_default()
}

fn export_customer(id: &str, customer: &CustomerState, warnings: &mut Vec<String>) -> Customer {
    let own = &customer.record.login;
    let contacts = customer
        .contacts
        .values()
        .map(|contact| {
            if contact.expires.is_none() && own.expires.is_some() {
                warnings.push(format!(
                    "customer[{id:?}].contact[{:?}] has no expiry while its customer's access expires; manifests cannot say that (a contact inherits the customer's `expires`), so plan will show it gaining that expiry",
                    contact.email.as_deref().unwrap_or_default()
                ));
            }
            if contact.website.is_none() && own.website.is_some() {
                warnings.push(format!(
                    "customer[{id:?}].contact[{:?}] has no website while its customer has one; manifests cannot say that (a contact inherits the customer's website), so plan will show it gaining that website",
                    contact.email.as_deref().unwrap_or_default()
                ));
            }
            Contact {
                email: contact.email.clone().unwrap_or_default(),
                name: contact.name.clone(),
                access: contact.access,
                role: (contact.role != own.role).then(|| contact.role.clone()),
                website: contact
                    .website
                    .clone()
                    .filter(|w| Some(w) != own.website.as_ref()),
                notify: contact.notify,
                password: None,
                expires: contact
                    .expires
                    .clone()
                    .filter(|e| Some(e) != own.expires.as_ref())
                    .map(|e| crate::clock::display(&e).into()),
            }
        })
        .collect();
    Customer {
        id: id.into(),
        name: customer.record.name.clone(),
        email: own.email.clone(),
        access: CustomerAccess {
            give_access: own.access,
            role: (own.role != catalog::DEFAULT_ROLE).then(|| own.role.clone()),
            website: own.website.clone(),
            notify: own.notify,
            password: None,
            expires: own
                .expires
                .as_deref()
                .map(|e| crate::clock::display(e).into()),
        },
        protect: customer.record.protect,
        contacts,
    }
}
