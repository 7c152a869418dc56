//! The bounded hashing pool: one thread per core checks and makes argon2id hashes, one after
//! another, from a queue.
//!
//! A hash takes about 19 MiB and a core for ~20 ms, so the pool is what bounds a sign-in
//! flood's memory and CPU. Its threads take the next job themselves as soon as one ends: no
//! async task has to be scheduled between two hashes (with a semaphore in front of
//! `spawn_blocking`, a core stood idle after each hash until a runtime worker got to run
//! and start the next one — on two busy cores, 5–10% of the hashing time). A job that waited
//! longer than [`WAIT`] in the queue, or whose request went away, is skipped unhashed; past
//! [`WAITING_PER_CORE`] queued jobs per core, a new one is refused at once (the caller
//! answers 503).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// How long a job may wait in the queue before it is given up.
pub const WAIT: Duration = Duration::from_secs(3);

/// Jobs that may wait per core: about a second's work.
pub const WAITING_PER_CORE: usize = 24;

/// What a job asks.
enum Work {
    /// Whether `password` matches the PHC string `hash`.
    Verify { hash: String, password: String },
    /// A new argon2id hash of `password`.
    Hash { password: String },
}

/// What a job found.
enum Done {
    Verified(bool),
    Hashed(Option<String>),
}

struct Job {
    work: Work,
    /// Skipped unhashed when taken after this.
    deadline: Instant,
    reply: oneshot::Sender<Done>,
}

/// The pool.
pub struct Pool {
    queue: mpsc::Sender<Job>,
    /// Jobs queued and not yet taken.
    waiting: Arc<AtomicUsize>,
    limit: usize,
}

impl Pool {
    /// Starts `threads` hashing threads.
    pub fn start(threads: usize) -> Pool {
        let (queue, jobs) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        let waiting = Arc::new(AtomicUsize::new(0));
        for n in 0..threads.max(1) {
            let (jobs, waiting) = (jobs.clone(), waiting.clone());
            std::thread::Builder::new()
                .name(format!("portico-hash-{n}"))
                .spawn(move || work(&jobs, &waiting))
                .expect("a hashing thread starts");
        }
        Pool {
            queue,
            waiting,
            limit: threads.max(1) * WAITING_PER_CORE,
        }
    }

    /// Whether `password` matches `hash`; `None` when the pool is too busy.
    pub async fn verify(&self, hash: String, password: String) -> Option<bool> {
        match self.run(Work::Verify { hash, password }).await? {
            Done::Verified(ok) => Some(ok),
            Done::Hashed(_) => None,
        }
    }

    /// A new hash of `password`; `None` when the pool is too busy (or hashing failed).
    pub async fn hash(&self, password: String) -> Option<String> {
        match self.run(Work::Hash { password }).await? {
            Done::Hashed(hash) => hash,
            Done::Verified(_) => None,
        }
    }

    async fn run(&self, work: Work) -> Option<Done> {
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.limit {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        let (reply, done) = oneshot::channel();
        let job = Job {
            work,
            deadline: Instant::now() + WAIT,
            reply,
        };
        if self.queue.send(job).is_err() {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        // A skipped job drops its sender: `None`.
        done.await.ok()
    }
}

/// A hashing thread: takes jobs until the pool is dropped.
fn work(jobs: &Mutex<mpsc::Receiver<Job>>, waiting: &AtomicUsize) {
    loop {
        let job = {
            let Ok(jobs) = jobs.lock() else { return };
            match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        waiting.fetch_sub(1, Ordering::SeqCst);
        if job.reply.is_closed() || Instant::now() > job.deadline {
            continue;
        }
        let done = match job.work {
            Work::Verify { hash, password } => Done::Verified(verify(&hash, &password)),
            Work::Hash { password } => Done::Hashed(crate::passwords::hash(&password).ok()),
        };
        let _ = job.reply.send(done);
    }
}

/// Checks a password against a PHC string.
fn verify(hash: &str, password: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    argon2::password_hash::phc::PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checks_and_makes_hashes() {
        let pool = Pool::start(1);
        let hash = pool.hash("a password".into()).await.expect("hashed");
        assert_eq!(
            pool.verify(hash.clone(), "a password".into()).await,
            Some(true)
        );
        assert_eq!(pool.verify(hash, "another".into()).await, Some(false));
        assert_eq!(
            pool.verify("not a hash".into(), "x".into()).await,
            Some(false)
        );
    }

    #[tokio::test]
    async fn refuses_past_its_queue_and_answers_every_queued_job() {
        let pool = Arc::new(Pool::start(1));
        let hash = crate::passwords::hash("p").expect("hashed");
        let jobs: Vec<_> = (0..WAITING_PER_CORE + 8)
            .map(|_| {
                let (pool, hash) = (pool.clone(), hash.clone());
                tokio::spawn(async move { pool.verify(hash, "p".into()).await })
            })
            .collect();
        let mut answered = 0;
        let mut refused = 0;
        for job in jobs {
            match job.await.expect("joins") {
                Some(true) => answered += 1,
                None => refused += 1,
                Some(false) => panic!("a right password was refused"),
            }
        }
        // One thread: one job taken at once, at most WAITING_PER_CORE queued behind it.
        assert!(refused >= 7, "{refused} refused");
        assert_eq!(answered + refused, WAITING_PER_CORE + 8);
        assert_eq!(pool.waiting.load(Ordering::SeqCst), 0);
    }
}
