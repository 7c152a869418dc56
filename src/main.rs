use std::process::ExitCode;

use clap::Parser;
use portico::cli::{self, Cli};
use portico::commands::Outcome;

#[tokio::main]
async fn main() -> ExitCode {
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
    match cli::run(cli).await {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Changes) => ExitCode::from(2),
        Err(error) => {
            portico::error::print(&error);
            ExitCode::from(error.exit_code())
        }
    }
}
