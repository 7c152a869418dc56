//! The SQL both engines share, and the plan's batches as an ordered list of statements.
//!
//! Every write is one static statement whose single parameter is a JSON array of rows
//! (SQLite `json_each`, PostgreSQL `json_to_recordset`): set-based, a round trip per
//! [`BATCH`] rows, and no SQL built from strings (but for the end of an everyday apply,
//! [`super::finish`], put together from constants and placeholders only).

use super::rows::{Batches, standard_role_rows};
use super::{BATCH, json};

/// The write statements of one engine, in the order apply runs them.
pub struct Writes {
    pub upsert_features: &'static str,
    pub upsert_login_policy: &'static str,
    pub upsert_websites: &'static str,
    pub delete_websites: &'static str,
    pub upsert_policies: &'static str,
    pub delete_policies: &'static str,
    pub upsert_clients: &'static str,
    pub delete_clients: &'static str,
    /// Stores client secrets' hashes (the client rows of the passwords).
    pub set_client_secrets: &'static str,
    pub upsert_roles: &'static str,
    pub delete_role_permissions: &'static str,
    pub insert_role_permissions: &'static str,
    pub delete_roles: &'static str,
    pub delete_logins: &'static str,
    pub delete_customer_logins: &'static str,
    pub delete_customers: &'static str,
    pub release_emails: &'static str,
    pub upsert_customers: &'static str,
    /// A plain insert of customers the plan creates (see [`super::rows::Upserts`]).
    pub insert_customers: &'static str,
    pub upsert_logins: &'static str,
    /// A plain insert of logins the plan creates.
    pub insert_logins: &'static str,
    pub upsert_applied: &'static str,
    /// `upsert_applied` as a plain insert, for an engine that fills an empty table with its
    /// indexes set aside ([`Fill::into_empty`]).
    pub insert_applied: Option<&'static str>,
    pub delete_applied: &'static str,
    pub upsert_notification_settings: &'static str,
    pub set_passwords: &'static str,
    pub queue_notifications: &'static str,
    pub revoke_tokens: &'static str,
    pub cancel_notifications: &'static str,
    pub end_sessions: &'static str,
    /// Ends the sessions of every login whose role begins to require a second factor.
    pub end_role_sessions: &'static str,
    /// Records rows of the plan index's files (a JSON list of `path`, `digest`, and `ids`
    /// and `groups` in hex), replacing any of the same path.
    pub upsert_index_files: &'static str,
    /// Removes the plan index's rows of the files in a JSON list of paths.
    pub delete_index_files: &'static str,
    /// How the engine sends an everyday apply's last writes as one ([`super::finish`]).
    pub together: super::finish::Together,
}

/// The `applies` row of one apply, as bound parameters.
pub struct HistoryInsert {
    pub actor: String,
    pub git_commit: Option<String>,
    pub clock: Option<String>,
    pub manifests_digest: String,
    pub plan_digest: String,
    pub summary: String,
    /// The change list as deflated JSON.
    pub changes_z: Vec<u8>,
}

/// The plan's change list, deflated as it is written (history keeps it compressed). The
/// fastest level: 400,000 changes (121 MB of JSON) deflate into 5.0 MB in 0.05 s; level 4
/// made 3.1 MB in 0.18 s, and though the list is built on its own thread beside the apply's
/// batches, that made a first apply of 300,000 logins 0.15 s (SQLite) to 0.4 s
/// (PostgreSQL) slower.
fn deflated_changes(plan: &crate::plan::Plan) -> Vec<u8> {
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    crate::history::write_recorded_changes(
        plan,
        &mut std::io::BufWriter::with_capacity(64 * 1024, &mut encoder),
    )
    .expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

/// An apply's history row: for a big plan, made on a thread of its own from when the plan
/// is known (0.5 s for 300,000 logins), while it prints and the apply confirms and hashes
/// passwords; for a small one, where the apply runs while its transaction begins
/// ([`Building::built`]).
pub struct History {
    actor: String,
    making: Making,
}

enum Making {
    Later(
        std::sync::Arc<crate::plan::Plan>,
        crate::history::Provenance,
    ),
    Thread(std::thread::JoinHandle<HistoryInsert>),
}

impl History {
    /// Starts making the history row of `plan`, applied with `provenance`.
    pub fn start(
        plan: &std::sync::Arc<crate::plan::Plan>,
        provenance: crate::history::Provenance,
    ) -> History {
        let actor = provenance.actor.clone();
        let plan = std::sync::Arc::clone(plan);
        let making = if plan.changes.len() < THREADS_FROM {
            Making::Later(plan, provenance)
        } else {
            Making::Thread(std::thread::spawn(move || made_now(&plan, &provenance)))
        };
        History { actor, making }
    }

    /// Who applies (the holder a lock names).
    pub fn actor(&self) -> &str {
        &self.actor
    }

    fn made(self) -> HistoryInsert {
        match self.making {
            Making::Later(plan, provenance) => made_now(&plan, &provenance),
            Making::Thread(thread) => thread.join().expect("making the history row"),
        }
    }
}

/// The history row of `plan`, made on the calling thread (timed as the phase "history").
fn made_now(plan: &crate::plan::Plan, provenance: &crate::history::Provenance) -> HistoryInsert {
    crate::progress::phase("history", || HistoryInsert::new(plan, provenance))
}

/// From this many changes, an apply's history row and batches are built on threads of their
/// own. Below, where the apply runs: a ten-login apply's history row (0.3 ms, mostly the
/// deflater's tables) on a thread took fresh memory, and on two busy cores, waited for
/// one; the apply was 0.5-1 ms slower (interleaved A/B on the wide shape).
const THREADS_FROM: usize = 2_000;

/// The apply's history row ([`History`]) and its batches: for a big plan, built on a thread
/// while the apply begins its transaction and checks the live state (each is a pass over
/// every change: 0.5 s and 1.1 s for 300,000 logins, on two threads). `passwords` are the
/// plan's, in its order ([`Batches::from_plan`]).
pub fn history_and_batches(
    plan: &std::sync::Arc<crate::plan::Plan>,
    history: History,
    passwords: Vec<crate::passwords::PasswordRow>,
) -> Building {
    let plan = std::sync::Arc::clone(plan);
    if plan.changes.len() < THREADS_FROM {
        return Building::Here(plan, history, passwords);
    }
    Building::Thread(tokio::task::spawn_blocking(move || {
        let batches = crate::progress::phase("batches", || Batches::from_plan(plan, passwords));
        (history.made(), batches)
    }))
}

/// The history row and batches of an apply, on their way ([`history_and_batches`]).
pub enum Building {
    /// A small plan's, built when awaited.
    Here(
        std::sync::Arc<crate::plan::Plan>,
        History,
        Vec<crate::passwords::PasswordRow>,
    ),
    Thread(tokio::task::JoinHandle<(HistoryInsert, Batches)>),
    /// A small plan's, built ([`Building::here`]).
    Built(Box<(HistoryInsert, Batches)>),
}

fn build_here(
    plan: std::sync::Arc<crate::plan::Plan>,
    history: History,
    passwords: Vec<crate::passwords::PasswordRow>,
) -> (HistoryInsert, Batches) {
    let history = history.made();
    let batches = crate::progress::phase("batches", || Batches::from_plan(plan, passwords));
    (history, batches)
}

impl Building {
    /// A small plan's history row and batches, built here, in the first poll: awaited
    /// beside the statement that begins the transaction (`tokio::join!`, that statement
    /// polled first), they are built while the database runs it. A big plan's stay on
    /// their thread, awaited by [`Building::built`] once the live state is known to be the
    /// plan's (a stale apply is told so without waiting for them).
    pub async fn here(self) -> Building {
        match self {
            Building::Here(plan, history, passwords) => {
                Building::Built(Box::new(build_here(plan, history, passwords)))
            }
            building => building,
        }
    }

    /// The history row and the batches, once built.
    pub async fn built(self) -> (HistoryInsert, Batches) {
        match self {
            Building::Built(built) => *built,
            Building::Here(plan, history, passwords) => build_here(plan, history, passwords),
            Building::Thread(thread) => thread
                .await
                .expect("building the history row does not panic"),
        }
    }
}

/// Inflates a stored change list.
///
/// # Errors
/// Damaged data.
pub fn inflate(data: &[u8]) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut text = String::new();
    flate2::read::DeflateDecoder::new(data).read_to_string(&mut text)?;
    Ok(text)
}

impl HistoryInsert {
    pub fn new(plan: &crate::plan::Plan, provenance: &crate::history::Provenance) -> HistoryInsert {
        HistoryInsert {
            actor: provenance.actor.clone(),
            git_commit: provenance.git_commit.clone(),
            clock: provenance.clock.clone(),
            manifests_digest: plan.manifests_digest.clone(),
            plan_digest: plan.digest(),
            summary: json(&[plan.summary()])[1..]
                .trim_end_matches(']')
                .to_string(),
            changes_z: deflated_changes(plan),
        }
    }
}

/// One statement to run once per parameter.
pub struct Step<'a> {
    pub sql: &'static str,
    /// A JSON array of up to [`BATCH`] rows per run, each written only when its turn comes
    /// (a big apply never holds all of them).
    pub params: Box<dyn Iterator<Item = String> + Send + 'a>,
    pub doing: &'static str,
    /// The table this step adds rows to, when it may add them with that table's indexes
    /// set aside (PostgreSQL builds them once after a large load; SQLite ignores this).
    pub fills: Option<Fill>,
    /// The statement records when it ran: the apply's time is its second parameter.
    pub stamped: bool,
    empty: bool,
}

/// What a [`Step`] adds to a table.
#[derive(Clone, Copy, Debug)]
pub struct Fill {
    pub table: &'static str,
    pub rows: usize,
    /// The statement to run instead while the table's keys are set aside: `None` when the
    /// step's own statement is a plain insert; else its plain-insert form, usable only if
    /// the table held no row (nothing to conflict with).
    pub into_empty: Option<&'static str>,
}

fn step<'a, T: serde::Serialize + Sync>(
    sql: &'static str,
    rows: &'a [T],
    doing: &'static str,
) -> Step<'a> {
    Step {
        sql,
        params: Box::new(rows.chunks(BATCH).map(json)),
        doing,
        fills: None,
        stamped: false,
        empty: rows.is_empty(),
    }
}

/// A [`step`] whose rows are built from `items` a batch at a time, as they are written.
fn built_step<'a, X: Sync, R: serde::Serialize>(
    sql: &'static str,
    items: &'a [X],
    build: impl Fn(&X) -> R + Send + Copy + 'a,
    doing: &'static str,
) -> Step<'a> {
    Step {
        sql,
        params: Box::new(
            items
                .chunks(BATCH)
                .map(move |chunk| json(&chunk.iter().map(build).collect::<Vec<R>>())),
        ),
        doing,
        fills: None,
        stamped: false,
        empty: items.is_empty(),
    }
}

/// A [`step`] whose statement records when it ran: the apply's time is bound beside each
/// batch as `$2` ("now" is bound, never the database's clock).
fn stamped_step<'a, T: serde::Serialize + Sync>(
    sql: &'static str,
    rows: &'a [T],
    doing: &'static str,
) -> Step<'a> {
    Step {
        stamped: true,
        ..step(sql, rows, doing)
    }
}

/// A [`step`] that adds rows to `table`.
fn fill_step<'a, T: serde::Serialize + Sync>(
    sql: &'static str,
    rows: &'a [T],
    table: &'static str,
    into_empty: Option<&'static str>,
    doing: &'static str,
) -> Step<'a> {
    Step {
        fills: Some(Fill {
            table,
            rows: rows.len(),
            into_empty,
        }),
        ..step(sql, rows, doing)
    }
}

/// A [`step`] whose parameters are written at once (its rows do not outlive it).
fn owned_step<T: serde::Serialize>(
    sql: &'static str,
    rows: &[T],
    doing: &'static str,
) -> Step<'static> {
    let params: Vec<String> = rows.chunks(BATCH).map(json).collect();
    Step {
        sql,
        params: Box::new(params.into_iter()),
        doing,
        fills: None,
        stamped: false,
        empty: rows.is_empty(),
    }
}

/// A digest of the standard roles' rows as this build writes them, and of the build's
/// version: an apply records it, and the next one rewrites the rows only when it differs
/// (or anything wrote to the managed tables since; see `shared::read_version_for_apply`).
/// A migration that changes how the standard roles are stored without changing their rows
/// must change what is digested here too.
pub fn standard_roles_digest() -> &'static [u8] {
    use sha2::Digest as _;
    static DIGEST: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    DIGEST.get_or_init(|| {
        let rows = serde_json::to_vec(&standard_role_rows()).expect("rows serialize");
        let mut hasher = sha2::Sha256::new();
        hasher.update(env!("CARGO_PKG_VERSION").as_bytes());
        hasher.update(b"\n");
        hasher.update(rows);
        hasher.finalize().to_vec()
    })
}

/// The statements that (re)write the standard roles from the catalog.
pub fn standard_role_steps(w: &Writes) -> Vec<Step<'static>> {
    let (roles, permissions) = standard_role_rows();
    let ids: Vec<&str> = roles.iter().map(|r| r.id.as_str()).collect();
    vec![
        owned_step(w.upsert_roles, &roles, "writing standard roles"),
        owned_step(w.delete_role_permissions, &ids, "writing standard roles"),
        owned_step(
            w.insert_role_permissions,
            &permissions,
            "writing standard roles",
        ),
    ]
}

/// The plan's batches as statements, in apply order: settings and roles first, then
/// customers and logins, then what their changes set off, then removals.
fn steps<'a>(w: &Writes, b: &'a Batches) -> Vec<Step<'a>> {
    let mut steps = definition_steps(w, b);
    steps.extend(login_steps(w, b));
    steps.extend(effect_steps(w, b));
    steps.extend(vec![
        step(w.delete_roles, &b.delete_roles, "deleting roles"),
        step(w.delete_websites, &b.delete_websites, "deleting websites"),
        step(w.upsert_features, &b.features_off, "switching features off"),
        fill_step(
            w.upsert_applied,
            &b.applied,
            "applied_objects",
            w.insert_applied,
            "recording what was applied",
        ),
        step(w.delete_applied, &b.forget, "recording what was applied"),
    ]);
    steps.retain(|s| !s.empty);
    steps
}

/// Features switched on, the login policy, notification settings, websites, policies,
/// roles and their permissions.
fn definition_steps<'a>(w: &Writes, b: &'a Batches) -> Vec<Step<'a>> {
    let role_ids: Vec<&str> = b.roles.iter().map(|r| r.id.as_str()).collect();
    vec![
        step(w.upsert_features, &b.features_on, "switching features on"),
        step(
            w.upsert_login_policy,
            &b.login_policy,
            "writing the login policy",
        ),
        step(
            w.upsert_notification_settings,
            &b.notification_settings,
            "writing notification settings",
        ),
        step(w.upsert_websites, &b.websites, "writing websites"),
        step(w.upsert_policies, &b.policies, "writing policies"),
        step(w.delete_policies, &b.delete_policies, "deleting policies"),
        step(w.upsert_roles, &b.roles, "writing roles"),
        step(
            w.upsert_clients,
            &b.clients,
            "writing OpenID Connect clients",
        ),
        step(
            w.delete_clients,
            &b.delete_clients,
            "deleting OpenID Connect clients",
        ),
        owned_step(
            w.delete_role_permissions,
            &role_ids,
            "writing role permissions",
        ),
        step(
            w.insert_role_permissions,
            &b.role_permissions,
            "writing role permissions",
        ),
    ]
}

/// Customers and logins: removed, emails released, changed, then created (the logins'
/// inserts follow each other, so a large load sets the table's indexes aside once). Before
/// customers are created, any login filed under their ids goes: a hand edit with foreign keys
/// off (a customer's id changed, a login inserted) can leave one, no plan shows it, and the
/// insert would fail on it (20 ms for a first apply of 100,000 customers into empty tables).
fn login_steps<'a>(w: &Writes, b: &'a Batches) -> Vec<Step<'a>> {
    vec![
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
        built_step(
            w.upsert_customers,
            &b.customers.changed,
            |c| b.customer_row(c),
            "writing customers",
        ),
        built_step(
            w.upsert_logins,
            &b.customers.changed,
            |c| b.login_row(c),
            "writing customer logins",
        ),
        built_step(
            w.upsert_logins,
            &b.contacts.changed,
            |c| b.login_row(c),
            "writing contact logins",
        ),
        step(
            w.delete_customer_logins,
            &b.clear_created,
            "removing logins left without their customer",
        ),
        built_step(
            w.insert_customers,
            &b.customers.created,
            |c| b.customer_row(c),
            "writing customers",
        ),
        Step {
            fills: Some(Fill {
                table: "logins",
                rows: b.customers.created.len(),
                into_empty: None,
            }),
            ..built_step(
                w.insert_logins,
                &b.customers.created,
                |c| b.login_row(c),
                "writing customer logins",
            )
        },
        Step {
            fills: Some(Fill {
                table: "logins",
                rows: b.contacts.created.len(),
                into_empty: None,
            }),
            ..built_step(
                w.insert_logins,
                &b.contacts.created,
                |c| b.login_row(c),
                "writing contact logins",
            )
        },
    ]
}

/// What the logins' changes set off: passwords, revoked links, cancelled messages, ended
/// sessions, queued messages.
fn effect_steps<'a>(w: &Writes, b: &'a Batches) -> Vec<Step<'a>> {
    vec![
        stamped_step(w.set_passwords, &b.passwords, "setting initial passwords"),
        step(
            w.set_client_secrets,
            &b.secrets,
            "storing OpenID Connect client secrets",
        ),
        stamped_step(
            w.revoke_tokens,
            &b.lose_access,
            "revoking set-password links",
        ),
        step(
            w.cancel_notifications,
            &b.lose_access,
            "cancelling queued notifications",
        ),
        step(
            w.cancel_notifications,
            &b.stop_notifying,
            "cancelling queued notifications of logins no longer notified",
        ),
        step(
            w.end_role_sessions,
            &b.two_factor_roles,
            "ending the sessions of logins whose role now requires a second factor",
        ),
        step(
            w.end_sessions,
            &b.end_sessions,
            "ending the sessions of logins that lost access or changed",
        ),
        stamped_step(
            w.revoke_tokens,
            &b.email_changed,
            "revoking set-password links sent to an old address",
        ),
        Step {
            fills: Some(Fill {
                table: "notifications",
                rows: b.notify.len(),
                into_empty: None,
            }),
            stamped: true,
            ..built_step(
                w.queue_notifications,
                &b.notify,
                |&change| b.queued_row(change),
                "queueing new-access notifications",
            )
        },
    ]
}

/// A [`Step`] without its parameters.
#[derive(Clone, Copy, Debug)]
pub struct StepInfo {
    pub sql: &'static str,
    pub doing: &'static str,
    pub fills: Option<Fill>,
    pub stamped: bool,
}

/// How many batches the writing thread may be ahead of the database.
const AHEAD: usize = 2;

/// An apply's [`steps`], whose parameters another thread serialises while the database
/// runs the batch before: the JSON of a batch is written while the last one executes,
/// instead of in turn with it.
pub struct StepStream {
    /// Every step, in apply order.
    pub steps: Vec<StepInfo>,
    /// When the apply writes: the second parameter of [`StepInfo::stamped`] steps.
    pub at: String,
    /// The parameters written already (all of them, for a small apply).
    ready: std::collections::VecDeque<(usize, String)>,
    /// The parameters a thread writes while the database runs the ones before (a large
    /// apply).
    params: Option<tokio::sync::mpsc::Receiver<(usize, String)>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

/// Below this many rows, an apply's parameters are all written before its first statement,
/// where the apply runs: a thread handing them over one by one cost a small apply more than
/// the writing (on two busy cores, each hand-over waited for one).
const WRITER_THREAD_FROM: usize = 2_000;

impl StepStream {
    /// Starts writing the parameters of `batches`' steps. The thread owns the batches, and
    /// frees them when it is done.
    pub fn spawn(w: &'static Writes, batches: Batches) -> StepStream {
        let at = batches.at.clone();
        let infos = steps(w, &batches)
            .iter()
            .map(|s| StepInfo {
                sql: s.sql,
                doing: s.doing,
                fills: s.fills,
                stamped: s.stamped,
            })
            .collect();
        let rows = batches.applied.len()
            + batches.customers.len()
            + batches.contacts.len()
            + batches.notify.len()
            + batches.forget.len();
        if rows < WRITER_THREAD_FROM {
            let all = steps(w, &batches);
            let ready = all
                .into_iter()
                .enumerate()
                .flat_map(|(index, step)| step.params.map(move |param| (index, param)))
                .collect();
            return StepStream {
                steps: infos,
                at,
                ready,
                params: None,
                writer: None,
            };
        }
        let (sender, params) = tokio::sync::mpsc::channel(AHEAD);
        let writer = std::thread::spawn(move || {
            let all = steps(w, &batches);
            for (index, step) in all.into_iter().enumerate() {
                for param in step.params {
                    if sender.blocking_send((index, param)).is_err() {
                        return; // the apply stopped
                    }
                }
            }
        });
        StepStream {
            steps: infos,
            at,
            ready: std::collections::VecDeque::new(),
            params: Some(params),
            writer: Some(writer),
        }
    }

    /// The next parameter, with the index of its step in [`StepStream::steps`]; `None`
    /// once every step's parameters were given.
    pub async fn next(&mut self) -> Option<(usize, String)> {
        if let Some(ready) = self.ready.pop_front() {
            return Some(ready);
        }
        let next = match &mut self.params {
            Some(params) => params.recv().await,
            None => None,
        };
        if next.is_none()
            && let Some(writer) = self.writer.take()
            && let Err(panic) = writer.join()
        {
            // The channel closed because the thread died, not because it was done.
            std::panic::resume_unwind(panic);
        }
        next
    }
}
