//! Progress of long work: an animated bar on a terminal; without one (CI logs), a plain line
//! on standard error every few seconds saying what, how far and for how long — never control
//! characters in a log.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Seconds between plain progress lines (`PORTICO_PROGRESS_SECONDS`, default 5).
fn interval() -> Duration {
    std::env::var("PORTICO_PROGRESS_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .unwrap_or(Duration::from_secs(5))
}

/// A progress report; cheap to clone into worker threads.
#[derive(Clone)]
pub struct Progress {
    bar: indicatif::ProgressBar,
    pos: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
}

impl Progress {
    /// Starts reporting `what`, out of `total` steps when known. Work smaller than `min`
    /// steps reports nothing.
    pub fn start(what: &str, total: Option<u64>, min: u64) -> Progress {
        let quiet = total.is_some_and(|t| t < min);
        let terminal = std::io::stderr().is_terminal();
        let bar = match total {
            Some(total) => indicatif::ProgressBar::new(total).with_style(
                indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} ({eta})")
                    .expect("static template"),
            ),
            None => indicatif::ProgressBar::new_spinner(),
        }
        .with_message(what.to_string());
        let progress = Progress {
            bar,
            pos: Arc::new(AtomicU64::new(0)),
            done: Arc::new(AtomicBool::new(false)),
        };
        if quiet || !terminal {
            progress
                .bar
                .set_draw_target(indicatif::ProgressDrawTarget::hidden());
        } else if total.is_none() {
            progress.bar.enable_steady_tick(Duration::from_millis(120));
        }
        if !quiet && !terminal {
            let (what, pos, done) = (
                what.to_string(),
                progress.pos.clone(),
                progress.done.clone(),
            );
            let every = interval();
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut next = every;
                loop {
                    std::thread::sleep(Duration::from_millis(20).min(every));
                    if done.load(Ordering::Relaxed) {
                        return;
                    }
                    if started.elapsed() >= next {
                        next += every;
                        let far = match total {
                            Some(total) => format!("{}/{total}", pos.load(Ordering::Relaxed)),
                            None => "working".into(),
                        };
                        eprintln!("{what}: {far} after {:.0?}", started.elapsed());
                    }
                }
            });
        }
        progress
    }

    /// One more step done.
    pub fn inc(&self) {
        self.pos.fetch_add(1, Ordering::Relaxed);
        self.bar.inc(1);
    }

    /// Stops reporting.
    pub fn finish(&self) {
        self.done.store(true, Ordering::Relaxed);
        self.bar.finish_and_clear();
    }
}

/// Whether `PORTICO_TIMINGS` asks for the time of each phase on standard error (for
/// `benches/scale.sh` and profiling; off by default).
fn timings_on() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("PORTICO_TIMINGS").is_some_and(|v| !v.is_empty()))
}

/// When the command started, for the "at" of [`phase`]'s lines (the first phase's start when
/// [`command_started`] was not called).
static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Notes that the command starts now (`main` calls it first).
pub fn command_started() {
    START.get_or_init(Instant::now);
}

/// Runs `work` as the phase `name`; with `PORTICO_TIMINGS` set, prints how long it took
/// and the process's resident memory at its end.
pub fn phase<T>(name: &str, work: impl FnOnce() -> T) -> T {
    if !timings_on() {
        return work();
    }
    let started = Instant::now();
    let value = work();
    report(name, started);
    value
}

/// With `PORTICO_TIMINGS` set, prints a count `name` a command made (as
/// `timing: NAME: N`).
pub fn count(name: &str, n: usize) {
    if timings_on() {
        eprintln!("timing: {name}: {n}");
    }
}

fn report(name: &str, started: Instant) {
    // Linux: the second field of /proc/self/statm is resident pages (4 KiB here).
    let resident = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| format!(", {} MiB resident", pages * 4096 / 1_048_576))
        .unwrap_or_default();
    // The phase's length to a tenth of a millisecond (a 10-login plan's phases take one to
    // a few), and when it ended, counted from the command's start.
    let first = *START.get_or_init(|| started);
    eprintln!(
        "timing: {name} {:.4} s, at {:.1} ms{resident}",
        started.elapsed().as_secs_f64(),
        first.elapsed().as_secs_f64() * 1000.0
    );
}

/// [`phase`] for async work.
pub async fn phase_async<T>(name: &str, work: impl std::future::Future<Output = T>) -> T {
    if !timings_on() {
        return work.await;
    }
    let started = Instant::now();
    let value = work.await;
    report(name, started);
    value
}
