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
    /// Every manifest file, sorted by path.
    pub files: Vec<IndexedFile>,
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

/// One manifest file as the apply read it. Stored under one-letter names, a flag only when
/// set and secrets only when there are some: an index lists every file, and an apply
/// serialises the list again (for 100,000 one-customer files, 17.8 MB of JSON with the
/// names written out, 12.1 MB so; deflated, 4.1 MB either way, and deflating the digests
/// is most of the 52 ms it takes). An older index reads as none: that plan is full.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedFile {
    /// Relative to the manifest root, with `/` separators.
    #[serde(rename = "p")]
    pub path: String,
    /// SHA-256 of its bytes, hex.
    #[serde(rename = "d")]
    pub digest: String,
    /// Whether it declares nothing but `customers:` (or nothing at all).
    #[serde(rename = "o", default, skip_serializing_if = "is_false")]
    pub only_customers: bool,
    /// Whether it has a `customers:` section (its customers' ids are in its row).
    #[serde(rename = "c", default, skip_serializing_if = "is_false")]
    pub customers: bool,
    /// The password sources its logins name, to check again: still set, still readable,
    /// still long enough.
    #[serde(rename = "s", default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretCheck>,
    /// Whether its row holds its runs of items: a plan then reads only the runs that
    /// changed.
    #[serde(rename = "g", default, skip_serializing_if = "is_false")]
    pub groups: bool,
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if"
)]
fn is_false(flag: &bool) -> bool {
    !*flag
}

/// A file's customer ids as its row stores them: a deflated JSON list (read only for the
/// files that changed: reading the ids of every file was most of the time an index took to
/// read, and writing them again most of an apply's own time).
#[derive(Clone, Debug)]
pub struct Ids(pub Vec<u8>);

impl Ids {
    /// The ids given, in their order.
    pub fn of(ids: &[CompactString]) -> Ids {
        use std::io::Write as _;
        let json = serde_json::to_vec(ids).expect("ids serialise");
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&json).expect("writing to memory");
        Ids(encoder.finish().expect("writing to memory"))
    }

    /// The ids of stored bytes; `None` when they do not read as a list.
    pub fn read(bytes: &[u8]) -> Option<Vec<CompactString>> {
        use std::io::Read as _;
        let mut json = Vec::with_capacity(bytes.len() * 4);
        flate2::read::DeflateDecoder::new(bytes)
            .read_to_end(&mut json)
            .ok()?;
        serde_json::from_slice(&json).ok()
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

/// An index on its way to the database: serialised and deflated on a blocking thread while
/// the apply takes its lock and writes its rows (2–3 ms of a 10-login apply at 300,000
/// logins, otherwise spent inside the transaction).
pub struct SealingIndex(tokio::task::JoinHandle<(Vec<u8>, FileWrites)>);

impl SealingIndex {
    /// Starts serialising `index`.
    pub fn start(mut index: PlanIndex) -> SealingIndex {
        SealingIndex(tokio::task::spawn_blocking(move || {
            let rows = std::mem::take(&mut index.rows);
            (index.to_bytes(), rows)
        }))
    }

    /// The stored bytes ([`PlanIndex::to_bytes`]) and the files' rows to write.
    pub async fn bytes(self) -> (Vec<u8>, FileWrites) {
        self.0.await.expect("serialising an index does not panic")
    }
}

impl PlanIndex {
    /// The index as stored: deflated JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        use std::io::Write as _;
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        let json = serde_json::to_vec(self).expect("an index serialises");
        encoder.write_all(&json).expect("writing to memory");
        encoder.finish().expect("writing to memory")
    }

    /// The index from its stored bytes; `None` when they do not read as one (an older or
    /// damaged record: the plan is then computed in full).
    pub fn from_bytes(bytes: &[u8]) -> Option<PlanIndex> {
        use std::io::Read as _;
        let mut json = Vec::with_capacity(bytes.len() * 4);
        flate2::read::DeflateDecoder::new(bytes)
            .read_to_end(&mut json)
            .ok()?;
        serde_json::from_slice(&json).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_reads_back_and_damage_reads_as_none() {
        let index = PlanIndex {
            reading: (64, false),
            files: vec![
                IndexedFile {
                    path: "customers/a.yaml".into(),
                    digest: "ab".into(),
                    only_customers: true,
                    customers: true,
                    secrets: vec![SecretCheck::Env("PW".into(), 10)],
                    groups: true,
                },
                IndexedFile {
                    path: "account.yaml".into(),
                    digest: "cd".into(),
                    ..IndexedFile::default()
                },
            ],
            templates: vec![],
            logins: 3,
            managed: vec![true; 8],
            rows: FileWrites::default(),
        };
        let read = PlanIndex::from_bytes(&index.to_bytes());
        assert_eq!(read, Some(index));
        let ids = Ids::read(&Ids::of(&["C1".into(), "C2".into()]).0);
        assert_eq!(ids, Some(vec![CompactString::from("C1"), "C2".into()]));
        assert_eq!(Ids::read(b"not deflate"), None);
        assert_eq!(PlanIndex::from_bytes(b"not deflate"), None);
        // An index stored with the names written out (an older portico) reads as none.
        let mut older = serde_json::to_value(&read).unwrap();
        older["files"][1] = serde_json::json!({"path": "account.yaml", "digest": "cd",
            "only_customers": false, "customers": false, "secrets": [], "groups": false});
        let older = serde_json::to_vec(&older).unwrap();
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut encoder, &older).unwrap();
        assert_eq!(PlanIndex::from_bytes(&encoder.finish().unwrap()), None);
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
