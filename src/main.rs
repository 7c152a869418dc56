use std::process::ExitCode;

use clap::Parser;
use portico::cli::{self, Cli};
use portico::commands::Outcome;

/// mimalloc: at 300,000 logins, glibc's per-thread arenas kept 80 MB more than mimalloc for
/// the same allocations, and were slower at the many small strings of a big account.
/// `--features system-allocator` keeps glibc's, for heap profilers such as heaptrack.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    // A reader that stops early (`portico history | head`) ends portico quietly, as it ends
    // `cat`, instead of a panic on the broken pipe.
    sigpipe::reset();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            // Help and --version succeed; a usage error gets EX_USAGE (64), never 2, which
            // `plan --detailed-exitcode` uses for "there are changes".
            return if error.use_stderr() {
                ExitCode::from(64)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    cli.color.apply();
    match cli::run(cli).await {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Changes) => ExitCode::from(2),
        Err(error) => {
            portico::error::print(&error);
            ExitCode::from(error.exit_code())
        }
    }
}
