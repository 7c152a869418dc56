//! What each command does, on top of the library's rooms: load → validate → diff → render,
//! and apply.

use std::io::{IsTerminal, Write};
use std::path::Path;

use crate::cli::{ApplyOpts, DiffArgs, PlanOpts};
use crate::error::Error;
use crate::manifest::{self, Diagnostic, ManifestSet};
use crate::plan::{self, DiffOptions, Plan};
use crate::render;
use crate::state::State;
use crate::store::{self, AnyStore, Store};
use crate::validate::{self, Desired};

/// How a successful command ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Finished.
    Done,
    /// A plan with changes under `--detailed-exitcode`.
    Changes,
}

fn print_diagnostics(set: &ManifestSet, diagnostics: &[Diagnostic]) {
    if diagnostics.is_empty() {
        return;
    }
    let text = manifest::diagnostic::render(&set.sources, diagnostics, true);
    let mut stderr = anstream::stderr();
    let _ = write!(stderr, "{text}");
}

/// Loads and validates; prints every diagnostic; fails when any is an error.
fn load_valid(path: &Path, live: Option<&State>) -> Result<(ManifestSet, Desired), Error> {
    let (set, mut diagnostics) = manifest::load(path);
    let (desired, found) = validate::validate(&set, live);
    diagnostics.extend(found);
    print_diagnostics(&set, &diagnostics);
    let count = diagnostics.iter().filter(|d| d.is_error()).count();
    if count > 0 {
        return Err(Error::Invalid { count });
    }
    Ok((set, desired))
}

/// `portico validate`.
///
/// # Errors
/// [`Error::Invalid`] when the manifests have errors.
pub fn validate(path: &Path) -> Result<Outcome, Error> {
    let (set, desired) = load_valid(path, None)?;
    let state = &desired.state;
    let contacts: usize = state.customers.values().map(|c| c.contacts.len()).sum();
    println!(
        "Valid: {} file{}, {} role{}, {} website{}, {} customer{}, {} contact{}.",
        set.sources.len(),
        plural(set.sources.len()),
        state.roles.len(),
        plural(state.roles.len()),
        state.websites.len(),
        plural(state.websites.len()),
        state.customers.len(),
        plural(state.customers.len()),
        contacts,
        plural(contacts),
    );
    Ok(Outcome::Done)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Reads the live state, validates against it and diffs.
async fn compute(
    path: &Path,
    store: &mut AnyStore,
    args: &DiffArgs,
) -> Result<(Plan, String), Error> {
    let live = store.read().await?;
    let (_, desired) = load_valid(path, Some(&live))?;
    let plan = plan::diff(
        &desired,
        &live,
        DiffOptions {
            prune: !args.no_prune,
        },
    );
    Ok((plan, live.fingerprint()))
}

fn print_plan(plan: &Plan, args: &DiffArgs) {
    let mut stdout = anstream::stdout();
    let _ = write!(stdout, "{}", render::render_text(plan, args.diff, true));
}

/// `portico plan`: reads only.
///
/// # Errors
/// Manifest or database errors.
pub async fn plan(opts: &PlanOpts) -> Result<Outcome, Error> {
    let mut store = store::open(&opts.connect.database, false).await?;
    let (plan, _) = compute(&opts.manifests.path, &mut store, &opts.diff).await?;
    print_plan(&plan, &opts.diff);
    Ok(if opts.detailed_exitcode && !plan.is_empty() {
        Outcome::Changes
    } else {
        Outcome::Done
    })
}

/// `portico apply`: plan, confirm, apply in one transaction.
///
/// # Errors
/// Manifest or database errors, a stale plan, or no confirmation.
pub async fn apply(opts: &ApplyOpts) -> Result<Outcome, Error> {
    let database = &opts.connect.database;
    // The plan is computed exactly as `plan` does, read-only; the database is only opened
    // for writing (and created) once there is something to write and it is approved.
    let (plan, fingerprint) = {
        let mut reader = store::open(database, false).await?;
        compute(&opts.manifests.path, &mut reader, &opts.diff).await?
    };
    print_plan(&plan, &opts.diff);
    if plan.is_empty() {
        return Ok(Outcome::Done);
    }
    if !opts.auto_approve {
        confirm()?;
    }
    let mut store = store::open(database, true).await?;
    store.apply(&plan, &fingerprint).await?;
    let s = plan.summary();
    println!(
        "Apply complete: {} created, {} updated, {} revoked, {} deleted.",
        s.create, s.update, s.revoke, s.delete
    );
    Ok(Outcome::Done)
}

fn confirm() -> Result<(), Error> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::NeedsApproval);
    }
    print!("\nApply these changes? Only 'yes' will be accepted: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(Error::Cancelled)
    }
}

/// `portico init`.
///
/// # Errors
/// Database errors.
pub async fn init(database: &str) -> Result<Outcome, Error> {
    let mut store = store::open(database, true).await?;
    store.init().await?;
    println!("Database ready: {}", store::redact_url(database));
    Ok(Outcome::Done)
}
