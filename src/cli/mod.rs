//! The command line: parse arguments and call the library.

mod opt;

pub use opt::{
    ApplyOpts, Cli, Command, ConnectOpts, DeliveryArgs, DiffArgs, Format, HistoryCommand,
    HistoryFormat, HistoryOpts, ManifestOpts, NotifyOpts, PlanOpts, SchemaKind, SchemaOpts,
    SetPasswordOpts,
};

use crate::commands::{self, Outcome};
use crate::error::Error;

/// Runs one parsed command line.
///
/// # Errors
/// Whatever the command fails with; the caller prints it and exits non-zero.
pub async fn run(cli: Cli) -> Result<Outcome, Error> {
    match cli.command {
        Command::Validate(opts) => commands::validate(&opts.path),
        Command::Plan(opts) => commands::plan(&opts).await,
        Command::Apply(opts) => commands::apply(&opts).await,
        Command::Init(opts) => commands::init(&opts.database).await,
        Command::History(opts) => commands::history(&opts).await,
        Command::Notify(opts) => commands::notify(&opts).await,
        Command::SetPassword(opts) => commands::set_password(&opts).await,
        Command::Schema(opts) => {
            match opts.kind {
                SchemaKind::Manifest => println!("{}", crate::schema::manifest_schema()),
                SchemaKind::Plan => println!("{}", crate::schema::plan_schema()),
                SchemaKind::Notification => println!("{}", crate::schema::notification_schema()),
            }
            Ok(Outcome::Done)
        }
    }
}
