//! What each command does, on top of the library's rooms: load → validate → diff → render,
//! apply, and history; adopting an account ([`adopt`]) and day-2 operations ([`day2`]).

pub mod adopt;
pub mod day2;
mod incremental;
mod run;

pub use run::run;

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use crate::cli::{
    ApplyOpts, DiffArgs, Format, HistoryCommand, HistoryFormat, HistoryOpts, PlanOpts,
};
use crate::error::{Error, share_of};
use crate::history::{self, ApplyRecord, Provenance};
use crate::manifest::{self, Diagnostic, ManifestSet};
use crate::plan::{self, DiffOptions, Plan};
use crate::progress::{phase, phase_async};
use crate::render::{self, PlanDocument};
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
    let _ = write!(anstream::stderr(), "{}", diagnostics_text(set, diagnostics));
}

/// What [`print_diagnostics`] prints: the diagnostics rendered, and in GitHub Actions their
/// workflow commands.
fn diagnostics_text(set: &ManifestSet, diagnostics: &[Diagnostic]) -> String {
    if diagnostics.is_empty() {
        return String::new();
    }
    let mut text = manifest::diagnostic::render(&set.sources, diagnostics, true);
    if in_github_actions() {
        // Workflow commands go to standard error (the runner reads both streams), so
        // standard output carries only the format asked for (`--format json > plan.json`).
        text.push_str(&manifest::diagnostic::render_github(
            &set.sources,
            diagnostics,
        ));
    }
    text
}

/// Whether this runs as a GitHub Actions step.
fn in_github_actions() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// Appends Markdown to the job summary (`$GITHUB_STEP_SUMMARY`) when there is one; the
/// Markdown is only rendered then.
fn step_summary(markdown: impl FnOnce() -> String) -> Result<(), Error> {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let markdown = markdown();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(file, "{markdown}")?;
    Ok(())
}

/// Loads and validates; prints every diagnostic; fails when any is an error.
pub(crate) fn load_valid(
    path: &Path,
    live: Option<&State>,
    reading: manifest::load::Reading,
) -> Result<(ManifestSet, Desired), Error> {
    let (set, diagnostics) = phase("parse", || manifest::load(path, reading));
    let (desired, _) = check_valid(&set, diagnostics, live)?;
    Ok((set, desired))
}

/// Validates a loaded set; prints every diagnostic; fails when any is an error. Also says
/// whether there was no diagnostic at all (not even a warning).
fn check_valid(
    set: &ManifestSet,
    diagnostics: Vec<Diagnostic>,
    live: Option<&State>,
) -> Result<(Desired, bool), Error> {
    let validated = phase("validate", || validate::validate(set, live));
    report_validation(set, diagnostics, validated, None)
}

/// Prints what validation found beside the parse's `diagnostics`; the desired state and
/// whether nothing at all was said, or [`Error::Invalid`]. With `warnings`, warnings alone
/// are rendered into it instead, for the caller to print (errors are printed at once).
fn report_validation(
    set: &ManifestSet,
    mut diagnostics: Vec<Diagnostic>,
    (desired, found): (Desired, Vec<Diagnostic>),
    warnings: Option<&mut String>,
) -> Result<(Desired, bool), Error> {
    diagnostics.extend(found);
    let clean = diagnostics.is_empty();
    let count = diagnostics.iter().filter(|d| d.is_error()).count();
    if count > 0 {
        // Warnings about the whole set (an unmanaged section) follow from what could not be
        // read; only warnings located at an object stay beside the errors.
        diagnostics.retain(|d| d.is_error() || d.site.is_some());
    }
    match warnings {
        Some(warnings) if count == 0 => *warnings = diagnostics_text(set, &diagnostics),
        _ => print_diagnostics(set, &diagnostics),
    }
    if count > 0 {
        return Err(Error::Invalid { count });
    }
    Ok((desired, clean))
}

/// Digest of the manifest files (paths and the digests of their contents, taken when they
/// were read), recorded with plans and applies.
fn manifests_digest(set: &ManifestSet) -> String {
    manifests_digest_of(
        set.sources
            .iter()
            .map(|s| (validate::relative_name(&set.root, &s.path), s.digest())),
    )
}

/// [`manifests_digest`] of `(relative path, content digest)` in reading order: SHA-256 of
/// each path's bytes, a NUL (no path holds one) and the content's 20 bytes, the first 16
/// hex digits. Raw bytes, not JSON: for 100,000 files the JSON (7.5 MB, its hex and its
/// escaping) took 10 ms of an everyday apply; this is about 4.6 MB, nothing to escape.
pub(crate) fn manifests_digest_of<N: AsRef<str>>(
    files: impl IntoIterator<Item = (N, impl std::borrow::Borrow<crate::gitindex::BlobId>)>,
) -> String {
    use std::io::Write as _;
    let mut digest = crate::state::HashWriter::digest(|out| {
        for (name, id) in files {
            out.write_all(name.as_ref().as_bytes())?;
            out.write_all(&[0])?;
            out.write_all(id.borrow())?;
        }
        Ok(())
    });
    digest.truncate(16);
    digest
}

/// `portico validate`.
///
/// # Errors
/// [`Error::Invalid`] when the manifests have errors.
pub fn validate(opts: &crate::cli::ValidateOpts) -> Result<Outcome, Error> {
    let path = &opts.manifests.path;
    let reading = opts.manifests.read.reading();
    if opts.format == crate::cli::HistoryFormat::Json {
        return validate_json(path, reading);
    }
    let (set, desired) = load_valid(path, None, reading)?;
    let state = &desired.state;
    let contacts: usize = state.customers.values().map(|c| c.contacts.len()).sum();
    let n =
        |count: usize, what: &str| format!("{count} {what}{}", if count == 1 { "" } else { "s" });
    println!(
        "Valid: {}, {}, {}, {}, {}.",
        n(set.sources.len(), "file"),
        n(state.roles.len(), "role"),
        n(state.websites.len(), "website"),
        n(state.customers.len(), "customer"),
        n(contacts, "contact"),
    );
    discard((set, desired));
    Ok(Outcome::Done)
}

/// `validate --format json`: one report on stdout, whatever it finds.
fn validate_json(path: &Path, reading: manifest::load::Reading) -> Result<Outcome, Error> {
    use manifest::diagnostic::{Counts, Report, to_json};
    let (set, mut diagnostics) = manifest::load(path, reading);
    let (desired, found) = validate::validate(&set, None);
    diagnostics.extend(found);
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let state = &desired.state;
    let report = Report {
        valid: errors == 0,
        errors,
        warnings: diagnostics.len() - errors,
        diagnostics: to_json(&set.sources, &diagnostics),
        counts: (errors == 0).then(|| Counts {
            files: set.sources.len(),
            roles: state.roles.len(),
            websites: state.websites.len(),
            customers: state.customers.len(),
            contacts: state.customers.values().map(|c| c.contacts.len()).sum(),
        }),
    };
    println!("{}", crate::schema::to_json(&report));
    if errors > 0 {
        return Err(Error::Reported);
    }
    Ok(Outcome::Done)
}

/// Lets go of a large value without freeing it. A big account's states are millions of
/// small allocations; freeing them one by one costs a noticeable share of a plan, and the
/// process ends moments later, when the OS takes all its memory back at once. Only for the
/// CLI's short-lived commands, once nothing big is allocated after.
fn discard<T>(value: T) {
    std::mem::forget(value);
}

/// Frees a large value on another thread, so the memory is reused by what follows (apply's
/// writes) without the wait.
fn free_aside<T: Send + 'static>(value: T) {
    std::thread::spawn(move || drop(value));
}

/// What [`compute`] does with its inputs once the plan is made.
#[derive(Clone, Copy)]
enum Inputs {
    /// Never freed: the command ends soon (plan).
    Discard,
    /// Freed beside the work that follows (apply).
    FreeAside,
}

impl Inputs {
    /// Lets an input go once the plan no longer needs it.
    fn let_go<T: Send + 'static>(self, value: T) {
        match self {
            Inputs::Discard => discard(value),
            Inputs::FreeAside => free_aside(value),
        }
    }
}

/// An apply that queues new-access messages needs the transport's secrets
/// (`smtp.password`, `auth_header`) now, like a password source: otherwise every message
/// would fail after a green apply.
fn transport_secrets(
    settings: &crate::state::NotificationSettings,
    plan: &Plan,
) -> Result<(), Error> {
    let queued = plan.changes.iter().filter(|c| c.notifies()).count();
    if queued == 0 {
        return Ok(());
    }
    let needed = [
        (
            "notifications.smtp.password",
            settings.smtp.as_ref().and_then(|s| s.password_env.as_ref()),
        ),
        ("notifications.auth_header", settings.auth_env.as_ref()),
    ];
    for (field, name) in needed {
        if let Some(name) = name
            && std::env::var_os(name.as_str()).is_none()
        {
            return Err(Error::Refused(format!(
                "{field}: environment variable `{name}` is not set, and this plan queues {queued} new-access message(s) that could then never be delivered; set it (or leave those logins without `notify`)"
            )));
        }
    }
    Ok(())
}

/// Reads the live state, validates against it, diffs and labels drift; also says whether
/// the plan's new-access messages could be delivered now ([`transport_secrets`]).
async fn compute(
    path: &Path,
    store: &mut AnyStore,
    args: &DiffArgs,
    inputs: Inputs,
    digests: bool,
    (reading, hashing): (manifest::load::Reading, Option<incremental::Hashing>),
) -> Result<Computed, Error> {
    if !args.no_incremental {
        let wanted = (digests, matches!(inputs, Inputs::FreeAside));
        let reading = (reading, hashing);
        if let Some(computed) = incrementally(path, store, args, wanted, reading).await? {
            return Ok(computed);
        }
    }
    for _ in 0..FULL_READ_ATTEMPTS {
        let validated = validate_in_full(path, store, args, inputs, (digests, reading)).await?;
        if let Some(computed) = plan_in_full(store, args, inputs, digests, validated).await? {
            return Ok(computed);
        }
        if args.verbose {
            eprintln!("The live database changed while it was read; planning again.");
        }
    }
    Err(Error::Refused(format!(
        "the live database changed during each of {FULL_READ_ATTEMPTS} attempts to plan (another apply running?); try again"
    )))
}

/// How many times a plan that reads everything starts again when a managed write lands
/// between its two reads.
const FULL_READ_ATTEMPTS: usize = 3;

/// In debug builds, with `PORTICO_TEST_BETWEEN_READS` naming a file, a full plan's first
/// attempt creates it between its two reads and waits (up to a minute) for it to go: a test
/// writes to the database meanwhile, and sees the plan start again (see CONTRIBUTING.md).
async fn pause_between_reads() {
    #[cfg(debug_assertions)]
    if let Some(path) = std::env::var_os("PORTICO_TEST_BETWEEN_READS") {
        // Once per process: the attempt after the write reads straight through.
        static PAUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if PAUSED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let path = std::path::PathBuf::from(path);
        if std::fs::write(&path, b"").is_ok() {
            for _ in 0..600 {
                if !path.exists() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// What [`validate_in_full`] hands to [`plan_in_full`].
struct Validated {
    desired: Desired,
    manifests_digest: String,
    index: Option<crate::state::PlanIndex>,
    /// The version of the live database validation was checked against.
    version: crate::state::LiveVersion,
    /// The warnings validation found, rendered: printed by the attempt that plans (a plan
    /// started again prints them once, as its last reading of the files found them).
    warnings: String,
}

/// Parses and validates the manifests against what validation needs of the live database:
/// its small tables (features, roles, websites, policies, settings), read while the
/// manifests are parsed on other threads, and, only when a login's answer depends on it
/// (one that gains access needs a way to log in), the keys of the logins with access, with
/// validation run again against them. The customers are read after, once the manifests
/// are freed (at 300,000 logins of the wide benchmark shape, the manifests, the desired
/// state and the live state held at once were a full plan's peak: 455 MiB).
async fn validate_in_full(
    path: &Path,
    store: &mut AnyStore,
    args: &DiffArgs,
    inputs: Inputs,
    (digests, reading): (bool, manifest::load::Reading),
) -> Result<Validated, Error> {
    let root = path.to_path_buf();
    let parsing = tokio::task::spawn_blocking(move || {
        phase("parse", || {
            let (files, found) = manifest::load::list(&root);
            // Freed memory goes back at once from here on (see `crate::memory`), except
            // while many files are parsed: each is merged as soon as it is parsed, and what
            // its parse frees is reused by the next instead of zeroed again by the kernel
            // (a full plan of 100,000 one-customer files 5% faster, its peak 5 MiB higher).
            // A few large files are all held until merged: what their parse frees goes back.
            if !manifest::load::merged_as_parsed(files.len()) {
                crate::memory::full_read();
            }
            manifest::load::load_listed(&root, files, &[], reading, found)
        })
    });
    let mut query = store::PartQuery {
        customers: &[],
        expiring_before: "",
        access_keys: false,
        password_markers: false,
    };
    let account = phase_async("read account", store.read_part(&query)).await;
    let (set, diagnostics) = parsing.await.expect("parsing does not panic");
    crate::memory::full_read();
    let mut account = account?;
    account.state.access = crate::state::LiveAccess::Unread;
    let mut validated = phase("validate", || {
        validate::validate(&set, Some(&account.state))
    });
    if validated.0.needs_live_access {
        query.access_keys = true;
        account = phase_async("read access", store.read_part(&query)).await?;
        validated = phase("validate", || {
            validate::validate(&set, Some(&account.state))
        });
    }
    let mut warnings = String::new();
    let (desired, clean) = report_validation(&set, diagnostics, validated, Some(&mut warnings))?;
    // The digest of the files (taken from each file's digest, made as it was parsed). A
    // plan that is only shown leaves it out: it is for applying and for plan files.
    let manifests_digest = if digests {
        manifests_digest(&set)
    } else {
        String::new()
    };
    // An apply's plan index is made before the manifests go; it is kept only if the plan
    // converges.
    let index = index_to_record(
        inputs,
        clean && !args.no_prune,
        (&set, &desired, &account.state),
    );
    // Freed, not let go: the customers are read next, into the room the manifests held.
    free_aside(set);
    Ok(Validated {
        desired,
        manifests_digest,
        index,
        version: account.applied.version,
        warnings,
    })
}

/// Reads the whole live state and plans against it; `None` when a managed write landed
/// after validation read the live database (its version moved): then the plan starts again.
async fn plan_in_full(
    store: &mut AnyStore,
    args: &DiffArgs,
    inputs: Inputs,
    digests: bool,
    validated: Validated,
) -> Result<Option<Computed>, Error> {
    let Validated {
        desired,
        manifests_digest,
        index,
        version,
        warnings,
    } = validated;
    pause_between_reads().await;
    let (live, applied) = phase_async("read live", store.read_with_applied()).await?;
    if applied.version != version {
        inputs.let_go((live, applied, desired));
        return Ok(None);
    }
    let _ = write!(anstream::stderr(), "{warnings}");
    let fingerprint = if digests {
        applied.version.fingerprint()
    } else {
        String::new()
    };
    let notifications = desired.state.notifications.clone();
    let mut plan = phase("diff", || {
        plan::diff_with_fingerprint(
            &desired,
            &live,
            DiffOptions {
                prune: !args.no_prune,
            },
            fingerprint,
        )
    });
    let transport = notifications
        .as_ref()
        .and_then(|settings| transport_secrets(settings, &plan).err());
    let index = index
        .filter(|_| plan.warnings.is_empty())
        .map(|index| crate::state::IndexToRecord::Made(Box::new(index)));
    // The live state is not needed any more: it goes before the plan is labelled and shown.
    inputs.let_go(live);
    phase("label", || plan::label_origins(&mut plan, &applied));
    plan.read_mark = store.read_mark();
    plan::annotate_expiry(
        &mut plan,
        &desired.state,
        crate::clock::now(),
        args.warn_expiring,
    );
    plan.manifests_digest = manifests_digest;
    inputs.let_go((applied, desired));
    Ok(Some(Computed {
        plan,
        transport,
        index,
    }))
}

/// The plan index an apply records ([`Inputs::FreeAside`]): only when applying the plan
/// leaves the database exactly as the files describe (`converged`: nothing was said about
/// them and nothing is kept that they do not declare; the caller also drops it when the
/// plan warns). Later plans then read only the files that changed.
fn index_to_record(
    inputs: Inputs,
    converged: bool,
    (set, desired, live): (&ManifestSet, &Desired, &State),
) -> Option<crate::state::PlanIndex> {
    (matches!(inputs, Inputs::FreeAside) && converged)
        .then(|| phase("index", || validate::index_of(set, desired, Some(live))))
}

/// The plan from the changed files only, when [`incremental::attempt`] can answer; says how
/// the plan was computed with `--verbose`.
async fn incrementally(
    path: &Path,
    store: &mut AnyStore,
    args: &DiffArgs,
    wanted: (bool, bool),
    reading: (manifest::load::Reading, Option<incremental::Hashing>),
) -> Result<Option<Computed>, Error> {
    match incremental::attempt(path, store, args, wanted, reading).await? {
        incremental::Attempt::Done(computed, read) => {
            if args.verbose {
                let in_part = match read.in_part {
                    0 => String::new(),
                    n => format!(" ({n} read in part)"),
                };
                let unread = match read.unread {
                    0 => String::new(),
                    n => format!(" {n} unchanged files known from git's index, not read."),
                };
                eprintln!(
                    "Planned from the changed files only: {} of {} files changed{in_part}, {} removed; {} customers read.{unread}",
                    read.changed, read.files, read.removed, read.customers
                );
            }
            Ok(Some(*computed))
        }
        incremental::Attempt::Full(reason) => {
            if args.verbose {
                eprintln!("Planning in full: {reason}.");
            }
            Ok(None)
        }
    }
}

/// A computed plan, and why its new-access messages could not be delivered now, if they
/// could not (a transport secret is missing); for an apply, the plan index it records.
pub(crate) struct Computed {
    pub(crate) plan: Plan,
    pub(crate) transport: Option<Error>,
    pub(crate) index: Option<crate::state::IndexToRecord>,
}

/// How many changes of each kind `--summary` lists.
const SUMMARY_SAMPLES: usize = 10;

fn print_text(plan: &Plan, args: &DiffArgs) {
    let mut stdout = anstream::stdout();
    let _ = write!(stdout, "{}", text_of(plan, args));
}

/// The text plan: whole, or a summary when asked or when it is too long to read (above
/// [`render::SUMMARY_ABOVE`] changes, unless `--full` or `--diff`).
pub(crate) fn text_of(plan: &Plan, args: &DiffArgs) -> String {
    let long = plan.changes.len() > render::SUMMARY_ABOVE;
    if args.summary || (long && !args.full && !args.diff) {
        render::render_summary(plan, SUMMARY_SAMPLES, true)
    } else {
        render::render_text(plan, args.diff, true)
    }
}

fn print_plan(plan: &Plan, format: Format, args: &DiffArgs) {
    match format {
        Format::Text => print_text(plan, args),
        Format::Json => print!("{}", render::render_json(plan)),
        Format::Markdown => print!("{}", render::render_markdown(plan, render::markdown::LIMIT)),
    }
}

/// `portico show PLAN.json`: a saved plan rendered as `plan` rendered it.
///
/// # Errors
/// An unreadable or invalid plan file.
pub fn show(opts: &crate::cli::ShowOpts) -> Result<Outcome, Error> {
    let plan = read_plan_file(&opts.plan)?;
    print_plan(&plan, opts.format, &opts.diff);
    Ok(Outcome::Done)
}

/// `portico plan`: reads only.
///
/// # Errors
/// Manifest or database errors, or an unwritable `--out` file.
pub async fn plan(opts: &PlanOpts) -> Result<Outcome, Error> {
    let reading = opts.manifests.read.reading();
    let hashing = (!opts.diff.no_incremental)
        .then(|| incremental::Hashing::start(&opts.manifests.path, reading));
    let mut store = store::open(opts.connect.url(), false).await?;
    warn_if_missing(&store);
    // The live state's fingerprint and the manifests' digest are only in the JSON form.
    let digests = opts.out.is_some() || opts.format == Format::Json;
    let Computed {
        plan, transport, ..
    } = compute(
        &opts.manifests.path,
        &mut store,
        &opts.diff,
        Inputs::Discard,
        digests,
        (reading, hashing),
    )
    .await?;
    // A plan often runs where deploy secrets are not given (a pull request from a fork).
    if let Some(problem) = transport {
        eprintln!("warning: {problem}");
    }
    let to_stdout = opts.out.as_deref().is_some_and(|o| o.as_os_str() == "-");
    if to_stdout {
        // `--out -`: standard output carries the saved plan for a pipe; people read the
        // summary on standard error.
        eprintln!("{}", plan.summary());
    } else {
        phase("render", || print_plan(&plan, opts.format, &opts.diff));
    }
    step_summary(|| render::render_markdown(&plan, render::markdown::LIMIT))?;
    if opts.github_comment {
        let pr = crate::github::pr_number(opts.pr).ok_or_else(|| {
            crate::github::GitHubError::Missing(
                "no pull-request number: run on a pull_request event or pass --pr N".into(),
            )
        })?;
        let github = crate::github::GitHub::from_env()?;
        let body = render::render_markdown(&plan, render::markdown::LIMIT);
        let id = github.upsert_comment(pr, &body).await?;
        eprintln!("Plan posted on pull request #{pr} (comment {id}).");
    }
    if let Some(out) = &opts.out {
        if to_stdout {
            print!("{}", render::render_json(&plan));
        } else {
            let json = render::render_json(&plan);
            crate::files::write_all_atomic(&[(out.clone(), json.as_bytes())]).map_err(|e| {
                Error::PlanFile {
                    path: out.display().to_string(),
                    reason: e.to_string(),
                }
            })?;
            eprintln!(
                "Saved the plan to {}; apply it with `portico apply --plan {}`.",
                out.display(),
                out.display()
            );
        }
    }
    let changes = !plan.is_empty();
    discard(plan);
    Ok(if opts.detailed_exitcode && changes {
        Outcome::Changes
    } else {
        Outcome::Done
    })
}

/// The file of a SQLite URL whose file does not exist.
async fn missing_sqlite(url: &str) -> Result<Option<String>, Error> {
    match store::open(url, false).await? {
        AnyStore::Sqlite(s) if !s.path().exists() => Ok(Some(s.path().display().to_string())),
        _ => Ok(None),
    }
}

/// Says loudly that a plan runs against an account that does not exist yet.
fn warn_if_missing(store: &AnyStore) {
    if let AnyStore::Sqlite(s) = store
        && !s.path().exists()
    {
        eprintln!(
            "warning: there is no database at {}{}: planning against an EMPTY account (check --database / PORTICO_DATABASE_URL)",
            s.path().display(),
            crate::manifest::load::relative_note(s.path())
        );
    }
}

fn read_plan_file(path: &Path) -> Result<Plan, Error> {
    let bad = |reason: String| Error::PlanFile {
        path: path.display().to_string(),
        reason,
    };
    // `-`: the plan comes from standard input (`portico plan --out - | portico show -`).
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| bad(e.to_string()))?;
        text
    } else {
        std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?
    };
    let document: PlanDocument = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    document.into_plan().map_err(bad)
}

/// A saved plan names its password sources but carries no hash: pre-hashed (`argon2`)
/// passwords are taken from the manifests the plan was computed from, and `file` sources
/// are read relative to them. Returns the manifest root (`.` when none is needed).
///
/// # Errors
/// No `-f` when the plan needs it, manifests that are not the plan's (by digest), or
/// invalid manifests.
async fn saved_plan_secrets(
    plan: &mut Plan,
    path: Option<&Path>,
    store: &mut AnyStore,
    reading: manifest::load::Reading,
) -> Result<std::path::PathBuf, Error> {
    use crate::passwords::SecretRef;
    let needs = plan.changes.iter().any(|c| {
        matches!(
            c.password,
            Some(SecretRef::File(_) | SecretRef::Argon2 { .. })
        )
    });
    let Some(path) = path.filter(|_| needs) else {
        if needs {
            return Err(Error::PlanFile {
                path: "the saved plan".into(),
                reason: "it sets passwords from files or pre-hashed values, which it does not carry: pass -f DIR, the manifests it was computed from".into(),
            });
        }
        return Ok(".".into());
    };
    let live = store.read().await?;
    let (set, desired) = load_valid(path, Some(&live), reading)?;
    let digest = manifests_digest(&set);
    if digest != plan.manifests_digest {
        return Err(Error::PlanFile {
            path: path.display().to_string(),
            reason: format!(
                "these manifests (digest {digest}) are not the ones the plan was computed from ({})",
                plan.manifests_digest
            ),
        });
    }
    plan.changes_edited();
    for change in &mut plan.changes {
        if let Some(SecretRef::Argon2 { hash }) = &mut change.password
            && let Some(SecretRef::Argon2 { hash: from }) = desired.passwords.get(&change.address)
        {
            hash.clone_from(from);
        }
    }
    Ok(set.root)
}

/// Refuses plans that delete or revoke more than the limits allow.
fn guard(plan: &Plan, opts: &ApplyOpts) -> Result<(), Error> {
    let count = plan.destroy_count();
    let logins = plan.live_logins;
    let share = share_of(count, logins);
    if count > opts.max_destroy || (count > 10 && share > opts.max_destroy_share) {
        return Err(Error::Guard {
            count,
            logins,
            max: opts.max_destroy,
            max_share: opts.max_destroy_share,
        });
    }
    Ok(())
}

/// `portico apply`: lock, plan (or read the saved plan), check, confirm, apply in one
/// transaction, record in history.
///
/// # Errors
/// Manifest or database errors, a stale or unexpected plan, the guard, a lock timeout, or
/// no confirmation.
pub async fn apply(opts: &ApplyOpts) -> Result<Outcome, Error> {
    // The files are hashed, and git asked for the actor (when no variable names one),
    // while the database is opened, locked and checked; git is asked for the commit once
    // the files are hashed (on two cores, sooner it slowed the hashing).
    let (commit, asked) = std::sync::mpsc::channel();
    let path = opts.path.clone();
    let ask_git = move |worktree| {
        std::thread::spawn(move || commit.send(history::git_commit(path.as_deref(), worktree)));
    };
    let hashing =
        match (&opts.plan, &opts.path) {
            (None, Some(path)) if !opts.diff.no_incremental => Some(
                incremental::Hashing::start_then(path, opts.read.reading(), ask_git),
            ),
            _ => {
                ask_git(incremental::Worktree::Unknown);
                None
            }
        };
    let flag = opts.actor.clone();
    let actor = std::thread::spawn(move || history::actor(flag.as_deref()));
    let (mut store, actor) = phase_async("open", open_for_apply(opts, actor)).await?;
    let mut provenance = Provenance {
        actor,
        git_commit: None,
        clock: opts.now.map(crate::clock::format),
    };
    let (plan, root, index) = plan_to_apply(opts, &mut store, hashing).await?;
    // The index counts the logins the apply leaves (the next incremental plan shows them).
    let logins = u64::try_from(plan.logins_after()).unwrap_or(u64::MAX);
    provenance.git_commit = asked.recv().unwrap_or(None);
    let plan = std::sync::Arc::new(plan);
    let history = (!plan.is_empty()).then(|| crate::store::History::start(&plan, provenance));
    phase("print", || print_text(&plan, &opts.diff));
    check_digest(&plan, opts).await?;
    let Some(history) = history else {
        // Nothing to change, but the files may differ from the recorded ones (a comment):
        // the index follows them, so later plans stay incremental (an index that cannot
        // be made is left as it is: the next plan reads the changed files again).
        if let Some(mut index) = index.and_then(crate::state::IndexToRecord::made) {
            index.logins = logins;
            follow_files(&mut store, &index, &plan.live_fingerprint).await?;
        }
        return Ok(Outcome::Done);
    };
    // Made and serialised while the apply confirms, locks and writes; recorded at its end.
    let index = index.map(|index| crate::state::SealingIndex::start(index, logins));
    guard(&plan, opts)?;
    if !opts.auto_approve {
        confirm()?;
    }
    let sources = plan
        .changes
        .iter()
        .filter_map(|c| c.password.as_ref().map(|p| (&c.address, p)));
    let passwords = crate::passwords::hash_all(sources, &root, opts.read.reading().max_file_bytes)?;
    let spinner = spinner_for(plan.changes.len());
    // Queued only (`--no-notify`), the messages still to deliver are counted by the apply.
    let queued = plan.changes.iter().filter(|c| c.notifies()).count();
    let pending = pending_bound(queued, opts.no_notify);
    let writes = (passwords, index);
    let applied = phase_async("write", store.apply(&plan, history, writes, pending)).await;
    if let Some(spinner) = spinner {
        spinner.finish();
    }
    let recorded = applied?;
    phase_async("report", report_applied(&plan, recorded.id, opts)).await?;
    phase_async(
        "after apply",
        after_apply(&mut store, opts, (queued, recorded)),
    )
    .await?;
    discard(plan);
    Ok(Outcome::Done)
}

/// Big applies show a spinner on a terminal, and a line every few seconds in a log.
fn spinner_for(changes: usize) -> Option<crate::progress::Progress> {
    (changes >= 1_000).then(|| {
        crate::progress::Progress::start(
            &format!("applying {changes} changes in one transaction"),
            None,
            0,
        )
    })
}

/// After an apply with nothing to change: records the plan index when it is not the one
/// recorded already (the files changed without changing the plan), and writes nothing when
/// it is.
async fn follow_files(
    store: &mut AnyStore,
    index: &crate::state::PlanIndex,
    fingerprint: &str,
) -> Result<(), Error> {
    let (version, stored) = store.read_index().await?;
    let unchanged = stored.is_some_and(|(changes, stored)| {
        Some(changes) == version.changes() && stored.is_some_and(|s| index.records_as(&s))
    });
    if !unchanged {
        store.record_index(index, fingerprint).await?;
    }
    Ok(())
}

/// Opens the database for an apply and takes the apply lock. The lock is taken before the
/// live state is read, so two applies started together run one after the other, the second
/// planning against the first one's result.
async fn open_for_apply(
    opts: &ApplyOpts,
    actor: std::thread::JoinHandle<String>,
) -> Result<(AnyStore, String), Error> {
    if !opts.connect.explicit()
        && let Some(path) = missing_sqlite(opts.connect.url()).await?
    {
        return Err(Error::NoDefaultDatabase(path));
    }
    let timeout = Duration::try_from_secs_f64(opts.lock_timeout).unwrap_or(Duration::ZERO);
    let mut store = store::open_with(
        opts.connect.url(),
        true,
        store::OpenOptions {
            busy_timeout: timeout.max(Duration::from_secs(1)),
        },
    )
    .await?;
    // The actor names the lock's holder to an apply that waits for it.
    let actor = actor.join().unwrap_or_else(|_| "unknown".to_string());
    phase_async("lock", store.lock(timeout, &actor)).await?;
    phase_async("migrate", store.migrate()).await?;
    Ok((store, actor))
}

/// The plan to apply: the saved one (`--plan`) or one computed from the manifests now, and
/// the manifest folder its password files are read from.
async fn plan_to_apply(
    opts: &ApplyOpts,
    store: &mut AnyStore,
    hashing: Option<incremental::Hashing>,
) -> Result<
    (
        crate::plan::Plan,
        std::path::PathBuf,
        Option<crate::state::IndexToRecord>,
    ),
    Error,
> {
    Ok(match (&opts.plan, &opts.path) {
        (Some(file), path) => {
            // A saved plan may hold the whole account: freed memory goes back at once.
            crate::memory::full_read();
            let mut plan = read_plan_file(file)?;
            let root =
                saved_plan_secrets(&mut plan, path.as_deref(), store, opts.read.reading()).await?;
            // A saved plan names no files: the index is removed, and the next apply from
            // files records it again.
            (plan, root, None)
        }
        (None, Some(path)) => {
            let computed = compute(
                path,
                store,
                &opts.diff,
                Inputs::FreeAside,
                true,
                (opts.read.reading(), hashing),
            )
            .await?;
            // Messages this apply delivers need the transport's secret now; queued only
            // (`--no-notify`), a later `portico notify` needs it (and fails red without).
            match computed.transport {
                Some(problem) if !opts.no_notify => return Err(problem),
                Some(problem) => eprintln!("warning: {problem}"),
                None => {}
            }
            (computed.plan, manifest::load::root_of(path), computed.index)
        }
        (None, None) => {
            return Err(Error::PlanFile {
                path: "-".into(),
                reason: "apply needs -f PATH (manifests) or --plan FILE".into(),
            });
        }
    })
}

/// Refuses a plan whose digest is not the reviewed one (`--expect-digest`, or the one the
/// pull request's plan comment shows).
async fn check_digest(plan: &crate::plan::Plan, opts: &ApplyOpts) -> Result<(), Error> {
    let expected = match (&opts.expect_digest, opts.expect_digest_from_pr) {
        (Some(digest), _) => Some(digest.clone()),
        (None, true) => Some(reviewed_digest().await?),
        (None, false) => None,
    };
    if let Some(expected) = &expected
        && plan.digest() != expected.trim()
    {
        return Err(Error::DigestMismatch {
            expected: expected.trim().to_string(),
            actual: plan.digest(),
        });
    }
    Ok(())
}

/// Prints the result, and writes it to the CI's step summary and pull request.
async fn report_applied(plan: &crate::plan::Plan, id: i64, opts: &ApplyOpts) -> Result<(), Error> {
    let s = plan.summary();
    let result = format!(
        "Apply complete: {} created, {} updated, {} revoked, {} deleted. Recorded as apply {id}.",
        s.create, s.update, s.revoke, s.delete
    );
    println!("{result}");
    let report = format!(
        "### portico apply {id}\n\n{result} Plan digest `{}`.",
        plan.digest()
    );
    step_summary(|| report.clone())?;
    if opts.github_comment {
        post_result(&report).await;
    }
    Ok(())
}

/// The bound up to which an apply counts the messages still to deliver: with `--no-notify`
/// (`queued_only`), its own and [`OLDER_PENDING_COUNTED`] more, so that it can say how many
/// wait (counted up to a bound: a count of a large outbox would cost every apply time in
/// proportion to the outbox rather than to its change, 9 ms at 200,000 messages); else none
/// (they are delivered now, and the delivery says).
fn pending_bound(queued: usize, queued_only: bool) -> u64 {
    if queued_only {
        u64::try_from(queued.saturating_add(OLDER_PENDING_COUNTED + 1)).unwrap_or(u64::MAX)
    } else {
        0
    }
}

/// How many messages queued before an apply `--no-notify` counts at most when it says how
/// many wait (`portico notify --status` lists them all).
const OLDER_PENDING_COUNTED: usize = 1_000;

/// What an apply `--no-notify` says of the messages waiting: `queued` by it, `pending` in
/// all (counted up to `queued` + [`OLDER_PENDING_COUNTED`] + 1).
fn pending_line(queued: usize, pending: usize) -> Option<String> {
    if pending == 0 {
        return None;
    }
    let older = match pending.saturating_sub(queued) {
        0 => String::new(),
        n if n > OLDER_PENDING_COUNTED => " (more than 1,000 older ones also pending)".into(),
        n => format!(" ({n} older one(s) also pending)"),
    };
    Some(format!(
        "{queued} notification(s) queued by this apply{older}; deliver them with `portico notify`."
    ))
}

/// Delivers the messages the apply queued, or says how many wait (`--no-notify`).
async fn after_apply(
    store: &mut AnyStore,
    opts: &ApplyOpts,
    (queued, recorded): (usize, crate::store::Recorded),
) -> Result<(), Error> {
    if opts.no_notify {
        let pending = usize::try_from(recorded.pending).unwrap_or(usize::MAX);
        if let Some(line) = pending_line(queued, pending) {
            println!("{line}");
        }
    } else {
        // Delivery is slow work on the network: it never holds the apply lock. A delivery
        // failure never fails the apply: the messages stay queued.
        store.unlock_apply().await?;
        let report = crate::notify::deliver(store, &delivery_options(&opts.delivery)).await?;
        print_delivery(&report);
    }
    Ok(())
}

/// Posts the apply result on the pull request that merged this commit. The apply is
/// committed already, so a failure here is a warning, never an error.
async fn post_result(report: &str) {
    let posted = async {
        let commit = std::env::var("GITHUB_SHA")
            .map_err(|_| crate::github::GitHubError::Missing("GITHUB_SHA is not set".into()))?;
        crate::github::GitHub::from_env()?
            .comment_on_merged(&commit, report)
            .await
    };
    match posted.await {
        Ok(pr) => eprintln!("Apply result posted on pull request #{pr}."),
        Err(error) => eprintln!("warning: could not post the apply result: {error}"),
    }
}

/// The digest shown on the pull request that merged the commit being applied.
async fn reviewed_digest() -> Result<String, Error> {
    let commit = std::env::var("GITHUB_SHA").map_err(|_| {
        crate::github::GitHubError::Missing(
            "GITHUB_SHA is not set: --expect-digest-from-pr runs in GitHub Actions on push".into(),
        )
    })?;
    let (pr, digest) = crate::github::GitHub::from_env()?
        .digest_for_commit(&commit)
        .await?;
    eprintln!("Expecting digest {digest}, as reviewed on pull request #{pr}.");
    Ok(digest)
}

pub(crate) fn delivery_options(args: &crate::cli::DeliveryArgs) -> crate::notify::DeliveryOptions {
    crate::notify::DeliveryOptions {
        timeout: Duration::try_from_secs_f64(args.timeout).unwrap_or(Duration::from_secs(10)),
        attempts: args.attempts.max(1),
        parallel: usize::from(args.parallel),
        ..crate::notify::DeliveryOptions::default()
    }
}

pub(crate) fn print_delivery(report: &crate::notify::DeliveryReport) {
    if report.sent > 0 {
        println!("Notifications: {} sent.", report.sent);
    }
    print_capped(
        &report.failed,
        |email, error| {
            format!(
                "notification to {email} not delivered ({error}); it stays queued for `portico notify`"
            )
        },
        "not delivered; they stay queued for `portico notify` (`portico notify --status` lists them)",
    );
    print_capped(
        &report.dead,
        |email, error| {
            format!(
                "notification to {email} failed for good ({error}); fix the cause, then re-queue it with `portico notify --retry-failed`"
            )
        },
        "failed for good (`portico notify --status` lists them)",
    );
    if report.stopped > 0 {
        eprintln!(
            "warning: delivery stopped after {} notifications in a row were not delivered: {} more stay queued, not tried, for `portico notify` once the endpoint works",
            crate::notify::STOP_AFTER_FAILURES,
            report.stopped
        );
    }
    if let Some(blocked) = &report.blocked {
        eprintln!("warning: {blocked}");
    }
}

/// Messages of each outcome (not delivered, failed for good) named one by one in a
/// delivery's report; the others are counted.
const SHOWN_PER_OUTCOME: usize = 10;

/// Warns of the first [`SHOWN_PER_OUTCOME`] messages of one outcome, one line each, and
/// counts the others.
fn print_capped(messages: &[(String, String)], line: impl Fn(&str, &str) -> String, more: &str) {
    for (email, error) in messages.iter().take(SHOWN_PER_OUTCOME) {
        eprintln!("warning: {}", line(email, error));
    }
    if messages.len() > SHOWN_PER_OUTCOME {
        let rest = messages.len() - SHOWN_PER_OUTCOME;
        eprintln!("warning: {rest} more notification(s) {more}");
    }
}

/// `portico notify`: deliver what is pending, or list the outbox.
///
/// # Errors
/// Database errors, or [`Error::Undelivered`] when messages remain queued.
pub async fn notify(opts: &crate::cli::NotifyOpts) -> Result<Outcome, Error> {
    if let Some(email) = &opts.preview {
        return preview(opts, email).await;
    }
    adopt::open_existing(opts.connect.url()).await?;
    let mut store = store::open(opts.connect.url(), !opts.status).await?;
    if opts.retry_failed {
        let n = store.requeue_failed().await?;
        println!("{n} failed notification(s) queued again.");
    }
    if opts.status {
        let rows = store.outbox(false).await?;
        if opts.format == crate::cli::HistoryFormat::Json {
            println!(
                "{}",
                crate::schema::to_json(crate::schema::Messages { messages: rows })
            );
            return Ok(Outcome::Done);
        }
        if rows.is_empty() {
            println!("No notifications.");
        }
        for r in rows {
            println!(
                "{:>5}  {:<9}  {:<32}  attempts {:<3}  queued {}{}",
                r.id,
                r.status,
                r.email,
                r.attempts,
                r.created_at,
                r.last_error
                    .map(|e| format!("  last error: {e}"))
                    .unwrap_or_default()
            );
        }
        return Ok(Outcome::Done);
    }
    let options = crate::notify::DeliveryOptions {
        ignore_wait: opts.retry_now,
        ..delivery_options(&opts.delivery)
    };
    let report = crate::notify::deliver(&mut store, &options).await?;
    print_delivery(&report);
    // Pending and dead letters alike keep the exit non-zero: a scheduled run that stays
    // green while messages are failed hides customers who never got their email.
    let outbox = store.outbox(false).await?;
    let pending = outbox.iter().filter(|m| m.status == "pending").count();
    let failed = outbox.iter().filter(|m| m.status == "failed").count();
    if failed > 0 {
        eprintln!(
            "error: {failed} notification(s) failed for good (see `portico notify --status`; fix the cause, then `portico notify --retry-failed`)"
        );
    }
    if pending > 0 && report.waiting > 0 {
        eprintln!(
            "note: {} notification(s) wait for their next attempt (`portico notify --retry-now` tries them now)",
            report.waiting
        );
    }
    if pending + failed > 0 {
        return Err(Error::Undelivered(pending + failed));
    }
    if report.sent == 0 {
        println!("Nothing to deliver.");
    }
    Ok(Outcome::Done)
}

/// `portico notify --preview EMAIL`: the message a login would get, sending nothing.
async fn preview(opts: &crate::cli::NotifyOpts, email: &str) -> Result<Outcome, Error> {
    let (state, assigned) = preview_state(opts, email).await?;
    let Some(settings) = &state.notifications else {
        return Err(Error::Refused(
            "no `notifications:` section is configured, so there is no message to preview".into(),
        ));
    };
    let Some(rendered) = crate::notify::preview(&state, settings, email, assigned) else {
        return Err(Error::UnknownLogin {
            email: email.to_string(),
            near: crate::access::near_matches(&state, email),
        });
    };
    let rendered = rendered.map_err(|p| {
        Error::Refused(format!(
            "the `{}` template cannot render{}: {}",
            p.part.key(),
            p.line.map(|l| format!(" (line {l})")).unwrap_or_default(),
            p.message
        ))
    })?;
    print_message(settings, email, &rendered);
    Ok(Outcome::Done)
}

/// The state a preview renders from: the manifests as they would apply (`-f`), else the
/// live one; and whether the login's password is assigned in the manifests.
async fn preview_state(opts: &crate::cli::NotifyOpts, email: &str) -> Result<(State, bool), Error> {
    Ok(match &opts.path {
        Some(path) => {
            let mut store = store::open(opts.connect.url(), false).await?;
            let live = store.read().await?;
            let (_, desired) = load_valid(path, Some(&live), opts.read.reading())?;
            let email = crate::state::normalize_email(email);
            let assigned = desired.state.customers.iter().find_map(|(id, c)| {
                if c.record.login.email.as_deref() == Some(email.as_str()) {
                    Some(desired.passwords.login(id, None).is_some())
                } else {
                    c.contacts
                        .contains_key(&email)
                        .then(|| desired.passwords.login(id, Some(&email)).is_some())
                }
            });
            let assigned = assigned.unwrap_or(false);
            (day2::intended(desired, live), assigned)
        }
        None => {
            let mut store = adopt::open_existing(opts.connect.url()).await?;
            (store.read().await?, false)
        }
    })
}

/// Prints a rendered message as a mail client would show it.
fn print_message(
    settings: &crate::state::NotificationSettings,
    email: &str,
    rendered: &crate::message::template::Rendered,
) {
    let from = settings.from.as_deref().unwrap_or("(the webhook's sender)");
    println!("From: {from}");
    if let Some(reply_to) = &settings.reply_to {
        println!("Reply-To: {reply_to}");
    }
    println!("To: {}", crate::state::normalize_email(email));
    println!(
        "Subject: {}
",
        rendered.subject
    );
    println!(
        "----- text -----
{}",
        rendered.text.trim_end()
    );
    if let Some(html) = &rendered.html {
        println!(
            "----- html -----
{}",
            html.trim_end()
        );
    }
}

/// `portico set-password --token-stdin`: the customer-center side of a set-password link.
///
/// # Errors
/// A refused token, a password that breaks the policy, or database errors.
pub async fn set_password(opts: &crate::cli::SetPasswordOpts) -> Result<Outcome, Error> {
    let mut lines = std::io::stdin().lines();
    let token = lines.next().transpose()?.unwrap_or_default();
    let password = lines.next().transpose()?.unwrap_or_default();
    let mut store = store::open(opts.connect.url(), true).await?;
    store.migrate().await?;
    let policy = store.read().await?.login_policy.unwrap_or_default();
    let min = policy.password.min_length as usize;
    if password.chars().count() < min {
        return Err(Error::WeakPassword(min));
    }
    let hash = crate::passwords::hash(&password)
        .map_err(|_| Error::Io(std::io::Error::other("hashing failed")))?;
    let email = store
        .redeem_token(&crate::notify::token_hash(&token), &hash)
        .await?;
    println!("Password set for {email}.");
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

/// `portico history` and `portico history show ID`.
///
/// # Errors
/// Database errors, or no apply with that id.
pub async fn history(opts: &HistoryOpts) -> Result<Outcome, Error> {
    let mut store = adopt::open_existing(opts.connect.url()).await?;
    match &opts.show {
        None => {
            let records = store.history(None).await?;
            match opts.format {
                HistoryFormat::Json => println!(
                    "{}",
                    crate::schema::to_json(crate::schema::HistoryOutput::Many { applies: records })
                ),
                HistoryFormat::Text => print!("{}", history_table(&records)),
            }
        }
        Some(HistoryCommand::Show { id }) => {
            let record = store
                .history(Some(*id))
                .await?
                .pop()
                .ok_or(Error::NoSuchApply(*id))?;
            match opts.format {
                HistoryFormat::Json => println!(
                    "{}",
                    crate::schema::to_json(crate::schema::HistoryOutput::One {
                        apply: Box::new(record)
                    })
                ),
                HistoryFormat::Text => print!("{}", history_detail(&record)),
            }
        }
    }
    Ok(Outcome::Done)
}

fn short(commit: &Option<String>) -> String {
    commit
        .as_deref()
        .map_or("-".into(), |c| c.chars().take(12).collect())
}

fn history_table(records: &[ApplyRecord]) -> String {
    if records.is_empty() {
        return "No applies yet.\n".into();
    }
    let mut out = format!(
        "{:>4}  {:<6}  {:<20}  {:<16}  {:<12}  {:<12}  summary\n",
        "id", "kind", "applied at (UTC)", "actor", "commit", "plan digest"
    );
    for r in records {
        let s = r.summary;
        out.push_str(&format!(
            "{:>4}  {:<6}  {:<20}  {:<16}  {:<12}  {:<12}  +{} ~{} !{} -{}\n",
            r.id,
            r.kind,
            r.applied_at,
            crate::unicode::escape_invisible(&r.actor),
            crate::unicode::escape_invisible(&short(&r.git_commit)),
            r.plan_digest,
            s.create,
            s.update,
            s.revoke,
            s.delete
        ));
    }
    out
}

fn history_detail(r: &ApplyRecord) -> String {
    let mut out = format!(
        "{} {}\n  applied at:       {}\n  actor:            {}\n  git commit:       {}\n  manifests digest: {}\n  plan digest:      {}\n  {}\n\n",
        r.kind,
        r.id,
        r.applied_at,
        crate::unicode::escape_invisible(&r.actor),
        crate::unicode::escape_invisible(r.git_commit.as_deref().unwrap_or("-")),
        r.manifests_digest,
        r.plan_digest,
        r.summary
    );
    if let Some(clock) = &r.clock {
        out.push_str(&format!(
            "  clock:            {clock} (apply --now; not the system clock)\n\n"
        ));
    }
    for change in &r.changes {
        let origin = if change.origin == plan::Origin::Outside {
            "  (changed outside portico)"
        } else {
            ""
        };
        out.push_str(&format!(
            "  {:<6} {}{origin}\n",
            change.action.as_str(),
            crate::unicode::escape_invisible(&change.address.to_string())
        ));
        for f in &change.fields {
            let show = |v: &Option<String>| {
                v.as_deref().map_or("(none)".into(), |v| {
                    crate::unicode::escape_invisible(v).into_owned()
                })
            };
            out.push_str(&format!(
                "           {}: {} → {}\n",
                f.field,
                show(&f.old),
                show(&f.new)
            ));
        }
    }
    out
}

/// `portico serve`: brings the schema up to date, then runs the login service until it is
/// stopped.
///
/// # Errors
/// An unreachable database, a refused setting, or a socket that cannot be bound.
pub async fn serve(opts: &crate::cli::ServeOpts) -> Result<Outcome, Error> {
    let secret_key = secret_key_text(opts.secret_key_file.as_deref(), "serve")?;
    let mut store = adopt::open_existing(opts.connect.url()).await?;
    if !store.has_schema().await? {
        return Err(Error::Refused(format!(
            "{} holds no applied account yet: serve enforces what `portico apply` wrote, so apply the manifests first",
            store::redact_url(opts.connect.url())
        )));
    }
    drop(store);
    let mut store = store::open(opts.connect.url(), true).await?;
    store.migrate().await?;
    drop(store);
    crate::serve::serve(crate::serve::Options {
        database: opts.connect.url().to_string(),
        listen: opts.listen,
        insecure_cookies: opts.insecure_cookies,
        secret_key,
        throttle: crate::serve::Throttle {
            per_hour: opts.failures_per_address,
            trusted_proxies: opts.trusted_proxies.clone(),
        },
        deliver: !opts.no_deliver,
        events_days: opts.events_days,
    })
    .await?;
    Ok(Outcome::Done)
}

/// The server's key for secrets at rest, as text: from `--secret-key-file`, else
/// `PORTICO_SECRET_KEY`.
fn secret_key_text(file: Option<&Path>, command: &str) -> Result<String, Error> {
    match file {
        Some(path) => std::fs::read_to_string(path).map_err(|e| {
            Error::Refused(format!("cannot read --secret-key-file {}: {e}", path.display()))
        }),
        None => std::env::var("PORTICO_SECRET_KEY").map_err(|_| {
            Error::Refused(format!("{command} needs the key for secrets at rest: set PORTICO_SECRET_KEY or --secret-key-file to 32 random bytes in base64 (`openssl rand -base64 32`)"))
        }),
    }
}

/// `portico keys rotate`: a new signing key for ID tokens; the current one is retired (and
/// stays published a day).
///
/// # Errors
/// No secret key, a missing database, or database errors.
pub async fn rotate_keys(opts: &crate::cli::KeysRotateOpts) -> Result<Outcome, Error> {
    let text = secret_key_text(opts.secret_key_file.as_deref(), "keys rotate")?;
    let secret_key = crate::serve::SecretKey::from_base64(&text).map_err(Error::Refused)?;
    let mut store = adopt::open_existing(opts.connect.url()).await?;
    store.migrate().await?;
    drop(store);
    let now = crate::clock::format(jiff::Timestamp::now());
    let key = crate::serve::oidc::keys::generate(&secret_key, &now).map_err(Error::Refused)?;
    let serve = crate::store::serve::ServeStore::open(opts.connect.url(), 1).await?;
    serve.add_signing_key(&key, true).await?;
    println!(
        "New signing key {} made; the previous one is retired and stays published for a day. `portico serve` signs with the new key within 10 seconds.",
        key.kid
    );
    Ok(Outcome::Done)
}

/// `portico sign-out EMAIL`: ends every session of that login.
///
/// # Errors
/// An unknown login, or database errors.
pub async fn sign_out(opts: &crate::cli::SignOutOpts) -> Result<Outcome, Error> {
    let mut store = adopt::open_existing(opts.connect.url()).await?;
    store.migrate().await?;
    drop(store);
    let email = crate::state::normalize_email(&opts.email);
    let serve = crate::store::serve::ServeStore::open(opts.connect.url(), 1).await?;
    match serve.end_sessions_of(&email).await? {
        Some(n) => {
            let now = crate::clock::format(jiff::Timestamp::now());
            serve
                .event(&email, "signed_out", "", Some("portico sign-out"), &now)
                .await?;
            println!("Signed {email} out: {n} session(s) ended.");
            Ok(Outcome::Done)
        }
        None => Err(Error::Refused(format!("no login has the email {email}"))),
    }
}

/// `portico reset-2fa EMAIL`: removes that login's authenticator and recovery codes and ends
/// its sessions; it enrols again at its next sign-in.
///
/// # Errors
/// An unknown login, or database errors.
pub async fn reset_2fa(opts: &crate::cli::SignOutOpts) -> Result<Outcome, Error> {
    let mut store = adopt::open_existing(opts.connect.url()).await?;
    store.migrate().await?;
    drop(store);
    let email = crate::state::normalize_email(&opts.email);
    let serve = crate::store::serve::ServeStore::open(opts.connect.url(), 1).await?;
    if !serve.reset_second_factor(&email).await? {
        return Err(Error::Refused(format!("no login has the email {email}")));
    }
    let now = crate::clock::format(jiff::Timestamp::now());
    serve
        .event(&email, "factor_reset", "", Some("portico reset-2fa"), &now)
        .await?;
    println!(
        "Removed the two-factor authenticator and recovery codes of {email}; its sessions ended. It sets up a new one at its next sign-in."
    );
    Ok(Outcome::Done)
}

/// `portico events [EMAIL]`: the sign-in events, newest first.
///
/// # Errors
/// A missing database, or database errors.
pub async fn events(opts: &crate::cli::EventsOpts) -> Result<Outcome, Error> {
    let mut store = adopt::open_existing(opts.connect.url()).await?;
    store.migrate().await?;
    drop(store);
    let serve = crate::store::serve::ServeStore::open(opts.connect.url(), 1).await?;
    let email = opts.email.as_deref().map(crate::state::normalize_email);
    let since = opts.since.map(crate::clock::format).unwrap_or_default();
    let rows = serve
        .events(email.as_deref(), &since, i64::from(opts.limit))
        .await?;
    if opts.format == crate::cli::HistoryFormat::Json {
        println!(
            "{}",
            crate::schema::to_json(crate::schema::Events { events: rows })
        );
        return Ok(Outcome::Done);
    }
    if rows.is_empty() {
        println!("No sign-in events.");
    }
    for row in rows {
        let line = format!(
            "{}  {:<22}  {}{}",
            row.at,
            row.kind,
            row.email,
            row.detail.map(|d| format!("  ({d})")).unwrap_or_default()
        );
        println!("{}", crate::unicode::escape_invisible(&line));
    }
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`validate_in_full`], which must succeed.
    async fn validate_all(
        store: &mut AnyStore,
        (path, args, inputs, reading): (&Path, &DiffArgs, Inputs, (bool, manifest::load::Reading)),
    ) -> Validated {
        validate_in_full(path, store, args, inputs, reading)
            .await
            .unwrap()
    }

    #[test]
    fn the_manifests_digest_changes_with_any_path_content_or_order() {
        let (a, b) = ([1u8; 20], [2u8; 20]);
        let digest = |files: &[(&str, [u8; 20])]| manifests_digest_of(files.iter().copied());
        let base = digest(&[("a.yaml", a), ("b.yaml", b)]);
        assert_eq!(base.len(), 16);
        assert_eq!(base, digest(&[("a.yaml", a), ("b.yaml", b)]));
        for other in [
            digest(&[("a.yaml", a), ("c.yaml", b)]),
            digest(&[("a.yaml", a), ("b.yaml", a)]),
            digest(&[("b.yaml", b), ("a.yaml", a)]),
            digest(&[("a.yaml", a)]),
            // A path's end cannot pass for the next one's start.
            digest(&[("a.yamlb", a), (".yaml", b)]),
        ] {
            assert_ne!(base, other);
        }
        // Many files hash across chunks as they would in one.
        let many: Vec<(String, [u8; 20])> =
            (0..5_000).map(|i| (format!("c/{i}.yaml"), a)).collect();
        let mut joined = Vec::new();
        for (name, id) in &many {
            joined.extend_from_slice(name.as_bytes());
            joined.push(0);
            joined.extend_from_slice(id);
        }
        use sha2::Digest as _;
        let whole = crate::state::hex(&sha2::Sha256::digest(&joined)[..8]);
        assert_eq!(
            manifests_digest_of(many.iter().map(|(n, id)| (n, *id))),
            whole
        );
    }

    #[tokio::test]
    async fn a_managed_write_between_a_full_plans_two_reads_starts_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let manifests = dir.path().join("manifests");
        std::fs::create_dir(&manifests).unwrap();
        std::fs::write(
            manifests.join("account.yaml"),
            "features: { customer_access: true }\ncustomers:\n  - { id: C1, name: One }\n",
        )
        .unwrap();
        let url = format!("sqlite://{}", dir.path().join("portico.db").display());
        store::open(&url, true).await.unwrap().init().await.unwrap();
        let mut store = store::open(&url, false).await.unwrap();
        let args = DiffArgs {
            no_prune: false,
            diff: false,
            summary: false,
            full: false,
            warn_expiring: 0,
            no_incremental: true,
            verbose: false,
        };
        let reading = (false, manifest::load::Reading::default());
        let full = (manifests.as_path(), &args, Inputs::Discard, reading);
        // Nothing written in between: the plan is made from the validated manifests.
        let validated = validate_all(&mut store, full).await;
        let computed = plan_in_full(&mut store, &args, Inputs::Discard, false, validated)
            .await
            .unwrap()
            .expect("nothing was written between the reads");
        let c1 = plan::Address::Customer("C1".into());
        assert!(computed.plan.changes.iter().any(|c| c.address == c1));
        // A website added by another writer after validation read the small tables: the
        // validation may be stale, so no plan is made from it.
        let validated = validate_all(&mut store, full).await;
        {
            use sqlx::Connection as _;
            let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query(
                "INSERT INTO websites (id, name, url) VALUES ('w', 'W', 'https://w.example')",
            )
            .execute(&mut other)
            .await
            .unwrap();
        }
        let again = plan_in_full(&mut store, &args, Inputs::Discard, false, validated)
            .await
            .unwrap();
        assert!(again.is_none(), "a plan was made from a stale validation");
    }

    #[test]
    fn an_apply_without_delivery_says_what_waits_counting_older_ones_up_to_a_bound() {
        assert_eq!(pending_line(0, 0), None);
        assert_eq!(
            pending_line(3, 3).as_deref(),
            Some("3 notification(s) queued by this apply; deliver them with `portico notify`.")
        );
        assert_eq!(
            pending_line(3, 3 + OLDER_PENDING_COUNTED).as_deref(),
            Some(
                "3 notification(s) queued by this apply (1000 older one(s) also pending); deliver them with `portico notify`."
            )
        );
        assert_eq!(
            pending_line(3, 3 + OLDER_PENDING_COUNTED + 1).as_deref(),
            Some(
                "3 notification(s) queued by this apply (more than 1,000 older ones also pending); deliver them with `portico notify`."
            )
        );
        // Messages this apply cancelled are not pending: nothing older is claimed.
        assert!(!pending_line(3, 2).unwrap().contains("older"));
    }
}
