//! Running one parsed command line: the process-wide settings it fixes, dispatch to the
//! command, and naming the database in errors.

use super::{self as commands, Outcome};
use crate::cli::{Cli, Command, SchemaKind};
use crate::error::Error;

/// Runs one parsed command line.
///
/// # Errors
/// Whatever the command fails with; the caller prints it and exits non-zero.
pub async fn run(cli: Cli) -> Result<Outcome, Error> {
    choose_clock(&cli.command)?;
    let database = database(&cli.command).map(str::to_string);
    let result = dispatch(cli.command).await;
    match database {
        Some(url) => result.map_err(|e| e.at_database(&url)),
        None => result,
    }
}

/// Fixes the clock: read-only commands honour `PORTICO_NOW` (what-if questions); commands
/// that write use the system clock, except `apply --now`, which history records. A leftover
/// `PORTICO_NOW` therefore never re-grants expired access or queues mail.
fn choose_clock(command: &Command) -> Result<(), Error> {
    let from_env = crate::clock::from_env().map_err(Error::Refused)?;
    let writes = matches!(
        command,
        Command::Apply(_)
            | Command::Init(_)
            | Command::Notify(_)
            | Command::SetPassword(_)
            | Command::Unlock(_)
            | Command::Resend(_)
            | Command::Serve(_)
            | Command::SignOut(_)
            | Command::Reset2fa(_)
            | Command::Keys(_)
            | Command::ImportCsv(_)
    );
    let chosen = match command {
        Command::Apply(opts) if opts.now.is_some() => {
            let at = crate::clock::format(opts.now.expect("checked"));
            eprintln!(
                "note: applying as of {at} (--now), not the system clock; history records it"
            );
            opts.now
        }
        _ if writes => {
            if from_env.is_some() {
                eprintln!(
                    "warning: {} is ignored by commands that write: this one runs on the system clock (apply takes --now)",
                    crate::clock::NOW_VAR
                );
            }
            None
        }
        Command::Plan(_) => {
            if let Some(at) = from_env {
                eprintln!(
                    "note: planning as of {} ({}), not the system clock",
                    crate::clock::format(at),
                    crate::clock::NOW_VAR
                );
            }
            from_env
        }
        _ => from_env,
    };
    crate::clock::set(chosen);
    Ok(())
}

/// The database a command uses, for naming it in errors.
fn database(command: &Command) -> Option<&str> {
    Some(match command {
        Command::Plan(o) => o.connect.url(),
        Command::Apply(o) => o.connect.url(),
        Command::History(o) => o.connect.url(),
        Command::Notify(o) => o.connect.url(),
        Command::SetPassword(o) => o.connect.url(),
        Command::Init(o) => o.url(),
        Command::Export(o) => o.connect.url(),
        Command::ImportCsv(o) => o.connect.url(),
        Command::Access(o) => o.connect.url(),
        Command::Unlock(o) => o.connect.url(),
        Command::Report(o) => o.connect.url(),
        Command::Resend(o) => o.login.connect.url(),
        Command::Serve(o) => o.connect.url(),
        Command::SignOut(o) | Command::Reset2fa(o) => o.connect.url(),
        Command::Keys(crate::cli::KeysCommand::Rotate(o)) => o.connect.url(),
        Command::Events(o) => o.connect.url(),
        Command::Validate(_)
        | Command::Schema(_)
        | Command::Show(_)
        | Command::Completions(_)
        | Command::Man(_) => return None,
    })
}

async fn dispatch(command: Command) -> Result<Outcome, Error> {
    match command {
        Command::Validate(opts) => commands::validate(&opts),
        Command::Plan(opts) => commands::plan(&opts).await,
        Command::Apply(opts) => commands::apply(&opts).await,
        Command::Init(opts) => commands::init(opts.url()).await,
        Command::Export(opts) => commands::adopt::export(&opts).await,
        Command::ImportCsv(opts) => commands::adopt::import_csv(&opts).await,
        Command::Access(opts) => commands::day2::access(&opts).await,
        Command::Unlock(opts) => commands::day2::unlock(&opts).await,
        Command::Resend(opts) => commands::day2::resend(&opts).await,
        Command::Serve(opts) => commands::serve(&opts).await,
        Command::SignOut(opts) => commands::sign_out(&opts).await,
        Command::Reset2fa(opts) => commands::reset_2fa(&opts).await,
        Command::Keys(crate::cli::KeysCommand::Rotate(opts)) => commands::rotate_keys(&opts).await,
        Command::Events(opts) => commands::events(&opts).await,
        Command::History(opts) => commands::history(&opts).await,
        Command::Notify(opts) => commands::notify(&opts).await,
        Command::SetPassword(opts) => commands::set_password(&opts).await,
        Command::Show(opts) => commands::show(&opts),
        Command::Report(opts) => commands::day2::report(&opts).await,
        Command::Completions(opts) => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(opts.shell, &mut command, "portico", &mut std::io::stdout());
            Ok(Outcome::Done)
        }
        Command::Man(opts) => {
            let command = <Cli as clap::CommandFactory>::command();
            match &opts.out {
                None => clap_mangen::Man::new(command).render(&mut std::io::stdout())?,
                Some(dir) => write_man_pages(command, dir)?,
            }
            Ok(Outcome::Done)
        }
        Command::Schema(opts) => {
            match opts.kind {
                SchemaKind::Manifest => println!("{}", crate::schema::manifest_schema()),
                SchemaKind::Plan => println!("{}", crate::schema::plan_schema()),
                SchemaKind::Notification => println!("{}", crate::schema::notification_schema()),
                SchemaKind::Access => println!("{}", crate::schema::access_schema()),
                SchemaKind::Validate => println!("{}", crate::schema::validate_schema()),
                SchemaKind::Outbox => println!("{}", crate::schema::outbox_schema()),
                SchemaKind::Events => println!("{}", crate::schema::events_schema()),
                SchemaKind::History => println!("{}", crate::schema::history_schema()),
            }
            Ok(Outcome::Done)
        }
    }
}

/// Writes `portico.1` and a page per subcommand (`portico-plan.1`, `portico-history-show.1`)
/// into `dir`, each replaced whole.
fn write_man_pages(command: clap::Command, dir: &std::path::Path) -> std::io::Result<()> {
    fn pages(
        command: clap::Command,
        out: &mut Vec<(std::path::PathBuf, Vec<u8>)>,
        dir: &std::path::Path,
    ) -> std::io::Result<()> {
        for sub in command
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .cloned()
        {
            pages(sub, out, dir)?;
        }
        let man = clap_mangen::Man::new(command);
        let mut page = Vec::new();
        man.render(&mut page)?;
        out.push((dir.join(man.get_filename()), page));
        Ok(())
    }
    std::fs::create_dir_all(dir)?;
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let mut out = Vec::new();
    pages(command, &mut out, dir)?;
    let files: Vec<(std::path::PathBuf, &[u8])> =
        out.iter().map(|(p, b)| (p.clone(), b.as_slice())).collect();
    crate::files::write_all_atomic(&files)?;
    eprintln!("Wrote {} man pages to {}.", files.len(), dir.display());
    Ok(())
}
