//! The server's own background work: delivering the outbox (new-access messages an apply
//! queued, and password resets "forgot password" queued) with the same claims as `portico
//! notify`, so several servers and a scheduled `notify` never send a message twice; and
//! removing sign-in records past their retention.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{App, Options};

/// How often the outbox is looked at when nothing wakes it (an apply's messages).
const POLL: Duration = Duration::from_secs(10);

/// How often old records are removed.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Starts the background work; it runs until aborted.
pub fn spawn(app: Arc<App>, options: &Options) -> tokio::task::JoinHandle<()> {
    let deliver = options.deliver;
    let days = i64::from(options.events_days);
    let database = options.database.clone();
    tokio::spawn(async move {
        let mut pruned: Option<Instant> = None;
        let mut blocked = None;
        loop {
            if deliver {
                deliver_once(&database, &mut blocked).await;
            }
            if pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                prune(&app, days).await;
                pruned = Some(Instant::now());
            }
            tokio::select! {
                () = app.outbox.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    })
}

/// One delivery run, reported on standard error (addresses and errors, never a link); why
/// nothing could be sent is said once, not every run.
async fn deliver_once(database: &str, blocked: &mut Option<String>) {
    let run = async {
        let mut store = crate::store::open(database, true).await?;
        crate::notify::deliver(&mut store, &crate::notify::DeliveryOptions::default()).await
    };
    match run.await {
        Ok(report) => {
            if report.sent > 0 {
                eprintln!("portico serve: delivered {} message(s)", report.sent);
            }
            for (email, error) in report.failed.iter().chain(&report.dead) {
                eprintln!("portico serve: a message to {email} was not delivered: {error}");
            }
            if report.stopped > 0 {
                eprintln!(
                    "portico serve: delivery stopped after {} failures in a row; {} message(s) wait for the next run",
                    crate::notify::STOP_AFTER_FAILURES,
                    report.stopped
                );
            }
            if report.blocked.is_some() && report.blocked != *blocked {
                eprintln!(
                    "portico serve: {}",
                    report.blocked.as_deref().unwrap_or_default()
                );
            }
            *blocked = report.blocked;
        }
        Err(e) => eprintln!("portico serve: delivering the outbox failed: {e}"),
    }
}

/// Removes events older than `days` and what has ended.
async fn prune(app: &App, days: i64) {
    let now = jiff::Timestamp::now();
    let before =
        |seconds: i64| crate::clock::format(now - jiff::SignedDuration::from_secs(seconds));
    match app
        .store
        .prune(
            &before(days * 86_400),
            &before(3600),
            &crate::clock::format(now),
        )
        .await
    {
        Ok(0) => {}
        Ok(n) => eprintln!("portico serve: removed {n} sign-in event(s) older than {days} days"),
        Err(e) => eprintln!("portico serve: removing old sign-in records failed: {e}"),
    }
}
