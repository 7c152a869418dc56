//! Getting an existing account in: `export` (live database → manifests) and `import-csv`
//! (NetSuite's bulk CSV → manifests, in place).

use std::path::{Path, PathBuf};

use super::Outcome;
use crate::cli::{ExportOpts, ImportCsvOpts, PasswordsMode, Section};
use crate::error::Error;
use crate::export::{ExportOptions, SCHEMA_FILE};
use crate::import::{self, PasswordMode};
use crate::manifest;
use crate::state::State;
use crate::store::{self, AnyStore, Store};
use crate::validate::Sections;

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
    }
}

/// Manifest files (`*.yaml`, `*.yml`) under `dir`, outside hidden folders.
fn manifest_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            manifest_files(&path, out)?;
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
        {
            out.push(path);
        }
    }
    Ok(())
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
    if out.exists() && opts.force {
        let mut old = Vec::new();
        manifest_files(out, &mut old)?;
        for file in old {
            std::fs::remove_file(file)?;
        }
    }
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join(SCHEMA_FILE),
        crate::schema::manifest_schema() + "\n",
    )?;
    for file in &export.files {
        let path = out.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, &file.text)?;
    }
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

/// The live state for resolving names, or an empty account when there is no database yet.
async fn live_or_empty(url: &str) -> Result<State, Error> {
    let mut store = store::open(url, false).await?;
    Ok(store.read().await?)
}

/// `portico import-csv FILE.csv -f DIR`.
///
/// # Errors
/// Bad rows (all reported, nothing written), unreadable manifests, or file errors.
pub async fn import_csv(opts: &ImportCsvOpts) -> Result<Outcome, Error> {
    let csv_path = &opts.csv;
    let bytes = std::fs::read(csv_path).map_err(|e| Error::Csv {
        path: csv_path.display().to_string(),
        reason: e.to_string(),
    })?;
    let text = String::from_utf8(bytes).map_err(|_| Error::Csv {
        path: csv_path.display().to_string(),
        reason: "not UTF-8 text: save it as \"CSV UTF-8\"".into(),
    })?;
    let root = &opts.manifests.path;
    let (set, diagnostics) = manifest::load(root);
    let problems: Vec<_> = diagnostics.into_iter().filter(|d| d.is_error()).collect();
    if !problems.is_empty() {
        let rendered = manifest::diagnostic::render(&set.sources, &problems, true);
        eprint!("{rendered}");
        return Err(Error::Invalid {
            count: problems.len(),
        });
    }
    let live = live_or_empty(opts.connect.url()).await?;
    let mode = opts.passwords.map(|m| match m {
        PasswordsMode::Hash => PasswordMode::Hash,
        PasswordsMode::Notify => PasswordMode::Notify,
    });
    let result = import::import(&text, root, &set, &live, mode, &opts.ignore_column);
    let import = match result {
        Ok(import) => import,
        Err(errors) => {
            eprint!("{}", import::render_errors(csv_path, &errors));
            return Err(Error::BadRows(errors.len()));
        }
    };
    for warning in &import.warnings {
        eprintln!("warning: {warning}");
    }
    if opts.dry_run {
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
        for file in &import.files {
            write_atomically(&file.path, &file.after)?;
        }
    }
    let verb = if opts.dry_run {
        "Would update"
    } else {
        "Updated"
    };
    println!(
        "{verb} {} customers in place and add {} in a new file ({} rows changed nothing); {} file(s). Run `portico plan` to review.",
        import.updated,
        import.added,
        import.unchanged,
        import.files.len()
    );
    Ok(Outcome::Done)
}

/// Writes a file through a temporary sibling and a rename, so a crash leaves the old file or
/// the new one, never half of it.
fn write_atomically(path: &Path, text: &str) -> Result<(), Error> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".portico-tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
