//! The command line: every clap type (their `///` comments are the `--help` text). It
//! parses only; `commands::run` runs what it parsed.

mod opt;

pub use opt::{
    AccessOpts, ApplyOpts, Cli, ColorWhen, Command, ConnectOpts, DeliveryArgs, DiffArgs,
    EventsOpts, ExportOpts, Format, HistoryCommand, HistoryFormat, HistoryOpts, ImportCsvOpts,
    LoginOpOpts, ManifestOpts, NotifyOpts, PasswordsMode, PlanOpts, ResendOpts, SchemaKind,
    SchemaOpts, Section, ServeOpts, SetPasswordOpts, ShowOpts, SignOutOpts, ValidateOpts,
};
pub use opt::{KeysCommand, KeysRotateOpts, ReadOpts, ReportFormat, ReportOpts};
