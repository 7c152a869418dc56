//! The errors a command ends with, as the user sees them, and their exit codes.

use crate::store::StoreError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The manifests have errors (already printed with their locations).
    #[error("{count} error{s} in the manifests; nothing was changed", s = if *count == 1 { "" } else { "s" })]
    Invalid {
        /// How many.
        count: usize,
    },
    /// The live database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The live database failed; the message names which database.
    #[error("{source} (database: {url})")]
    StoreAt {
        /// The database URL, password hidden.
        url: String,
        /// What failed.
        #[source]
        source: StoreError,
    },
    /// The plan about to be applied is not the reviewed one.
    #[error(
        "the plan has digest {actual}, not the expected {expected}: the manifests or the live database changed since the review; nothing was applied"
    )]
    DigestMismatch {
        /// The digest asked for.
        expected: String,
        /// The digest of the plan computed now.
        actual: String,
    },
    /// The destroy guard refused.
    #[error("refusing to delete or revoke {count} object{s} ({percent:.0}% of {logins} logins); the limits are {max} objects and {share:.0}% (raise --max-destroy / --max-destroy-share); nothing was applied", s = if *count == 1 { "" } else { "s" }, percent = share_of(*count, *logins) * 100.0, share = max_share * 100.0)]
    Guard {
        /// Deletions plus revocations.
        count: usize,
        /// Logins in the account.
        logins: usize,
        /// `--max-destroy`.
        max: usize,
        /// `--max-destroy-share`.
        max_share: f64,
    },
    /// A saved plan could not be read.
    #[error("cannot use plan file {path}: {reason}")]
    PlanFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Apply needs a "yes" and could not ask for one.
    #[error("apply needs confirmation: standard input is not a terminal, so pass --auto-approve")]
    NeedsApproval,
    /// The user did not confirm.
    #[error("apply cancelled; nothing was changed")]
    Cancelled,
    /// Talking to GitHub failed.
    #[error(transparent)]
    GitHub(#[from] crate::github::GitHubError),
    /// The login service could not start or stopped.
    #[error(transparent)]
    Serve(#[from] crate::serve::ServeError),
    /// Passwords could not be prepared.
    #[error(transparent)]
    Password(#[from] crate::passwords::PasswordError),
    /// Some notifications could not be delivered (they stay queued).
    #[error(
        "{0} notification(s) could not be delivered; they stay queued (see `portico notify --status`)"
    )]
    Undelivered(usize),
    /// A new password breaks the login policy.
    #[error("the new password is shorter than the login policy's minimum of {0} characters")]
    WeakPassword(usize),
    /// No apply with that id.
    #[error("no apply with id {0} (see `portico history`)")]
    NoSuchApply(i64),
    /// The database named does not exist (and this command never creates one).
    #[error(
        "no database at {0}: check --database / PORTICO_DATABASE_URL (this command never creates one)"
    )]
    NoDatabase(String),
    /// Apply was about to create a database nobody named.
    #[error(
        "no database at {0}, and none was named: apply never creates one implicitly. Pass --database URL (or set PORTICO_DATABASE_URL) to create it there, or run `portico init` first"
    )]
    NoDefaultDatabase(String),
    /// `export --out` names a folder that already holds files.
    #[error("{0} is not empty: choose an empty folder, or pass --force to replace its manifests")]
    NotEmpty(String),
    /// The CSV file cannot be read.
    #[error("cannot read {path}: {reason}")]
    Csv {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Rows of the CSV are bad (already printed, located).
    #[error("{0} problem(s) in the CSV; no manifest was changed")]
    BadRows(usize),
    /// No login has this email.
    #[error("no login has the email `{email}`{}", if near.is_empty() { String::new() } else { format!("; did you mean {}?", near.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")) })]
    UnknownLogin {
        /// The email asked for.
        email: String,
        /// Close matches.
        near: Vec<String>,
    },
    /// The failure is already reported on standard output (a JSON report); exit 1 quietly.
    #[error("")]
    Reported,
    /// A request that cannot be carried out, said in words.
    #[error("{0}")]
    Refused(String),
    /// Reading or writing a local file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// `count / logins`, 0 for an empty account.
pub fn share_of(count: usize, logins: usize) -> f64 {
    if logins == 0 {
        0.0
    } else {
        count as f64 / logins as f64
    }
}

impl Error {
    /// Names the database in errors that do not already (queries, schema, corrupt data).
    pub fn at_database(self, url: &str) -> Error {
        match self {
            Error::Store(
                source @ (StoreError::Query { .. }
                | StoreError::Corrupt(_)
                | StoreError::Migrate(_)
                | StoreError::TooNew { .. }
                | StoreError::Outdated { .. }),
            ) => Error::StoreAt {
                url: crate::store::redact_url(url),
                source,
            },
            other => other,
        }
    }

    /// The process exit code: 3 stale or unexpected plan, 4 lock timeout, 5 guard, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Store(StoreError::Stale) | Error::DigestMismatch { .. } => 3,
            Error::Store(StoreError::LockTimeout { .. }) => 4,
            Error::Guard { .. } => 5,
            _ => 1,
        }
    }
}

/// Prints an error and its causes to standard error, as `error: …`.
pub fn print(error: &Error) {
    use std::io::Write as _;
    if matches!(error, Error::Reported) {
        return;
    }
    let red = anstyle::AnsiColor::Red.on_default().bold();
    let mut stderr = anstream::stderr();
    let _ = writeln!(
        stderr,
        "{}error:{} {error}",
        red.render(),
        red.render_reset()
    );
}
