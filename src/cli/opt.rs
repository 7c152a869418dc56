//! Every command-line type. The `///` comments are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Customer-center access as code: plan and apply customers, contacts, roles and features
/// from YAML manifests to the live database.
#[derive(Debug, Parser)]
#[command(name = "portico", version = env!("PORTICO_LONG_VERSION"), about, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// When to color output. `auto` colors terminals only, and honours NO_COLOR and
    /// CLICOLOR_FORCE.
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,
}

/// How manifests are read (on the commands that read them).
#[derive(Debug, Clone, Copy, Args)]
pub struct ReadOpts {
    /// Largest manifest file read, in MiB (a larger one is an error, never skipped).
    #[arg(
        long,
        env = "PORTICO_MAX_FILE_SIZE",
        value_name = "MIB",
        default_value_t = crate::manifest::load::DEFAULT_MAX_FILE_MB
    )]
    pub max_file_size: u64,
    /// Report broken `policies:` as warnings instead of errors (for a migration period).
    #[arg(long, env = "PORTICO_POLICY_WARN_ONLY")]
    pub policy_warn_only: bool,
}

impl ReadOpts {
    /// What the manifest loader and the validator take.
    pub fn reading(&self) -> crate::manifest::load::Reading {
        crate::manifest::load::Reading {
            max_file_bytes: self.max_file_size.saturating_mul(1024 * 1024),
            policy_warn_only: self.policy_warn_only,
        }
    }
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// Color on terminals, unless NO_COLOR is set (CLICOLOR_FORCE forces it).
    Auto,
    /// Always, even into a pipe or file.
    Always,
    /// Never.
    Never,
}

impl ColorWhen {
    /// Makes every colored stream follow this choice.
    pub fn apply(self) {
        let choice = match self {
            ColorWhen::Auto => anstream::ColorChoice::Auto,
            ColorWhen::Always => anstream::ColorChoice::Always,
            ColorWhen::Never => anstream::ColorChoice::Never,
        };
        choice.write_global();
    }
}

/// portico's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check manifests offline (no database needed).
    #[command(after_help = "Examples:
  portico validate -f manifests/
  portico validate -f manifests/ --format json | jq '.diagnostics[] | .file + \":\" + (.line|tostring)'

Exit codes: 0 valid, 1 errors (printed with file:line:col), 64 bad usage.")]
    Validate(ValidateOpts),
    /// Show what apply would change in the live database. Only reads.
    #[command(after_help = "Examples:
  portico plan -f manifests/ --database postgres://portico@db/portico
  portico plan -f manifests/ --detailed-exitcode --out plan.json --format markdown
  portico plan -f manifests/ --summary

Exit codes: 0 success (with --detailed-exitcode: no changes), 2 there are changes
(--detailed-exitcode only), 1 error, 64 bad usage. Plan never writes to the database.")]
    Plan(PlanOpts),
    /// Make the live database match the manifests (or a saved plan), in one transaction.
    #[command(after_help = "Examples:
  portico apply -f manifests/ --database sqlite://live.db
  portico apply --plan plan.json --auto-approve
  portico apply -f manifests/ --expect-digest 3f9c2a1b7d4e --auto-approve

Exit codes: 0 applied (or nothing to do), 1 error or cancelled, 3 refused: the saved plan
is stale or the digest is not the reviewed one, 4 another apply held the lock past
--lock-timeout, 5 the destroy guard refused, 64 bad usage. Refusals change nothing.")]
    Apply(ApplyOpts),
    /// List past applies, or show one.
    #[command(after_help = "Examples:
  portico history
  portico history show 12
  portico history --format json | jq '.applies[-1].summary'")]
    History(HistoryOpts),
    /// Deliver queued new-access notifications (or list them with --status).
    #[command(after_help = "Examples:
  portico notify
  portico notify --status --format json
  portico notify --preview jane@acme.example -f manifests/
  portico notify --retry-failed
  PORTICO_SMTP_CA_FILE=relay-ca.pem portico notify   # trust a company CA for the SMTP relay

Exit codes: 0 nothing left to deliver, 1 messages still queued or failed (see --status).")]
    Notify(NotifyOpts),
    /// Redeem a set-password link: reads the token, then the new password, from stdin.
    #[command(after_help = "Example:
  printf '%s\n%s\n' \"$TOKEN\" \"$NEW_PASSWORD\" | portico set-password --token-stdin")]
    SetPassword(SetPasswordOpts),
    /// Write manifests from the live database, to adopt an existing account.
    #[command(after_help = "Examples:
  portico export --out manifests/ --database postgres://portico@db/portico
  portico export --out manifests/ --sections roles,customers --force")]
    Export(ExportOpts),
    /// Update manifests in place from a NetSuite customer-access CSV.
    #[command(after_help = "Examples:
  portico import-csv customers.csv -f manifests/ --dry-run
  portico import-csv customers.csv -f manifests/ --passwords notify")]
    ImportCsv(ImportCsvOpts),
    /// Explain what one login can do, and why (from the live database or the manifests).
    #[command(after_help = "Examples:
  portico access jane@acme.example
  portico access jane@acme.example -f manifests/ --format json")]
    Access(AccessOpts),
    /// Clear one login's lockout (failed attempts, locked until).
    #[command(after_help = "Example:
  portico unlock jane@acme.example --actor alice

Exit codes: 0 unlocked, 1 unknown login or error, 4 another apply held the lock.")]
    Unlock(LoginOpOpts),
    /// Send one login a fresh new-access notification with a new set-password link.
    #[command(after_help = "Examples:
  portico resend jane@acme.example
  portico resend jane@acme.example --no-notify

Exit codes: 0 queued (and delivered unless --no-notify), 1 error, 4 lock held.")]
    Resend(ResendOpts),
    /// Run the customer center's sign-in service (behind a TLS proxy): sign-in with lockout,
    /// the set-password page, sessions, and forward authentication for nginx, Traefik, Caddy.
    #[command(after_help = "Examples:
  portico serve --database postgres://portico@db/portico --listen 127.0.0.1:8080
  portico serve --database sqlite://live.db --insecure-cookies     # a local trial over plain HTTP

Stops on SIGINT or SIGTERM after the requests in flight. Exit codes: 0 stopped, 1 error.")]
    Serve(ServeOpts),
    /// End every session of one login at once (for "my account may be compromised").
    #[command(after_help = "Example:
  portico sign-out jane@acme.example

Exit codes: 0 signed out (or had no session), 1 unknown login or error.")]
    SignOut(SignOutOpts),
    /// Remove one login's two-factor authenticator and recovery codes (a lost phone): it
    /// enrols a new one at its next sign-in. Its sessions end.
    #[command(
        name = "reset-2fa",
        after_help = "Example:
  portico reset-2fa jane@acme.example

Exit codes: 0 removed, 1 unknown login or error."
    )]
    Reset2fa(SignOutOpts),
    /// The OpenID Connect provider's signing keys (`keys rotate`).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The sign-in events `portico serve` recorded (sign-ins, failures, lockouts, password
    /// sets, two-factor), newest first.
    #[command(after_help = "Examples:
  portico events jane@acme.example
  portico events --since 2026-12-01 --format json")]
    Events(EventsOpts),
    /// Create or upgrade the live database schema.
    #[command(after_help = "Examples:
  portico init --database sqlite://live.db
  portico init --database postgres://portico@db/portico")]
    Init(ConnectOpts),
    /// Print the JSON Schema of manifest files (or of the JSON plan).
    #[command(after_help = "Examples:
  portico schema > schemas/manifest.schema.json
  portico schema plan")]
    Schema(SchemaOpts),
    /// Render a saved plan (from `plan --out`) for review, without a database.
    #[command(after_help = "Examples:
  portico show plan.json
  portico show plan.json --format markdown
  portico show plan.json --diff")]
    Show(ShowOpts),
    /// Write the access review: every login × permission, as one self-contained HTML page
    /// (search, filters, sorting, printable; no network) or as CSV.
    #[command(after_help = "Examples:
  portico report --out access.html
  portico report --out access.html -f manifests/
  portico report --format csv --out access.csv")]
    Report(ReportOpts),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    #[command(after_help = "Examples:
  portico completions bash > /etc/bash_completion.d/portico
  portico completions zsh > \"${fpath[1]}/_portico\"
  portico completions fish > ~/.config/fish/completions/portico.fish")]
    Completions(CompletionsOpts),
    /// Print the man page (roff), for `man -l -`, or write one page per subcommand.
    #[command(after_help = "Examples:
  portico man | man -l -
  portico man --out /usr/local/share/man/man1     # portico.1, portico-plan.1, …")]
    Man(ManOpts),
}

/// `portico show`.
#[derive(Debug, Args)]
pub struct ShowOpts {
    /// The saved plan (JSON); `-` reads it from standard input.
    #[arg(value_name = "PLAN.json")]
    pub plan: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub diff: DiffArgs,
}

/// `portico report`.
#[derive(Debug, Args)]
pub struct ReportOpts {
    /// The file to write; `-` for standard output.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// `html` (one self-contained page) or `csv`.
    #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
    pub format: ReportFormat,
    /// Report the manifests' intended state instead of the live one (no runtime data).
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub path: Option<PathBuf>,
    #[command(flatten)]
    pub read: ReadOpts,
    #[command(flatten)]
    pub connect: ConnectOpts,
}

/// Formats of `portico report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// One self-contained page for a browser.
    Html,
    /// The same matrix for spreadsheets.
    Csv,
}

/// `portico completions`.
#[derive(Debug, Args)]
pub struct CompletionsOpts {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
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
    #[command(flatten)]
    pub read: ReadOpts,
}

/// `portico validate`.
#[derive(Debug, Args)]
pub struct ValidateOpts {
    #[command(flatten)]
    pub manifests: ManifestOpts,
    /// Output format (`json`: schemas/validate.schema.json, on standard output).
    #[arg(long, value_enum, default_value_t = HistoryFormat::Text)]
    pub format: HistoryFormat,
}

/// Which database.
#[derive(Debug, Args)]
pub struct ConnectOpts {
    /// Live database URL: sqlite://FILE or postgres://… [default: sqlite://portico.db]. Apply
    /// creates a missing SQLite file only when the URL is given (flag or environment).
    #[arg(
        long = "database",
        env = "PORTICO_DATABASE_URL",
        value_name = "URL",
        global = true
    )]
    pub given: Option<String>,
}

/// The database used when none is given.
pub const DEFAULT_DATABASE: &str = "sqlite://portico.db";

impl ConnectOpts {
    /// The URL: the one given, else the default.
    pub fn url(&self) -> &str {
        self.given.as_deref().unwrap_or(DEFAULT_DATABASE)
    }

    /// Whether the URL was given (flag or `PORTICO_DATABASE_URL`) rather than defaulted.
    pub fn explicit(&self) -> bool {
        self.given.is_some()
    }
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
    /// Text plan in short: counts per resource kind and action, and the first 10 changes of
    /// each action. The default above 1,000 changes.
    #[arg(long, conflicts_with = "full")]
    pub summary: bool,
    /// Text plan with every change, however many.
    #[arg(long)]
    pub full: bool,
    /// Warn about logins whose access expires within this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 14)]
    pub warn_expiring: u32,
    /// Read every file and every row, even when only some customer files changed since the
    /// last apply (by default such a plan reads only those: the same plan, sooner).
    #[arg(long, env = "PORTICO_NO_INCREMENTAL")]
    pub no_incremental: bool,
    /// Say on standard error how the plan was computed: from the changed files only, or in
    /// full and why.
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

/// Output formats of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people: colored on a terminal.
    Text,
    /// For tools: stable, versioned (schemas/plan.schema.json).
    Json,
    /// For a pull-request comment.
    Markdown,
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
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also save the plan (JSON, no secrets) for `apply --plan FILE`. `-` writes it to
    /// standard output instead of the rendered plan (whose summary goes to standard error).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 0 when there is nothing to change, 2 when there is, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Post the markdown plan on the pull request, or update portico's earlier comment there
    /// (GitHub Actions: needs GITHUB_TOKEN; GITHUB_API_URL, GITHUB_REPOSITORY and the PR
    /// number come from the Actions environment).
    #[arg(long)]
    pub github_comment: bool,
    /// Pull-request number for --github-comment (default: from the Actions event).
    #[arg(long, value_name = "N", env = "PORTICO_PR_NUMBER")]
    pub pr: Option<u64>,
}

/// `portico apply`.
#[derive(Debug, Args)]
pub struct ApplyOpts {
    /// Manifest file or folder. With --plan, only needed when the plan sets passwords from
    /// files or pre-hashed values: they are read from these manifests, which must be the
    /// ones the plan was computed from.
    #[arg(
        short = 'f',
        long = "file",
        env = "PORTICO_MANIFESTS",
        value_name = "PATH",
        required_unless_present = "plan"
    )]
    pub path: Option<PathBuf>,
    #[command(flatten)]
    pub read: ReadOpts,
    /// Apply exactly this saved plan (from `plan --out`); refused if the live state changed.
    /// `-` reads it from standard input (then `--auto-approve` is needed).
    #[arg(long, value_name = "FILE", conflicts_with = "no_prune")]
    pub plan: Option<PathBuf>,
    /// Apply only if the freshly computed plan has this digest (the one the review showed).
    #[arg(long, value_name = "DIGEST")]
    pub expect_digest: Option<String>,
    /// Like --expect-digest, with the digest read from portico's plan comment on the pull
    /// request that merged this commit (GitHub; needs GITHUB_TOKEN and GITHUB_SHA).
    #[arg(long, conflicts_with = "expect_digest")]
    pub expect_digest_from_pr: bool,
    /// After applying, post the result on the pull request that merged this commit
    /// (GitHub; needs GITHUB_TOKEN and GITHUB_SHA). A failure to post is only a warning.
    #[arg(long)]
    pub github_comment: bool,
    #[command(flatten)]
    pub connect: ConnectOpts,
    #[command(flatten)]
    pub diff: DiffArgs,
    /// Apply without asking. Required when standard input is not a terminal.
    #[arg(long)]
    pub auto_approve: bool,
    /// How long to wait for another apply to finish: seconds, or a duration such as `10s`,
    /// `2m`, `1m30s`.
    #[arg(long, value_name = "DURATION", default_value = "10", value_parser = parse_seconds)]
    pub lock_timeout: f64,
    /// Refuse when more than this many objects would be deleted or revoked.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_destroy: usize,
    /// Refuse when more than this share of the account's logins would be deleted or revoked
    /// (only checked once more than 10 would be).
    #[arg(long, value_name = "SHARE", default_value_t = 0.25)]
    pub max_destroy_share: f64,
    /// Who is applying, for history (default: the CI's actor, else the OS user).
    #[arg(long, env = "PORTICO_ACTOR", value_name = "NAME")]
    pub actor: Option<String>,
    /// Leave new-access notifications queued (deliver later with `portico notify`).
    #[arg(long, env = "PORTICO_NO_NOTIFY")]
    pub no_notify: bool,
    /// Apply as if it were this time (a date or RFC 3339 time) instead of the system clock:
    /// expiries are judged at it, and history records it. `PORTICO_NOW` never moves an
    /// apply's clock.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub now: Option<jiff::Timestamp>,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

fn parse_time(value: &str) -> Result<jiff::Timestamp, String> {
    crate::clock::parse(value)
}

/// How notifications are delivered.
#[derive(Debug, Args)]
pub struct DeliveryArgs {
    /// Seconds to wait for the notification endpoint: per webhook request; per SMTP
    /// connection (through TLS and AUTH) and per message.
    #[arg(
        long = "notify-timeout",
        value_name = "SECONDS",
        default_value_t = 10.0
    )]
    pub timeout: f64,
    /// Attempts per message in this run (with exponential backoff and jitter). After a
    /// failed run a message waits before the next run tries it (1 minute, doubling).
    #[arg(long = "notify-attempts", value_name = "N", default_value_t = 1)]
    pub attempts: u32,
    /// Messages delivered at once (SMTP connections are reused).
    #[arg(long = "notify-parallel", value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
}

/// `portico notify`.
#[derive(Debug, Args)]
pub struct NotifyOpts {
    /// List every message with its status instead of delivering.
    #[arg(long, conflicts_with_all = ["retry_failed", "preview"])]
    pub status: bool,
    /// Put `failed` messages (refused for good, or out of attempts) back in the queue, then
    /// deliver.
    #[arg(long, conflicts_with = "preview")]
    pub retry_failed: bool,
    /// Print the message this login would get (the set-password link shown as `<link>`),
    /// without sending anything: for editing the template.
    #[arg(long, value_name = "EMAIL")]
    pub preview: Option<String>,
    /// With --preview: use the manifests' template and login (the template files as they
    /// are now) instead of the live database's.
    #[arg(short = 'f', long = "file", value_name = "PATH", requires = "preview")]
    pub path: Option<PathBuf>,
    #[command(flatten)]
    pub read: ReadOpts,
    /// Try every pending message now, also those whose next-attempt time (the wait after a
    /// failure, doubling from 1 minute to about 4 hours) has not come yet.
    #[arg(long, conflicts_with_all = ["status", "preview"])]
    pub retry_now: bool,
    /// Output format of --status (`json`: schemas/outbox.schema.json).
    #[arg(long, value_enum, default_value_t = HistoryFormat::Text, requires = "status")]
    pub format: HistoryFormat,
    #[command(flatten)]
    pub connect: ConnectOpts,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

/// `portico set-password`.
#[derive(Debug, Args)]
pub struct SetPasswordOpts {
    /// Read the token (first line) and the new password (second line) from standard input.
    #[arg(long, required = true)]
    pub token_stdin: bool,
    #[command(flatten)]
    pub connect: ConnectOpts,
}

/// `portico export`.
#[derive(Debug, Args)]
pub struct ExportOpts {
    /// Folder to write the manifests to (created when missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Only these sections (comma-separated): features, websites, login_policy,
    /// notifications, roles, customers. Default: all.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_enum)]
    pub sections: Vec<Section>,
    /// Replace the *.yaml / *.yml files already in DIR (otherwise a non-empty DIR is refused).
    #[arg(long)]
    pub force: bool,
    /// Customers per file.
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pub per_file: usize,
    #[command(flatten)]
    pub connect: ConnectOpts,
}

/// A manifest section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Section {
    /// `features:`
    Features,
    /// `websites:`
    Websites,
    /// `login_policy:`
    LoginPolicy,
    /// `notifications:`
    Notifications,
    /// `roles:`
    Roles,
    /// `customers:`
    Customers,
    /// `policies:`
    Policies,
    /// `oidc_clients:`
    OidcClients,
}

/// `portico import-csv`.
#[derive(Debug, Args)]
pub struct ImportCsvOpts {
    /// The CSV file (NetSuite column names; `,` or `;` separated; UTF-8 with or without BOM);
    /// `-` reads it from standard input.
    #[arg(value_name = "FILE.csv")]
    pub csv: PathBuf,
    #[command(flatten)]
    pub manifests: ManifestOpts,
    /// Print the unified diff of the manifest files instead of writing them.
    #[arg(long)]
    pub dry_run: bool,
    /// What to do with plaintext passwords in the file: store an argon2id hash, or drop them
    /// and send the new-access notification. Without it, a row with a password is an error.
    #[arg(long, value_enum, value_name = "MODE")]
    pub passwords: Option<PasswordsMode>,
    /// Skip a column on purpose (repeatable).
    #[arg(long, value_name = "NAME")]
    pub ignore_column: Vec<String>,
    #[command(flatten)]
    pub connect: ConnectOpts,
}

/// `--passwords` of import-csv.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PasswordsMode {
    /// Write `password: { argon2: … }` (argon2id, hashed on all cores).
    Hash,
    /// Drop the password and set `notify: true`.
    Notify,
}

/// `portico access`.
#[derive(Debug, Args)]
pub struct AccessOpts {
    /// The login's email.
    pub email: String,
    /// Explain the manifests' intended state instead of the live one (no runtime data).
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub path: Option<PathBuf>,
    #[command(flatten)]
    pub read: ReadOpts,
    #[command(flatten)]
    pub connect: ConnectOpts,
    /// Output format.
    #[arg(long, value_enum, default_value_t = HistoryFormat::Text)]
    pub format: HistoryFormat,
}

/// `portico unlock`.
#[derive(Debug, Args)]
pub struct LoginOpOpts {
    /// The login's email.
    pub email: String,
    #[command(flatten)]
    pub connect: ConnectOpts,
    /// How long to wait for a running apply to finish: seconds, or a duration such as `10s`.
    #[arg(long, value_name = "DURATION", default_value = "10", value_parser = parse_seconds)]
    pub lock_timeout: f64,
    /// Who is doing this, for history (default: the CI's actor, else the OS user).
    #[arg(long, env = "PORTICO_ACTOR", value_name = "NAME")]
    pub actor: Option<String>,
}

/// `portico serve`.
#[derive(Debug, Args)]
pub struct ServeOpts {
    #[command(flatten)]
    pub connect: ConnectOpts,
    /// Address and port to listen on (a TLS-terminating proxy sits in front).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Plain HTTP for local trials and tests: cookies without `Secure` and the `__Host-`
    /// prefix. Refused on a non-loopback address.
    #[arg(long)]
    pub insecure_cookies: bool,
    /// A file holding the key for secrets at rest (two-factor seeds): 32 random bytes in
    /// base64 (`openssl rand -base64 32 > key`). Instead: `PORTICO_SECRET_KEY`.
    #[arg(long, value_name = "FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// Failed sign-ins, wrong codes and reset requests allowed per client address per hour
    /// before that address must wait (generous: a whole office may share one address).
    /// 0 turns this off.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub failures_per_address: u32,
    /// A proxy (address or network, such as 10.0.0.0/8) whose `X-Forwarded-For` gives the
    /// client's address. Repeat for several. Without it, the peer's address is the client's.
    #[arg(long = "trusted-proxy", value_name = "ADDR|CIDR", value_parser = parse_net)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Do not deliver the outbox from this server (leave it to `portico notify`). Reset
    /// messages then wait for the next `portico notify`.
    #[arg(long)]
    pub no_deliver: bool,
    /// Days sign-in events are kept before the server removes them.
    #[arg(long, value_name = "DAYS", default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub events_days: u32,
}

/// Seconds as a plain number (`10`, `0.5`) or a duration (`10s`, `2m`, `1m30s`, `500ms`), as
/// Terraform's `-lock-timeout` takes them.
fn parse_seconds(text: &str) -> Result<f64, String> {
    let seconds = match text.trim().parse::<f64>() {
        Ok(n) => n,
        Err(_) => text
            .trim()
            .parse::<jiff::SignedDuration>()
            .map_err(|_| {
                format!("`{text}` is not a duration: write seconds (10) or 10s, 2m, 1m30s")
            })?
            .as_secs_f64(),
    };
    if seconds.is_finite() && seconds >= 0.0 {
        Ok(seconds)
    } else {
        Err(format!("`{text}` is not a duration of zero or more"))
    }
}

/// An address (a network of one) or a network in CIDR form.
fn parse_net(text: &str) -> Result<ipnet::IpNet, String> {
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{text}` is not an address or a network such as 10.0.0.0/8"))
}

/// `portico man`.
#[derive(Debug, Args)]
pub struct ManOpts {
    /// Write `portico.1` and one page per subcommand (`portico-plan.1`, …) into this folder
    /// (created when missing) instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `portico events`.
#[derive(Debug, Args)]
pub struct EventsOpts {
    /// Only this login's email.
    pub email: Option<String>,
    /// Only events at or after this date or RFC 3339 time.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<jiff::Timestamp>,
    /// At most this many.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: u32,
    /// Output format (`json`: schemas/events.schema.json).
    #[arg(long, value_enum, default_value_t = HistoryFormat::Text)]
    pub format: HistoryFormat,
    #[command(flatten)]
    pub connect: ConnectOpts,
}

/// `portico keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new signing key for ID tokens and retire the current one. `portico serve`
    /// signs with the new key within 10 seconds; the retired key stays published for a day,
    /// so tokens it signed keep verifying until they expire.
    #[command(after_help = "Example:
  PORTICO_SECRET_KEY=… portico keys rotate --database postgres://…

Exit codes: 0 rotated, 1 error.")]
    Rotate(KeysRotateOpts),
}

/// `portico keys rotate`.
#[derive(Debug, Args)]
pub struct KeysRotateOpts {
    #[command(flatten)]
    pub connect: ConnectOpts,
    /// The file holding the server's key for secrets at rest (as for `serve`). Instead:
    /// `PORTICO_SECRET_KEY`.
    #[arg(long, value_name = "FILE")]
    pub secret_key_file: Option<PathBuf>,
}

/// `portico sign-out`.
#[derive(Debug, Args)]
pub struct SignOutOpts {
    /// The login's email.
    pub email: String,
    #[command(flatten)]
    pub connect: ConnectOpts,
}

/// `portico resend`.
#[derive(Debug, Args)]
pub struct ResendOpts {
    #[command(flatten)]
    pub login: LoginOpOpts,
    /// Only queue the message (deliver later with `portico notify`).
    #[arg(long)]
    pub no_notify: bool,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

/// `portico history`.
#[derive(Debug, Args)]
pub struct HistoryOpts {
    /// Show one apply in full.
    #[command(subcommand)]
    pub show: Option<HistoryCommand>,
    #[command(flatten)]
    pub connect: ConnectOpts,
    /// Output format.
    #[arg(long, value_enum, default_value_t = HistoryFormat::Text, global = true)]
    pub format: HistoryFormat,
}

/// `portico history show ID`.
#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// Show one apply with its full change list.
    Show {
        /// The apply's id (from `portico history`).
        id: i64,
    },
}

/// Output formats of history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HistoryFormat {
    /// For people.
    Text,
    /// For tools.
    Json,
}

/// `portico schema`.
#[derive(Debug, Args)]
pub struct SchemaOpts {
    /// Which schema.
    #[arg(value_enum, default_value_t = SchemaKind::Manifest)]
    pub kind: SchemaKind,
}

/// The JSON Schemas portico publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaKind {
    /// Manifest files.
    Manifest,
    /// `plan --format json` and saved plans.
    Plan,
    /// The JSON body of new-access notifications.
    Notification,
    /// `access --format json`.
    Access,
    /// `validate --format json`.
    Validate,
    /// `notify --status --format json`.
    Outbox,
    /// `events --format json`.
    Events,
    /// `history --format json`.
    History,
}
