//! The plan's index (issue #26): what the last apply from manifest files recorded, so that
//! a later plan whose files differ only in customer files reads and checks only those files
//! and their customers' rows, with the same result as a full plan (see
//! docs/performance.md, "Incremental plans").

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// Which write of which store the live state is: the store's random id and its count of
/// writes to managed columns (`managed_changes`, raised by triggers on every such write).
/// `None` before the database has its tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveVersion(pub Option<(String, i64)>);

impl LiveVersion {
    /// The plan's `live_fingerprint`: equal whenever nothing a plan reads was written. An
    /// account nothing was ever written to (no database yet, or `n = 0`) has one fingerprint,
    /// whatever store it is: a plan computed before the database existed applies to it.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest as _;
        match &self.0 {
            Some((store, n)) if *n > 0 => {
                let text = format!("portico-live-v2\n{store}\n{n}");
                super::hex(&sha2::Sha256::digest(text.as_bytes()))
            }
            _ => super::hex(&sha2::Sha256::digest(b"portico-live-v2\nempty")),
        }
    }

    /// The write count, when the store has one.
    pub fn changes(&self) -> Option<i64> {
        self.0.as_ref().map(|(_, n)| *n)
    }
}

/// The index an apply records: the manifest files it was computed from, and what a later
/// plan must check again to know that nothing outside those files moved.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanIndex {
    /// `--max-file-size` in bytes and `--policy-warn-only`, as the apply read the files.
    pub reading: (u64, bool),
    /// The manifest files' entries in memory, sorted by path: every file of an index made
    /// from a full read; of an index read back, only those of the pages opened
    /// ([`PlanIndex::open`]). Stored in pages beside the index (see [`Pages`]), not in its
    /// bytes.
    #[serde(skip)]
    pub files: Vec<IndexedFile>,
    /// The pages the file list is stored in, as recorded. Required, under a name of its own
    /// since each page is listed with what a plan needs to know it unchanged without reading
    /// it: an index of an older portico does not read, and that plan is full.
    #[serde(rename = "summed_pages")]
    pub pages: Pages,
    /// Files the manifests reference whose text is part of the desired state (message
    /// templates), with their digests.
    pub templates: Vec<(String, String)>,
    /// Logins in the database after the apply.
    pub logins: u64,
    /// Sections the manifests manage, in the order of `validate::Sections::as_list`.
    pub managed: Vec<bool>,
    /// The rows of its files to record with it (not part of its stored bytes).
    #[serde(skip)]
    pub rows: FileWrites,
    /// Of an index read back, where each page stands: not read, read, or opened (a page
    /// whose files a plan finds as recorded is not even read from the database).
    #[serde(skip)]
    pub unread: Unread,
    /// The pages of the index an incremental apply records: those recorded before kept as
    /// they are, and the others; `None`: every page is made from `files` and written (not
    /// part of its stored bytes).
    #[serde(skip)]
    pub reuse: Option<Reuse>,
}

/// A page of the file list as the index lists it: the first path (its key in
/// `plan_index_pages`), the CRC-32 of its stored bytes (a page not written with the index
/// does not read, and the plan is full), and what a plan needs of a page whose files did not
/// change: how many files, the digest of their paths, blob ids and sizes
/// ([`content_of`]), whether one has a `customers:` section, and the password sources
/// their logins name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageInfo {
    pub first: String,
    pub sum: u32,
    pub files: u32,
    pub content: String,
    pub customers: bool,
    pub secrets: Vec<SecretCheck>,
}

impl PageInfo {
    /// The listing of a page of `entries`, stored as `bytes`.
    fn of(entries: &[IndexedFile], bytes: &[u8]) -> PageInfo {
        let mut secrets: Vec<SecretCheck> = entries
            .iter()
            .flat_map(|e| e.secrets.iter().cloned())
            .collect();
        secrets.sort();
        secrets.dedup();
        PageInfo {
            first: entries
                .first()
                .map(|e| e.path.to_string())
                .unwrap_or_default(),
            sum: crc32fast::hash(bytes),
            files: u32::try_from(entries.len()).unwrap_or(u32::MAX),
            content: content_of(entries.iter().map(|e| (e.path.as_str(), &e.digest, e.size))),
            customers: entries.iter().any(|e| e.customers),
            secrets,
        }
    }
}

/// The digest of a page's files: each one's path, blob id and size, in order (SHA-256; a
/// path holds no NUL, which ends it). A plan computes it from the files as listed and
/// hashed: equal, the page holds the files it recorded, each with the bytes it recorded.
pub fn content_of<'a>(files: impl IntoIterator<Item = (&'a str, &'a FileId, u64)>) -> String {
    use std::io::Write as _;
    super::HashWriter::digest(|out| {
        for (path, id, size) in files {
            out.write_all(path.as_bytes())?;
            out.write_all(&[0])?;
            out.write_all(&id.0)?;
            out.write_all(&size.to_le_bytes())?;
        }
        Ok(())
    })
}

/// The file list's pages as recorded (`plan_index_pages`), in path order. The list of
/// 100,000 one-customer files is 3 MB deflated; kept in the index's own bytes, every apply
/// serialised and deflated all of it again (0.05 s, a third of a 10-login apply's own time)
/// and wrote it whole, and every plan inflated and decoded it (a sixth of a 10-login plan's
/// processor time). In pages, an apply writes only the pages whose files changed, and a
/// plan opens only those. Not part of the index's equality (how it is stored, not what it
/// says).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pages(pub Vec<PageInfo>);

impl PartialEq for Pages {
    fn eq(&self, _: &Pages) -> bool {
        true
    }
}

impl Eq for Pages {}

impl Pages {
    /// The page whose files' paths range holds `name`: the last one whose first path is not
    /// after it (the first page for a name before them all).
    pub fn of(&self, name: &str) -> usize {
        self.0
            .partition_point(|page| page.first.as_str() <= name)
            .saturating_sub(1)
    }
}

/// Where each page of an index read back stands (see [`PlanIndex::unread`]). Not part of
/// the index's equality.
#[derive(Clone, Default)]
pub struct Unread(pub Vec<Stored>);

/// A page of an index read back: not read from the database yet, read (its stored bytes,
/// checked against its listing's CRC-32), or opened (its entries are in the index's
/// `files`).
#[derive(Clone, Default)]
pub enum Stored {
    #[default]
    NotRead,
    Read(Vec<u8>),
    Opened,
}

impl std::fmt::Debug for Unread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let opened = self
            .0
            .iter()
            .filter(|p| matches!(p, Stored::Opened))
            .count();
        write!(f, "Unread({opened} of {} pages opened)", self.0.len())
    }
}

impl PartialEq for Unread {
    fn eq(&self, _: &Unread) -> bool {
        true
    }
}

impl Eq for Unread {}

/// A page of the next index: recorded before and kept as it is, or made of these entries.
#[derive(Clone, Debug)]
pub enum NextPage {
    Kept(PageInfo),
    New(Vec<IndexedFile>),
}

/// The pages of the index an incremental apply records ([`PlanIndex::next`]), and the first
/// paths of the pages recorded before that it does not keep.
#[derive(Clone, Debug, Default)]
pub struct Reuse {
    pub pages: Vec<NextPage>,
    pub gone: Vec<String>,
}

impl PartialEq for Reuse {
    fn eq(&self, _: &Reuse) -> bool {
        true
    }
}

impl Eq for Reuse {}

/// A page ends after a path whose CRC-32 is a multiple of this plus one (pages of about
/// 256 files), or at [`PAGE_MOST`] files. The ends depend on the paths alone, not on where
/// a page began, so a file added or removed changes one page, not the pages after it.
const PAGE_MASK: u32 = 255;
const PAGE_MOST: usize = 4_096;

/// [`PAGE_MASK`], or `PORTICO_INDEX_PAGE_FILES` (a power of two: files per page on
/// average) less one when set: the property test cuts lists of a few files into several
/// pages so that an apply keeping some of them is compared with full plans too.
fn page_mask() -> u32 {
    std::env::var("PORTICO_INDEX_PAGE_FILES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|n| n.is_power_of_two())
        .map_or(PAGE_MASK, |n| n - 1)
}

/// Whether a page of `count` files ends with the file at `path` ([`PAGE_MASK`]).
fn ends(path: &str, count: usize, mask: u32) -> bool {
    crc32fast::hash(path.as_bytes()) & mask == 0 || count == PAGE_MOST
}

/// Where a sorted file list is cut into pages: the range of each page.
pub fn cut(files: &[IndexedFile]) -> Vec<std::ops::Range<usize>> {
    let mask = page_mask();
    let mut pages = Vec::with_capacity(files.len() / (mask as usize + 1) + 1);
    let mut start = 0;
    for (at, file) in files.iter().enumerate() {
        if ends(&file.path, at + 1 - start, mask) {
            pages.push(start..at + 1);
            start = at + 1;
        }
    }
    if start < files.len() {
        pages.push(start..files.len());
    }
    pages
}

/// Cuts a sorted list given one entry at a time into pages as [`cut`] does, between pages
/// kept as they are.
struct Cutter {
    mask: u32,
    page: Vec<IndexedFile>,
    pages: Vec<NextPage>,
}

impl Cutter {
    fn push(&mut self, entry: IndexedFile) {
        self.page.push(entry);
        let last = &self.page[self.page.len() - 1];
        if ends(&last.path, self.page.len(), self.mask) {
            self.pages
                .push(NextPage::New(std::mem::take(&mut self.page)));
        }
    }

    /// Whether the next entry would begin a page: a page recorded before that begins there
    /// is then the page [`cut`] would make of the same files.
    fn between_pages(&self) -> bool {
        self.page.is_empty()
    }

    fn done(mut self) -> Vec<NextPage> {
        if !self.page.is_empty() {
            self.pages.push(NextPage::New(self.page));
        }
        self.pages
    }
}

/// An index as recorded: its bytes (with its list of pages), the pages to write (first path
/// and bytes), the recorded pages to delete, and whether every recorded page goes first.
pub struct Sealed {
    pub body: Vec<u8>,
    /// Every page as its own bytes list it.
    pub listed: Vec<PageInfo>,
    pub pages: Vec<(String, Vec<u8>)>,
    pub gone: Vec<String>,
    pub all: bool,
}

/// Deflates `bytes` (fast level), with a compressor each thread keeps: a fresh one is 200 KB
/// of tables, zeroed, and an apply deflates a few small things (0.4 ms of a 10-login apply,
/// on its critical path, went to making them).
fn deflate(bytes: &[u8]) -> Vec<u8> {
    thread_local! {
        static COMPRESS: std::cell::RefCell<Option<flate2::Compress>> =
            const { std::cell::RefCell::new(None) };
    }
    COMPRESS.with_borrow_mut(|compress| {
        let compress = compress
            .get_or_insert_with(|| flate2::Compress::new(flate2::Compression::fast(), false));
        compress.reset();
        let mut out = Vec::with_capacity(bytes.len() / 2 + 64);
        loop {
            let read = usize::try_from(compress.total_in()).unwrap_or(bytes.len());
            let status = compress
                .compress_vec(&bytes[read..], &mut out, flate2::FlushCompress::Finish)
                .expect("deflating in memory");
            if status == flate2::Status::StreamEnd {
                return out;
            }
            out.reserve(out.capacity().max(64));
        }
    })
}

/// What `read` makes of the inflated `bytes` (deflate, as [`deflate`] writes); `None` when
/// they do not inflate or `read` fails. The text is inflated into one buffer each thread keeps: a fresh buffer for each of
/// a few hundred pages cost more in fresh memory (zeroed by the kernel) than inflating them.
fn inflated<T, E>(bytes: &[u8], read: impl FnOnce(&[u8]) -> Result<T, E>) -> Option<T> {
    use std::io::Read as _;
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUFFER.with_borrow_mut(|buffer| {
        buffer.clear();
        flate2::read::DeflateDecoder::new(bytes)
            .read_to_end(buffer)
            .ok()?;
        read(buffer).ok()
    })
}

/// The entries of a page's bytes (inflated): postcard's form of the list, and nothing after it.
fn read_page(bytes: &[u8]) -> Result<Vec<IndexedFile>, postcard::Error> {
    match postcard::take_from_bytes(bytes)? {
        (files, []) => Ok(files),
        _ => Err(postcard::Error::DeserializeBadEncoding),
    }
}

/// A file's own row beside the index (`plan_index_files`): its path and digest, its
/// customers' ids ([`Ids`]) and, when it is cut into runs of items, the runs as stored (see
/// `manifest::split::groups`). Read only for the files that changed.
pub type FileRow = (String, String, Vec<u8>, Option<Vec<u8>>);

/// What an apply recording an index writes to the files' rows beside it. Not part of the
/// index's bytes nor of its equality: the rows are keyed by the file digests the index holds.
#[derive(Clone, Debug, Default)]
pub struct FileWrites {
    /// Every stored row goes first (an index of every file).
    pub all: bool,
    /// The files whose stored rows go (changed or removed).
    pub gone: Vec<String>,
    /// The rows to record.
    pub rows: Vec<FileRow>,
}

impl PartialEq for FileWrites {
    fn eq(&self, _: &FileWrites) -> bool {
        true
    }
}

impl Eq for FileWrites {}

/// A manifest file's git blob id, kept as its 20 bytes and written as hex (40 digits). Held
/// as a hex `String`, each of 100,000 files' digests was an allocation of its own, twice
/// (the index read and the files hashed), and fresh memory costs its zeroing.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FileId(pub crate::gitindex::BlobId);

impl std::fmt::Display for FileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut hex = [0u8; 40];
        hex::encode_to_slice(self.0, &mut hex).map_err(|_| std::fmt::Error)?;
        f.write_str(std::str::from_utf8(&hex).map_err(|_| std::fmt::Error)?)
    }
}

impl std::fmt::Debug for FileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl FileId {
    /// The id written as hex; `None` when it is not 40 hex digits.
    pub fn from_hex(hex: &str) -> Option<FileId> {
        let mut id = [0u8; 20];
        hex::decode_to_slice(hex, &mut id).ok()?;
        Some(FileId(id))
    }
}

/// Written as hex in text (JSON: the manifests digest, stored plans), as its 20 bytes in the
/// index's binary pages.
impl Serialize for FileId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            // Hex made on the stack and written as one string: through `Display`, the
            // manifests digest of an apply of 100,000 files spent 5 ms formatting ids.
            let mut hex = [0u8; 40];
            hex::encode_to_slice(self.0, &mut hex).map_err(serde::ser::Error::custom)?;
            let hex = std::str::from_utf8(&hex).map_err(serde::ser::Error::custom)?;
            serializer.serialize_str(hex)
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for FileId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<FileId, D::Error> {
        if !deserializer.is_human_readable() {
            return crate::gitindex::BlobId::deserialize(deserializer).map(FileId);
        }
        struct Hex;
        impl serde::de::Visitor<'_> for Hex {
            type Value = FileId;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a git blob id in hex")
            }
            fn visit_str<E: serde::de::Error>(self, hex: &str) -> Result<FileId, E> {
                FileId::from_hex(hex).ok_or_else(|| E::custom("not a git blob id"))
            }
        }
        deserializer.deserialize_str(Hex)
    }
}

/// One manifest file as the apply read it. Stored in the index's pages in postcard's binary
/// form (serde; the fields in their order, lengths as varints, the blob id as its 20
/// bytes): an index lists every file, and a plan reads the list. As JSON (one-letter names,
/// the id in hex), reading the 100,000 entries of as many one-customer files took 66 ms of
/// processor time, a fifth of an incremental plan's: most of it the text parsed and the
/// inflated text's size (12 MB). An index whose pages hold JSON (an older portico) reads as
/// none: that plan is full.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedFile {
    /// Relative to the manifest root, with `/` separators (most are short enough to be
    /// kept inline: one allocation fewer for each of 100,000 files a plan reads).
    pub path: CompactString,
    /// Its git blob id (the id git's index lists for it when unchanged).
    pub digest: FileId,
    /// Its size in bytes. Required: an index of SHA-256 digests (an older portico) does not
    /// read, and that plan is full. A plan trusts git's index for a file only when git's
    /// size for it is this size too: a file whose checkout converts its line ends (`eol`,
    /// `core.autocrlf`) has git's blob id for a text of another size, and is read.
    pub size: u64,
    /// Whether it declares nothing but `customers:` (or nothing at all).
    pub only_customers: bool,
    /// Whether it has a `customers:` section (its customers' ids are in its row).
    pub customers: bool,
    /// The password sources its logins name, to check again: still set, still readable,
    /// still long enough.
    pub secrets: Vec<SecretCheck>,
    /// Whether its row holds its runs of items: a plan then reads only the runs that
    /// changed.
    pub groups: bool,
    /// The ids of its customers when it declares a few ([`INLINE_IDS`] at most) and has no
    /// runs: kept here, it needs no row (for 100,000 one-customer files, 8 MiB of rows and
    /// a read of them for every changed file). Empty: its ids are in its row.
    pub ids: Vec<CompactString>,
}

/// The most customer ids a file's entry keeps itself (see [`IndexedFile::ids`]).
pub const INLINE_IDS: usize = 4;

/// A file's customer ids as its row stores them: a deflated JSON list (read only for the
/// files that changed: reading the ids of every file was most of the time an index took to
/// read, and writing them again most of an apply's own time).
#[derive(Clone, Debug)]
pub struct Ids(pub Vec<u8>);

impl Ids {
    /// The ids given, in their order.
    pub fn of(ids: &[CompactString]) -> Ids {
        Ids(deflate(&serde_json::to_vec(ids).expect("ids serialise")))
    }

    /// The ids of stored bytes; `None` when they do not read as a list.
    pub fn read(bytes: &[u8]) -> Option<Vec<CompactString>> {
        inflated(bytes, |json| serde_json::from_slice(json))
    }
}

/// A password source a plan checks again (never its value).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SecretCheck {
    /// An environment variable, and the least number of characters it must hold.
    Env(String, usize),
    /// A file (relative to the manifest root), and the least number of characters.
    File(String, usize),
}

/// The plan index an apply records: made already (a full plan made it from every file), or
/// to be made from what an incremental plan kept of the index it read and of the files it
/// read again ([`IndexToRecord::Making`], with how many ids of files read in part it
/// encodes, a file read whole weighing [`WHOLE_FILE_AS_IDS`]), while the apply writes its rows (half a millisecond of a 20 ms apply, for a
/// file of 5,000 customers). Making it gives `None` when a page it must cut again was not
/// read or does not read as listed: the apply then removes the index, and the next plan
/// reads every file (it is never wrong, only slower once).
pub enum IndexToRecord {
    Made(Box<PlanIndex>),
    Making(Box<dyn FnOnce() -> Option<PlanIndex> + Send>, usize),
}

impl IndexToRecord {
    /// The index, made now when it is not yet.
    pub fn made(self) -> Option<PlanIndex> {
        match self {
            IndexToRecord::Made(index) => Some(*index),
            IndexToRecord::Making(make, _) => make(),
        }
    }
}

/// An index on its way to the database: made ([`IndexToRecord`]), its pages serialised and
/// deflated. A big one on a blocking thread while the apply takes its lock and writes its
/// rows; an everyday one where the apply runs, while the database runs the apply's first
/// rows ([`SealingIndex::bytes`]).
pub enum SealingIndex {
    Here(IndexToRecord, u64),
    Thread(tokio::task::JoinHandle<Option<(Sealed, FileWrites)>>),
}

/// An incremental index whose files read in part have at most this many ids is made where
/// the apply runs (one file of 5,000 customers: 0.5 ms). On a thread of its own it took
/// fresh memory, its deflaters' tables among it, and on two cores shared with the apply and
/// SQLite's worker, waited for one: the apply's index step took 0.4-1.5 ms.
const SEALED_HERE_UP_TO: usize = 20_000;

/// A changed file read whole, as [`IndexToRecord::Making`] weighs its work: its entry goes
/// into a page cut and sealed again. The bound above then admits about twenty.
pub const WHOLE_FILE_AS_IDS: usize = 1_000;

impl SealingIndex {
    /// Starts making and sealing `index`, which counts `logins` (those the apply leaves:
    /// the next incremental plan shows them).
    pub fn start(index: IndexToRecord, logins: u64) -> SealingIndex {
        if matches!(index, IndexToRecord::Making(_, ids) if ids <= SEALED_HERE_UP_TO) {
            return SealingIndex::Here(index, logins);
        }
        SealingIndex::Thread(tokio::task::spawn_blocking(move || seal(index, logins)))
    }

    /// The index as recorded ([`PlanIndex::seal`]) and the files' rows to write; `None` when
    /// it could not be made (the index is then removed). An everyday index is made here, in
    /// the first poll: awaited beside the apply's rows (`tokio::join!`, the rows polled
    /// first), it is made while the database runs their first statement.
    pub async fn bytes(self) -> Option<(Sealed, FileWrites)> {
        match self {
            SealingIndex::Here(index, logins) => seal(index, logins),
            SealingIndex::Thread(thread) => thread.await.expect("making an index does not panic"),
        }
    }
}

fn seal(index: IndexToRecord, logins: u64) -> Option<(Sealed, FileWrites)> {
    let mut index = index.made()?;
    index.logins = logins;
    let rows = std::mem::take(&mut index.rows);
    Some((index.seal(), rows))
}

impl PlanIndex {
    /// The index as recorded: the pages of its list to write, deflated each (postcard's
    /// binary form of the entries, see [`IndexedFile`]), and its own bytes (deflated JSON)
    /// listing every page ([`PageInfo`]). An index made from a full read writes every page;
    /// one an incremental apply made ([`PlanIndex::next`]) only its new pages.
    pub fn seal(&self) -> Sealed {
        let work: Vec<Result<&PageInfo, &[IndexedFile]>> = match &self.reuse {
            None => cut(&self.files)
                .into_iter()
                .map(|range| Err(&self.files[range]))
                .collect(),
            Some(reuse) => reuse
                .pages
                .iter()
                .map(|page| match page {
                    NextPage::Kept(info) => Ok(info),
                    NextPage::New(entries) => Err(entries.as_slice()),
                })
                .collect(),
        };
        let made = crate::parallel::map_in_order(work, |page| match page {
            Ok(info) => (info.clone(), None),
            Err(entries) => {
                let page = postcard::to_stdvec(entries).expect("a page serialises");
                let bytes = deflate(&page);
                (PageInfo::of(entries, &bytes), Some(bytes))
            }
        });
        let mut listed = Vec::with_capacity(made.len());
        let mut pages = Vec::new();
        for (info, bytes) in made {
            if let Some(bytes) = bytes {
                pages.push((info.first.clone(), bytes));
            }
            listed.push(info);
        }
        let index = PlanIndex {
            pages: Pages(listed),
            ..self.without_files()
        };
        let json = serde_json::to_vec(&index).expect("an index serialises");
        Sealed {
            body: deflate(&json),
            listed: index.pages.0,
            pages,
            gone: self
                .reuse
                .as_ref()
                .map(|r| r.gone.clone())
                .unwrap_or_default(),
            all: self.reuse.is_none(),
        }
    }

    /// Whether recording this index would leave `stored` (an index read back) as it is: the
    /// same settings, templates, logins and sections, and the same pages — each page of an
    /// incremental apply's index kept as it was recorded, or each page of an index of every
    /// file listed as the recorded one is.
    pub fn records_as(&self, stored: &PlanIndex) -> bool {
        if self.without_files() != stored.without_files() {
            return false;
        }
        match &self.reuse {
            Some(reuse) => {
                reuse.gone.is_empty()
                    && reuse.pages.len() == stored.pages.0.len()
                    && reuse
                        .pages
                        .iter()
                        .all(|page| matches!(page, NextPage::Kept(_)))
            }
            None => self.seal().listed == stored.pages.0,
        }
    }

    /// This index without its list (what its own bytes hold).
    fn without_files(&self) -> PlanIndex {
        PlanIndex {
            reading: self.reading,
            templates: self.templates.clone(),
            logins: self.logins,
            managed: self.managed.clone(),
            ..PlanIndex::default()
        }
    }

    /// The index from its recorded bytes, no page read yet; `None` when they do not read as
    /// one (an older or damaged record: the plan is then computed in full).
    pub fn from_stored(body: &[u8]) -> Option<PlanIndex> {
        let mut index: PlanIndex = inflated(body, |json| serde_json::from_slice(json))?;
        let firsts = index.pages.0.windows(2);
        if !firsts.clone().all(|pair| pair[0].first < pair[1].first) {
            return None;
        }
        index.unread = Unread(vec![Stored::NotRead; index.pages.0.len()]);
        Some(index)
    }

    /// [`PlanIndex::from_stored`] with every page read from `pages` (first path and bytes,
    /// in any order) and opened; `None` when one is missing or does not read.
    pub fn read_all(body: &[u8], pages: Vec<(String, Vec<u8>)>) -> Option<PlanIndex> {
        let mut index = PlanIndex::from_stored(body)?;
        index.read(pages)?;
        let all = vec![true; index.pages.0.len()];
        index.open(&all)?;
        Some(index)
    }

    /// The first paths of the pages to read from the database: those to open (`open`, by
    /// number), and for an apply (`for_apply`) the page after each run of them too, which
    /// [`PlanIndex::next`] may open to cut them as the whole list would be cut.
    pub fn to_read(&self, open: &[bool], for_apply: bool) -> Vec<String> {
        let wanted = |number: usize| {
            let before = number.checked_sub(1).and_then(|b| open.get(b)) == Some(&true);
            open.get(number) == Some(&true) || (for_apply && before)
        };
        let pages = self.pages.0.iter().enumerate();
        pages
            .filter(|(number, _)| wanted(*number))
            .map(|(_, info)| info.first.clone())
            .collect()
    }

    /// Takes the pages read from the database (first path and bytes): each listed one's
    /// bytes, when their CRC-32 is the one listed. `None` when one is not: a page not
    /// written with this index, and the plan is full. A row no page lists is left aside.
    pub fn read(&mut self, pages: Vec<(String, Vec<u8>)>) -> Option<()> {
        for (first, bytes) in pages {
            let Ok(number) = self.pages.0.binary_search_by(|p| p.first.cmp(&first)) else {
                continue;
            };
            if crc32fast::hash(&bytes) != self.pages.0[number].sum {
                return None;
            }
            if let Some(slot @ Stored::NotRead) = self.unread.0.get_mut(number) {
                *slot = Stored::Read(bytes);
            }
        }
        Some(())
    }

    /// Opens the pages `which` (by number) of an index read back, their bytes read: their
    /// entries become `files`. `None` when one was not read (missing from the database), or
    /// does not read as the page listed (its first path, its number of files, their digest)
    /// or its entries are not sorted inside its range of paths.
    pub fn open(&mut self, which: &[bool]) -> Option<()> {
        if !self.files.is_empty() {
            return None;
        }
        let mut work: Vec<(usize, Vec<u8>)> = Vec::new();
        for (number, slot) in self.unread.0.iter_mut().enumerate() {
            if which.get(number) != Some(&true) {
                continue;
            }
            match std::mem::replace(slot, Stored::Opened) {
                Stored::Read(bytes) => work.push((number, bytes)),
                Stored::NotRead | Stored::Opened => return None,
            }
        }
        let pages = &self.pages.0;
        let read = crate::parallel::map_in_order(work, |(number, bytes)| {
            let entries: Vec<IndexedFile> = inflated(&bytes, read_page)?;
            let info = &pages[number];
            let next = pages.get(number + 1).map(|next| next.first.as_str());
            let inside = entries.windows(2).all(|pair| pair[0].path < pair[1].path)
                && entries
                    .last()
                    .is_some_and(|last| next.is_none_or(|n| last.path.as_str() < n))
                && entries
                    .first()
                    .is_some_and(|first| first.path == info.first)
                && entries.len() == info.files as usize
                && PageInfo::of(&entries, &bytes) == *info;
            inside.then_some(entries)
        });
        let mut files = Vec::with_capacity(read.iter().flatten().map(Vec::len).sum());
        for page in read {
            files.extend(page?);
        }
        self.files = files;
        Some(())
    }

    /// The pages kept whole: those a plan did not open (their files did not change).
    pub fn unopened(&self) -> impl Iterator<Item = &PageInfo> {
        let unread = self.unread.0.iter();
        self.pages
            .0
            .iter()
            .zip(unread)
            .filter(|(_, stored)| !matches!(stored, Stored::Opened))
            .map(|(info, _)| info)
    }

    /// The index an incremental apply records after this one (read back, with the pages its
    /// plan opened): the pages not opened kept as they are, and the files of the opened ones
    /// (those of `files` that are `kept`, and the changed ones, `now`, sorted by path) cut
    /// into pages as [`cut`] cuts the whole list. Where that cut would run on into a page
    /// not opened, that page is opened too and cut with them, so the pages recorded are the
    /// ones an index of the whole list would have. The entries are moved, not copied. `None`
    /// when a page does not read.
    pub fn next(self, kept: &[bool], now: Vec<IndexedFile>) -> Option<PlanIndex> {
        let PlanIndex {
            reading,
            files,
            pages,
            templates,
            logins,
            managed,
            unread,
            ..
        } = self;
        let mut entries = files
            .into_iter()
            .zip(kept.iter().copied().chain(std::iter::repeat(false)))
            .filter_map(|(entry, kept)| kept.then_some(entry))
            .peekable();
        let mut now = now.into_iter().peekable();
        let mut cutter = Cutter {
            mask: page_mask(),
            page: Vec::new(),
            pages: Vec::new(),
        };
        let mut gone = Vec::new();
        let mut unread = unread.0;
        unread.resize(pages.0.len(), Stored::NotRead);
        for (number, info) in pages.0.iter().enumerate() {
            let end = pages.0.get(number + 1).map(|next| next.first.as_str());
            let below = |entry: &IndexedFile| end.is_none_or(|end| entry.path.as_str() < end);
            let changed = now.peek().is_some_and(below);
            let recorded = match std::mem::take(&mut unread[number]) {
                Stored::NotRead | Stored::Read(_) if cutter.between_pages() && !changed => {
                    cutter.pages.push(NextPage::Kept(info.clone()));
                    continue;
                }
                Stored::Read(bytes) => {
                    let entries: Vec<IndexedFile> = inflated(&bytes, read_page)?;
                    (PageInfo::of(&entries, &bytes) == *info).then_some(entries)?
                }
                Stored::NotRead => return None,
                Stored::Opened => std::iter::from_fn(|| entries.next_if(below)).collect(),
            };
            gone.push(info.first.clone());
            for entry in recorded {
                while let Some(changed) = now.next_if(|c| c.path < entry.path) {
                    cutter.push(changed);
                }
                // A changed entry replaces a recorded one of its path (never among the kept
                // ones: a page not opened has no changed file).
                match now.next_if(|c| c.path == entry.path) {
                    Some(changed) => cutter.push(changed),
                    None => cutter.push(entry),
                }
            }
            while let Some(changed) = now.next_if(below) {
                cutter.push(changed);
            }
        }
        for entry in entries.chain(now) {
            cutter.push(entry);
        }
        let pages = cutter.done();
        Some(PlanIndex {
            reading,
            templates,
            logins,
            managed,
            reuse: Some(Reuse { pages, gone }),
            ..PlanIndex::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page's content digest is SHA-256 of each file's path, a NUL, its blob id and its
    /// size (little-endian), in order, however many files (hashed in chunks): the digests
    /// recorded in existing indexes still match.
    #[test]
    fn a_pages_content_digest_is_of_its_files_bytes_in_order() {
        use sha2::Digest as _;
        for count in [0, 1, 3, 2_000] {
            let files: Vec<(String, FileId, u64)> = (0..count)
                .map(|i| {
                    (
                        format!("customers/{i}.yaml"),
                        FileId([i as u8; 20]),
                        i as u64,
                    )
                })
                .collect();
            let mut bytes = Vec::new();
            for (path, id, size) in &files {
                bytes.extend_from_slice(path.as_bytes());
                bytes.push(0);
                bytes.extend_from_slice(&id.0);
                bytes.extend_from_slice(&size.to_le_bytes());
            }
            let content = content_of(files.iter().map(|(p, id, size)| (p.as_str(), id, *size)));
            assert_eq!(content, crate::state::hex(&sha2::Sha256::digest(&bytes)));
        }
    }

    /// What the kept compressor deflates inflates back to the bytes given, used again and
    /// again on one thread (the same bytes each time as a first use), for nothing, a few
    /// bytes, repetitive text and 1 MB that does not compress (its output outgrows the room
    /// first given).
    #[test]
    fn the_kept_compressor_deflates_each_text_whole() {
        let mut noise = Vec::with_capacity(1 << 20);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        while noise.len() < 1 << 20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            noise.extend_from_slice(&x.to_le_bytes());
        }
        let texts: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"a".to_vec(),
            "customers: [C1, C2, C3]\n".repeat(5_000).into_bytes(),
            noise,
        ];
        let first: Vec<Vec<u8>> = texts.iter().map(|t| deflate(t)).collect();
        for _ in 0..2 {
            for (text, first) in texts.iter().zip(&first) {
                let bytes = deflate(text);
                assert_eq!(&bytes, first);
                assert_eq!(
                    inflated(&bytes, |b| Ok::<_, ()>(b.to_vec())).unwrap(),
                    *text
                );
            }
        }
    }

    /// A file id made of a word (the blob id of that text).
    fn id(word: &str) -> FileId {
        FileId(crate::gitindex::blob_id(word.as_bytes()))
    }

    fn file(path: &str, digest: &str) -> IndexedFile {
        IndexedFile {
            path: path.into(),
            digest: id(digest),
            ..IndexedFile::default()
        }
    }

    fn index_of(files: Vec<IndexedFile>) -> PlanIndex {
        PlanIndex {
            reading: (64, false),
            files,
            logins: 3,
            managed: vec![true; 8],
            ..PlanIndex::default()
        }
    }

    /// The index as a plan reads it back after `sealed` is recorded over `stored`.
    fn record(stored: &mut foldhash::HashMap<String, Vec<u8>>, sealed: Sealed) -> Vec<u8> {
        if sealed.all {
            stored.clear();
        }
        for first in &sealed.gone {
            stored.remove(first);
        }
        stored.extend(sealed.pages);
        sealed.body
    }

    fn pages_of(stored: &foldhash::HashMap<String, Vec<u8>>) -> Vec<(String, Vec<u8>)> {
        stored.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// An everyday index is sealed where the apply awaits it, a big one on a thread; both
    /// give the same bytes, and an index that cannot be made gives none either way.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_index_seals_alike_here_and_on_a_thread() {
        let making = |ids: usize| {
            let index = index_of(vec![file("a.yaml", "a"), file("b.yaml", "b")]);
            IndexToRecord::Making(Box::new(move || Some(index)), ids)
        };
        let here = SealingIndex::start(making(SEALED_HERE_UP_TO), 7);
        let thread = SealingIndex::start(making(SEALED_HERE_UP_TO + 1), 7);
        assert!(matches!(here, SealingIndex::Here(..)));
        assert!(matches!(thread, SealingIndex::Thread(..)));
        let (here, _) = here.bytes().await.expect("made");
        let (thread, _) = thread.bytes().await.expect("made");
        assert_eq!(here.body, thread.body);
        assert_eq!(here.pages, thread.pages);
        assert!(!here.pages.is_empty());
        let unmade = |ids| IndexToRecord::Making(Box::new(|| None), ids);
        assert!(SealingIndex::start(unmade(1), 7).bytes().await.is_none());
        assert!(
            SealingIndex::start(unmade(SEALED_HERE_UP_TO + 1), 7)
                .bytes()
                .await
                .is_none()
        );
    }

    #[test]
    fn a_file_id_is_written_as_git_writes_it_and_read_back_only_so() {
        let id = id("hello\n");
        let json = serde_json::to_string(&id).unwrap();
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(json, "\"ce013625030ba8dba906f756967f9e9ca394464a\"");
        assert_eq!(serde_json::from_str::<FileId>(&json).unwrap(), id);
        assert_eq!(FileId::from_hex(&id.to_string()), Some(id));
        // In the binary pages: its 20 bytes, nothing more.
        let binary = postcard::to_stdvec(&id).unwrap();
        assert_eq!(binary, id.0.to_vec());
        assert_eq!(postcard::from_bytes::<FileId>(&binary).unwrap(), id);
        for bad in [
            "\"ce01\"",
            "\"\"",
            "\"zz013625030ba8dba906f756967f9e9ca394464a\"",
            "12",
        ] {
            assert!(serde_json::from_str::<FileId>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_entry_of_one_customer_keeps_room_for_one_id() {
        for ids in [vec![], vec!["C1"], vec!["C1", "C2", "C3"]] {
            let entry = IndexedFile {
                ids: ids.iter().map(|&id| id.into()).collect(),
                ..file("a.yaml", "a")
            };
            let page = postcard::to_stdvec(std::slice::from_ref(&entry)).unwrap();
            let back = read_page(&page).unwrap().pop().unwrap();
            assert_eq!(back, entry);
            // Most files declare one customer: room for one (read as JSON, four).
            assert_eq!(back.ids.capacity(), ids.len());
        }
    }

    #[test]
    fn an_index_reads_back_and_damage_reads_as_none() {
        let mut files = vec![
            IndexedFile {
                path: "customers/a.yaml".into(),
                digest: id("ab"),
                size: 120,
                only_customers: true,
                customers: true,
                secrets: vec![SecretCheck::Env("PW".into(), 10)],
                groups: false,
                ids: vec!["C1".into()],
            },
            file("account.yaml", "cd"),
        ];
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let index = index_of(files);
        let sealed = index.seal();
        assert!(sealed.all && sealed.gone.is_empty());
        let mut stored = foldhash::HashMap::default();
        let body = record(&mut stored, sealed);
        let read = PlanIndex::read_all(&body, pages_of(&stored));
        assert_eq!(read.as_ref().map(|r| &r.files), Some(&index.files));
        assert_eq!(read, Some(index.clone()));
        // Read without opening a page: no entry decoded, every page listed as unopened.
        let lazy = PlanIndex::from_stored(&body).unwrap();
        assert!(lazy.files.is_empty());
        assert_eq!(lazy.unopened().count(), lazy.pages.0.len());
        assert!(lazy.unopened().any(|page| page.customers));
        let ids = Ids::read(&Ids::of(&["C1".into(), "C2".into()]).0);
        assert_eq!(ids, Some(vec![CompactString::from("C1"), "C2".into()]));
        assert_eq!(Ids::read(b"not deflate"), None);
        assert_eq!(PlanIndex::read_all(b"not deflate", pages_of(&stored)), None);
        // A page missing, or not the one recorded with the index: no index.
        assert_eq!(PlanIndex::read_all(&body, Vec::new()), None);
        let (first, _) = stored.iter().next().unwrap();
        let other = index_of(vec![file(first, "ef")]).seal();
        let wrong = vec![(first.clone(), other.pages[0].1.clone())];
        assert_eq!(PlanIndex::read_all(&body, wrong), None);
        // A page with anything after its entries, or an index whose pages hold JSON (an older
        // portico), reads as none.
        let page = postcard::to_stdvec(&index.files).unwrap();
        assert_eq!(read_page(&page).as_ref().ok(), Some(&index.files));
        assert!(read_page(&[page.as_slice(), &[0]].concat()).is_err());
        let json_page = deflate(&serde_json::to_vec(&index.files).unwrap());
        let first = index.files[0].path.to_string();
        let sum = crc32fast::hash(&json_page);
        let older = serde_json::json!({"reading": [64, false], "pages": [[first, sum]],
            "templates": [], "logins": 3, "managed": [true]});
        let older = deflate(&serde_json::to_vec(&older).unwrap());
        assert_eq!(
            PlanIndex::read_all(&older, vec![(first.clone(), json_page.clone())]),
            None
        );
        let renamed = serde_json::json!({"reading": [64, false], "binary_pages": [[first, sum]],
            "templates": [], "logins": 3, "managed": [true]});
        let renamed = deflate(&serde_json::to_vec(&renamed).unwrap());
        assert_eq!(
            PlanIndex::read_all(&renamed, vec![(first.clone(), json_page)]),
            None
        );
        // Binary pages listed without what a plan needs to leave them unopened (the
        // format before pages had their digests) read as none.
        let page = deflate(&postcard::to_stdvec(&index.files).unwrap());
        let sum = crc32fast::hash(&page);
        let unsummed = serde_json::json!({"reading": [64, false], "binary_pages": [[first, sum]],
            "templates": [], "logins": 3, "managed": [true]});
        let unsummed = deflate(&serde_json::to_vec(&unsummed).unwrap());
        assert_eq!(PlanIndex::read_all(&unsummed, vec![(first, page)]), None);
        // An index stored with its list inside (an older portico) reads as none.
        let older = serde_json::json!({"reading": [64, false], "files": [], "templates": [],
            "logins": 3, "managed": [true]});
        let older = deflate(&serde_json::to_vec(&older).unwrap());
        assert_eq!(PlanIndex::from_stored(&older), None);
    }

    /// What a plan and its apply do with an index read back: open the pages holding a
    /// changed, removed or added file, and make the next index from it.
    fn next_of(before: &PlanIndex, after: &[IndexedFile]) -> PlanIndex {
        let files = &before.files;
        let mut stored = foldhash::HashMap::default();
        let body = record(&mut stored, before.seal());
        let mut read = PlanIndex::from_stored(&body).unwrap();
        // Which pages hold a file that is not the same now.
        let mut open = vec![false; read.pages.0.len()];
        let same = |f: &IndexedFile, list: &[IndexedFile]| {
            list.binary_search_by(|e| e.path.cmp(&f.path))
                .is_ok_and(|at| list[at] == *f)
        };
        let differ = after.iter().filter(|f| !same(f, files));
        for f in differ.chain(files.iter().filter(|f| !same(f, after))) {
            open[read.pages.of(&f.path)] = true;
        }
        // What a plan reads: the pages to open, and for an apply the page after each run.
        let wanted = read.to_read(&open, true);
        let pages = pages_of(&stored).into_iter();
        read.read(pages.filter(|(first, _)| wanted.contains(first)).collect())
            .unwrap();
        read.open(&open).unwrap();
        assert_eq!(
            read.unopened().count(),
            open.iter().filter(|o| !**o).count()
        );
        let kept: Vec<bool> = read.files.iter().map(|f| same(f, after)).collect();
        let mut now: Vec<IndexedFile> = after.iter().filter(|f| !same(f, files)).cloned().collect();
        now.sort_by(|a, b| a.path.cmp(&b.path));
        read.next(&kept, now).unwrap()
    }

    /// The pages as stored after recording `sealed` over the pages of `before`.
    fn stored_after(
        before: &PlanIndex,
        sealed: Sealed,
    ) -> (Vec<u8>, foldhash::HashMap<String, Vec<u8>>) {
        let mut stored = foldhash::HashMap::default();
        record(&mut stored, before.seal());
        let body = record(&mut stored, sealed);
        (body, stored)
    }

    #[test]
    fn an_apply_writes_only_the_pages_whose_files_changed_and_records_what_a_full_apply_would() {
        let files: Vec<IndexedFile> = (0..20_000)
            .map(|i| file(&format!("customers/c{i:05}.yaml"), &format!("{i:064x}")))
            .collect();
        let pages = cut(&files);
        assert!(pages.len() > 40 && pages.len() < 160, "{}", pages.len());
        let before = index_of(files.clone());
        // A file that ends a page, and the last file of a page that does not end it.
        let end = pages[10].end - 1;
        type Edit = Box<dyn Fn(&mut Vec<IndexedFile>)>;
        let edits: Vec<Edit> = vec![
            // Three files changed, one removed, one added.
            Box::new(|after| {
                for i in [10, 7_000, 19_999] {
                    after[i].digest = id("changed");
                }
                after.remove(12_345);
                after.push(file("customers/c12345a.yaml", "new"));
            }),
            // The file that ends a page removed: that page and the next are one now.
            Box::new(move |after| {
                after.remove(end);
            }),
            // A file after a page's end, before the next page: it begins a page of its own
            // or joins the next.
            Box::new(move |after| {
                let path = format!("{}a", after[end].path);
                after.push(file(&path, "between"));
            }),
            // Files before the first and after the last.
            Box::new(|after| {
                after.push(file("a.yaml", "first"));
                after.push(file("zz.yaml", "last"));
            }),
            // Every file of two pages removed; nothing changed at all.
            Box::new(move |after| {
                after.retain(|f| {
                    !(f.path.as_str() >= "customers/c03000" && f.path.as_str() < "customers/c03600")
                });
            }),
            Box::new(|_| {}),
        ];
        for (number, edit) in edits.iter().enumerate() {
            let mut after = files.clone();
            edit(&mut after);
            after.sort_by(|a, b| a.path.cmp(&b.path));
            let next = next_of(&before, &after);
            let sealed = next.seal();
            assert!(!sealed.all);
            let written = sealed.pages.len();
            assert!(written <= 8, "edit {number}: {written} pages written");
            let (body, stored) = stored_after(&before, sealed);
            let read = PlanIndex::read_all(&body, pages_of(&stored)).unwrap();
            assert_eq!(read.files, after, "edit {number}");
            // The same pages as an index of the whole list, page for page.
            let full = index_of(after.clone());
            let (full_body, full_stored) = stored_after(&PlanIndex::default(), full.seal());
            let full_read = PlanIndex::from_stored(&full_body).unwrap();
            assert_eq!(read.pages.0, full_read.pages.0, "edit {number}");
            assert_eq!(stored, full_stored, "edit {number}");
        }
        // Every file removed: every page goes.
        let none = next_of(&before, &[]);
        let sealed = none.seal();
        assert_eq!(sealed.gone.len(), before.seal().pages.len());
        let (body, stored) = stored_after(&before, sealed);
        assert!(stored.is_empty());
        let read = PlanIndex::read_all(&body, Vec::new()).unwrap();
        assert!(read.files.is_empty());
    }

    /// An index records as the one stored when nothing of it would change: an incremental
    /// apply's that keeps every page, or one of every file whose pages list the same files.
    #[test]
    fn an_index_that_keeps_every_page_records_as_the_stored_one() {
        let files: Vec<IndexedFile> = (0..2_000)
            .map(|i| file(&format!("customers/c{i:05}.yaml"), &format!("{i}")))
            .collect();
        let before = index_of(files.clone());
        let mut stored = foldhash::HashMap::default();
        let read = PlanIndex::from_stored(&record(&mut stored, before.seal())).unwrap();
        assert!(next_of(&before, &files).records_as(&read));
        assert!(before.records_as(&read));
        let mut changed = files.clone();
        changed[1_234].digest = id("changed");
        assert!(!next_of(&before, &changed).records_as(&read));
        assert!(!index_of(changed).records_as(&read));
        let fewer = files[1..].to_vec();
        assert!(!next_of(&before, &fewer).records_as(&read));
        let other = PlanIndex {
            logins: 4,
            ..before.clone()
        };
        assert!(!other.records_as(&read));
    }

    /// A page opened is checked against its listing: its number of files and their digest.
    #[test]
    fn a_page_that_does_not_hold_what_its_listing_says_is_not_opened() {
        let files: Vec<IndexedFile> = (0..600)
            .map(|i| file(&format!("c{i:03}.yaml"), "x"))
            .collect();
        let mut stored = foldhash::HashMap::default();
        let sealed = index_of(files).seal();
        let mut listed: PlanIndex = inflated(&sealed.body, |j| serde_json::from_slice(j)).unwrap();
        let body = record(&mut stored, sealed);
        assert!(PlanIndex::read_all(&body, pages_of(&stored)).is_some());
        listed.pages.0[0].content = content_of([]);
        let json = serde_json::to_vec(&listed).unwrap();
        let mut index = PlanIndex::from_stored(&deflate(&json)).unwrap();
        index.read(pages_of(&stored)).unwrap();
        let open: Vec<bool> = (0..listed.pages.0.len()).map(|n| n == 0).collect();
        assert_eq!(index.open(&open), None);
    }

    #[test]
    fn the_fingerprint_is_the_store_and_its_count() {
        let empty = LiveVersion(None).fingerprint();
        assert_eq!(LiveVersion(Some(("a".into(), 0))).fingerprint(), empty);
        let one = LiveVersion(Some(("a".into(), 1))).fingerprint();
        assert_ne!(one, empty);
        assert_ne!(one, LiveVersion(Some(("b".into(), 1))).fingerprint());
        assert_ne!(one, LiveVersion(Some(("a".into(), 2))).fingerprint());
    }
}
