//! The incremental plan (issue #26): when the last apply recorded a plan index and nothing
//! a plan reads was written since (the store's write count), a plan whose files differ
//! from that apply's only in customer files parses only those files (of a file whose runs of
//! customers the index has, only the runs that changed), reads only their customers' rows
//! and checks what crosses files through the database. Its result is the
//! full plan's, or it does not answer: [`Attempt::Full`] says why, and the caller computes
//! the plan in full. Decisions and their reasons: docs/performance.md, "Incremental plans".

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use compact_str::CompactString;

use super::{Computed, manifests_digest_of, transport_secrets};
use crate::cli::DiffArgs;
use crate::error::Error;
use crate::folders::{Folders, split_name};
pub(crate) use crate::gitindex::Worktree;
use crate::manifest::load::{self, ManifestSet, Reading};
use crate::parallel::InOrder;
use crate::plan::{self, DiffOptions};
use crate::progress::phase;
use crate::state::{
    FileId, IndexToRecord, IndexedFile, LiveVersion, PlanIndex, SecretCheck, State,
};
use crate::store::{AnyStore, ApplyStatements, FileRow, Owners, Part, PartQuery, Store as _};
use crate::validate::{self, Desired};

/// What an attempt at an incremental plan gave.
pub(crate) enum Attempt {
    /// The plan, exactly as the full plan would be.
    Done(Box<Computed>, Summary),
    /// The plan must be computed in full, for this reason.
    Full(String),
}

/// What an incremental plan read, for `--verbose`.
pub(crate) struct Summary {
    /// Manifest files now.
    pub(crate) files: usize,
    /// Files changed or added.
    pub(crate) changed: usize,
    /// Of those, the files read in part (only their runs of customers that changed).
    pub(crate) in_part: usize,
    /// Files of the index that are gone.
    pub(crate) removed: usize,
    /// Customers declared by the changed files, before or now.
    pub(crate) customers: usize,
    /// Unchanged files known so from git's index, not read.
    pub(crate) unread: usize,
}

fn full(reason: impl Into<String>) -> Result<Attempt, Error> {
    Ok(Attempt::Full(reason.into()))
}

/// The manifest files now, against the index.
struct Files {
    root: PathBuf,
    /// `(relative path, digest)` of every file, in reading order.
    all: Vec<(String, FileId)>,
    /// The places in `all` of the files read again (changed or new), whose digests are
    /// those of what is read then.
    unfilled: Vec<usize>,
    /// The files that differ from the index (or are new), with the texts to parse: the
    /// whole file, or for a file read in part its changed runs of customers.
    changed: Vec<(PathBuf, String)>,
    /// The changed files read in part.
    in_part: Vec<InPart>,
    /// The index's entries of the files changed (and read whole) or removed.
    old: Vec<IndexedFile>,
    /// The ids of the customers the changed files declared before (of a file read in part,
    /// those of its runs that changed or went) and the removed files declared.
    before: Vec<CompactString>,
    /// The places in the index's list of the files that did not change (their entries are
    /// not copied: 100,000 of them were a sixth of a plan's memory, and fresh memory costs
    /// its zeroing; an apply moves them into the next index).
    kept: Vec<usize>,
    /// How many of the index's files are gone.
    removed: usize,
    /// The size of all the files.
    all_bytes: usize,
    /// How many files changed or appeared.
    changed_count: usize,
    /// How many unchanged files were not read: git's index knew them.
    unread: usize,
    /// How many pages of the index's list hold changed or removed files (an apply writes
    /// them again).
    pages_changed: usize,
}

impl Files {
    /// No file yet, room for `count`.
    fn new(root: PathBuf, count: usize) -> Files {
        Files {
            root,
            all: Vec::with_capacity(count),
            unfilled: Vec::new(),
            changed: Vec::new(),
            in_part: Vec::new(),
            old: Vec::new(),
            before: Vec::new(),
            kept: Vec::new(),
            removed: 0,
            all_bytes: 0,
            changed_count: 0,
            unread: 0,
            pages_changed: 0,
        }
    }
}

/// A changed file of customers read in part: of its runs of items (see
/// `manifest::split::groups`), those the index has are its customers as applied; only the
/// others are parsed.
struct InPart {
    path: PathBuf,
    /// Its name (relative to the root), size and digest now.
    name: String,
    size: usize,
    digest: FileId,
    /// Each customer now, in order: its id when its run is unchanged; `None` for those of
    /// the runs parsed, filled in from the parse.
    ids: Vec<Option<CompactString>>,
    /// The ids of the runs the index has that are gone (edited or removed).
    gone: Vec<CompactString>,
    /// Its runs now, as stored.
    runs: Vec<u8>,
    /// The password sources of its last index entry, checked again (the unchanged runs
    /// name them too) and kept in the next.
    secrets: Vec<SecretCheck>,
}

/// A file read in part, with its ids encoded as its row records them.
type Encoded = (InPart, Vec<u8>);

/// A changed file as read: whole, or in part.
enum Read {
    Whole {
        path: PathBuf,
        name: String,
        text: String,
        digest: FileId,
        old: Option<IndexedFile>,
        /// The ids of the customers it declared before.
        before: Vec<CompactString>,
    },
    InPart(InPart, String),
}

/// Above this many bytes of manifests, a plan that would parse more than half of them (the
/// changed files read whole, the changed runs of those read in part) is computed in full:
/// reading only those would save little, and the full plan reads the database in one pass. (Below, the changed files are read alone: cheap
/// either way, and the everyday case of small accounts.)
const MOSTLY_ABOVE: usize = 1 << 20;

/// Tries the incremental plan. `for_apply` asks for the index the apply then records.
pub(crate) async fn attempt(
    path: &Path,
    store: &mut AnyStore,
    args: &DiffArgs,
    (digests, for_apply): (bool, bool),
    (reading, hashing): (Reading, Option<Hashing>),
) -> Result<Attempt, Error> {
    // Every file is read and hashed on other threads while the index is read (started
    // before the database was opened, when the caller could).
    let hashing = hashing.unwrap_or_else(|| Hashing::start(path, reading));
    let (read, hashed) = hashing.finish_reading_index(store, for_apply).await;
    let (version, index) = read?;
    let how = (reading, for_apply);
    let Some((recorded, index)) = index else {
        return full("no plan index: the last apply was not made from these files in full");
    };
    let Some(mut index) = index else {
        return full(
            "the plan index does not read (written by another version of portico, or damaged)",
        );
    };
    if version.changes() != Some(recorded) {
        return full(
            "the database was written since the last apply (outside portico, a day-2 command, or an apply of a saved plan)",
        );
    }
    if index.reading != (reading.max_file_bytes, reading.policy_warn_only) {
        return full("--max-file-size or --policy-warn-only differ from the last apply");
    }
    let compared = changed_files(store, path, &mut index, hashed, how).await?;
    let (mut files, pending) = match compared {
        Ok(found) => found,
        Err(reason) => return full(reason),
    };
    if let Err(reason) = read_changed_files(store, pending, &mut files, how).await? {
        return full(reason);
    }
    if let Some(reason) = recheck(&files, &index, reading) {
        return full(reason);
    }
    // The changed files are parsed on other threads while the rows of the customers they
    // declared before are read.
    let old_ids = ids_before(&files);
    let parsing = parse_changed(path, std::mem::take(&mut files.changed), reading);
    let soon = expiring_before(args);
    let query = PartQuery {
        customers: &old_ids,
        expiring_before: &soon,
        access_keys: false,
        password_markers: false,
    };
    let read = crate::progress::phase_async("read live", store.read_part(&query)).await;
    let (mut set, found) = parsing.await.expect("parsing does not panic");
    let part = read?;
    if !found.is_empty() {
        return full("a changed file has problems (the full plan reports them)");
    }
    if let Some((at, _)) = set.declared.iter().enumerate().find(|(_, d)| d.other) {
        let name = validate::relative_name(&files.root, &set.sources[at].path);
        return full(format!("{name} declares more than customers"));
    }
    if let Err(reason) = fill_ids(&mut files, &set) {
        return full(reason);
    }
    if !manages_customers(&files, &index, &set) {
        return full("the customers section is not managed by the files before and after");
    }
    // The customers of the files read, as a part of the managed section.
    set.customers.get_or_insert_with(Vec::new);
    let touched = touched(&set, old_ids, &part);
    let planned = plan_part(
        (store, args),
        (&set, &mut files, index),
        (version, part, touched),
        (digests, for_apply),
    )
    .await;
    crate::parallel::drop_aside(files);
    planned
}

/// Whether the files before and after manage the customers section: the index says so, and
/// a file declares customers (an unchanged one, or one read).
fn manages_customers(files: &Files, index: &PlanIndex, set: &ManifestSet) -> bool {
    let declared = files.kept.iter().any(|&at| index.files[at].customers)
        || index.unopened().any(|page| page.customers)
        || set.customers.is_some();
    declared && index.managed.get(5) == Some(&true)
}

/// The ids of the customers the changed and removed files declared before, sorted.
fn ids_before(files: &Files) -> Vec<CompactString> {
    let ids: BTreeSet<&CompactString> = files.before.iter().collect();
    ids.into_iter().cloned().collect()
}

/// Parses the changed files, from the texts read, on other threads.
fn parse_changed(
    path: &Path,
    changed: Vec<(PathBuf, String)>,
    reading: Reading,
) -> tokio::task::JoinHandle<(ManifestSet, Vec<crate::manifest::diagnostic::Diagnostic>)> {
    let root = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        phase("parse", || {
            let overlay: Vec<(&Path, &str)> = changed
                .iter()
                .map(|(p, t)| (p.as_path(), t.as_str()))
                .collect();
            let paths = changed.iter().map(|(p, _)| p.clone()).collect();
            load::load_listed(&root, paths, &overlay, reading, Vec::new())
        })
    })
}

/// Fills in the ids of the customers of the runs parsed, in order, for each file read in
/// part; the reason to plan in full when its parse does not have one customer per item.
fn fill_ids(files: &mut Files, set: &ManifestSet) -> Result<(), String> {
    for part in &mut files.in_part {
        let Some(file) = set.sources.iter().position(|s| s.path == part.path) else {
            return Err(format!("{} was not read", part.name));
        };
        let mut parsed = set
            .customers
            .iter()
            .flatten()
            .filter(|c| c.site.file == file)
            .map(|c| CompactString::from(c.value.id.as_str()));
        for slot in part.ids.iter_mut().filter(|id| id.is_none()) {
            *slot = parsed.next();
            if slot.is_none() {
                return Err(format!("{} has fewer customers than items", part.name));
            }
        }
        if parsed.next().is_some() {
            return Err(format!("{} has more customers than items", part.name));
        }
    }
    Ok(())
}

/// The ids of a file read in part (filled in), encoded as its row of the index records
/// them ([`crate::state::Ids`]): for a file of 5,000 customers 0.6 ms, spent while the apply
/// writes (on the thread that makes the index), not beside the plan's validation (on two
/// cores that slowed it by as much).
fn encode_ids(part: &mut InPart) -> Vec<u8> {
    let ids: Vec<CompactString> = std::mem::take(&mut part.ids)
        .into_iter()
        .flatten()
        .collect();
    crate::state::Ids::of(&ids).0
}

/// The end of the window of the "expires soon" warnings (a day more: the warnings are then
/// counted exactly), in the stored form.
fn expiring_before(args: &DiffArgs) -> String {
    let now = crate::clock::now();
    let hours = 24 * (i64::from(args.warn_expiring) + 1);
    let soon = now
        .saturating_add(jiff::SignedDuration::from_hours(hours))
        .unwrap_or(now);
    crate::clock::format(soon)
}

/// A manifest file listed: its path, its name (relative to the root), and its size and
/// digest as read, or as git's index knows them (`known`: not read).
struct Hashed {
    path: PathBuf,
    name: String,
    seen: std::io::Result<(u64, FileId)>,
    known: bool,
    /// Its place in git's index, and whether it has the bytes of that entry.
    git: (Option<usize>, bool),
}

/// The manifest files being listed and hashed on other threads: started by `plan` and
/// `apply` before they open the database, so that connecting, locking and checking the
/// schema happen meanwhile.
pub(crate) struct Hashing(tokio::task::JoinHandle<Result<InOrder<Hashed>, String>>);

impl Hashing {
    /// The plan index read, then the files hashed. For an apply from an index, its
    /// statements are prepared meanwhile, as long as the files are still being hashed (the
    /// rest while the changed ones are read, [`read_changed_files`]).
    async fn finish_reading_index(
        self,
        store: &mut AnyStore,
        for_apply: bool,
    ) -> (
        Result<(LiveVersion, Option<(i64, Option<PlanIndex>)>), crate::store::StoreError>,
        Result<InOrder<Hashed>, String>,
    ) {
        let read = crate::progress::phase_async("read index", store.read_index()).await;
        if for_apply && matches!(read, Ok((_, Some((_, Some(_)))))) {
            let waiting = &self.0;
            let done = || waiting.is_finished();
            store.prepare_apply(ApplyStatements::Rows, &done).await;
        }
        let hashed = self.0.await.expect("hashing does not panic");
        (read, hashed)
    }

    /// Starts hashing the manifest files at `path`.
    pub(crate) fn start(path: &Path, reading: Reading) -> Hashing {
        Hashing::begin(path, reading, None)
    }

    /// [`Hashing::start`], running `then` once every file is hashed, with how the files
    /// compare with git's index: work that would take a core from the hashing, started when
    /// it is done.
    pub(crate) fn start_then(
        path: &Path,
        reading: Reading,
        then: impl FnOnce(Worktree) + Send + 'static,
    ) -> Hashing {
        Hashing::begin(path, reading, Some(Box::new(then)))
    }

    /// Hashes; with `then`, compares the work tree with git's index too (a plan alone does
    /// not need it).
    fn begin(
        path: &Path,
        reading: Reading,
        then: Option<Box<dyn FnOnce(Worktree) + Send>>,
    ) -> Hashing {
        let root = path.to_path_buf();
        Hashing(tokio::task::spawn_blocking(move || {
            let compare = then.is_some();
            let hashed = phase("digests", || {
                hash_all(&root, reading.max_file_bytes, compare)
            });
            let (hashed, worktree) = match hashed {
                Ok((hashed, worktree)) => (Ok(hashed), worktree),
                Err(reason) => (Err(reason), Worktree::Unknown),
            };
            if let Some(then) = then {
                then(worktree);
            }
            hashed
        }))
    }
}

/// Lists and digests every manifest file, on every core; with `compare`, says how the work
/// tree compares with git's index too ([`Worktree`]). A file git's index lists with its
/// `stat` data unchanged is not read: its digest is the blob id git has for it (see
/// `gitindex`). The others are streamed through the hasher, not kept: the few that changed
/// are read again (from the page cache), and reading 33 MB of unchanged files into fresh
/// memory cost more in page faults than the hashing itself. Each file is opened (or its
/// `stat` data read) by its name in its folder.
fn hash_all(path: &Path, limit: u64, compare: bool) -> Result<(InOrder<Hashed>, Worktree), String> {
    let root = load::root_of(path);
    // git's index is decoded on another thread while the folder is listed.
    let (git, (paths, others, listing)) = std::thread::scope(|scope| {
        let git = scope.spawn(|| phase("git index", || crate::gitindex::GitIndex::near(&root)));
        let listed = phase("list", || load::list_seeing_others(path));
        (
            git.join().expect("reading git's index does not panic"),
            listed,
        )
    });
    if !listing.is_empty() {
        return Err("listing the manifest files found problems".into());
    }
    let folders = Folders::of(&root, &paths);
    let work: Vec<(usize, PathBuf)> = paths.into_iter().enumerate().collect();
    thread_local! {
        /// The place in git's index of the file this thread hashed last.
        static LAST: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
    }
    let hashed = crate::parallel::map_in_blocks(work, |(at, path)| {
        let name = name_of(&folders, &root, at, &path);
        let place = git.as_ref().and_then(|git| {
            let place = git.place_after(&name, LAST.get());
            LAST.set(place);
            place
        });
        let known = git
            .as_ref()
            .zip(place)
            .and_then(|(git, place)| known(&folders, at, &path, place, git));
        match known {
            Some(seen) => Hashed {
                path,
                name,
                seen: Ok(seen),
                known: true,
                git: (place, true),
            },
            None => {
                let seen = folders
                    .open(at, &path)
                    .and_then(|file| validate::file_digest_of(file, limit));
                let id = git.as_ref().zip(place).and_then(|(git, at)| git.id_at(at));
                let same = matches!((&seen, id), (Ok((_, now)), Some(id)) if now.0 == id);
                Hashed {
                    seen,
                    path,
                    name,
                    known: false,
                    git: (place, same),
                }
            }
        }
    });
    // A single file's folder holds files the plan did not list: git is asked then.
    let worktree = match &git {
        Some(git) if compare && path.is_dir() => phase("git compare", || {
            git.committed(hashed.iter().map(|h| h.git), &others)
        }),
        _ => Worktree::Unknown,
    };
    Ok((hashed, worktree))
}

/// Reads again, on every core, the files git's index knew whose blob id or size is not the
/// one the plan index recorded: a file changed since, or one whose checkout is not its blob
/// (line ends converted), whose digest is then that of its bytes.
fn settle(read: &mut InOrder<Hashed>, index: &PlanIndex, limit: u64, unchanged: &Unchanged) {
    let mut last = None;
    let mut agrees = |hashed: &Hashed| match (&hashed.seen, entry_of(index, &hashed.name, last)) {
        (Ok((size, digest)), Some(at)) => {
            last = Some(at);
            let entry = &index.files[at];
            entry.digest == *digest && entry.size == *size
        }
        _ => true,
    };
    let unsure: Vec<(usize, PathBuf)> = read
        .iter()
        .enumerate()
        .filter(|(at, hashed)| !unchanged.at(*at) && hashed.known && !agrees(hashed))
        .map(|(at, hashed)| (at, hashed.path.clone()))
        .collect();
    // Usually none: the list is not gone through again (2 ms for 100,000 files).
    if unsure.is_empty() {
        return;
    }
    let hashed = crate::parallel::map_in_order(unsure, |(at, path)| {
        let seen =
            std::fs::File::open(&path).and_then(|file| validate::file_digest_of(file, limit));
        (at, seen)
    });
    let mut hashed = hashed.into_iter().peekable();
    for (at, file) in read.iter_mut().enumerate() {
        if let Some((_, seen)) = hashed.next_if(|(of, _)| *of == at) {
            file.seen = seen;
            file.known = false;
        }
    }
}

/// Of each file hashed (by its place in the list), the page of the index whose range of
/// paths holds its name; of each page, whether it holds exactly the files hashed there, with
/// the same blob ids and sizes ([`crate::state::content_of`]). Such a page is not opened:
/// for 100,000 files, inflating and decoding every page was a sixth of a 10-login plan's
/// processor time and a third of its memory.
struct Unchanged {
    page: Vec<u32>,
    same: Vec<bool>,
}

impl Unchanged {
    fn of(read: &InOrder<Hashed>, pages: &crate::state::Pages) -> Unchanged {
        let all: Vec<&Hashed> = read.iter().collect();
        let mut page = Vec::with_capacity(all.len());
        let mut members: Vec<Vec<u32>> = vec![Vec::new(); pages.0.len()];
        let mut last = 0;
        for (at, hashed) in all.iter().enumerate() {
            let name = hashed.name.as_str();
            // The files are listed in nearly the order of their paths: most are in the page
            // of the file before.
            let inside = |number: usize| {
                let first = pages.0.get(number).map(|p| p.first.as_str());
                let next = pages.0.get(number + 1).map(|p| p.first.as_str());
                first.is_some_and(|first| number == 0 || first <= name)
                    && next.is_none_or(|next| name < next)
            };
            let number = if inside(last) { last } else { pages.of(name) };
            last = number;
            page.push(u32::try_from(number).unwrap_or(u32::MAX));
            if let Some(members) = members.get_mut(number) {
                members.push(u32::try_from(at).unwrap_or(u32::MAX));
            }
        }
        let work: Vec<(usize, Vec<u32>)> = members.into_iter().enumerate().collect();
        let same = crate::parallel::map_in_order(work, |(number, mut members)| {
            let info = &pages.0[number];
            if members.len() != info.files as usize {
                return false;
            }
            let name = |at: &u32| all[*at as usize].name.as_str();
            if !members.is_sorted_by_key(name) {
                members.sort_unstable_by_key(name);
            }
            let mut files = Vec::with_capacity(members.len());
            for at in members {
                match &all[at as usize] {
                    Hashed {
                        name,
                        seen: Ok((size, id)),
                        ..
                    } => files.push((name.as_str(), id, *size)),
                    _ => return false,
                }
            }
            crate::state::content_of(files) == info.content
        });
        Unchanged { page, same }
    }

    /// Whether the file hashed at `at` is in a page that did not change.
    fn at(&self, at: usize) -> bool {
        let page = self.page.get(at).map(|&page| page as usize);
        page.and_then(|page| self.same.get(page)) == Some(&true)
    }
}

/// The place of the file `name` in the index's list (sorted by path, see
/// `PlanIndex::from_stored`), looked for first right after `last`, the place of the file
/// listed before it: the files are listed in nearly the same order, so a lookup is nearly
/// always one comparison (a hash map of 100,000 names, built and then looked up at
/// random, was a tenth of a plan's processor time, on its critical path).
fn entry_of(index: &PlanIndex, name: &str, last: Option<usize>) -> Option<usize> {
    let next = last.map_or(0, |at| at + 1);
    match index.files.get(next) {
        Some(entry) if entry.path == name => Some(next),
        _ => index
            .files
            .binary_search_by(|entry| entry.path.as_str().cmp(name))
            .ok(),
    }
}

/// The name of the `at`-th file of the list, `path`, relative to `root`
/// ([`validate::relative_name`]): its folder's name and its own, without taking the path
/// apart again for each of 100,000 files.
fn name_of(folders: &Folders, root: &Path, at: usize, path: &Path) -> String {
    match (
        folders.folder_name(at),
        split_name(path).1.and_then(std::ffi::OsStr::to_str),
    ) {
        (Some(folder), Some(name)) => {
            let mut whole = String::with_capacity(folder.len() + name.len());
            whole.push_str(folder);
            whole.push_str(name);
            whole
        }
        _ => validate::relative_name(root, path),
    }
}

/// The size and digest of the `at`-th file of the list, `path` (at `place` in git's index),
/// when git's index knows it unchanged.
fn known(
    folders: &Folders,
    at: usize,
    path: &Path,
    place: usize,
    git: &crate::gitindex::GitIndex,
) -> Option<(u64, FileId)> {
    let stat = folders.lstat(at, path)?;
    let id = git.unchanged_at(place, &stat)?;
    Some((u64::try_from(stat.st_size).ok()?, FileId(id)))
}

/// A changed or new file to read: its path, its name, its size as hashed, and its index
/// entry before (when it had one).
type Pending = (PathBuf, String, Option<IndexedFile>);

/// The files hashed compared with the index, its pages whose files changed opened; the
/// reason to plan in full when they cannot be.
async fn changed_files(
    store: &mut AnyStore,
    path: &Path,
    index: &mut PlanIndex,
    hashed: Result<InOrder<Hashed>, String>,
    (reading, for_apply): (Reading, bool),
) -> Result<Result<(Files, Vec<Pending>), String>, Error> {
    let read = match hashed {
        Ok(read) => read,
        Err(reason) => return Ok(Err(reason)),
    };
    let unchanged = match open_changed(store, index, &read, for_apply).await? {
        Ok(unchanged) => unchanged,
        Err(reason) => return Ok(Err(reason)),
    };
    let pages_changed = unchanged.same.iter().filter(|same| !**same).count();
    Ok(
        compare(path, read, index, &unchanged, reading).map(|(mut files, pending)| {
            files.pages_changed = pages_changed;
            (files, pending)
        }),
    )
}

/// Opens the pages of the index whose files changed, read from the database with, for an
/// apply, the page after each run of them (see [`PlanIndex::to_read`]): the other pages are
/// not read at all. Which files are in pages that did not change, or the reason to plan in
/// full.
async fn open_changed(
    store: &mut AnyStore,
    index: &mut PlanIndex,
    read: &InOrder<Hashed>,
    for_apply: bool,
) -> Result<Result<Unchanged, String>, Error> {
    let unchanged = phase("pages", || Unchanged::of(read, &index.pages));
    let open: Vec<bool> = unchanged.same.iter().map(|same| !same).collect();
    let wanted = index.to_read(&open, for_apply);
    if !wanted.is_empty() {
        let pages = crate::progress::phase_async("read pages", store.read_pages(&wanted)).await?;
        if index.read(pages).is_none() {
            return Ok(Err(
                "a page of the plan index was not recorded with it".into()
            ));
        }
    }
    if index.open(&open).is_none() {
        return Ok(Err(
            "a page of the plan index is missing or does not read as listed".into(),
        ));
    }
    Ok(Ok(unchanged))
}

/// Compares the files hashed with the index: only customer files may have changed, been
/// added or been removed. The changed files are listed, not read yet.
fn compare(
    path: &Path,
    mut read: InOrder<Hashed>,
    index: &PlanIndex,
    unchanged: &Unchanged,
    reading: Reading,
) -> Result<(Files, Vec<Pending>), String> {
    let root = load::root_of(path);
    // Which of the entries of the pages opened are still there.
    let mut still = vec![false; index.files.len()];
    let mut last = None;
    let mut files = Files::new(root.clone(), read.len());
    settle(&mut read, index, reading.max_file_bytes, unchanged);
    let mut pending = Vec::new();
    for (
        number,
        Hashed {
            path,
            name,
            seen,
            known,
            git: _,
        },
    ) in read.into_iter().enumerate()
    {
        let Ok((bytes_len, digest)) = seen else {
            return Err(format!("{name} cannot be read"));
        };
        if bytes_len > reading.max_file_bytes {
            return Err(format!("{name} is larger than --max-file-size"));
        }
        if unchanged.at(number) {
            files.unread += usize::from(known);
            files.all_bytes += bytes_len as usize;
            files.all.push((name, digest));
            continue;
        }
        // A name listed twice (never: paths are unique) is new the second time, as
        // before.
        let at = entry_of(index, &name, last).filter(|&at| !still[at]);
        if let Some(at) = at {
            still[at] = true;
            last = Some(at);
        }
        match at.map(|at| (at, &index.files[at])) {
            Some((at, entry)) if entry.digest == digest => {
                files.unread += usize::from(known);
                files.kept.push(at);
                files.all_bytes += bytes_len as usize;
                files.all.push((name, digest));
            }
            Some((_, entry)) if !entry.only_customers => {
                return Err(format!("{name} changed and declares more than customers"));
            }
            entry => {
                // Its digest is that of what is read again below.
                files.unfilled.push(files.all.len());
                files.all.push((name.clone(), FileId::default()));
                pending.push((path, name, entry.map(|(_, entry)| entry.clone())));
            }
        }
    }
    take_removed(&mut files, index, &still)?;
    Ok((files, pending))
}

/// Takes the entries of the pages opened that are no longer there (`still` false), in the
/// index's order (by path): the files removed, each of customers only.
fn take_removed(files: &mut Files, index: &PlanIndex, still: &[bool]) -> Result<(), String> {
    let gone = index.files.iter().zip(still).filter(|(_, still)| !**still);
    for entry in gone.map(|(entry, _)| entry) {
        let name = &entry.path;
        if !entry.only_customers {
            return Err(format!(
                "{name} was removed and declared more than customers"
            ));
        }
        files.old.push(entry.clone());
        files.removed += 1;
    }
    Ok(())
}

/// Reads the changed files, with the runs of items the index has for them; the reason to
/// plan in full when they cannot be read or most of the manifests changed. For an apply,
/// the database prepares the apply's statements meanwhile.
async fn read_changed_files(
    store: &mut AnyStore,
    pending: Vec<Pending>,
    files: &mut Files,
    (reading, for_apply): (Reading, bool),
) -> Result<Result<(), String>, Error> {
    let olds = pending.iter().filter_map(|(_, _, old)| old.as_ref());
    let wanted: Vec<String> = olds
        .chain(&files.old)
        .filter(|o| o.customers && o.ids.is_empty())
        .map(|o| o.path.to_string())
        .collect();
    let stored = if wanted.is_empty() {
        Vec::new()
    } else {
        crate::progress::phase_async("read files", store.read_files(&wanted)).await?
    };
    let stored: BTreeMap<String, FileRow> =
        stored.into_iter().map(|row| (row.0.clone(), row)).collect();
    for removed in &files.old {
        match ids_of(removed, &stored) {
            Ok(ids) => files.before.extend(ids),
            Err(reason) => return Ok(Err(reason)),
        }
    }
    let read = if for_apply {
        // The apply's statements are prepared while the files are read: the index's writes,
        // and those not prepared yet.
        let expected = ApplyStatements::Index(index_writes(&pending, files));
        let preparing = store.prepare_apply(expected, &|| false);
        let reading = tokio::task::spawn_blocking(move || {
            phase("read changed", || read_changed(pending, &stored, reading))
        });
        let (_, read) = tokio::join!(preparing, reading);
        read.expect("reading does not panic")
    } else {
        phase("read changed", || read_changed(pending, &stored, reading))
    };
    Ok(read.and_then(|read| take_read(files, read)))
}

/// The writes of the plan index an apply of these changed files is expected to make: the
/// pages holding them written again, a changed file's row written again when it had one
/// (its ids did not fit in its entry), else removed, and the removed files' rows removed.
fn index_writes(pending: &[Pending], files: &Files) -> crate::store::IndexWrites {
    let rows = |entry: &IndexedFile| entry.customers && entry.ids.is_empty();
    let had_row = pending
        .iter()
        .filter(|(_, _, old)| old.as_ref().is_some_and(rows))
        .count();
    crate::store::IndexWrites {
        pages_gone: 0,
        pages: files.pages_changed,
        files_gone: pending.len() - had_row + files.old.len(),
        files: had_row,
    }
}

/// The ids of the customers a file of the index declared, from its row.
fn ids_of(
    entry: &IndexedFile,
    stored: &BTreeMap<String, FileRow>,
) -> Result<Vec<CompactString>, String> {
    if !entry.customers {
        return Ok(Vec::new());
    }
    if !entry.ids.is_empty() {
        return Ok(entry.ids.clone());
    }
    stored
        .get(entry.path.as_str())
        .filter(|row| FileId::from_hex(&row.1) == Some(entry.digest))
        .and_then(|row| crate::state::Ids::read(&row.2))
        .ok_or_else(|| "the plan index is damaged".to_string())
}

/// Reads the changed files on every core: each in part when the index has its runs of
/// items and they still cut it the same way, else whole.
fn read_changed(
    pending: Vec<Pending>,
    stored: &BTreeMap<String, FileRow>,
    reading: Reading,
) -> Result<Vec<Read>, String> {
    crate::parallel::map_in_order(pending, |(path, name, old)| {
        // Read again: what is parsed, and recorded, is what this read returns (a file
        // written in between is simply a changed file at the next plan).
        let bytes = std::fs::read(&path).map_err(|_| format!("{name} cannot be read"))?;
        if bytes.len() as u64 > reading.max_file_bytes {
            return Err(format!("{name} is larger than --max-file-size"));
        }
        let digest = validate::file_digest(&bytes);
        let text = String::from_utf8(bytes).map_err(|_| format!("{name} is not UTF-8"))?;
        let before = match &old {
            Some(entry) => ids_of(entry, stored)?,
            None => Vec::new(),
        };
        let runs = old
            .as_ref()
            .filter(|entry| entry.groups)
            .and_then(|entry| stored.get(entry.path.as_str())?.3.as_deref());
        if let (Some(entry), Some(runs)) = (&old, runs)
            && let Some(read) = in_part((&path, &name, &digest), &text, entry, &before, runs)
        {
            return Ok(read);
        }
        Ok(Read::Whole {
            path,
            name,
            text,
            digest,
            old,
            before,
        })
    })
    .into_iter()
    .collect()
}

/// A changed file read in part: its runs of items now, matched with those the index has
/// (same digest, same item count); the customers of the runs matched are as applied, the
/// others are parsed. `None` when the file is no longer cut into runs, or the index's
/// entry does not read.
fn in_part(
    (path, name, digest): (&Path, &str, &FileId),
    text: &str,
    entry: &IndexedFile,
    ids: &[CompactString],
    runs: &[u8],
) -> Option<Read> {
    let before = crate::manifest::split::decode(runs)?;
    let total: usize = before.iter().map(|(_, n)| *n as usize).sum();
    if total != ids.len() {
        return None;
    }
    // Each run before, by digest: where its ids start, first come first matched.
    let mut by_digest: BTreeMap<([u8; 16], u32), Vec<usize>> = BTreeMap::new();
    let mut at = 0;
    for (digest, n) in &before {
        by_digest.entry((*digest, *n)).or_default().push(at);
        at += *n as usize;
    }
    for starts in by_digest.values_mut() {
        starts.reverse();
    }
    let now = crate::manifest::split::groups(text)?;
    let mut parse = String::from(crate::manifest::split::HEADER);
    let mut now_ids = Vec::new();
    let mut matched = vec![false; ids.len()];
    for run in &now {
        let n = run.items as usize;
        match by_digest
            .get_mut(&(run.digest, run.items))
            .and_then(Vec::pop)
        {
            Some(start) => {
                now_ids.extend(ids[start..start + n].iter().cloned().map(Some));
                matched[start..start + n].fill(true);
            }
            None => {
                parse.push_str(&text[run.range.clone()]);
                if !parse.ends_with('\n') {
                    parse.push('\n');
                }
                now_ids.extend(std::iter::repeat_n(None, n));
            }
        }
    }
    if parse.len() == crate::manifest::split::HEADER.len() {
        parse = "customers: []\n".into();
    }
    let gone = ids
        .iter()
        .zip(matched)
        .filter(|(_, matched)| !matched)
        .map(|(id, _)| id.clone())
        .collect();
    let read = InPart {
        path: path.to_path_buf(),
        name: name.to_string(),
        size: text.len(),
        digest: *digest,
        ids: now_ids,
        gone,
        runs: crate::manifest::split::encode(&now),
        secrets: entry.secrets.clone(),
    };
    Some(Read::InPart(read, parse))
}

/// Takes in the changed files as read; the reason to plan in full when most of the manifests
/// changed (above [`MOSTLY_ABOVE`]).
fn take_read(files: &mut Files, read: Vec<Read>) -> Result<(), String> {
    let mut digests: BTreeMap<String, FileId> = BTreeMap::new();
    let mut parsed = 0;
    for read in read {
        match read {
            Read::Whole {
                path,
                name,
                text,
                digest,
                old,
                before,
            } => {
                files.all_bytes += text.len();
                parsed += text.len();
                digests.insert(name, digest);
                files.old.extend(old);
                files.before.extend(before);
                files.changed.push((path, text));
            }
            Read::InPart(part, text) => {
                files.before.extend(part.gone.iter().cloned());
                files.all_bytes += part.size;
                parsed += text.len();
                digests.insert(part.name.clone(), part.digest);
                files.changed.push((part.path.clone(), text));
                files.in_part.push(part);
            }
        }
    }
    for &at in &files.unfilled {
        let (name, digest) = &mut files.all[at];
        *digest = digests.remove(name.as_str()).unwrap_or_default();
    }
    files.changed_count = files.changed.len();
    if files.all_bytes > MOSTLY_ABOVE && parsed * 2 > files.all_bytes {
        return Err("most of the manifests changed (reading everything is as fast)".into());
    }
    Ok(())
}

/// Checks again what the full plan would read beside the files: the message templates'
/// texts, and the password sources of the files that did not change. The reason to plan in
/// full when one moved.
fn recheck(files: &Files, index: &PlanIndex, reading: Reading) -> Option<String> {
    for (path, digest) in &index.templates {
        let now = validate::template_digest(&files.root, path, reading.max_file_bytes);
        if now != *digest {
            let path = crate::unicode::escape_invisible(path);
            return Some(format!("the template {path} changed"));
        }
    }
    let kept = files.kept.iter().flat_map(|&at| &index.files[at].secrets);
    let whole = index.unopened().flat_map(|page| &page.secrets);
    let in_part = files.in_part.iter().flat_map(|f| &f.secrets);
    let secrets: BTreeSet<&SecretCheck> = kept.chain(whole).chain(in_part).collect();
    for secret in secrets {
        let (value, min, named) = match secret {
            SecretCheck::Env(name, min) => (std::env::var(name).ok(), *min, name),
            SecretCheck::File(path, min) => {
                let limit = reading.max_file_bytes;
                let read = crate::files::read_inside(
                    "password file",
                    &files.root,
                    &files.root,
                    path,
                    limit,
                );
                let value = read
                    .ok()
                    .map(|v| v.trim_end_matches(['\r', '\n']).to_string());
                (value, *min, path)
            }
        };
        if value.is_none_or(|v| v.chars().count() < min) {
            let named = crate::unicode::escape_invisible(named);
            return Some(format!(
                "the password source {named} is missing or too short"
            ));
        }
    }
    None
}

/// The customers and login emails of the changed files, old and new.
struct Touched {
    /// The ids they declare now and did not before, sorted.
    new: Vec<CompactString>,
    /// Both.
    all: Vec<CompactString>,
    /// The login emails they declare now that no login of their customers holds: the only
    /// ones another customer could hold.
    emails: Vec<CompactString>,
}

fn touched(set: &ManifestSet, old: Vec<CompactString>, part: &Part) -> Touched {
    let held: BTreeSet<&str> = part
        .state
        .customers
        .values()
        .flat_map(|c| std::iter::once(&c.record.login).chain(c.contacts.values()))
        .filter_map(|l| l.email.as_deref())
        .collect();
    let mut new = BTreeSet::new();
    let mut emails = BTreeSet::new();
    for customer in set.customers.iter().flatten().map(|d| &d.value) {
        let id = CompactString::from(customer.id.as_str());
        if old.binary_search(&id).is_err() {
            new.insert(id);
        }
        let contacts = customer.contacts.iter().map(|c| c.email.as_str());
        for email in customer.email.as_deref().into_iter().chain(contacts) {
            let email = crate::state::normalize_email(email);
            if !held.contains(email.as_str()) {
                emails.insert(email);
            }
        }
    }
    let new: Vec<CompactString> = new.into_iter().collect();
    let mut all: Vec<CompactString> = old.iter().chain(&new).cloned().collect();
    all.sort();
    Touched {
        new,
        all,
        emails: emails.into_iter().collect(),
    }
}

/// Reads the changed files' customers, checks what crosses files, validates, diffs and
/// labels.
async fn plan_part(
    (store, args): (&mut AnyStore, &DiffArgs),
    (set, files, index): (&ManifestSet, &mut Files, PlanIndex),
    (version, part, touched): (LiveVersion, Part, Touched),
    (digests, for_apply): (bool, bool),
) -> Result<Attempt, Error> {
    if part.applied.version != version {
        return full("the database was written while planning");
    }
    if !touched.new.is_empty() || !touched.emails.is_empty() {
        let owners = store.owners(&touched.new, &touched.emails).await?;
        if owners.version != version {
            return full("the database was written while planning");
        }
        if let Some(reason) = crosses_files(&owners) {
            return full(reason);
        }
    }
    let now = crate::clock::now();
    let now_text = crate::clock::format(now);
    if part
        .expiring
        .iter()
        .any(|(.., e)| e.as_str() <= now_text.as_str())
    {
        return full("the access of a login in an unchanged file expired since the last apply");
    }
    let (desired, found) = phase("validate", || validate::validate(set, Some(&part.state)));
    if !found.is_empty() {
        return full("the changed files have problems (the full plan reports them)");
    }
    if let Some(reason) = unused_role(store, (&part, &desired, &index), &touched, &version).await? {
        return full(reason);
    }
    let fingerprint = if digests {
        version.fingerprint()
    } else {
        String::new()
    };
    let prune = !args.no_prune;
    let mut plan = phase("diff", || {
        plan::diff_with_fingerprint(&desired, &part.state, DiffOptions { prune }, fingerprint)
    });
    plan.live_logins = usize::try_from(index.logins).unwrap_or(usize::MAX);
    // The full plan checks the transport of the settings its files declare: the live ones,
    // when the files manage them (nothing a plan reads was written since they were applied).
    let notifications = match index.managed.get(3) {
        Some(true) => part.state.notifications.as_ref(),
        _ => None,
    };
    let transport = notifications.and_then(|settings| transport_secrets(settings, &plan).err());
    let converged = prune && plan.warnings.is_empty();
    let summary = Summary {
        files: files.all.len(),
        changed: files.changed_count,
        in_part: files.in_part.len(),
        removed: files.removed,
        customers: touched.all.len(),
        unread: files.unread,
    };
    let new_index = to_record(for_apply && converged, (set, &desired, &part, files), index);
    plan::label_origins(&mut plan, &part.applied);
    let expiring = expiring_state(desired.state.customers.clone(), &part);
    plan::annotate_expiry(&mut plan, &expiring, now, args.warn_expiring);
    if digests {
        plan.manifests_digest =
            manifests_digest_of(files.all.iter().map(|(name, id)| (name, id.0)));
    }
    let computed = Computed {
        plan,
        transport,
        index: new_index,
    };
    Ok(Attempt::Done(Box::new(computed), summary))
}

/// Why the full plan would find a problem across files: a customer id new to the changed
/// files that a customer of another file has, or a new login email a login of another
/// customer holds.
fn crosses_files(owners: &Owners) -> Option<String> {
    if let Some(id) = owners.customers.first() {
        return Some(format!("customer `{id}` is declared by another file too"));
    }
    owners
        .emails
        .first()
        .map(|(email, _)| format!("login email `{email}` belongs to a customer of another file"))
}

/// Why the full plan would warn that a role is no longer used: a custom role the changed
/// files' customers used before and no longer use, that no login of another customer and no
/// role uses either (asked of the database only for such roles: usually none).
async fn unused_role(
    store: &mut AnyStore,
    (part, desired, index): (&Part, &Desired, &PlanIndex),
    touched: &Touched,
    version: &LiveVersion,
) -> Result<Option<String>, Error> {
    if index.managed.get(4) != Some(&true) {
        return Ok(None);
    }
    let mut used: BTreeSet<&str> = part.state.roles.values().map(|r| r.base.as_str()).collect();
    for customer in desired.state.customers.values() {
        used.insert(customer.record.login.role.as_str());
        used.extend(customer.contacts.values().map(|c| c.role.as_str()));
    }
    let candidates: BTreeSet<CompactString> = part
        .state
        .customers
        .values()
        .flat_map(|c| std::iter::once(&c.record.login).chain(c.contacts.values()))
        .map(|l| l.role.as_str())
        .filter(|role| part.state.roles.contains_key(*role) && !used.contains(role))
        .map(CompactString::from)
        .collect();
    if candidates.is_empty() {
        return Ok(None);
    }
    let candidates: Vec<CompactString> = candidates.into_iter().collect();
    let (now, elsewhere) = store.roles_elsewhere(&candidates, &touched.all).await?;
    if now != *version {
        return Ok(Some("the database was written while planning".into()));
    }
    Ok(candidates
        .iter()
        .find(|role| !elsewhere.contains(role))
        .map(|role| format!("role `{role}` would no longer be used")))
}

/// The desired customers of the changed files, with the other customers' logins that expire
/// soon: what the plan's expiry warnings read.
fn expiring_state(customers: crate::state::Customers, part: &Part) -> State {
    let mut logins: BTreeMap<&str, crate::state::CustomerState> = BTreeMap::new();
    for (customer, contact, email, expires) in &part.expiring {
        let login = crate::state::LoginState {
            email: email.clone(),
            name: None,
            access: true,
            role: CompactString::default(),
            website: None,
            notify: false,
            password: None,
            expires: Some(expires.clone()),
        };
        let entry = logins.entry(customer.as_str()).or_insert_with(|| {
            let mut own = login.clone();
            own.access = false;
            crate::state::CustomerState {
                record: crate::state::CustomerRecord {
                    name: CompactString::default(),
                    protect: false,
                    login: own,
                },
                contacts: crate::state::contacts_of(Vec::new()),
            }
        });
        if contact.is_empty() {
            entry.record.login = login;
        } else {
            entry.contacts.insert(contact.clone(), login);
        }
    }
    let mut all: Vec<(CompactString, crate::state::CustomerState)> =
        customers.into_iter().collect();
    all.extend(
        logins
            .into_iter()
            .map(|(id, c)| (CompactString::from(id), c)),
    );
    State {
        customers: crate::state::customers_of(all),
        ..State::default()
    }
}

/// The index an apply of this plan records when it records one (`record`): the changed
/// files' entries made now (validation's, from the files parsed), the rest on another
/// thread while the apply writes ([`IndexToRecord::Making`]). The files read in part and the
/// places of the unchanged ones are taken from `files` for it.
fn to_record(
    record: bool,
    (set, desired, part, files): (&ManifestSet, &Desired, &Part, &mut Files),
    index: PlanIndex,
) -> Option<IndexToRecord> {
    if !record {
        crate::parallel::drop_aside(index);
        return None;
    }
    let changed = validate::index_of(set, desired, Some(&part.state));
    let gone: Vec<String> = files.old.iter().map(|f| f.path.to_string()).collect();
    let in_part = std::mem::take(&mut files.in_part);
    // The making's work, in ids of files read in part to encode; a changed file read whole,
    // whose entry is made already, as a page of entries cut and sealed again.
    let ids = in_part.iter().map(|part| part.ids.len()).sum::<usize>()
        + changed.files.len() * crate::state::WHOLE_FILE_AS_IDS;
    let kept = std::mem::take(&mut files.kept);
    Some(IndexToRecord::Making(
        Box::new(move || {
            if unmade_for_tests() {
                return None;
            }
            let mut in_part: Vec<Encoded> = in_part
                .into_iter()
                .map(|mut part| {
                    let encoded = encode_ids(&mut part);
                    (part, encoded)
                })
                .collect();
            next_index(changed, (gone, &mut in_part, &kept), index)
        }),
        ids,
    ))
}

/// In debug builds, with `PORTICO_TEST_INDEX_UNMADE` set, the index an incremental apply
/// records cannot be made (as when a page it must cut again does not read): a test sees the
/// apply remove the index, and the plans after it read every file (see CONTRIBUTING.md).
fn unmade_for_tests() -> bool {
    cfg!(debug_assertions) && std::env::var_os("PORTICO_TEST_INDEX_UNMADE").is_some()
}

/// The index the apply of this plan records: the unchanged files' entries (`kept`: their
/// places, moved from the index read), and the changed files' as they are now (`changed`,
/// validation's entries; a file read in part: its unchanged runs' ids and password sources
/// as the index had them, with its parsed runs'). `gone`: the paths of the files changed
/// or removed, whose rows go. `None` when a page of the index read does not read as listed.
fn next_index(
    changed: PlanIndex,
    (gone, in_part, kept_at): (Vec<String>, &mut [Encoded], &[usize]),
    index: PlanIndex,
) -> Option<PlanIndex> {
    let mut rows = changed.rows;
    rows.all = false;
    rows.gone = gone;
    // A file read in part whose every run changed was parsed as it is: its runs are those
    // of the reading in part.
    rows.rows
        .retain(|(path, ..)| !in_part.iter().any(|(p, _)| p.name == *path));
    // A changed file whose ids its entry now keeps leaves the row it may have had.
    let inline = changed.files.iter().filter(|entry| !entry.ids.is_empty());
    rows.gone.extend(inline.map(|entry| entry.path.to_string()));
    let mut kept = vec![false; index.files.len()];
    for &at in kept_at {
        kept[at] = true;
    }
    let mut now: Vec<IndexedFile> = changed
        .files
        .into_iter()
        .map(|entry| entry_now(entry, in_part, &mut rows))
        .collect();
    now.sort_by(|a, b| a.path.cmp(&b.path));
    let mut next = index.next(&kept, now)?;
    next.rows = rows;
    Some(next)
}

/// A changed file's entry in the next index: as validation made it, or for a file read in
/// part, its unchanged runs' ids and password sources as the index had them with its parsed
/// runs' (and its row to record).
fn entry_now(
    entry: IndexedFile,
    in_part: &mut [Encoded],
    rows: &mut crate::state::FileWrites,
) -> IndexedFile {
    let Some((read, ids)) = in_part.iter_mut().find(|(p, _)| p.name == entry.path) else {
        return entry;
    };
    let mut secrets = std::mem::take(&mut read.secrets);
    secrets.extend(entry.secrets);
    secrets.sort();
    secrets.dedup();
    rows.rows.push((
        read.name.clone(),
        read.digest.to_string(),
        std::mem::take(ids),
        Some(std::mem::take(&mut read.runs)),
    ));
    IndexedFile {
        path: read.name.as_str().into(),
        digest: read.digest,
        size: read.size as u64,
        only_customers: true,
        customers: true,
        secrets,
        groups: true,
        ids: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file's name put together from its folder's is the name taken from its whole path,
    /// at the root, deeper, through a `..` in the root, and for a name that is not UTF-8.
    #[test]
    fn a_name_from_its_folder_is_the_name_from_its_path() {
        use std::os::unix::ffi::OsStrExt as _;
        let dir = tempfile::tempdir().unwrap();
        let odd = std::ffi::OsStr::from_bytes(b"caf\xe9.yaml");
        for folder in ["", "a", "a/b c", "a/b c/d"] {
            std::fs::create_dir_all(dir.path().join("m").join(folder)).unwrap();
            for name in [std::ffi::OsStr::new("x.yaml"), odd] {
                std::fs::write(dir.path().join("m").join(folder).join(name), "{}\n").unwrap();
            }
        }
        for root in [dir.path().join("m"), dir.path().join("m/a/..")] {
            for path in load::list_seeing_others(&root).0 {
                let split = split_name(&path);
                assert_eq!(
                    split,
                    (path.parent(), path.file_name()),
                    "{}",
                    path.display()
                );
            }
            let (paths, _, problems) = load::list_seeing_others(&root);
            assert!(problems.is_empty());
            assert_eq!(paths.len(), 8);
            let base = load::root_of(&root);
            let folders = Folders::of(&base, &paths);
            for (at, path) in paths.iter().enumerate() {
                let whole = validate::relative_name(&base, path);
                assert_eq!(
                    name_of(&folders, &base, at, path),
                    whole,
                    "{}",
                    path.display()
                );
            }
        }
    }
}
