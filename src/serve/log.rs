//! The access log: one line per request, formatted into a shared buffer that a thread of its
//! own writes to standard error every few milliseconds, so no request waits for the terminal
//! or the disk and none wakes another thread (a write per request, then a wake-up per
//! request, were the hot path's largest costs). Under overload, lines beyond the buffer's
//! bound are dropped rather than queued without bound, and counted.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Bytes waiting to be written at most (about 100,000 lines).
const BOUND: usize = 8 << 20;
/// How often the thread writes what has gathered.
const EVERY: Duration = Duration::from_millis(25);

struct Shared {
    buffer: Mutex<Vec<u8>>,
    /// Held while writing, so what is written stays in order.
    writing: Mutex<()>,
    dropped: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    /// Writes out what has gathered.
    fn drain(&self) {
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let chunk = std::mem::take(&mut *self.buffer.lock().unwrap_or_else(|e| e.into_inner()));
        if !chunk.is_empty() {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(&chunk);
            let _ = err.flush();
        }
    }
}

/// The access log's writer.
pub struct AccessLog {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl AccessLog {
    /// Starts the writing thread.
    pub fn start() -> AccessLog {
        let shared = Arc::new(Shared {
            buffer: Mutex::new(Vec::with_capacity(64 << 10)),
            writing: Mutex::new(()),
            dropped: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let mine = shared.clone();
        let thread = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                while !mine.stop.load(Ordering::Acquire) {
                    std::thread::park_timeout(EVERY);
                    mine.drain();
                }
            })
            .expect("the access-log thread starts");
        AccessLog {
            shared,
            thread: Mutex::new(Some(thread)),
        }
    }

    /// Adds one line; never waits for the output.
    pub fn line(&self, text: std::fmt::Arguments<'_>) {
        let mut buffer = self.shared.buffer.lock().unwrap_or_else(|e| e.into_inner());
        if buffer.len() >= BOUND {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let _ = buffer.write_fmt(text);
        buffer.push(b'\n');
    }

    /// Writes out what is gathered and stops the thread (at shutdown).
    pub fn finish(&self) {
        let dropped = self.shared.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            self.line(format_args!(
                "portico serve: {dropped} access-log line(s) were dropped under load"
            ));
        }
        self.shared.stop.store(true, Ordering::Release);
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            thread.thread().unpark();
            let _ = thread.join();
        }
        self.shared.drain();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_past_the_bound_are_counted_not_kept() {
        let log = AccessLog {
            shared: Arc::new(Shared {
                buffer: Mutex::new(Vec::new()),
                writing: Mutex::new(()),
                dropped: AtomicU64::new(0),
                stop: AtomicBool::new(false),
            }),
            thread: Mutex::new(None),
        };
        let line = "x".repeat(1023);
        for _ in 0..(BOUND / 1024 + 10) {
            log.line(format_args!("{line}"));
        }
        assert_eq!(log.shared.buffer.lock().unwrap().len(), BOUND);
        assert_eq!(log.shared.dropped.load(Ordering::Relaxed), 10);
    }
}
