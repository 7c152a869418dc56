//! The plan as JSON: the stable format for tools, and the saved-plan file
//! (`plan --out`, `apply --plan`). Its schema is `schemas/plan.schema.json`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::plan::{Action, Address, Change, FieldChange, Object, Origin, Plan, Summary};

/// The version of this format; bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;

/// A plan as JSON.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "portico plan")]
pub struct PlanDocument {
    /// Version of this format (currently 1).
    #[schemars(extend("const" = 1))]
    pub format_version: u32,
    /// The portico version that wrote it.
    pub portico_version: String,
    /// Short digest of the change list: what a reviewer approves.
    pub digest: String,
    /// Fingerprint of the live state the plan was computed from.
    pub live_fingerprint: String,
    /// Digest of the manifest files the plan was computed from.
    pub manifests_digest: String,
    /// Logins in the live account when planned.
    pub live_logins: usize,
    /// Counts per action.
    pub summary: Summary,
    /// Changes, in apply order.
    pub changes: Vec<ChangeDocument>,
    /// Warnings (protected objects kept, unmanaged sections …).
    pub warnings: Vec<String>,
}

/// One change.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeDocument {
    /// Resource address, e.g. `customer["CUST-0042"].contact["jane@acme.example"]`.
    pub address: String,
    /// The same address, structured.
    pub resource: Address,
    /// create / update / revoke / delete.
    pub action: Action,
    /// `manifests`, or `outside` when the change undoes an edit made outside portico.
    pub origin: Origin,
    /// Changed fields, old → new (`null` when absent).
    pub fields: Vec<FieldChange>,
    /// The live object (`null` on create).
    pub before: Option<Object>,
    /// The desired object (`null` on delete).
    pub after: Option<Object>,
    /// Where the initial password comes from when apply sets or resets it: an environment
    /// variable's or a file's name, never the password or its hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<crate::passwords::SecretRef>,
    /// Why, when the manifests alone do not say (`access expired 2027-03-31`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl PlanDocument {
    /// The document for a plan.
    pub fn new(plan: &Plan) -> PlanDocument {
        PlanDocument {
            format_version: FORMAT_VERSION,
            portico_version: env!("CARGO_PKG_VERSION").to_string(),
            digest: plan.digest(),
            live_fingerprint: plan.live_fingerprint.clone(),
            manifests_digest: plan.manifests_digest.clone(),
            live_logins: plan.live_logins,
            summary: plan.summary(),
            changes: plan
                .changes
                .iter()
                .map(|c| ChangeDocument {
                    address: c.address.to_string(),
                    resource: c.address.clone(),
                    action: c.action,
                    origin: c.origin,
                    fields: c.fields().into_owned(),
                    before: c.before.clone(),
                    after: c.after.clone(),
                    password: c.password.clone(),
                    reason: c.reason.clone(),
                })
                .collect(),
            warnings: plan.warnings.clone(),
        }
    }

    /// The plan this document describes.
    ///
    /// # Errors
    /// A message when the version is unknown or the content does not match its digest.
    pub fn into_plan(self) -> Result<Plan, String> {
        if self.format_version != FORMAT_VERSION {
            return Err(format!(
                "plan format version {} is not supported (this portico reads version {FORMAT_VERSION})",
                self.format_version
            ));
        }
        let plan = Plan {
            changes: self
                .changes
                .into_iter()
                .map(|c| Change {
                    address: c.resource,
                    action: c.action,
                    origin: c.origin,
                    fields: crate::plan::Fields::Listed(c.fields),
                    before: c.before,
                    after: c.after,
                    password: c.password,
                    reason: c.reason,
                })
                .collect(),
            warnings: self.warnings,
            live_fingerprint: self.live_fingerprint,
            manifests_digest: self.manifests_digest,
            live_logins: self.live_logins,
            read_mark: None,
            digest_memo: Default::default(),
        };
        if plan.digest() != self.digest {
            return Err("the plan file does not match its digest (edited or damaged)".into());
        }
        for change in &plan.changes {
            well_formed(change)
                .map_err(|why| format!("{}: {why} (edited or damaged)", change.address))?;
        }
        Ok(plan)
    }
}

/// Whether a change read from a file is one portico could have written: its objects fit its
/// address and its action.
fn well_formed(change: &Change) -> Result<(), String> {
    let fits = |object: &Object| {
        matches!(
            (&change.address, object),
            (Address::Feature(_), Object::Feature { .. })
                | (Address::LoginPolicy, Object::LoginPolicy(_))
                | (Address::Notifications, Object::Notifications(_))
                | (Address::Website(_), Object::Website(_))
                | (Address::Role(_), Object::Role(_))
                | (Address::Customer(_), Object::Customer(_))
                | (Address::Contact { .. }, Object::Contact(_))
                | (Address::Policy(_), Object::Policy(_))
                | (Address::OidcClient(_), Object::OidcClient(_))
        )
    };
    if change.before.iter().chain(&change.after).any(|o| !fits(o)) {
        return Err("its object is not of the kind its address names".into());
    }
    let shape = (change.before.is_some(), change.after.is_some());
    let expected = match change.action {
        Action::Create => (false, true),
        Action::Delete => (true, false),
        Action::Update | Action::Revoke => (true, true),
    };
    if shape != expected {
        return Err(format!(
            "a `{}` needs {}",
            change.action.as_str(),
            match expected {
                (false, true) => "`after` and no `before`",
                (true, false) => "`before` and no `after`",
                _ => "both `before` and `after`",
            }
        ));
    }
    let deletable = matches!(
        change.address,
        Address::Feature(_) | Address::LoginPolicy | Address::Notifications
    );
    if deletable && change.after.is_none() {
        return Err("this object is switched or changed, never deleted".into());
    }
    Ok(())
}

/// The plan as pretty JSON with a trailing newline.
pub fn render_json(plan: &Plan) -> String {
    let mut text = serde_json::to_string_pretty(&PlanDocument::new(plan)).expect("plans serialise");
    text.push('\n');
    text
}
