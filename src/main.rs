use std::process::ExitCode;

use clap::Parser;
use portico::cli::{Cli, Command};
use portico::commands::Outcome;

/// mimalloc: at 300,000 logins, glibc's per-thread arenas kept 80 MB more than mimalloc for
/// the same allocations, and were slower at the many small strings of a big account.
/// `--features system-allocator` keeps glibc's, for heap profilers such as heaptrack.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in `mi_option_e` (mimalloc.h, the same index in v2 and v3); the
/// bindings leave it out of their constants. A test checks it is the purge delay.
#[cfg(not(feature = "system-allocator"))]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Has mimalloc give freed memory back to the OS when it is freed. Its default waits a
/// second (v3), so what one step of a full plan frees (the live state's JSON, the parser's
/// scratch) stayed resident while the next step allocated: at 300,000 logins, a no-change
/// plan read in full peaked at ~410 MB instead of ~280 MB. Given back, each page is zeroed
/// again when next used, which costs time (see `portico::memory`): `plan` and `apply` call
/// this only when they read the whole account. A `MIMALLOC_PURGE_DELAY` set in the
/// environment is left as it is.
#[cfg(not(feature = "system-allocator"))]
fn purge_freed_memory_at_once() {
    set_option_unless_in_env(MI_OPTION_PURGE_DELAY, "MIMALLOC_PURGE_DELAY", 0);
}

/// Sets a mimalloc option, unless its variable is set in the environment (mimalloc read it
/// at start-up; the user's choice stands).
#[cfg(not(feature = "system-allocator"))]
#[allow(unsafe_code)]
fn set_option_unless_in_env(
    option: libmimalloc_sys::mi_option_t,
    variable: &str,
    value: std::ffi::c_long,
) {
    if std::env::var_os(variable).is_none() {
        // SAFETY: stores one aligned integer option, which mimalloc reads when it purges or
        // exits; it has no other effect. A plan may call this while its other threads
        // allocate: they read either the old value or the new one.
        unsafe { libmimalloc_sys::mi_option_set(option, value) }
    }
}

#[cfg(feature = "system-allocator")]
fn purge_freed_memory_at_once() {}

/// `mi_option_destroy_on_exit` in `mi_option_e` (mimalloc.h, v3); a test checks it.
#[cfg(not(feature = "system-allocator"))]
const MI_OPTION_DESTROY_ON_EXIT: libmimalloc_sys::mi_option_t = 22;

/// Has mimalloc leave its memory to the kernel when the process ends. By default its exit
/// handler collects every heap and gives the pages back one range at a time (`madvise`),
/// memory the kernel frees a moment later anyway: in a 10-login plan of 100,000 files that
/// was 25 ms of processor time and 7 ms of the plan's 145, after its output was written.
/// Above 1 the option skips the handler (`_mi_auto_process_done`); 1 would instead free
/// everything, which is for libraries unloaded while the process goes on. A
/// `MIMALLOC_DESTROY_ON_EXIT` set in the environment is left as it is.
#[cfg(not(feature = "system-allocator"))]
fn leave_memory_at_exit() {
    set_option_unless_in_env(MI_OPTION_DESTROY_ON_EXIT, "MIMALLOC_DESTROY_ON_EXIT", 2);
}

#[cfg(feature = "system-allocator")]
fn leave_memory_at_exit() {}

/// Has the kernel map this process's memory in ordinary 4 KiB pages, not transparent huge
/// pages (which mimalloc asks for). `validate` keeps what it frees for reuse, so each page
/// is faulted in once; with huge pages each fault zeroes 2 MiB at once, and on this
/// project's benchmark machine (a virtual machine) those faults cost `validate` about a
/// second of kernel time at 400,000 logins (0.3 s with ordinary pages; wall time 2.3 ->
/// 1.8 s). `plan` and `apply` take them too: one that reads everything for the same reason,
/// and one that reads only changed files because with huge pages its time depended on the
/// host (a 10-login plan of 100,000 one-customer files, alternating 12 times: 0.14-0.32 s,
/// median 0.20, against 0.15-0.19 s, median 0.16, with ordinary pages). mimalloc's
/// own option (`MIMALLOC_ALLOW_THP=0`) is read once, before `main`; this is the same
/// switch it would flip. Failing (an old kernel) changes nothing but speed.
fn ordinary_pages() {
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}

fn main() -> ExitCode {
    portico::progress::command_started();
    // A reader that stops early (`portico history | head`) ends portico quietly, as it ends
    // `cat`, instead of a panic on the broken pipe.
    sigpipe::reset();
    leave_memory_at_exit();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            // Help and --version succeed; a usage error gets EX_USAGE (64), never 2, which
            // `plan --detailed-exitcode` uses for "there are changes".
            return if error.use_stderr() {
                ExitCode::from(64)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // `validate` holds only the manifests (180 MiB at 300,000 logins): it keeps mimalloc's
    // default, reusing what the parse of one file frees for the next, instead of returning
    // it and having the kernel zero it again (0.97-1.05 s -> 0.77-0.82 s, 235-265 MiB).
    // `serve` keeps it too: each password check takes argon2's 19 MiB and frees it, and
    // given back at once the kernel zeroed it again for the next check (11% of a
    // sign-in's time); kept, the memory is reused (one block per hashing core).
    // `plan` and `apply` keep freed memory while they read only the files that changed,
    // and give it back once they read everything.
    match cli.command {
        Command::Validate(_) => ordinary_pages(),
        Command::Serve(_) => {}
        // Ordinary pages for both (see `ordinary_pages`; for a full read also because its
        // steps partly reuse each other's memory, and huge pages kept partly used ones
        // whole: at 300,000 wide logins a full plan's peak was 288-291 MiB with them,
        // 274-275 MiB without, in the same time); freed memory given back once they read
        // everything.
        Command::Plan(_) | Command::Apply(_) => {
            ordinary_pages();
            portico::memory::on_full_read(purge_freed_memory_at_once);
        }
        _ => purge_freed_memory_at_once(),
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(portico::parallel::cores())
        .enable_all()
        .build()
        .expect("the async runtime starts")
        .block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    cli.color.apply();
    match portico::commands::run(cli).await {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Changes) => ExitCode::from(2),
        Err(error) => {
            portico::error::print(&error);
            ExitCode::from(error.exit_code())
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod pages {
    /// `validate`'s switch reaches the kernel: the process no longer gets huge pages.
    #[test]
    fn ordinary_pages_turns_transparent_huge_pages_off() {
        super::ordinary_pages();
        assert_eq!(
            rustix::thread::transparent_huge_pages_are_disabled().ok(),
            Some(true)
        );
    }
}

#[cfg(all(test, not(feature = "system-allocator")))]
mod tests {
    use super::*;

    /// The option index is mimalloc's purge delay: its documented default (1000 ms in v3),
    /// then 0 once set.
    #[test]
    #[allow(unsafe_code)]
    fn the_purge_delay_option_is_the_one_set() {
        // SAFETY: reads one integer option.
        let get = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(get(), 1000);
        }
        purge_freed_memory_at_once();
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(get(), 0);
        }
    }

    /// The option index is mimalloc's destroy-on-exit: off by default, then 2 (skip the
    /// exit handler) once set. The names around it in the enum are checked through their
    /// defaults: the arena reserve after it (in KiB) and max warnings before it (32).
    #[test]
    #[allow(unsafe_code)]
    fn the_exit_option_is_the_one_set() {
        // SAFETY: reads integer options.
        let get = |option| unsafe { libmimalloc_sys::mi_option_get(option) };
        if std::env::var_os("MIMALLOC_ARENA_RESERVE").is_none() {
            // 1 GiB on 64-bit targets, 128 MiB on others.
            let reserve = get(MI_OPTION_DESTROY_ON_EXIT + 1);
            assert!(reserve == 1024 * 1024 || reserve == 128 * 1024, "{reserve}");
        }
        if std::env::var_os("MIMALLOC_MAX_WARNINGS").is_none() {
            assert_eq!(get(MI_OPTION_DESTROY_ON_EXIT - 2), 32);
        }
        if std::env::var_os("MIMALLOC_DESTROY_ON_EXIT").is_none() {
            assert_eq!(get(MI_OPTION_DESTROY_ON_EXIT), 0);
            leave_memory_at_exit();
            assert_eq!(get(MI_OPTION_DESTROY_ON_EXIT), 2);
        }
    }
}
