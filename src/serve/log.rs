//! The access log: one line per request, handed to a thread of its own that writes it to
//! standard error through a buffer, so no request waits for the terminal or the disk (a
//! write per request was the hot path's largest cost). Under overload, lines are dropped
//! rather than queued without bound, and counted.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::Duration;

/// Lines waiting to be written at most.
const QUEUE: usize = 65_536;

/// The access log's writer.
pub struct AccessLog {
    lines: SyncSender<Line>,
    done: std::sync::Mutex<Receiver<()>>,
    dropped: AtomicU64,
}

enum Line {
    Text(String),
    /// Write everything queued, then say so.
    Flush,
}

impl AccessLog {
    /// Starts the writing thread.
    pub fn start() -> AccessLog {
        let (lines, queue) = sync_channel::<Line>(QUEUE);
        let (done_tx, done) = sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::new(std::io::stderr());
                loop {
                    match queue.recv_timeout(Duration::from_millis(200)) {
                        Ok(Line::Text(text)) => {
                            let _ = writeln!(out, "{text}");
                            // Everything else already waiting, then one write.
                            while let Ok(next) = queue.try_recv() {
                                match next {
                                    Line::Text(text) => {
                                        let _ = writeln!(out, "{text}");
                                    }
                                    Line::Flush => {
                                        let _ = out.flush();
                                        let _ = done_tx.try_send(());
                                    }
                                }
                            }
                            let _ = out.flush();
                        }
                        Ok(Line::Flush) => {
                            let _ = out.flush();
                            let _ = done_tx.try_send(());
                        }
                        Err(RecvTimeoutError::Timeout) => {
                            let _ = out.flush();
                        }
                        Err(RecvTimeoutError::Disconnected) => {
                            let _ = out.flush();
                            return;
                        }
                    }
                }
            })
            .expect("the access-log thread starts");
        AccessLog {
            lines,
            done: std::sync::Mutex::new(done),
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues one line; never waits.
    pub fn line(&self, text: String) {
        if self.lines.try_send(Line::Text(text)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes out what is queued (at shutdown), waiting at most a second.
    pub fn finish(&self) {
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            self.line(format!(
                "portico serve: {dropped} access-log line(s) were dropped under load"
            ));
        }
        if self.lines.send(Line::Flush).is_ok()
            && let Ok(done) = self.done.lock()
        {
            let _ = done.recv_timeout(Duration::from_secs(1));
        }
    }
}
