//! The errors a command ends with, as the user sees them.

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
    /// Apply needs a "yes" and could not ask for one.
    #[error("apply needs confirmation: standard input is not a terminal, so pass --auto-approve")]
    NeedsApproval,
    /// The user did not confirm.
    #[error("apply cancelled; nothing was changed")]
    Cancelled,
    /// Reading the confirmation failed.
    #[error("cannot read the confirmation: {0}")]
    Io(#[from] std::io::Error),
}

/// Prints an error and its causes to standard error, as `error: …`.
pub fn print(error: &Error) {
    use std::io::Write as _;
    let red = anstyle::AnsiColor::Red.on_default().bold();
    let mut stderr = anstream::stderr();
    let _ = write!(
        stderr,
        "{}error:{} {error}",
        red.render(),
        red.render_reset()
    );
    let _ = writeln!(stderr);
}
