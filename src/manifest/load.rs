//! Reading a manifest set: files and folders, YAML documents, and merging sections.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;

use super::diagnostic::{Diagnostic, Site, Source, Unread};
use super::model::{Customer, Document, LoginPolicy, Notifications, Policy, Role, Website};
use super::path::{Position, Segment, YamlPath};
use crate::catalog::Feature;

/// A value together with the place that declared it.
#[derive(Clone, Debug)]
pub struct Declared<T> {
    /// The value as parsed.
    pub value: T,
    /// Where it was declared.
    pub site: Site,
}

/// Every section of every document of a manifest set, merged.
///
/// A section is `Some` when at least one document has it (even empty): that is what makes
/// portico manage, and prune, that kind of object.
#[derive(Clone, Debug, Default)]
pub struct ManifestSet {
    /// The folder the set was read from (a single file's folder): paths in plans, digests
    /// and password sources are relative to it, so they do not depend on the checkout.
    pub root: PathBuf,
    /// The files read, in order.
    pub sources: Vec<Source>,
    /// `features:` entries.
    pub features: Option<BTreeMap<Feature, Declared<bool>>>,
    /// `websites:` entries.
    pub websites: Option<Vec<Declared<Website>>>,
    /// The `login_policy:` section.
    pub login_policy: Option<Declared<LoginPolicy>>,
    /// The `notifications:` section.
    pub notifications: Option<Declared<Notifications>>,
    /// `roles:` entries.
    pub roles: Option<Vec<Declared<Role>>>,
    /// `customers:` entries.
    pub customers: Option<Vec<Declared<Customer>>>,
    /// `policies:` entries.
    pub policies: Option<Vec<Declared<Policy>>>,
    /// `oidc_clients:` entries.
    pub oidc_clients: Option<Vec<Declared<super::oidc::OidcClient>>>,
    /// How the set was read and is judged.
    pub reading: Reading,
    /// What each file declares, by source index (what the plan index records).
    pub declared: Vec<FileSections>,
}

/// The sections one file declares (even empty ones: `roles: []` manages roles).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileSections {
    /// A `customers:` section.
    pub customers: bool,
    /// Any other section.
    pub other: bool,
}

/// Default limit on one manifest file, in MiB: far above a hand-written file, low enough
/// that a runaway (or hostile) file is refused before it costs gigabytes of memory.
pub const DEFAULT_MAX_FILE_MB: u64 = 64;

/// How a command reads and judges the manifests (`--max-file-size`, `--policy-warn-only`):
/// passed in, kept with the set, never process-wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    /// The largest file read for the manifests, in bytes: manifest files and the files they
    /// reference (templates, password files) alike.
    pub max_file_bytes: u64,
    /// Broken `policies:` are warnings instead of errors (for a migration period).
    pub policy_warn_only: bool,
}

impl Default for Reading {
    fn default() -> Reading {
        Reading {
            max_file_bytes: DEFAULT_MAX_FILE_MB * 1024 * 1024,
            policy_warn_only: false,
        }
    }
}

fn too_large(path: &Path, size: u64, limit: u64) -> Option<String> {
    (size > limit).then(|| {
        format!(
            "{} is {:.1} MiB, more than the limit of {} MiB for one manifest file: split it, or raise the limit with --max-file-size",
            path.display(),
            size as f64 / 1048576.0,
            limit / 1048576
        )
    })
}

/// Reads a manifest file or folder. Returns the set and every problem found while reading;
/// the set is only trustworthy when no diagnostic is an error.
pub fn load(root: &Path, reading: Reading) -> (ManifestSet, Vec<Diagnostic>) {
    load_overlaid(root, &[], reading)
}

/// [`load`], with some files' texts given instead of read (`import-csv` checks the
/// manifests it would write before writing them); a given path not on disk is added.
pub fn load_overlaid(
    root: &Path,
    overlay: &[(&Path, &str)],
    reading: Reading,
) -> (ManifestSet, Vec<Diagnostic>) {
    let (mut files, diagnostics) = list(root);
    let listed = files.len();
    for (path, _) in overlay {
        if !files.iter().any(|f| f == path) {
            files.push(path.to_path_buf());
        }
    }
    if files.len() > listed {
        files.sort();
    }
    load_listed(root, files, overlay, reading, diagnostics)
}

/// The manifest files under `root` (a file or folder), sorted, and the problems found
/// listing them (what [`load`] reads).
pub fn list(root: &Path) -> (Vec<PathBuf>, Vec<Diagnostic>) {
    let (files, _, diagnostics) = list_seeing_others(root);
    (files, diagnostics)
}

/// [`list`], with the entries the listing saw and did not take: files that are not
/// manifests, and hidden files and folders (not walked).
pub fn list_seeing_others(root: &Path) -> (Vec<PathBuf>, Vec<PathBuf>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let mut files = Vec::new();
    let mut others = Vec::new();
    collect_files(root, true, (&mut files, &mut others), &mut diagnostics);
    (files, others, diagnostics)
}

/// Reads the given files (or takes their texts from `overlay`) as one set rooted at the
/// manifest path `root`, after the `diagnostics` found so far.
pub fn load_listed(
    root: &Path,
    files: Vec<PathBuf>,
    overlay: &[(&Path, &str)],
    reading: Reading,
    mut diagnostics: Vec<Diagnostic>,
) -> (ManifestSet, Vec<Diagnostic>) {
    let mut set = ManifestSet {
        root: root_of(root),
        reading,
        ..ManifestSet::default()
    };
    // Read every file first, parse them on all cores, and report and merge in file order,
    // each file as soon as it and those before it are parsed: the set and its diagnostics
    // are those of reading one file after another.
    let slots = read_files(&mut set, files, overlay, reading.max_file_bytes);
    let texts: Vec<usize> = slots
        .iter()
        .filter_map(|s| s.as_ref().ok().copied())
        .collect();
    // The sources are read by the parse threads while the merge fills the rest of the set.
    let sources = std::mem::take(&mut set.sources);
    // The merged list of customers is sized once: grown by pushing, it could hold up to
    // twice the room. A few files (most of them large) are all parsed before they are
    // merged, to count their customers; many are merged as they are parsed, the list sized
    // for one customer a file (grown if they hold more).
    let parsed = (!merged_as_parsed(texts.len()))
        .then(|| parse_all(&sources, &texts, reading.max_file_bytes));
    let customers = match &parsed {
        Some(parsed) => parsed
            .iter()
            .flat_map(|(documents, _)| documents)
            .filter_map(|(_, document)| document.customers.as_ref())
            .map(Vec::len)
            .sum(),
        None => texts.len(),
    };
    if customers > 0 {
        set.customers
            .get_or_insert_with(Vec::new)
            .reserve_exact(customers);
    }
    let mut slots = slots.into_iter();
    let mut merge_next = |(documents, found): Parsed| {
        // The files that could not be read before this one are reported in their place.
        let index = loop {
            match slots.next().expect("one slot per file parsed") {
                Ok(index) => break index,
                Err(diagnostic) => diagnostics.push(diagnostic),
            }
        };
        diagnostics.extend(found);
        for (doc, document) in documents {
            merge(&mut set, &sources, index, doc, document, &mut diagnostics);
        }
    };
    match parsed {
        Some(parsed) => parsed.into_iter().for_each(&mut merge_next),
        None => parse_each(&sources, &texts, reading.max_file_bytes, &mut merge_next),
    }
    diagnostics.extend(slots.map(|slot| slot.expect_err("every file read is parsed")));
    set.sources = sources;
    // Parsed: the texts go (the files are read again for the few diagnostics that quote them).
    for source in &mut set.sources {
        source.release_text();
    }
    (set, diagnostics)
}

/// Reads each file (or takes its text from the overlay) into the set's sources: for each,
/// its source index, or the problem that kept it out. A file parsed whole is left
/// [`Source::unread`]: its parse reads it and lets it go once parsed. Only a file cut into
/// pieces ([`worth_cutting`]), whose text several parses share, is read now.
fn read_files(
    set: &mut ManifestSet,
    files: Vec<PathBuf>,
    overlay: &[(&Path, &str)],
    max_file_bytes: u64,
) -> Vec<Result<usize, Diagnostic>> {
    // On every core: for 100,000 one-customer files, a `stat` each one after another was a
    // tenth of a `validate`.
    // Each looked up by its name in its folder (opened once), here and when its parse opens
    // it, instead of by its path walked again from the root.
    let folders = crate::folders::Folders::of(&set.root, &files);
    if files.len() >= MANY_FILES {
        return unsized_files(set, files, overlay, &folders);
    }
    let sizes: Vec<Option<u64>> = crate::parallel::map_in_order(
        files.iter().enumerate().collect(),
        |(at, path)| match folders.stat(at, path) {
            Some(stat) => u64::try_from(stat.st_size).ok(),
            None => fs::metadata(path).ok().map(|m| m.len()),
        },
    );
    let total = usize::try_from(sizes.iter().flatten().sum::<u64>()).unwrap_or(usize::MAX);
    let (threads, target) = parse_shape();
    let mut slots: Vec<Result<usize, Diagnostic>> = Vec::with_capacity(files.len());
    for (at, (path, size)) in files.into_iter().zip(sizes).enumerate() {
        let index = set.sources.len();
        if let Some((_, text)) = overlay.iter().find(|(p, _)| *p == path) {
            slots.push(Ok(index));
            set.sources.push(Source::new(path, (*text).to_string()));
            continue;
        }
        if let Some(message) = size.and_then(|size| too_large(&path, size, max_file_bytes)) {
            slots.push(Err(Diagnostic::file_error(None, message)));
            continue;
        }
        if let Some(size) = size
            && !worth_cutting(
                usize::try_from(size).unwrap_or(usize::MAX),
                total,
                threads,
                target,
            )
        {
            slots.push(Ok(index));
            set.sources.push(Source::unread(
                path,
                Some(size),
                folders.folder(at).cloned(),
            ));
            continue;
        }
        match fs::read(&path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => {
                    slots.push(Ok(index));
                    set.sources.push(Source::new(path, text));
                }
                Err(_) => {
                    set.sources.push(Source::new(path, String::new()));
                    slots.push(Err(not_utf8(index)));
                }
            },
            Err(error) => slots.push(Err(cannot_read(&path, &error))),
        }
    }
    slots
}

/// From this many files, [`read_files`] asks no file's size before its parse: each is
/// opened by its parse, which asks the opened file its size (no second lookup of its name:
/// for 100,000 one-customer files in one folder, a `stat` each was a twelfth of a
/// `validate`). A file larger than a few pieces is then read and parsed in pieces after the
/// others; one too large is reported by its parse, in its place.
const MANY_FILES: usize = 1_024;

/// Whether [`load_listed`] merges `files` files one by one as they are parsed (many
/// files), rather than all of them once parsed (a few, most of them large, held until then).
pub fn merged_as_parsed(files: usize) -> bool {
    files >= MANY_FILES
}

/// [`read_files`] for many files: every file left unread, its size not asked (the
/// overlay's texts given).
fn unsized_files(
    set: &mut ManifestSet,
    files: Vec<PathBuf>,
    overlay: &[(&Path, &str)],
    folders: &crate::folders::Folders,
) -> Vec<Result<usize, Diagnostic>> {
    let mut slots = Vec::with_capacity(files.len());
    for (at, path) in files.into_iter().enumerate() {
        slots.push(Ok(set.sources.len()));
        match overlay.iter().find(|(p, _)| *p == path) {
            Some((_, text)) => set.sources.push(Source::new(path, (*text).to_string())),
            None => set
                .sources
                .push(Source::unread(path, None, folders.folder(at).cloned())),
        }
    }
    slots
}

fn not_utf8(index: usize) -> Diagnostic {
    Diagnostic::file_error(Some(index), "file is not valid UTF-8")
}

fn cannot_read(path: &Path, error: &std::io::Error) -> Diagnostic {
    Diagnostic::file_error(None, format!("cannot read {}: {error}", path.display()))
}

/// The documents of one file and the problems found reading them.
type Parsed = (Vec<(usize, Document)>, Vec<Diagnostic>);

/// A file of customers is cut into pieces of about this many bytes when it is a large part
/// of what is read (`PORTICO_PARSE_PIECE` changes it, for tests).
const PIECE_BYTES: usize = 256 * 1024;

/// Parses the given sources on every core. Results come back in the order of `indexes`.
/// A large file of customers is parsed in pieces (see `split`) when the files are too few
/// to keep the cores busy, as when a plan reads only the one file a change touched.
fn parse_all(sources: &[Source], indexes: &[usize], limit: u64) -> Vec<Parsed> {
    let (threads, target) = parse_shape();
    parse_in_pieces(sources, indexes, (target, threads), limit)
}

/// [`parse_all`], each file's parse handed to `deliver` in the order of `indexes` as soon
/// as it and every file before it are parsed.
fn parse_each(sources: &[Source], indexes: &[usize], limit: u64, deliver: &mut dyn FnMut(Parsed)) {
    let (threads, target) = parse_shape();
    parse_each_in_pieces(sources, indexes, (target, threads), limit, deliver);
}

/// The cores a parse uses, and the size of the pieces a large file is cut into.
fn parse_shape() -> (usize, usize) {
    let threads = crate::parallel::cores();
    let target = std::env::var("PORTICO_PARSE_PIECE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PIECE_BYTES);
    (threads, target)
}

/// [`parse_all`] with pieces of about `target` bytes, for `threads` cores; files not read
/// yet are read by their parse, within `limit` bytes.
fn parse_in_pieces(
    sources: &[Source],
    indexes: &[usize],
    shape: (usize, usize),
    limit: u64,
) -> Vec<Parsed> {
    let mut out = Vec::with_capacity(indexes.len());
    parse_each_in_pieces(sources, indexes, shape, limit, &mut |parsed| {
        out.push(parsed)
    });
    out
}

/// [`parse_in_pieces`], each file's parse handed to `deliver` in the order of `indexes` as
/// soon as it and every file before it are parsed (the merge then overlaps the parse).
fn parse_each_in_pieces(
    sources: &[Source],
    indexes: &[usize],
    (target, threads): (usize, usize),
    limit: u64,
    deliver: &mut dyn FnMut(Parsed),
) {
    let work = pieces_to_parse(sources, indexes, (target, threads));
    // A file read by its parse that turns out larger than a few pieces is held, and parsed
    // in pieces after the others (its size was not asked before: see `MANY_FILES`).
    let hold_from = if threads > 1 && target > 0 {
        u64::try_from(4 * target).map_or(u64::MAX, |bytes| bytes.saturating_add(1))
    } else {
        u64::MAX
    };
    let mut order = Delivery {
        waiting: std::collections::VecDeque::new(),
        first: 0,
        deliver,
    };
    let (mut again, mut held) = (Vec::new(), Vec::new());
    // The pieces parsed so far of the file whose pieces are coming in.
    let mut pieces: Option<(usize, Vec<Parsed>)> = None;
    let mut file_done = |order: &mut Delivery<'_>, pieces: Option<(usize, Vec<Parsed>)>| {
        if let Some((index, pieces)) = pieces {
            let done = joined(pieces);
            if done.is_none() {
                again.push((order.slot(), index));
            }
            order.push(done);
        }
    };
    // Each file's spare room goes on its parse thread, as soon as it is parsed: for 100,000
    // one-customer files, the room left until every file was parsed was 360 MiB at the peak.
    crate::parallel::map_each_in_order(
        work,
        |(index, range)| {
            let parsed = parse_work(sources, index, range, (limit, hold_from));
            let parsed = parsed.map(|(mut documents, found)| {
                documents
                    .iter_mut()
                    .for_each(|(_, document)| compact(document));
                (documents, found)
            });
            (index, parsed)
        },
        |(index, parsed_now)| match (parsed_now, &mut pieces) {
            (Some(piece), Some((of, so_far))) if *of == index => so_far.push(piece),
            (Some(piece), _) => {
                file_done(&mut order, pieces.replace((index, vec![piece])));
            }
            (None, _) => {
                file_done(&mut order, pieces.take());
                held.push((order.slot(), index));
                order.push(None);
            }
        },
    );
    file_done(&mut order, pieces.take());
    parse_later(sources, (held, again), (target, threads), limit, &mut order);
    assert!(order.waiting.is_empty(), "every file parsed");
}

/// Files (their place in file order, their source index) left to parse later.
type Later = Vec<(usize, usize)>;

/// The files whose parse [`parse_each_in_pieces`] left
/// for later: held (larger than a few pieces, parsed in pieces now), and those whose pieces
/// did not all parse cleanly, parsed whole (their diagnostics, if any, are the file's).
fn parse_later(
    sources: &[Source],
    (held, again): (Later, Later),
    shape: (usize, usize),
    limit: u64,
    order: &mut Delivery<'_>,
) {
    if !held.is_empty() {
        let indexes: Vec<usize> = held.iter().map(|(_, index)| *index).collect();
        let redone = parse_in_pieces(sources, &indexes, shape, limit);
        for ((slot, _), done) in held.into_iter().zip(redone) {
            order.fill(slot, done);
        }
    }
    let slots: Vec<usize> = again.iter().map(|(slot, _)| *slot).collect();
    let redone = crate::parallel::map_in_order(again, |(_, index)| {
        let mut found = Vec::new();
        let mut documents = read_documents(index, sources[index].text(), &mut found);
        documents
            .iter_mut()
            .for_each(|(_, document)| compact(document));
        (documents, found)
    });
    for (slot, done) in slots.into_iter().zip(redone) {
        order.fill(slot, done);
    }
}

/// Parses handed on in file order: each as soon as every file before it is parsed.
struct Delivery<'d> {
    /// The files from `first` on not handed on yet (`None`: not parsed yet).
    waiting: std::collections::VecDeque<Option<Parsed>>,
    /// The place in file order of the first one waiting.
    first: usize,
    deliver: &'d mut dyn FnMut(Parsed),
}

impl Delivery<'_> {
    /// The place of the next file pushed.
    fn slot(&self) -> usize {
        self.first + self.waiting.len()
    }

    /// The next file's parse (`None`: parsed later, see [`Delivery::fill`]).
    fn push(&mut self, parsed: Option<Parsed>) {
        self.waiting.push_back(parsed);
        self.hand_on();
    }

    /// The parse of the file at `slot`, pushed before as not parsed yet.
    fn fill(&mut self, slot: usize, parsed: Parsed) {
        self.waiting[slot - self.first] = Some(parsed);
        self.hand_on();
    }

    fn hand_on(&mut self) {
        while let Some(Some(_)) = self.waiting.front() {
            if let Some(Some(parsed)) = self.waiting.pop_front() {
                self.first += 1;
                (self.deliver)(parsed);
            }
        }
    }
}

/// What [`parse_in_pieces`] parses: each file whole, or in pieces when it is held and
/// worth cutting (a file left unread is parsed whole, by the parse that reads it).
fn pieces_to_parse(
    sources: &[Source],
    indexes: &[usize],
    (target, threads): (usize, usize),
) -> Vec<(usize, Option<std::ops::Range<usize>>)> {
    let size = |i: usize| usize::try_from(sources[i].size()).unwrap_or(usize::MAX);
    let total: usize = indexes.iter().map(|&i| size(i)).sum();
    let mut work = Vec::new();
    for &index in indexes {
        if !sources[index].is_held() {
            work.push((index, None));
            continue;
        }
        let text = sources[index].text();
        let cut = worth_cutting(text.len(), total, threads, target)
            .then(|| super::split::pieces(text, target))
            .flatten();
        match cut {
            Some(ranges) => work.extend(ranges.into_iter().map(|r| (index, Some(r)))),
            None => work.push((index, None)),
        }
    }
    work
}

/// Parses one file (`range`: `None`) or one piece of a file read whole; a file not read yet
/// is read here, within `limit` bytes, and held instead (`None`) when it is `hold_from`
/// bytes or more.
fn parse_work(
    sources: &[Source],
    index: usize,
    range: Option<std::ops::Range<usize>>,
    (limit, hold_from): (u64, u64),
) -> Option<Parsed> {
    let mut found = Vec::new();
    if !sources[index].is_held() {
        // Read here, parsed, and let go (its digest is kept).
        let documents = match sources[index].read_for_parse(limit, hold_from) {
            Ok(Some(text)) => read_documents(index, &text, &mut found),
            Ok(None) => return None,
            Err(Unread::Io(error)) => {
                found.push(cannot_read(&sources[index].path, &error));
                Vec::new()
            }
            Err(Unread::NotUtf8) => {
                found.push(not_utf8(index));
                Vec::new()
            }
            Err(Unread::TooLarge(size)) => {
                let message = too_large(&sources[index].path, size, limit);
                found.extend(message.map(|m| Diagnostic::file_error(None, m)));
                Vec::new()
            }
        };
        return Some((documents, found));
    }
    let text = sources[index].text();
    // The file's digest is taken here, on the parse threads, before its text goes.
    if range.as_ref().is_none_or(|r| r.start == 0) {
        sources[index].digest();
    }
    let documents = match range {
        None => read_documents(index, text, &mut found),
        Some(range) if range.start == 0 => read_documents(index, &text[range], &mut found),
        Some(range) => {
            let piece = [super::split::HEADER, &text[range]].concat();
            read_documents(index, &piece, &mut found)
        }
    };
    Some((documents, found))
}

/// Whether a file of `len` bytes, of `total` read, is parsed in pieces of about `target`
/// bytes: only with several cores, when it is more than its share of their work (as when a
/// plan reads only the file a change touched), or when it is large. The YAML reader holds
/// all of a document's events at once, in a list grown by doubling: at 5,000 customers a
/// file (1.6 MB) the two parse threads held tens of MB of them while a full plan read the
/// live state beside them, which set its peak (median 320 -> 280 MiB at 300,000 logins
/// once such files were cut, in the same minutes, no slower).
fn worth_cutting(len: usize, total: usize, threads: usize, target: usize) -> bool {
    threads > 1 && (len * threads * 2 > total || len > 4 * target)
}

/// One file's parse from its pieces: a file parsed whole as it is; pieces joined into one
/// document when each read as one document of customers alone, without a diagnostic.
fn joined(mut pieces: Vec<Parsed>) -> Option<Parsed> {
    if pieces.len() == 1 {
        return pieces.pop();
    }
    let clean = pieces.iter().all(|(documents, found)| {
        found.is_empty()
            && documents.len() == 1
            && documents[0].0 == 0
            && documents[0].1.customers.is_some()
    });
    if !clean {
        return None;
    }
    let count = pieces
        .iter()
        .map(|(d, _)| d[0].1.customers.as_ref().map_or(0, Vec::len))
        .sum();
    let mut customers = Vec::with_capacity(count);
    let mut first = None;
    for (documents, _) in pieces {
        let (_, mut document) = documents.into_iter().next().expect("one document");
        customers.append(document.customers.as_mut().expect("customers"));
        first.get_or_insert(document);
    }
    let mut document = first.expect("two pieces or more");
    document.customers = Some(customers);
    Some((vec![(0, document)], Vec::new()))
}

/// Gives back the room vectors kept while growing. The reader sizes lists by pushing, so
/// a customer's two contacts hold room for four: 40% of a parsed account was spare room.
fn compact(document: &mut Document) {
    if let Some(customers) = &mut document.customers {
        customers.shrink_to_fit();
        for customer in customers {
            customer.contacts.shrink_to_fit();
        }
    }
}

/// Reads one in-memory manifest file, as if it were a file at `path`.
pub fn load_text(path: &str, text: &str) -> (ManifestSet, Vec<Diagnostic>) {
    let mut set = ManifestSet {
        root: root_of(Path::new(path)),
        ..ManifestSet::default()
    };
    let mut diagnostics = Vec::new();
    let documents = read_documents(0, text, &mut diagnostics);
    let sources = [Source::new(PathBuf::from(path), text.to_string())];
    for (doc, document) in documents {
        merge(&mut set, &sources, 0, doc, document, &mut diagnostics);
    }
    set.sources = sources.into();
    (set, diagnostics)
}

/// The folder of a manifest path: itself when it is a folder, else its parent.
pub fn root_of(path: &Path) -> PathBuf {
    if path.is_dir() {
        return path.to_path_buf();
    }
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl ManifestSet {
    /// A path of the set relative to its root (unchanged when it is outside the root).
    pub fn relative<'a>(&self, path: &'a Path) -> &'a Path {
        path.strip_prefix(&self.root).unwrap_or(path)
    }
}

/// Whether the file at `path` is a manifest by its name ([`manifest_name`]).
fn is_manifest(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| manifest_name(name.as_encoded_bytes()))
}

/// Lists manifest files under `path`, sorted. Hidden entries (`.git`, `.github`, `.archive`)
/// inside a folder are skipped on purpose, with a warning when they hold YAML files;
/// anything that cannot be read is an error, never silently skipped; a folder reached twice
/// through symbolic links is an error naming the loop.
/// Files taken, and entries seen and not taken.
type Found<'a> = (&'a mut Vec<PathBuf>, &'a mut Vec<PathBuf>);

fn collect_files(path: &Path, top: bool, found: Found<'_>, diagnostics: &mut Vec<Diagnostic>) {
    let mut seen = std::collections::HashSet::new();
    let (files, others) = found;
    walk(path, top, (&mut *files, others), diagnostics, &mut seen);
    if top && files.is_empty() && !diagnostics.iter().any(Diagnostic::is_error) {
        let mut others: Vec<String> = Vec::new();
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let p = entry.path();
                if p.is_dir() {
                    stack.push(p);
                } else if others.len() < 4 {
                    others.push(p.strip_prefix(path).unwrap_or(&p).display().to_string());
                }
            }
        }
        let message = if others.is_empty() {
            format!(
                "{} is an empty folder: there are no manifests to read",
                path.display()
            )
        } else {
            format!(
                "no manifest in {}: manifests end in .yaml or .yml, and it holds only other files ({}{})",
                path.display(),
                others.join(", "),
                if others.len() == 4 { ", …" } else { "" }
            )
        };
        diagnostics.push(
            Diagnostic::file_error(None, message)
                .with_hint("point -f at the folder with your manifests (or at one .yaml file)"),
        );
    }
}

fn walk(
    path: &Path,
    top: bool,
    (files, others): Found<'_>,
    diagnostics: &mut Vec<Diagnostic>,
    seen: &mut std::collections::HashSet<PathBuf>,
) {
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if top && error.kind() == std::io::ErrorKind::NotFound => {
            diagnostics.push(Diagnostic::file_error(
                None,
                format!("{} does not exist{}", path.display(), relative_note(path)),
            ));
            return;
        }
        Err(error) => {
            diagnostics.push(Diagnostic::file_error(
                None,
                format!("cannot read {}: {error}", path.display()),
            ));
            return;
        }
    };
    if metadata.is_file() {
        if top || is_manifest(path) {
            files.push(path.to_path_buf());
        } else {
            others.push(path.to_path_buf());
        }
        return;
    }
    if !metadata.is_dir() {
        // A FIFO, a socket or a device: never opened (a FIFO would block the read). Named
        // as a manifest, or given, it is an error; otherwise it is left aside like any
        // other file that is not a manifest.
        if top || is_manifest(path) {
            diagnostics.push(Diagnostic::file_error(
                None,
                format!(
                    "{} is not a regular file nor a folder (a FIFO, a socket or a device): a manifest must be a regular file",
                    path.display()
                ),
            ));
        } else {
            others.push(path.to_path_buf());
        }
        return;
    }
    let real = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if !seen.insert(real.clone()) {
        diagnostics.push(Diagnostic::file_error(
            None,
            format!(
                "{} leads back to {} (a symbolic-link loop or a folder linked twice): remove the link",
                path.display(),
                real.display()
            ),
        ));
        return;
    }
    let children = children(path, others, diagnostics);
    files.reserve(children.iter().filter(|(_, file)| *file).count());
    for (child, file) in children {
        if file {
            files.push(child);
        } else {
            walk(
                &child,
                false,
                (&mut *files, &mut *others),
                diagnostics,
                seen,
            );
        }
    }
}

/// A folder's entries, sorted, without hidden ones (warned about when they hold YAML) nor
/// regular files other than manifests, each with whether it is a regular file (a link or a
/// folder is looked at again). The entries left out go to `others`.
fn children(
    path: &Path,
    others: &mut Vec<PathBuf>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<(PathBuf, bool)> {
    let cannot = |error: std::io::Error| {
        Diagnostic::file_error(
            None,
            format!("cannot read folder {}: {error}", path.display()),
        )
    };
    // Names first, in one buffer, sorted (comparing names as bytes is the order of the
    // paths: the siblings share their folder), then paths made for folders, links and
    // manifest files only: for a folder of 100,000 one-customer files, listing it took a
    // third of a plan, and half of that was not the kernel's reading of the folder but a
    // name allocated for each entry, sorted where it lay, and taken apart again.
    use std::os::unix::ffi::OsStrExt as _;
    let mut names = Names::default();
    if let Err(error) = read_names(path, &mut names) {
        diagnostics.push(cannot(error));
    }
    let mut taken = Vec::with_capacity(names.entries.len());
    let mut order: Vec<usize> = Vec::with_capacity(names.entries.len());
    for (at, &(start, end, _)) in names.entries.iter().enumerate() {
        let name = &names.bytes[start..end];
        if name.starts_with(b".") {
            let hidden = path.join(std::ffi::OsStr::from_bytes(name));
            warn_if_skipped_yaml(&hidden, diagnostics);
            others.push(hidden);
        } else {
            order.push(at);
        }
    }
    names.sort(&mut order);
    let folder = Joiner::of(path);
    for at in order {
        let (_, _, file) = names.entries[at];
        let name = names.name(at);
        let joined = folder.join(name);
        if !file || manifest_name(name) {
            taken.push((joined, file));
        } else {
            others.push(joined);
        }
    }
    taken
}

/// A folder's entry names, one after another in `bytes`, each with its range there and
/// whether it is a regular file (not a link).
#[derive(Default)]
struct Names {
    bytes: Vec<u8>,
    entries: Vec<(usize, usize, bool)>,
}

impl Names {
    fn name(&self, at: usize) -> &[u8] {
        let (start, end, _) = self.entries[at];
        &self.bytes[start..end]
    }

    /// Sorts the entries `order` by name (bytes). Each is first compared by eight bytes of
    /// its name taken where the names begin to differ (past what all share), as a number:
    /// most comparisons then touch no name (sorting 100,000 names where they lay was a
    /// seventh of listing them).
    fn sort(&self, order: &mut [usize]) {
        let shared = order.split_first().map_or(0, |(&first, rest)| {
            let first = self.name(first);
            rest.iter().fold(first.len(), |shared, &at| {
                let name = self.name(at);
                shared.min(first.iter().zip(name).take_while(|(a, b)| a == b).count())
            })
        });
        let key = |at: usize| {
            let mut eight = [0u8; 8];
            let rest = self.name(at).get(shared..).unwrap_or_default();
            let n = rest.len().min(8);
            eight[..n].copy_from_slice(&rest[..n]);
            u64::from_be_bytes(eight)
        };
        let mut keyed: Vec<(u64, usize)> = order.iter().map(|&at| (key(at), at)).collect();
        keyed.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| self.name(a.1).cmp(self.name(b.1)))
        });
        for (slot, (_, at)) in order.iter_mut().zip(keyed) {
            *slot = at;
        }
    }

    fn push(&mut self, name: &[u8], file: bool) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(name);
        self.entries.push((start, self.bytes.len(), file));
    }
}

/// A folder's path, to which names are joined as `Path::join` joins them, without taking the
/// folder's path apart again for each (a name has no `/` and is not empty).
struct Joiner {
    /// The folder's path, with a separator after it unless it ends in one or is empty.
    base: std::ffi::OsString,
}

impl Joiner {
    fn of(path: &Path) -> Joiner {
        let mut base = path.as_os_str().to_os_string();
        if !base.is_empty() && !base.as_encoded_bytes().ends_with(b"/") {
            base.push("/");
        }
        Joiner { base }
    }

    fn join(&self, name: &[u8]) -> PathBuf {
        use std::os::unix::ffi::OsStrExt as _;
        let mut joined = std::ffi::OsString::with_capacity(self.base.len() + name.len());
        joined.push(&self.base);
        joined.push(std::ffi::OsStr::from_bytes(name));
        PathBuf::from(joined)
    }
}

/// Reads the names of the folder `path` into `names` (all but `.` and `..`), with no
/// allocation per entry: the kernel's records are read in place (`getdents64`, through
/// rustix). An entry whose type the file system does not give is looked at (`lstat`), as
/// the standard library does. An error stops the reading; the names read so far are kept.
#[cfg(target_os = "linux")]
fn read_names(path: &Path, names: &mut Names) -> std::io::Result<()> {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let folder = rustix::fs::open(path, flags, Mode::empty())?;
    let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut entries = RawDir::new(&folder, buffer.spare_capacity_mut());
    while let Some(entry) = entries.next() {
        let entry = entry?;
        let name = entry.file_name();
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        let file = match entry.file_type() {
            FileType::Unknown => rustix::fs::statat(&folder, name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|stat| FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile),
            kind => kind == FileType::RegularFile,
        };
        names.push(bytes, file);
    }
    Ok(())
}

/// [`read_names`] elsewhere: through the standard library.
#[cfg(not(target_os = "linux"))]
fn read_names(path: &Path, names: &mut Names) -> std::io::Result<()> {
    for entry in fs::read_dir(path)? {
        let entry = entry?;
        let file = entry.file_type().is_ok_and(|t| t.is_file());
        names.push(entry.file_name().as_encoded_bytes(), file);
    }
    Ok(())
}

/// Whether a file name is a manifest's: an extension (after the last `.`, which does not
/// begin the name: `Path::extension`'s rule) of `yaml` or `yml`, in any case.
fn manifest_name(name: &[u8]) -> bool {
    match name.iter().rposition(|&b| b == b'.') {
        None | Some(0) => false,
        Some(dot) => {
            let extension = &name[dot + 1..];
            extension.eq_ignore_ascii_case(b"yaml") || extension.eq_ignore_ascii_case(b"yml")
        }
    }
}

/// Warns about YAML under a hidden entry that is skipped on purpose (`.github` workflows
/// are expected and not named).
fn warn_if_skipped_yaml(path: &Path, diagnostics: &mut Vec<Diagnostic>) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if matches!(
        name.as_str(),
        ".git" | ".github" | ".gitlab" | ".circleci" | ".buildkite"
    ) {
        return;
    }
    let mut found = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(next) = stack.pop() {
        if found > 0 || stack.len() > 10_000 {
            break;
        }
        match fs::symlink_metadata(&next) {
            Ok(m) if m.is_dir() => {
                if let Ok(entries) = fs::read_dir(&next) {
                    stack.extend(entries.flatten().map(|e| e.path()));
                }
            }
            Ok(m) if m.is_file() && is_manifest(&next) => found += 1,
            _ => {}
        }
    }
    if found > 0 {
        diagnostics.push(Diagnostic::warning(
            None,
            format!(
                "{} is hidden (its name starts with `.`), so the YAML in it is not read: rename it if it holds manifests",
                path.display()
            ),
        ));
    }
}

/// Parses every document of one file; documents with errors are salvaged object by object.
fn read_documents(
    file: usize,
    text: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<(usize, Document)> {
    let mut documents = Vec::new();
    for (doc, deserializer) in serde_yaml::Deserializer::from_str(text).enumerate() {
        match Option::<Document>::deserialize(deserializer) {
            Ok(document) => documents.push((doc, document.unwrap_or_default())),
            Err(error) if duplicate_key(&error).is_some() => {
                diagnostics.push(duplicate_key_error(file, text, &error));
            }
            Err(error) if is_syntax_error(&error) => {
                diagnostics.push(syntax_error(file, &error));
                break;
            }
            Err(_) => {
                // Slow path, only for documents with errors: read each object on its own so
                // every bad object of the run is reported, not just the first.
                let reparsed = serde_yaml::Deserializer::from_str(text)
                    .nth(doc)
                    .map(Value::deserialize);
                match reparsed {
                    Some(Ok(value)) => {
                        documents.push((doc, salvage(file, doc, value, diagnostics)))
                    }
                    Some(Err(error)) if duplicate_key(&error).is_some() => {
                        diagnostics.push(duplicate_key_error(file, text, &error));
                    }
                    Some(Err(error)) => {
                        diagnostics.push(syntax_error(file, &error));
                        break;
                    }
                    None => break,
                }
            }
        }
    }
    // A list pushed to once holds room for four documents (Rust's least growth for items
    // under 1 KiB): for 100,000 one-customer files, 270 MiB of room until all were merged.
    documents.shrink_to_fit();
    documents
}

/// The key of a "duplicate entry" error, from the YAML reader or portico's own maps.
fn duplicate_key(error: &serde_yaml::Error) -> Option<String> {
    let message = error.to_string();
    let rest = message.split("duplicate entry with key \"").nth(1)?;
    Some(rest.split('"').next()?.to_string())
}

/// A key given twice in one mapping, naming both lines: the reader keeps only one of them,
/// so what a reviewer reads may not be what apply writes.
fn duplicate_key_error(file: usize, text: &str, error: &serde_yaml::Error) -> Diagnostic {
    let key = duplicate_key(error).unwrap_or_default();
    let near = error.location().map_or(1, |l| l.line());
    // Block style: the lines, from the mapping on, that start with `key:`.
    let lines: Vec<(usize, usize)> = text
        .lines()
        .enumerate()
        .skip(near.saturating_sub(2))
        .filter_map(|(i, line)| {
            let trimmed = line.trim_start();
            let bare = trimmed
                .strip_prefix('"')
                .and_then(|t| t.strip_prefix(key.as_str()))
                .and_then(|t| t.strip_prefix('"'));
            let rest = bare.or_else(|| trimmed.strip_prefix(key.as_str()))?;
            rest.trim_start()
                .starts_with(':')
                .then_some((i + 1, line.len() - trimmed.len() + 1))
        })
        .take(2)
        .collect();
    let (message, position) = match lines.as_slice() {
        [first, second] => (
            format!(
                "`{key}` is given twice in this mapping (first at line {}); only one value can count, so none is taken",
                first.0
            ),
            Some(Position {
                line: second.0,
                column: second.1,
            }),
        ),
        _ => (
            format!(
                "`{key}` is given twice in this mapping; only one value can count, so none is taken"
            ),
            error.location().map(|l| Position {
                line: l.line(),
                column: l.column(),
            }),
        ),
    };
    let mut diagnostic =
        Diagnostic::file_error(Some(file), message).with_hint("remove one of them");
    diagnostic.position = position;
    diagnostic
}

/// Whether the parser itself failed (as opposed to a well-formed document of the wrong shape).
fn is_syntax_error(error: &serde_yaml::Error) -> bool {
    let message = error.to_string();
    !(message.contains("unknown field")
        || message.contains("unknown variant")
        || message.contains("invalid type")
        || message.contains("invalid value")
        || message.contains("missing field")
        || message.contains("duplicate field")
        || message.contains("invalid length"))
}

fn syntax_error(file: usize, error: &serde_yaml::Error) -> Diagnostic {
    let message = strip_location(&error.to_string());
    let mut diagnostic = Diagnostic::file_error(Some(file), format!("YAML syntax: {message}"));
    diagnostic.position = error.location().map(|loc| Position {
        line: loc.line(),
        column: loc.column(),
    });
    diagnostic
}

fn strip_location(message: &str) -> String {
    let cut = message.find(" at line ").unwrap_or(message.len());
    message[..cut].to_string()
}

/// Reads each section and each object of a document separately, reporting every one that
/// does not fit the schema and keeping the ones that do.
fn salvage(file: usize, doc: usize, value: Value, diagnostics: &mut Vec<Diagnostic>) -> Document {
    let root = Site {
        file,
        doc,
        path: YamlPath::default(),
        at_key: false,
    };
    let mut document = Document::default();
    let Value::Mapping(mapping) = value else {
        diagnostics.push(Diagnostic::error(
            root,
            "a manifest document must be a mapping of sections",
        ));
        return document;
    };
    for (key, value) in mapping {
        let Some(name) = key.as_str() else {
            diagnostics.push(Diagnostic::error(
                root.clone(),
                "section names must be strings",
            ));
            continue;
        };
        let site = root.key(name.to_string());
        match name {
            "features" => document.features = section(value, &site, diagnostics),
            "websites" => document.websites = items(value, &site, diagnostics),
            "login_policy" => document.login_policy = section(value, &site, diagnostics),
            "notifications" => document.notifications = section(value, &site, diagnostics),
            "roles" => document.roles = items(value, &site, diagnostics),
            "customers" => document.customers = items(value, &site, diagnostics),
            "policies" => document.policies = items(value, &site, diagnostics),
            "oidc_clients" => document.oidc_clients = items(value, &site, diagnostics),
            other => diagnostics.push(
                Diagnostic::error(site.clone().at_key(), format!("unknown section `{other}`"))
                    .suggest(other, SECTIONS.iter().copied()),
            ),
        }
    }
    document
}

const SECTIONS: &[&str] = &[
    "features",
    "websites",
    "login_policy",
    "notifications",
    "roles",
    "customers",
    "policies",
    "oidc_clients",
];

fn section<T: for<'de> Deserialize<'de>>(
    value: Value,
    site: &Site,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<T> {
    match serde_path_to_error::deserialize(value.clone()) {
        Ok(parsed) => Some(parsed),
        Err(error) => {
            diagnostics.push(schema_error(site, &value, &error));
            None
        }
    }
}

fn items<T: for<'de> Deserialize<'de>>(
    value: Value,
    site: &Site,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Vec<T>> {
    let Value::Sequence(values) = value else {
        return section(value, site, diagnostics);
    };
    let mut parsed = Vec::with_capacity(values.len());
    for (index, value) in values.into_iter().enumerate() {
        let item_site = Site {
            path: site.path.index(index),
            ..*site
        };
        parsed.extend(section(value, &item_site, diagnostics));
    }
    Some(parsed)
}

/// Turns a serde error into a located diagnostic with a "did you mean" hint. `value` is the
/// object that failed, `site` where it stands.
fn schema_error(
    site: &Site,
    value: &Value,
    error: &serde_path_to_error::Error<serde_yaml::Error>,
) -> Diagnostic {
    let message =
        strip_location(&error.inner().to_string()).replace("unknown variant", "unknown value");
    let relative = YamlPath::default().join_serde(error.path());
    let unknown = ["unknown field `", "unknown value `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split_once('`'));
    let mut path = site.path.clone();
    path.0.extend(relative.0.iter().cloned());
    let mut at_key = false;
    if let Some((given, _)) = unknown {
        if matches!(relative.0.last(), Some(Segment::Key(k)) if k == given) {
            at_key = true;
        } else if let Some((key, is_key)) = entry_naming(value, &relative, given) {
            // Enum keys and values of maps fail before the path records the key.
            path.0.push(Segment::Key(key.into()));
            at_key = is_key;
        }
    }
    let diagnostic = Diagnostic::error(
        Site {
            path,
            at_key,
            ..site.clone()
        },
        message.clone(),
    );
    match unknown {
        Some((given, rest)) => diagnostic.suggest(given, expected_names(rest)),
        None => diagnostic,
    }
}

/// In the mapping at `path`, the entry whose key (`true`) or string value (`false`) is
/// `given`.
fn entry_naming(value: &Value, path: &YamlPath, given: &str) -> Option<(String, bool)> {
    let mut node = value;
    for segment in &path.0 {
        node = match segment {
            Segment::Key(key) => node.get(key.as_ref())?,
            Segment::Index(index) => node.get(*index)?,
        };
    }
    let mapping = node.as_mapping()?;
    if mapping.contains_key(given) {
        return Some((given.to_string(), true));
    }
    mapping
        .iter()
        .find(|(_, v)| v.as_str() == Some(given))
        .and_then(|(k, _)| k.as_str().map(|k| (k.to_string(), false)))
}

/// The names listed after "expected one of" in a serde message.
fn expected_names(rest: &str) -> Vec<&str> {
    rest.split('`').skip(1).step_by(2).collect()
}

fn merge(
    set: &mut ManifestSet,
    sources: &[Source],
    file: usize,
    doc: usize,
    document: Document,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let site = |path: YamlPath| Site {
        file,
        doc,
        path,
        at_key: false,
    };
    let root = YamlPath::default();
    if set.declared.len() <= file {
        set.declared.resize(file + 1, FileSections::default());
    }
    let declared = &mut set.declared[file];
    declared.customers |= document.customers.is_some();
    declared.other |= document.features.is_some()
        || document.websites.is_some()
        || document.login_policy.is_some()
        || document.notifications.is_some()
        || document.roles.is_some()
        || document.policies.is_some()
        || document.oidc_clients.is_some();
    if let Some(features) = document.features {
        let sites = features.into_iter().map(|(feature, on)| {
            (
                feature,
                on,
                site(root.key("features").key(feature.key())).at_key(),
            )
        });
        merge_features(set, sources, sites, diagnostics);
    }
    merge_single(
        &mut set.login_policy,
        document.login_policy,
        || site(root.key("login_policy")),
        "login_policy",
        sources,
        diagnostics,
    );
    merge_single(
        &mut set.notifications,
        document.notifications,
        || site(root.key("notifications")),
        "notifications",
        sources,
        diagnostics,
    );
    // Each section's site is made only when the document has it: for 100,000 one-customer
    // files, six paths made and dropped per file were a tenth of the merge.
    append(&mut set.websites, document.websites, || {
        site(root.key("websites"))
    });
    append(&mut set.roles, document.roles, || site(root.key("roles")));
    append(&mut set.customers, document.customers, || {
        site(root.key("customers"))
    });
    append(&mut set.policies, document.policies, || {
        site(root.key("policies"))
    });
    append(&mut set.oidc_clients, document.oidc_clients, || {
        site(root.key("oidc_clients"))
    });
}

/// Adds features to the set; one declared again is an error naming both places.
fn merge_features(
    set: &mut ManifestSet,
    sources: &[Source],
    features: impl Iterator<Item = (crate::catalog::Feature, bool, Site)>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let merged = set.features.get_or_insert_with(BTreeMap::new);
    for (feature, on, here) in features {
        if let Some(first) = merged.get(&feature) {
            diagnostics.push(duplicate(
                &format!("feature `{feature}`"),
                sources,
                &first.site,
                here,
            ));
        } else {
            let declared = Declared {
                value: on,
                site: here,
            };
            merged.insert(feature, declared);
        }
    }
}

fn merge_single<T>(
    slot: &mut Option<Declared<T>>,
    value: Option<T>,
    site: impl FnOnce() -> Site,
    name: &str,
    sources: &[Source],
    diagnostics: &mut Vec<Diagnostic>,
) {
    let Some(value) = value else { return };
    let site = site();
    match slot {
        Some(first) => {
            let first = first.site.clone().at_key();
            diagnostics.push(duplicate(
                &format!("section `{name}`"),
                sources,
                &first,
                site.at_key(),
            ))
        }
        None => *slot = Some(Declared { value, site }),
    }
}

fn append<T>(
    slot: &mut Option<Vec<Declared<T>>>,
    values: Option<Vec<T>>,
    site: impl FnOnce() -> Site,
) {
    let Some(values) = values else { return };
    let merged = slot.get_or_insert_with(Vec::new);
    let site = site();
    for (index, value) in values.into_iter().enumerate() {
        let site = site.index(index);
        merged.push(Declared { value, site });
    }
}

/// An error for an object declared twice, naming both places.
pub fn duplicate(what: &str, sources: &[Source], first: &Site, second: Site) -> Diagnostic {
    let first_at = describe(sources, first);
    Diagnostic::error(
        second,
        format!("{what} is defined twice; first defined at {first_at}"),
    )
}

/// `file:line:col` of a site, for mentioning a second place in a message.
pub fn describe(sources: &[Source], site: &Site) -> String {
    let Some(source) = sources.get(site.file) else {
        return site.path.to_string();
    };
    match super::path::locate(source.text(), site.doc, &site.path, site.at_key) {
        Some(at) => format!("{}:{}:{}", source.path.display(), at.line, at.column),
        None => format!("{} ({})", source.path.display(), site.path),
    }
}

/// For a relative path, which absolute one it means: `" (relative to the current folder:
/// /abs/path)"`.
pub fn relative_note(path: &Path) -> String {
    if path.is_absolute() {
        return String::new();
    }
    match std::env::current_dir() {
        Ok(cwd) => format!(
            " (a relative path; from the current folder that is {})",
            cwd.join(path).display()
        ),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manifest is named `*.yaml` or `*.yml` in any case, by the extension
    /// `Path::extension` sees (a leading dot is not one).
    #[test]
    fn a_manifest_is_known_by_its_extension() {
        let manifests = [
            "a.yaml", "a.yml", "A.YAML", "a.Yml", "a.b.yaml", "a..yaml", "..yaml",
        ];
        let others = [
            "a.yaml.bak",
            "yaml",
            "a.",
            "a.yamll",
            ".yaml",
            "..",
            "a.ym",
            "",
        ];
        for name in manifests.iter().chain(&["é.yaml", "-.yml", "d/a.yaml"]) {
            assert!(is_manifest(Path::new(name)), "{name}");
            let extension = Path::new(name).extension().and_then(|e| e.to_str());
            assert!(
                extension.is_some_and(
                    |e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml")
                )
            );
        }
        for name in others.iter().chain(&["a.yaml/..", "d.yaml/b"]) {
            assert!(!is_manifest(Path::new(name)), "{name}");
        }
    }

    /// A FIFO named as a manifest is an error naming it (never "cannot read folder"), and
    /// is never opened; another FIFO is left aside like any file that is not a manifest.
    #[test]
    fn a_fifo_is_named_when_it_poses_as_a_manifest_and_left_aside_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "customers: []\n").unwrap();
        for name in ["pipe.yaml", "notes.pipe"] {
            let made = std::process::Command::new("mkfifo")
                .arg(dir.path().join(name))
                .status()
                .unwrap();
            assert!(made.success());
        }
        let (files, others, problems) = list_seeing_others(dir.path());
        assert_eq!(files, [dir.path().join("a.yaml")]);
        assert!(others.contains(&dir.path().join("notes.pipe")));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0]
                .message
                .contains("pipe.yaml is not a regular file nor a folder")
        );
        let (_, _, given) = list_seeing_others(&dir.path().join("notes.pipe"));
        assert!(given[0].message.contains("not a regular file"), "{given:?}");
    }

    /// A folder's listing is every entry once: regular files and the others taken, sorted by
    /// bytes, hidden ones and other files set aside, a link not taken for a regular file.
    #[test]
    fn a_folder_s_entries_are_read_whole_and_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut expected = Vec::new();
        for i in (0..3_000).rev() {
            let name = format!("c{i:05}.yaml");
            std::fs::write(root.join(&name), "customers: []\n").unwrap();
            expected.push((root.join(name), true));
        }
        std::fs::create_dir(root.join("sub")).unwrap();
        std::os::unix::fs::symlink(root.join("c00001.yaml"), root.join("link.yaml")).unwrap();
        std::fs::write(root.join("notes.txt"), "x").unwrap();
        std::fs::write(root.join(".hidden.yaml"), "x").unwrap();
        expected.push((root.join("sub"), false));
        expected.push((root.join("link.yaml"), false));
        expected.sort();
        let (mut others, mut diagnostics) = (Vec::new(), Vec::new());
        let taken = children(root, &mut others, &mut diagnostics);
        assert_eq!(taken, expected);
        others.sort();
        assert_eq!(others, [root.join(".hidden.yaml"), root.join("notes.txt")]);
        // Names sharing a long start, names that start others, bytes above ASCII: the
        // order of their bytes.
        let shared = root.join("sub");
        let mut names = vec![
            "customer-record-",
            "customer-record-a",
            "customer-record-ab.yaml",
            "customer-record-aa.yaml",
            "customer-record-abcdefghij.yaml",
            "customer-record-abcdefghi.yaml",
            "customer-record-€.yaml",
            "customer-record-A.yml",
            "customer-record-abcdefgh",
            "customer-record-abcdefgh.yaml",
        ];
        for name in &names {
            std::fs::write(shared.join(name), "x").unwrap();
        }
        names.sort_unstable();
        let taken = children(&shared, &mut others, &mut diagnostics);
        let taken: Vec<String> = taken
            .iter()
            .map(|(p, _)| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        let manifests: Vec<&str> = names
            .into_iter()
            .filter(|n| is_manifest(Path::new(n)))
            .collect();
        assert_eq!(taken, manifests);
        let missing = children(&root.join("gone"), &mut others, &mut diagnostics);
        assert!(missing.is_empty());
        assert!(
            diagnostics
                .iter()
                .any(|d| d.message.contains("cannot read folder"))
        );
    }

    /// What a parse gave, comparable: the documents as JSON and the diagnostics.
    fn seen(parsed: &[Parsed]) -> String {
        parsed
            .iter()
            .map(|(documents, found)| {
                let documents: Vec<_> = documents
                    .iter()
                    .map(|(doc, d)| (doc, serde_json::to_value(d).unwrap()))
                    .collect();
                format!("{documents:?} {found:?}")
            })
            .collect()
    }

    type Item = Box<dyn Fn(usize) -> String>;

    #[test]
    fn files_parsed_whole_are_read_by_their_parse_and_keep_their_digest() {
        let dir = tempfile::tempdir().unwrap();
        // Enough files for every core: none is a large share of what is read.
        let (threads, _) = parse_shape();
        let texts: Vec<String> = (0..4 * threads + 2)
            .map(|i| format!("customers:\n  - {{ id: C{i:03}, name: C }}\n"))
            .collect();
        let mut files = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let path = dir.path().join(format!("c{i:03}.yaml"));
            std::fs::write(&path, text).unwrap();
            files.push(path);
        }
        let bad = dir.path().join("z.yaml");
        std::fs::write(&bad, [0xff, 0xfe]).unwrap();
        files.push(bad);
        let mut set = ManifestSet::default();
        let slots = read_files(&mut set, files, &[], u64::MAX);
        // Small files among many are parsed whole: none is read before its parse.
        assert!(slots.iter().all(Result::is_ok));
        assert!(set.sources.iter().all(|s| !s.is_held()));
        let all: Vec<usize> = (0..set.sources.len()).collect();
        let parsed = parse_all(&set.sources, &all, u64::MAX);
        let count = |documents: &Vec<(usize, Document)>| -> usize {
            documents
                .iter()
                .map(|(_, d)| d.customers.as_ref().map_or(0, Vec::len))
                .sum()
        };
        let counts: Vec<usize> = parsed
            .iter()
            .map(|(documents, _)| count(documents))
            .collect();
        let mut expected = vec![1; texts.len()];
        expected.push(0);
        assert_eq!(counts, expected);
        let (_, found) = parsed.last().unwrap();
        assert!(found[0].message.contains("not valid UTF-8"), "{found:?}");
        for (i, text) in texts.iter().enumerate() {
            let digest = crate::gitindex::blob_id(text.as_bytes());
            assert_eq!(set.sources[i].digest(), &digest);
            assert_eq!(set.sources[i].digested_size(), text.len() as u64);
            // Let go after its parse; read again (and checked) when a diagnostic quotes it.
            assert!(!set.sources[i].is_held());
            assert_eq!(set.sources[i].text(), text);
        }
        assert_eq!(set.sources[texts.len()].text(), "");
    }

    /// The text of the `i`-th file of [`many_files_merged_as_parsed_are_the_set_of_one_file_after_another`].
    fn mixed_file(i: usize) -> String {
        match i {
            3 => "customers: [ { id: C3, name: broken\n".to_string(),
            500 => "customers:\n  - { id: C500, name: N, colour: red }\n".into(),
            // The same id as file 10's: a duplicate found by validate, not by the merge.
            700 => "customers:\n  - { id: C10, name: Again }\n".into(),
            // A section that is one a set: declared twice, the second is an error.
            800 | 801 => "login_policy: { session_timeout_minutes: 30 }\n".into(),
            i if i % 97 == 0 => format!(
                "customers:\n  - {{ id: C{i}, name: N }}\n---\nroles: [{{ id: r{i}, name: R{i} }}]\n"
            ),
            i => format!("customers:\n  - {{ id: C{i}, name: N }}\n  - {{ id: D{i}, name: M }}\n"),
        }
    }

    /// Customers, roles (id, document, file), problems (file, site, message) and
    /// `login_policy` sections of the files `c00000.yaml`… in `dir`, each loaded alone, its
    /// indexes moved to its place.
    fn one_file_after_another(dir: &Path, count: usize) -> Alone {
        let (mut customers, mut roles, mut problems) = (Vec::new(), Vec::new(), Vec::new());
        let mut policies = 0;
        for i in 0..count {
            let path = dir.join(format!("c{i:05}.yaml"));
            let (alone, mut diagnostics) = load(&path, Reading::default());
            for d in &mut diagnostics {
                d.file = d.file.map(|_| i);
                if let Some(site) = &mut d.site {
                    site.file = i;
                }
            }
            problems.extend(diagnostics.into_iter().map(|d| (d.file, d.site, d.message)));
            customers.extend(
                alone
                    .customers
                    .into_iter()
                    .flatten()
                    .map(|c| (c.value.id, c.site.doc, i)),
            );
            roles.extend(
                alone
                    .roles
                    .into_iter()
                    .flatten()
                    .map(|r| (r.value.id, r.site.doc, i)),
            );
            policies += usize::from(alone.login_policy.is_some());
        }
        Alone {
            customers,
            roles,
            problems,
            policies,
        }
    }

    /// What [`one_file_after_another`] finds.
    struct Alone {
        customers: Vec<(compact_str::CompactString, usize, usize)>,
        roles: Vec<(String, usize, usize)>,
        problems: Vec<(Option<usize>, Option<Site>, String)>,
        policies: usize,
    }

    /// Many files are merged as they are parsed: the set and its diagnostics are those of
    /// reading one file after another (each file loaded alone, in order, with its sections
    /// and problems at the same places), duplicates across files named in file order.
    #[test]
    fn many_files_merged_as_parsed_are_the_set_of_one_file_after_another() {
        let dir = tempfile::tempdir().unwrap();
        let count = MANY_FILES + 40;
        for i in 0..count {
            std::fs::write(dir.path().join(format!("c{i:05}.yaml")), mixed_file(i)).unwrap();
        }
        std::fs::write(dir.path().join("c00900.yaml"), [0xff, 0xfe]).unwrap();
        let (set, found) = load(dir.path(), Reading::default());
        let Alone {
            customers,
            roles,
            problems,
            policies,
        } = one_file_after_another(dir.path(), count);
        let ids = |set: &ManifestSet| -> Vec<_> {
            set.customers
                .iter()
                .flatten()
                .map(|c| (c.value.id.clone(), c.site.doc, c.site.file))
                .collect()
        };
        assert_eq!(ids(&set), customers);
        let role_ids: Vec<_> = set
            .roles
            .iter()
            .flatten()
            .map(|r| (r.value.id.clone(), r.site.doc, r.site.file))
            .collect();
        assert_eq!(role_ids, roles);
        assert_eq!(policies, 2);
        assert_eq!(set.login_policy.as_ref().map(|p| p.site.file), Some(800));
        // Each file's own problems, in file order; then the second policy, found by the merge.
        let mut got: Vec<_> = found
            .into_iter()
            .map(|d| (d.file, d.site, d.message))
            .collect();
        let twice = got
            .iter()
            .position(|(_, _, m)| m.contains("section `login_policy` is defined twice"))
            .expect("the second policy is an error");
        assert_eq!(got.remove(twice).1.map(|s| s.file), Some(801));
        assert_eq!(got, problems);
        let files: Vec<usize> = got
            .iter()
            .map(|(file, site, _)| file.or(site.as_ref().map(|s| s.file)).unwrap())
            .collect();
        assert_eq!(files, [3, 500, 900]);
        assert_eq!(set.sources.len(), count);
    }

    /// Many files are read without asking their sizes first: each is read by its parse,
    /// which finds one too large (reported in its place, as a size asked first would), one
    /// not UTF-8, and one larger than a few pieces, held and then parsed in pieces into the
    /// same customers as when it is parsed whole; every other file parsed as itself.
    #[test]
    fn many_files_are_read_by_their_parse_without_asking_their_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let customers = |from: usize, count: usize| -> String {
            let items: String = (from..from + count)
                .map(|i| format!("  - id: C{i:05}\n    name: Customer {i}\n"))
                .collect();
            format!("customers:\n{items}")
        };
        let mut texts: Vec<Vec<u8>> = (0..MANY_FILES + 3)
            .map(|i| customers(i, 1).into_bytes())
            .collect();
        let (big, huge, bad) = (7, 500, MANY_FILES + 1);
        texts[big] = customers(90_000, 400).into_bytes();
        texts[huge] = customers(80_000, 2_000).into_bytes();
        texts[bad] = vec![0xff, 0xfe];
        let (target, limit) = (1_024, 40_000);
        assert!(texts[big].len() > 4 * target && texts[big].len() as u64 <= limit);
        assert!(texts[huge].len() as u64 > limit);
        let files: Vec<PathBuf> = texts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let path = dir.path().join(format!("c{i:05}.yaml"));
                std::fs::write(&path, text).unwrap();
                path
            })
            .collect();
        let mut set = ManifestSet::default();
        let slots = read_files(&mut set, files.clone(), &[], limit);
        assert!(slots.iter().all(Result::is_ok));
        assert!(set.sources.iter().all(|s| !s.is_held() && s.size() == 0));
        let all: Vec<usize> = (0..set.sources.len()).collect();
        let parsed = parse_in_pieces(&set.sources, &all, (target, 2), limit);
        assert_eq!(parsed.len(), files.len());
        for (i, (documents, found)) in parsed.iter().enumerate() {
            let problems: Vec<&str> = found.iter().map(|d| d.message.as_str()).collect();
            if i == huge {
                let said = too_large(&files[i], texts[i].len() as u64, limit).unwrap();
                assert_eq!(problems, [said.as_str()]);
                assert!(documents.is_empty());
                continue;
            }
            if i == bad {
                assert_eq!(problems, ["file is not valid UTF-8"]);
                continue;
            }
            assert!(problems.is_empty(), "{i}: {problems:?}");
            let mut whole_found = Vec::new();
            let text = std::str::from_utf8(&texts[i]).unwrap();
            let whole = read_documents(i, text, &mut whole_found);
            let ids = |documents: &[(usize, Document)]| -> Vec<String> {
                documents
                    .iter()
                    .flat_map(|(_, d)| d.customers.iter().flatten())
                    .map(|c| c.id.to_string())
                    .collect()
            };
            assert_eq!(ids(documents), ids(&whole), "{i}");
            assert_eq!(
                set.sources[i].digest(),
                &crate::gitindex::blob_id(&texts[i])
            );
        }
        // The large file was held for its pieces; the others were let go once parsed.
        assert!(set.sources[big].is_held());
        assert!(!set.sources[0].is_held() && !set.sources[big + 1].is_held());
        assert_eq!(set.sources[huge].text(), "");
    }

    /// Lists of customers whose layout a cut could misread, by what each tries.
    fn layouts() -> Vec<(&'static str, Item)> {
        let plain = |i: usize| {
            format!(
                "- id: C{i}\n  name: Customer {i}\n  contacts:\n  - {{ email: p{i}@x.example, name: P }}\n"
            )
        };
        // A plain list with one odd item at `at`.
        let one = |at: usize, odd: &'static str| -> Item {
            Box::new(move |i| {
                if i == at {
                    odd.to_string()
                } else {
                    format!("- id: C{i}\n  name: N\n")
                }
            })
        };
        vec![
            ("plain", Box::new(plain)),
            (
                "comments and CRLF",
                Box::new(move |i| format!("# c{i}\r\n{}\r\n", plain(i).replace('\n', "\r\n"))),
            ),
            (
                "block scalar",
                Box::new(|i| {
                    format!("- id: C{i}\n  name: |\n    line\n    - not an item\n\n    more\n")
                }),
            ),
            (
                "quoted over lines",
                one(30, "- id: Q\n  name: \"open\n- id: inside\"\n"),
            ),
            (
                "alias to another piece",
                Box::new(|i| match i {
                    0 => "- id: A\n  name: &n Shared\n".into(),
                    50 => "- id: B\n  name: *n\n".into(),
                    _ => format!("- id: C{i}\n  name: N\n"),
                }),
            ),
            ("flow over lines", one(40, "- { id: F,\n  name: G }\n")),
            ("unknown key", one(60, "- id: U\n  nmae: typo\n")),
            ("duplicate key", one(70, "- id: D\n  id: E\n")),
            (
                "indented items",
                Box::new(|i| format!("  - id: C{i}\n    name: N\n")),
            ),
            ("empty item", one(20, "-\n  id: E\n")),
        ]
    }

    #[test]
    fn large_files_and_large_shares_are_cut_on_several_cores() {
        let kb = 1024;
        // One file of many small ones: whole.
        assert!(!worth_cutting(300 * kb, 33_000 * kb, 2, 256 * kb));
        // One large file among many: cut (its pieces' events are held, not the file's).
        assert!(worth_cutting(1_600 * kb, 33_000 * kb, 2, 256 * kb));
        // The only file read, even a small one: cut, to keep both cores busy.
        assert!(worth_cutting(600 * kb, 600 * kb, 2, 256 * kb));
        // One core: never.
        assert!(!worth_cutting(1_600 * kb, 1_600 * kb, 1, 256 * kb));
        // Pieces turned off (`PORTICO_PARSE_PIECE=0`): only the share rule, and `split`
        // refuses a target of 0.
        assert!(super::super::split::pieces("customers:\n- id: A\n", 0).is_none());
    }

    #[test]
    fn a_file_parsed_in_pieces_reads_as_the_whole_file() {
        for (what, item) in layouts() {
            let items: String = (0..100).map(item).collect();
            let text = format!("# customers\ncustomers:\n{items}");
            let sources = vec![Source::new(PathBuf::from("c.yaml"), text.clone())];
            let whole = seen(&parse_in_pieces(&sources, &[0], (0, 2), u64::MAX));
            for target in [64, 300, 1000] {
                assert!(
                    super::super::split::pieces(&text, target).is_some()
                        || what == "block scalar" && target == 1000,
                    "{what} is cut"
                );
                let pieces = seen(&parse_in_pieces(&sources, &[0], (target, 2), u64::MAX));
                assert_eq!(pieces, whole, "{what}, pieces of {target} bytes");
            }
        }
    }
}
