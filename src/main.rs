use std::process::ExitCode;

use clap::Parser;
use portico::cli::{self, Cli};
use portico::commands::Outcome;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli::run(cli).await {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Changes) => ExitCode::from(2),
        Err(error) => {
            portico::error::print(&error);
            ExitCode::from(error.exit_code())
        }
    }
}
