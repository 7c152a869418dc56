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
    /// Every manifest file, sorted by path. Stored in pages beside the index (see
    /// [`Pages`]), not in its bytes.
    #[serde(skip)]
    pub files: Vec<IndexedFile>,
    /// The pages the file list is stored in, as recorded. Required, under a name of its own
    /// since the pages hold binary entries: an index stored with its list inside, or with
    /// pages of JSON (an older portico), does not read, and that plan is full.
    #[serde(rename = "binary_pages")]
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
    /// Which pages of the list recorded before this index keeps as they are; `None`: every
    /// page is written again (not part of its stored bytes).
    #[serde(skip)]
    pub reuse: Option<Reuse>,
}

/// The file list's pages as recorded (`plan_index_pages`): each page's first path and the
/// CRC-32 of its stored bytes, in path order. The list of 100,000 one-customer files is 3 MB
/// deflated; kept in the index's own bytes, every apply serialised and deflated all of it
/// again (0.05 s, a third of a 10-login apply's own time) and wrote it whole. In pages, an
/// apply writes only the pages whose files changed. The checksums tie the pages to the
/// index that lists them: a page not written with it does not read, and the plan is full.
/// Not part of the index's equality (how it is stored, not what it says).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pages(pub Vec<(String, u32)>);

impl PartialEq for Pages {
    fn eq(&self, _: &Pages) -> bool {
        true
    }
}

impl Eq for Pages {}

/// Of the pages an index's list is cut into ([`cut`]), those recorded already with the same
/// files (their checksums), and the recorded pages no longer in the list.
#[derive(Clone, Debug, Default)]
pub struct Reuse {
    /// One per page of the new list: `Some(checksum)` when recorded as it is.
    pub kept: Vec<Option<u32>>,
    /// The first paths of recorded pages that are not pages of the new list.
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

/// Where a sorted file list is cut into pages: the range of each page.
pub fn cut(files: &[IndexedFile]) -> Vec<std::ops::Range<usize>> {
    let mask = page_mask();
    let mut pages = Vec::with_capacity(files.len() / (mask as usize + 1) + 1);
    let mut start = 0;
    for (at, file) in files.iter().enumerate() {
        let end = crc32fast::hash(file.path.as_bytes()) & mask == 0;
        if end || at + 1 - start == PAGE_MOST {
            pages.push(start..at + 1);
            start = at + 1;
        }
    }
    if start < files.len() {
        pages.push(start..files.len());
    }
    pages
}

/// The pages a plan read, by first path: the range of each in the list read, and the
/// checksum of its stored bytes. Taken before an apply moves the list's entries into the
/// next index.
pub struct Recorded(foldhash::HashMap<String, (std::ops::Range<usize>, u32)>);

impl Recorded {
    /// The pages of `before`, as read with its list.
    pub fn of(before: &PlanIndex) -> Recorded {
        let mut recorded = foldhash::HashMap::default();
        let mut at = 0;
        for (number, (first, sum)) in before.pages.0.iter().enumerate() {
            let end = before
                .pages
                .0
                .get(number + 1)
                .map_or(before.files.len(), |next| {
                    before.files[at..]
                        .iter()
                        .position(|f| f.path == next.0)
                        .map_or(before.files.len(), |p| at + p)
                });
            recorded.insert(first.clone(), (at..end, *sum));
            at = end;
        }
        Recorded(recorded)
    }
}

impl Reuse {
    /// The pages of `files` that `before` (as read, with its pages) recorded with the same
    /// files, found by comparing the entries (the unit tests' way; an apply knows which
    /// entries it moved: [`Reuse::moved`]).
    #[cfg(test)]
    pub fn of(files: &[IndexedFile], before: &PlanIndex) -> Reuse {
        let at: foldhash::HashMap<&str, usize> = before
            .files
            .iter()
            .enumerate()
            .map(|(at, f)| (f.path.as_str(), at))
            .collect();
        let from: Vec<Option<usize>> = files
            .iter()
            .map(|f| {
                at.get(f.path.as_str())
                    .copied()
                    .filter(|&i| before.files[i] == *f)
            })
            .collect();
        Reuse::moved(files, &from, &Recorded::of(before))
    }

    /// The pages of `files` recorded with the same files, where `from[i]` is the place in
    /// the list recorded of an entry the same as `files[i]` (`None`: a new or changed
    /// file). A page is kept when a recorded page began with the same path and held exactly
    /// the entries it holds now, in the same order: an apply moves the unchanged entries
    /// into the next index, and no entry is compared (or copied).
    pub fn moved(files: &[IndexedFile], from: &[Option<usize>], recorded: &Recorded) -> Reuse {
        let pages = cut(files);
        let kept = pages
            .iter()
            .map(|page| {
                let (range, sum) = recorded.0.get(files[page.start].path.as_str())?;
                let same = range.len() == page.len()
                    && page
                        .clone()
                        .zip(range.clone())
                        .all(|(now, then)| from[now] == Some(then));
                same.then_some(*sum)
            })
            .collect();
        let firsts: foldhash::HashSet<&str> = pages
            .iter()
            .map(|page| files[page.start].path.as_str())
            .collect();
        let gone = recorded
            .0
            .keys()
            .filter(|first| !firsts.contains(first.as_str()))
            .cloned()
            .collect();
        Reuse { kept, gone }
    }
}

/// An index as recorded: its bytes (with its list of pages), the pages to write (first path
/// and bytes), the recorded pages to delete, and whether every recorded page goes first.
pub struct Sealed {
    pub body: Vec<u8>,
    pub pages: Vec<(String, Vec<u8>)>,
    pub gone: Vec<String>,
    pub all: bool,
}

/// Deflates `bytes` (fast level).
fn deflate(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("writing to memory");
    encoder.finish().expect("writing to memory")
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

/// An index on its way to the database: its pages serialised and deflated on a blocking
/// thread while the apply takes its lock and writes its rows.
pub struct SealingIndex(tokio::task::JoinHandle<(Sealed, FileWrites)>);

impl SealingIndex {
    /// Starts sealing `index`.
    pub fn start(mut index: PlanIndex) -> SealingIndex {
        SealingIndex(tokio::task::spawn_blocking(move || {
            let rows = std::mem::take(&mut index.rows);
            (index.seal(), rows)
        }))
    }

    /// The index as recorded ([`PlanIndex::seal`]) and the files' rows to write.
    pub async fn bytes(self) -> (Sealed, FileWrites) {
        self.0.await.expect("sealing an index does not panic")
    }
}

impl PlanIndex {
    /// The index as recorded: the pages of its list that changed, deflated each (postcard's
    /// binary form of the entries, see [`IndexedFile`]), and
    /// its own bytes (deflated JSON) listing every page with its checksum.
    pub fn seal(&self) -> Sealed {
        let cuts = cut(&self.files);
        let kept = self
            .reuse
            .as_ref()
            .filter(|reuse| reuse.kept.len() == cuts.len());
        let work: Vec<(std::ops::Range<usize>, Option<u32>)> = cuts
            .into_iter()
            .enumerate()
            .map(|(number, range)| (range, kept.and_then(|r| r.kept[number])))
            .collect();
        let made = crate::parallel::map_in_order(work, |(range, sum)| {
            let first = self.files[range.start].path.to_string();
            match sum {
                Some(sum) => (first, sum, None),
                None => {
                    let page = postcard::to_stdvec(&self.files[range]).expect("a page serialises");
                    let bytes = deflate(&page);
                    (first, crc32fast::hash(&bytes), Some(bytes))
                }
            }
        });
        let mut listed = Vec::with_capacity(made.len());
        let mut pages = Vec::new();
        for (first, sum, bytes) in made {
            if let Some(bytes) = bytes {
                pages.push((first.clone(), bytes));
            }
            listed.push((first, sum));
        }
        let index = PlanIndex {
            pages: Pages(listed),
            ..self.without_files()
        };
        let json = serde_json::to_vec(&index).expect("an index serialises");
        Sealed {
            body: deflate(&json),
            pages,
            gone: kept.map(|r| r.gone.clone()).unwrap_or_default(),
            all: kept.is_none(),
        }
    }

    /// This index without its list (what its own bytes hold).
    fn without_files(&self) -> PlanIndex {
        PlanIndex {
            reading: self.reading,
            files: Vec::new(),
            pages: Pages::default(),
            templates: self.templates.clone(),
            logins: self.logins,
            managed: self.managed.clone(),
            rows: FileWrites::default(),
            reuse: None,
        }
    }

    /// The index from its recorded bytes and the recorded pages (first path and bytes, in
    /// any order); `None` when they do not read as one (an older or damaged record, or pages
    /// not written with it: the plan is then computed in full).
    pub fn from_stored(body: &[u8], pages: Vec<(String, Vec<u8>)>) -> Option<PlanIndex> {
        let mut index: PlanIndex = inflated(body, |json| serde_json::from_slice(json))?;
        let mut stored: foldhash::HashMap<String, Vec<u8>> = pages.into_iter().collect();
        let mut work = Vec::with_capacity(index.pages.0.len());
        for (first, sum) in &index.pages.0 {
            let bytes = stored.remove(first)?;
            if crc32fast::hash(&bytes) != *sum {
                return None;
            }
            work.push((first.as_str(), bytes));
        }
        let read = crate::parallel::map_in_order(work, |(first, bytes)| {
            let files: Vec<IndexedFile> = inflated(&bytes, read_page)?;
            (files.first()?.path == first).then_some(files)
        });
        let mut files = Vec::with_capacity(read.iter().flatten().map(Vec::len).sum());
        for page in read {
            files.extend(page?);
        }
        if !files.windows(2).all(|pair| pair[0].path < pair[1].path) {
            return None;
        }
        index.files = files;
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let read = PlanIndex::from_stored(&body, pages_of(&stored));
        assert_eq!(read.as_ref().map(|r| &r.files), Some(&index.files));
        assert_eq!(read, Some(index.clone()));
        let ids = Ids::read(&Ids::of(&["C1".into(), "C2".into()]).0);
        assert_eq!(ids, Some(vec![CompactString::from("C1"), "C2".into()]));
        assert_eq!(Ids::read(b"not deflate"), None);
        assert_eq!(
            PlanIndex::from_stored(b"not deflate", pages_of(&stored)),
            None
        );
        // A page missing, or not the one recorded with the index: no index.
        assert_eq!(PlanIndex::from_stored(&body, Vec::new()), None);
        let (first, _) = stored.iter().next().unwrap();
        let other = index_of(vec![file(first, "ef")]).seal();
        let wrong = vec![(first.clone(), other.pages[0].1.clone())];
        assert_eq!(PlanIndex::from_stored(&body, wrong), None);
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
            PlanIndex::from_stored(&older, vec![(first.clone(), json_page.clone())]),
            None
        );
        let renamed = serde_json::json!({"reading": [64, false], "binary_pages": [[first, sum]],
            "templates": [], "logins": 3, "managed": [true]});
        let renamed = deflate(&serde_json::to_vec(&renamed).unwrap());
        assert_eq!(
            PlanIndex::from_stored(&renamed, vec![(first, json_page)]),
            None
        );
        // An index stored with its list inside (an older portico) reads as none.
        let older = serde_json::json!({"reading": [64, false], "files": [], "templates": [],
            "logins": 3, "managed": [true]});
        let older = deflate(&serde_json::to_vec(&older).unwrap());
        assert_eq!(PlanIndex::from_stored(&older, Vec::new()), None);
    }

    #[test]
    fn an_apply_writes_only_the_pages_whose_files_changed() {
        let files: Vec<IndexedFile> = (0..20_000)
            .map(|i| file(&format!("customers/c{i:05}.yaml"), &format!("{i:064x}")))
            .collect();
        let before = index_of(files.clone());
        let pages = cut(&files);
        assert!(pages.len() > 40 && pages.len() < 160, "{}", pages.len());
        let mut stored = foldhash::HashMap::default();
        let body = record(&mut stored, before.seal());
        let before = PlanIndex::from_stored(&body, pages_of(&stored)).unwrap();
        assert_eq!(before.files, files);
        // Three files changed, one removed, one added.
        let mut after = files.clone();
        for i in [10, 7_000, 19_999] {
            after[i].digest = id("changed");
        }
        after.remove(12_345);
        after.push(file("customers/c12345a.yaml", "new"));
        after.sort_by(|a, b| a.path.cmp(&b.path));
        let mut next = index_of(after.clone());
        next.reuse = Some(Reuse::of(&after, &before));
        let sealed = next.seal();
        assert!(!sealed.all);
        assert!(
            (3..=6).contains(&sealed.pages.len()),
            "pages written: {}",
            sealed.pages.len()
        );
        let body = record(&mut stored, sealed);
        let read = PlanIndex::from_stored(&body, pages_of(&stored)).unwrap();
        assert_eq!(read.files, after);
        // Every file removed: every page goes.
        let mut none = index_of(Vec::new());
        none.reuse = Some(Reuse::of(&[], &read));
        let sealed = none.seal();
        assert_eq!(sealed.gone.len(), read.pages.0.len());
        let body = record(&mut stored, sealed);
        assert!(stored.is_empty());
        let read = PlanIndex::from_stored(&body, Vec::new()).unwrap();
        assert!(read.files.is_empty());
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
