//! Getting an existing account in: `export` (live database → manifests) and `import-csv`
//! (NetSuite's bulk CSV → manifests, in place).

use std::path::{Path, PathBuf};

use super::Outcome;
use crate::cli::{ExportOpts, ImportCsvOpts, PasswordsMode, Section};
use crate::error::Error;
use crate::export::{ExportOptions, SCHEMA_FILE};
use crate::import::{self, PasswordMode};
use crate::manifest;
use crate::store::{self, AnyStore, Store};
use crate::validate::Sections;
use compact_str::CompactString;

/// Opens the database for reading and fails when a SQLite file does not exist: exporting or
/// explaining a database that is not there is a mistake, not an empty account.
pub(crate) async fn open_existing(url: &str) -> Result<AnyStore, Error> {
    let store = store::open(url, false).await?;
    if let AnyStore::Sqlite(sqlite) = &store
        && !sqlite.path().exists()
    {
        let path = sqlite.path();
        return Err(Error::NoDatabase(format!(
            "{}{}",
            path.display(),
            crate::manifest::load::relative_note(path)
        )));
    }
    Ok(store)
}

fn sections(list: &[Section]) -> Sections {
    if list.is_empty() {
        return ExportOptions::default().sections;
    }
    let has = |s: Section| list.contains(&s);
    Sections {
        features: has(Section::Features),
        websites: has(Section::Websites),
        login_policy: has(Section::LoginPolicy),
        notifications: has(Section::Notifications),
        roles: has(Section::Roles),
        customers: has(Section::Customers),
        policies: has(Section::Policies),
        oidc_clients: has(Section::OidcClients),
    }
}

/// Whether a path (relative to the manifest folder) is a manifest file that loading reads:
/// `*.yaml` / `*.yml` with no hidden component.
fn is_visible_manifest(relative: &Path) -> bool {
    let hidden = relative
        .components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'));
    !hidden
        && relative
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

/// `portico export --out DIR`.
///
/// # Errors
/// A missing database, a non-empty DIR without `--force`, database or file errors.
pub async fn export(opts: &ExportOpts) -> Result<Outcome, Error> {
    let out = &opts.out;
    if out.exists() && !opts.force && std::fs::read_dir(out)?.next().is_some() {
        return Err(Error::NotEmpty(out.display().to_string()));
    }
    let mut store = open_existing(opts.connect.url()).await?;
    let state = store.read().await?;
    let options = ExportOptions {
        sections: sections(&opts.sections),
        per_file: opts.per_file,
    };
    let export = crate::export::export(&state, options);
    // The new folder is written beside the old one and swapped in only when complete: a kill
    // never leaves half an account (which would plan thousands of deletions). Everything of
    // the old folder but its manifest files (outside hidden folders) is kept.
    let build = |dir: &Path| -> std::io::Result<()> {
        std::fs::write(
            dir.join(SCHEMA_FILE),
            crate::schema::manifest_schema() + "\n",
        )?;
        for file in &export.files {
            let path = dir.join(&file.path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, &file.text)?;
        }
        Ok(())
    };
    crate::files::replace_dir(out, build, |relative| !is_visible_manifest(relative))?;
    for warning in &export.warnings {
        eprintln!("warning: {warning}");
    }
    let contacts: usize = state.customers.values().map(|c| c.contacts.len()).sum();
    println!(
        "Exported {} customers ({contacts} contacts), {} roles and {} websites to {} in {} files. `portico plan -f {}` should show no changes.",
        state.customers.len(),
        state.roles.len(),
        state.websites.len(),
        out.display(),
        export.files.len(),
        out.display(),
    );
    Ok(Outcome::Done)
}

/// What an import needs of the live database ([`import::Live`]) but the names of the
/// customers the CSV names that no manifest declares ([`live_names`]), or an empty account
/// when there is no database yet.
async fn live_for_import(store: &mut AnyStore) -> Result<import::Live, Error> {
    let query = store::PartQuery {
        customers: &[],
        expiring_before: "",
        access_keys: true,
        password_markers: true,
    };
    let part = store.read_part(&query).await?;
    Ok(import::Live {
        state: part.state,
        markers: part.markers,
    })
}

/// The live customers of `ids` (whose names a new customer without one takes) into `live`.
async fn live_names(
    store: &mut AnyStore,
    ids: &[CompactString],
    live: &mut import::Live,
) -> Result<(), Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let query = store::PartQuery {
        customers: ids,
        expiring_before: "",
        access_keys: false,
        password_markers: false,
    };
    live.state.customers = store.read_part(&query).await?.state.customers;
    Ok(())
}

/// `portico import-csv FILE.csv -f DIR`.
///
/// # Errors
/// Bad rows (all reported, nothing written), unreadable manifests, or file errors.
pub async fn import_csv(opts: &ImportCsvOpts) -> Result<Outcome, Error> {
    let csv_path = &opts.csv;
    let text = read_csv(csv_path, opts.manifests.read.reading().max_file_bytes)?;
    let root = &opts.manifests.path;
    // An import parses every manifest and loads the edited ones again: what one step frees
    // goes back to the OS before the next allocates, as in a plan that reads everything.
    crate::memory::full_read();
    let (set, diagnostics) = crate::progress::phase("parse", || {
        manifest::load(root, opts.manifests.read.reading())
    });
    let problems: Vec<_> = diagnostics.into_iter().filter(|d| d.is_error()).collect();
    if !problems.is_empty() {
        let rendered = manifest::diagnostic::render(&set.sources, &problems, true);
        eprint!("{rendered}");
        return Err(Error::Invalid {
            count: problems.len(),
        });
    }
    let mut store = store::open(opts.connect.url(), false).await?;
    let mut live = crate::progress::phase_async("read live", live_for_import(&mut store)).await?;
    let known = import::known_problems(&set, &live.state);
    let rows = import::read_rows(text, &opts.ignore_column);
    live_names(&mut store, &import::undeclared(&set, &rows.0), &mut live).await?;
    drop(store);
    let mode = opts.passwords.map(|m| match m {
        PasswordsMode::Hash => PasswordMode::Hash,
        PasswordsMode::Notify => PasswordMode::Notify,
    });
    let options = (mode, opts.dry_run);
    let result = import::import(rows, root, &set, &live, options);
    // The manifests as they were are not needed any more: gone before the edited manifests
    // are loaded and checked, so the two sets are never held at once.
    let reading = set.reading;
    drop(set);
    let live = live.state;
    let import = match result.and_then(|import| {
        import::check_result(root, known, reading, &import, &live).map(|()| import)
    }) {
        Ok(import) => import,
        Err(errors) => {
            eprint!("{}", import::render_errors(csv_path, &errors));
            return Err(Error::BadRows(errors.len()));
        }
    };
    for warning in &import.warnings {
        eprintln!("warning: {warning}");
    }
    write_import(&import, opts.dry_run)?;
    print_import(&import, opts.dry_run);
    Ok(Outcome::Done)
}

/// The CSV's text (`-`: standard input), refused past `limit` bytes or when not UTF-8.
fn read_csv(csv_path: &Path, limit: u64) -> Result<String, Error> {
    let too_big = |size: u64| Error::Csv {
        path: csv_path.display().to_string(),
        reason: format!(
            "it is {:.1} MiB, more than the limit of {} MiB (--max-file-size): split it",
            size as f64 / 1048576.0,
            limit / 1048576
        ),
    };
    let unreadable = |e: std::io::Error| Error::Csv {
        path: csv_path.display().to_string(),
        reason: e.to_string(),
    };
    // `-`: the CSV comes from standard input, read up to the limit.
    let bytes = if csv_path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::io::stdin(), limit + 1),
            &mut bytes,
        )
        .map_err(unreadable)?;
        if bytes.len() as u64 > limit {
            return Err(too_big(bytes.len() as u64));
        }
        bytes
    } else {
        let size = std::fs::metadata(csv_path).map(|m| m.len()).unwrap_or(0);
        if size > limit {
            return Err(too_big(size));
        }
        std::fs::read(csv_path).map_err(unreadable)?
    };
    String::from_utf8(bytes).map_err(|_| Error::Csv {
        path: csv_path.display().to_string(),
        reason: "not UTF-8 text: save it as \"CSV UTF-8\"".into(),
    })
}

/// Writes the edited manifests, all or none (`--dry-run`: prints them as a diff instead).
fn write_import(import: &import::Import, dry_run: bool) -> Result<(), Error> {
    if dry_run {
        for file in &import.files {
            let path = file.path.display().to_string();
            let diff = similar::TextDiff::from_lines(&file.before, &file.after);
            let old = if file.before.is_empty() {
                "/dev/null".to_string()
            } else {
                format!("a/{path}")
            };
            print!("{}", diff.unified_diff().header(&old, &format!("b/{path}")));
        }
    } else {
        let files: Vec<(PathBuf, &[u8])> = import
            .files
            .iter()
            .map(|f| (f.path.clone(), f.after.as_bytes()))
            .collect();
        crate::files::write_all_atomic(&files)?;
    }
    Ok(())
}

/// Says what the import changed.
fn print_import(import: &import::Import, dry_run: bool) {
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let (update, add) = if dry_run {
        ("Would update", "would add")
    } else {
        ("Updated", "added")
    };
    println!(
        "{update} {} in place and {add} {} in a new file ({} changed nothing); {}. Run `portico plan` to review.",
        plural(import.updated, "customer", "customers"),
        plural(import.added, "customer", "customers"),
        plural(import.unchanged, "row", "rows"),
        plural(import.files.len(), "file", "files"),
    );
}
