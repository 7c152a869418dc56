//! Every command-line type. The `///` comments are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Customer-center access as code: plan and apply customers, contacts, roles and features
/// from YAML manifests to the live database.
#[derive(Debug, Parser)]
#[command(name = "portico", version, about, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// portico's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check manifests offline (no database needed).
    Validate(ManifestOpts),
    /// Show what apply would change in the live database. Only reads.
    Plan(PlanOpts),
    /// Make the live database match the manifests, in one transaction.
    Apply(ApplyOpts),
    /// Create or upgrade the live database schema.
    Init(ConnectOpts),
    /// Print the JSON Schema of manifest files.
    Schema,
}

/// Where the manifests are.
#[derive(Debug, Args)]
pub struct ManifestOpts {
    /// Manifest file or folder (every *.yaml / *.yml below it, recursively).
    #[arg(
        short = 'f',
        long = "file",
        env = "PORTICO_MANIFESTS",
        value_name = "PATH"
    )]
    pub path: PathBuf,
}

/// Which database.
#[derive(Debug, Args)]
pub struct ConnectOpts {
    /// Live database URL: sqlite://FILE (created when missing) or postgres://…
    #[arg(
        long,
        env = "PORTICO_DATABASE_URL",
        default_value = "sqlite://portico.db",
        value_name = "URL"
    )]
    pub database: String,
}

/// Options shared by plan and apply.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Never delete: objects no manifest declares are kept.
    #[arg(long)]
    pub no_prune: bool,
    /// Also print a unified diff of each changed object.
    #[arg(long)]
    pub diff: bool,
}

/// `portico plan`.
#[derive(Debug, Args)]
pub struct PlanOpts {
    #[command(flatten)]
    pub manifests: ManifestOpts,
    #[command(flatten)]
    pub connect: ConnectOpts,
    #[command(flatten)]
    pub diff: DiffArgs,
    /// Exit 0 when there is nothing to change, 2 when there is, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
}

/// `portico apply`.
#[derive(Debug, Args)]
pub struct ApplyOpts {
    #[command(flatten)]
    pub manifests: ManifestOpts,
    #[command(flatten)]
    pub connect: ConnectOpts,
    #[command(flatten)]
    pub diff: DiffArgs,
    /// Apply without asking. Required when standard input is not a terminal.
    #[arg(long)]
    pub auto_approve: bool,
}
