//! What the binary's allocator does with the memory a command frees. The binary chooses
//! (the allocator and its options live in `main.rs`; this library has no unsafe code); a
//! plan or apply tells it when it starts reading everything.
//!
//! Returning freed memory to the OS at once keeps a full plan's peak down (about 280 MiB
//! instead of 350–410 at 300,000 logins), but each page given back is zeroed by the kernel
//! again when it is next used: on this project's benchmark machine that churn cost a plan
//! that reads one changed file a fifth of its time (0.14 s instead of 0.11 s). So a plan
//! keeps freed memory until it knows it reads everything, and, when that is many small files
//! merged as they are parsed, until they are parsed (each file's parse reuses what the one
//! before it freed).

use std::sync::OnceLock;

static ON_FULL_READ: OnceLock<fn()> = OnceLock::new();

/// Sets what to do when a command starts reading the whole account (once; later calls are
/// ignored).
pub fn on_full_read(hook: fn()) {
    let _ = ON_FULL_READ.set(hook);
}

/// Says that a command now reads the whole account.
pub(crate) fn full_read() {
    if let Some(hook) = ON_FULL_READ.get() {
        hook();
    }
}
