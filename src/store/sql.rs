//! The SQL both engines share, and the plan's batches as an ordered list of statements.
//!
//! Every write is one static statement whose single parameter is a JSON array of rows
//! (SQLite `json_each`, PostgreSQL `jsonb_array_elements`): set-based, a round trip per
//! [`BATCH`] rows, and no SQL built from strings.

use super::rows::{Batches, standard_role_rows};
use super::{BATCH, json};

/// The write statements of one engine, in the order apply runs them.
pub struct Writes {
    pub upsert_features: &'static str,
    pub upsert_login_policy: &'static str,
    pub upsert_websites: &'static str,
    pub delete_websites: &'static str,
    pub upsert_roles: &'static str,
    pub delete_role_permissions: &'static str,
    pub insert_role_permissions: &'static str,
    pub delete_roles: &'static str,
    pub delete_logins: &'static str,
    pub delete_customer_logins: &'static str,
    pub delete_customers: &'static str,
    pub release_emails: &'static str,
    pub upsert_customers: &'static str,
    pub upsert_logins: &'static str,
    pub upsert_applied: &'static str,
    pub delete_applied: &'static str,
}

/// The `applies` row of one apply, as bound parameters.
pub struct HistoryInsert {
    pub actor: String,
    pub git_commit: Option<String>,
    pub manifests_digest: String,
    pub plan_digest: String,
    pub summary: String,
    pub changes: String,
}

impl HistoryInsert {
    pub fn new(plan: &crate::plan::Plan, provenance: &crate::history::Provenance) -> HistoryInsert {
        HistoryInsert {
            actor: provenance.actor.clone(),
            git_commit: provenance.git_commit.clone(),
            manifests_digest: plan.manifests_digest.clone(),
            plan_digest: plan.digest(),
            summary: json(&[plan.summary()])[1..]
                .trim_end_matches(']')
                .to_string(),
            changes: serde_json::to_string(&crate::history::recorded_changes(plan))
                .expect("changes serialise"),
        }
    }
}

/// One statement to run once per parameter.
pub struct Step {
    pub sql: &'static str,
    pub params: Vec<String>,
    pub doing: &'static str,
}

fn step<T: serde::Serialize>(sql: &'static str, rows: &[T], doing: &'static str) -> Step {
    Step {
        sql,
        params: rows.chunks(BATCH).map(json).collect(),
        doing,
    }
}

/// The statements that (re)write the standard roles from the catalog.
pub fn standard_role_steps(w: &Writes) -> Vec<Step> {
    let (roles, permissions) = standard_role_rows();
    let ids: Vec<&str> = roles.iter().map(|r| r.id.as_str()).collect();
    vec![
        step(w.upsert_roles, &roles, "writing standard roles"),
        step(w.delete_role_permissions, &ids, "writing standard roles"),
        step(
            w.insert_role_permissions,
            &permissions,
            "writing standard roles",
        ),
    ]
}

/// The plan's batches as statements, in apply order.
pub fn steps(w: &Writes, b: &Batches) -> Vec<Step> {
    let role_ids: Vec<&str> = b.roles.iter().map(|r| r.id.as_str()).collect();
    let mut steps = vec![
        step(w.upsert_features, &b.features_on, "switching features on"),
        step(
            w.upsert_login_policy,
            &b.login_policy,
            "writing the login policy",
        ),
        step(w.upsert_websites, &b.websites, "writing websites"),
        step(w.upsert_roles, &b.roles, "writing roles"),
        step(
            w.delete_role_permissions,
            &role_ids,
            "writing role permissions",
        ),
        step(
            w.insert_role_permissions,
            &b.role_permissions,
            "writing role permissions",
        ),
        step(w.delete_logins, &b.delete_contacts, "deleting contacts"),
        step(
            w.delete_customer_logins,
            &b.delete_customers,
            "deleting customers",
        ),
        step(
            w.delete_customers,
            &b.delete_customers,
            "deleting customers",
        ),
        step(w.release_emails, &b.release_emails, "changing login emails"),
        step(w.upsert_customers, &b.customers, "writing customers"),
        step(
            w.upsert_logins,
            &b.customer_logins,
            "writing customer logins",
        ),
        step(w.upsert_logins, &b.contacts, "writing contact logins"),
        step(w.delete_roles, &b.delete_roles, "deleting roles"),
        step(w.delete_websites, &b.delete_websites, "deleting websites"),
        step(w.upsert_features, &b.features_off, "switching features off"),
        step(w.upsert_applied, &b.applied, "recording what was applied"),
        step(w.delete_applied, &b.forget, "recording what was applied"),
    ];
    steps.retain(|s| !s.params.is_empty());
    steps
}

/// Reads every managed row with the same SQL on both engines (`NOT standard` works on
/// SQLite integers and PostgreSQL booleans alike).
macro_rules! read_snapshot {
    ($conn:expr) => {{
        use $crate::store::Doing as _;
        let doing = "reading the live state";
        $crate::store::rows::Snapshot {
            features: sqlx::query_as("SELECT name, enabled FROM features").fetch_all(&mut *$conn).await.doing(doing)?,
            login_policy: sqlx::query_as(
                "SELECT max_failed_attempts, lockout_minutes, session_timeout_minutes, password_min_length
                 FROM login_policy WHERE id = 1",
            )
            .fetch_optional(&mut *$conn)
            .await
            .doing(doing)?,
            websites: sqlx::query_as("SELECT id, name, url FROM websites").fetch_all(&mut *$conn).await.doing(doing)?,
            roles: sqlx::query_as("SELECT id, name, base, standard, two_factor FROM roles WHERE NOT standard")
                .fetch_all(&mut *$conn)
                .await
                .doing(doing)?,
            role_permissions: sqlx::query_as(
                "SELECT p.role_id, p.permission, p.level FROM role_permissions p
                 JOIN roles r ON r.id = p.role_id WHERE NOT r.standard",
            )
            .fetch_all(&mut *$conn)
            .await
            .doing(doing)?,
            customers: sqlx::query_as("SELECT id, name, protect FROM customers").fetch_all(&mut *$conn).await.doing(doing)?,
            logins: sqlx::query_as(
                "SELECT customer_id, contact, email, name, access, role_id, website_id, notify FROM logins",
            )
            .fetch_all(&mut *$conn)
            .await
            .doing(doing)?,
        }
        .into_state()
    }};
}

/// Runs steps on a connection or transaction.
macro_rules! run_steps {
    ($conn:expr, $steps:expr) => {{
        use $crate::store::Doing as _;
        for step in $steps {
            for param in step.params {
                sqlx::query(step.sql)
                    .bind(param)
                    .execute(&mut *$conn)
                    .await
                    .doing(step.doing)?;
            }
        }
    }};
}

/// Reads the digests of what portico last wrote, keyed by address.
macro_rules! read_applied {
    ($conn:expr) => {{
        use $crate::store::Doing as _;
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT address, digest FROM applied_objects")
                .fetch_all(&mut *$conn)
                .await
                .doing("reading what portico last applied")?;
        rows.into_iter()
            .collect::<std::collections::HashMap<String, String>>()
    }};
}

/// Reads the apply history: every apply without its change list, or one apply in full.
macro_rules! read_history {
    ($conn:expr, $id:expr) => {{
        use $crate::store::Doing as _;
        let rows: Vec<$crate::store::rows::ApplyRow> = match $id {
            None => sqlx::query_as(
                "SELECT id, applied_at, actor, git_commit, manifests_digest, plan_digest, summary, '' AS changes
                 FROM applies ORDER BY id",
            )
            .fetch_all(&mut *$conn)
            .await,
            Some(id) => sqlx::query_as(
                "SELECT id, applied_at, actor, git_commit, manifests_digest, plan_digest, summary, changes
                 FROM applies WHERE id = $1",
            )
            .bind(id)
            .fetch_all(&mut *$conn)
            .await,
        }
        .doing("reading the apply history")?;
        rows.into_iter().map($crate::store::rows::ApplyRow::into_record).collect::<Result<Vec<_>, _>>()?
    }};
}

pub(crate) use {read_applied, read_history, read_snapshot, run_steps};
