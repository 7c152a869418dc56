//! Manifest files as git knows them: each file's digest is its git blob id, and git's index
//! (read, never written) tells a plan which files did not change without reading them.
//!
//! Git records, for every file it checks out or adds, the file's blob id with the `stat`
//! data the file had then (times to the nanosecond, size, inode, owner). While those still
//! match and the entry is not "racily clean" (written in the same instant as the index, when
//! a later edit could keep them), the file still has that blob id: `git status` relies on it,
//! and so does a plan, paying one `stat` per file instead of an open and a read. A fresh
//! clone writes such an index, so it holds in CI.
//!
//! A leaf: it imports nothing from the rest of the crate.

use std::path::{Path, PathBuf};

/// A file's digest: its git blob id (SHA-1 of `blob <size>\0` and its bytes).
pub type BlobId = [u8; 20];

/// The git blob id of `bytes`. SHA-1 with git's collision detection: bytes crafted to
/// collide (git refuses to add them) get an id of SHA-256 instead, which no git index lists
/// and no other content shares, so such a file is always read and compared by what it holds.
pub fn blob_id(bytes: &[u8]) -> BlobId {
    let mut hasher = BlobHasher::new(bytes.len() as u64);
    hasher.update(bytes);
    hasher.finish().unwrap_or_else(|| collision_id(bytes))
}

fn collision_id(bytes: &[u8]) -> BlobId {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    hasher.update(b"portico: sha-1 collision attack detected\n");
    hasher.update(bytes);
    let digest = hasher.finalize();
    let mut id = [0u8; 20];
    id.copy_from_slice(&digest[..20]);
    id
}

/// A git blob id computed as a file streams by: its size must be known first.
pub struct BlobHasher(gix_hash::Hasher);

impl BlobHasher {
    /// A hasher for `size` bytes.
    pub fn new(size: u64) -> BlobHasher {
        let mut hasher = gix_hash::hasher(gix_hash::Kind::Sha1);
        hasher.update(format!("blob {size}\0").as_bytes());
        BlobHasher(hasher)
    }

    /// Hashes the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The blob id; `None` when the bytes were crafted to collide (see [`blob_id`]).
    pub fn finish(self) -> Option<BlobId> {
        let id = self.0.try_finalize().ok()?;
        id.as_bytes().try_into().ok()
    }
}

/// An index file bigger than this is not read: a repository of millions of files, where
/// decoding the whole index would cost more than reading the manifests it saves.
const MAX_INDEX_BYTES: u64 = 256 << 20;

/// Git's index of the work tree a manifest folder is in.
pub struct GitIndex {
    /// The manifest folder's path in the work tree, ending in `/` (empty at its top).
    prefix: String,
    /// The top of the work tree.
    top: PathBuf,
    file: gix_index::File,
}

/// How the files under the manifest folder compare with git's index (see
/// [`GitIndex::committed`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Worktree {
    /// Every file git's index lists under the folder has the bytes of its entry, and the
    /// files under it git's index does not list are these: git's ignore rules say whether
    /// they count.
    Indexed(Vec<PathBuf>),
    /// Not known without asking git (a file differs, is gone, or is not a plain file).
    Unknown,
}

impl GitIndex {
    /// The index of the git work tree the folder `root` is in, found as git finds it (a
    /// `.git` folder, or a `.git` file naming the folder, in `root` or above it). `None`
    /// when there is none, or it does not read (then every file is read).
    pub fn near(root: &Path) -> Option<GitIndex> {
        let root = std::fs::canonicalize(root).ok()?;
        let (top, git_dir) = work_tree_of(&root)?;
        let path = git_dir.join("index");
        // Only a regular file is opened: a FIFO there (a repository someone else prepared)
        // would block the open for ever, a device would read without end.
        let meta = std::fs::metadata(&path).ok()?;
        if !meta.is_file() || meta.len() > MAX_INDEX_BYTES {
            return None;
        }
        let options = gix_index::decode::Options {
            alloc_limit_bytes: Some(1 << 30),
            ..Default::default()
        };
        // The trailing checksum is not verified: every entry used is checked against the
        // file it describes, which a damaged entry does not match.
        let file = gix_index::File::at(path, gix_hash::Kind::Sha1, true, options).ok()?;
        let inside = root.strip_prefix(&top).ok()?;
        let mut prefix = String::new();
        for part in inside.components() {
            prefix.push_str(part.as_os_str().to_str()?);
            prefix.push('/');
        }
        Some(GitIndex { prefix, top, file })
    }

    /// The blob id of the manifest file `name` (relative to the manifest folder, with `/`
    /// separators) when git's index lists it as a regular file whose `stat` data are still
    /// `now` (the file's own, a symlink not followed) and were not taken in the instant the
    /// index was written. `None`: the file must be read.
    pub fn unchanged(&self, name: &str, now: &rustix::fs::Stat) -> Option<BlobId> {
        self.unchanged_at(self.place(name)?, now)
    }

    /// The place in git's index of the manifest file `name` (relative to the manifest
    /// folder, with `/` separators), when it lists it unconflicted.
    pub fn place(&self, name: &str) -> Option<usize> {
        self.place_after(name, None)
    }

    /// [`GitIndex::place`], looked for first right after `before`, the place of the file
    /// listed before it: files are listed in git's order, so that is nearly always where it
    /// is (a binary search of 100,000 entries for each of 100,000 files was a twentieth of
    /// a plan's processor time). Any other place is found by the search.
    pub fn place_after(&self, name: &str, before: Option<usize>) -> Option<usize> {
        use gix_index::entry::Stage;
        let mut path = Vec::with_capacity(self.prefix.len() + name.len());
        path.extend_from_slice(self.prefix.as_bytes());
        path.extend_from_slice(name.as_bytes());
        let next = before.map_or(0, |at| at + 1);
        if let Some(entry) = self.file.entries().get(next)
            && entry.stage() == Stage::Unconflicted
            && entry.path(&self.file) == path.as_slice()
        {
            return Some(next);
        }
        self.file
            .entry_index_by_path_and_stage(path.as_slice().into(), Stage::Unconflicted)
    }

    /// The blob id of the entry at `place` when it is a regular file with content in the
    /// index (not one only intended to be added, `git add -N`, whose id is the empty blob's).
    pub fn id_at(&self, place: usize) -> Option<BlobId> {
        use gix_index::entry::{Flags, Mode};
        let entry = self.file.entries().get(place)?;
        let regular = (entry.mode == Mode::FILE || entry.mode == Mode::FILE_EXECUTABLE)
            && !entry.flags.contains(Flags::INTENT_TO_ADD);
        regular
            .then(|| entry.id.as_bytes().try_into().ok())
            .flatten()
    }

    /// [`GitIndex::unchanged`] of the entry at `place`.
    pub fn unchanged_at(&self, place: usize, now: &rustix::fs::Stat) -> Option<BlobId> {
        use gix_index::entry::{Flags, Mode};
        let entry = self.file.entries().get(place)?;
        let trusted = !entry
            .flags
            .intersects(Flags::ASSUME_VALID | Flags::SKIP_WORKTREE | Flags::INTENT_TO_ADD);
        let regular = entry.mode == Mode::FILE || entry.mode == Mode::FILE_EXECUTABLE;
        let options = gix_index::entry::stat::Options {
            trust_ctime: true,
            check_stat: true,
            use_nsec: true,
            use_stdev: false,
        };
        let clean = entry.stat.matches(&stat_of(now), options)
            && !entry.stat.is_racy(self.file.timestamp(), options);
        if !(trusted && regular && clean) {
            return None;
        }
        entry.id.as_bytes().try_into().ok()
    }
}

impl GitIndex {
    /// Whether the files under the manifest folder are those git's index lists (the `-dirty`
    /// mark of an apply made outside CI, without `git status` reading every file's `stat`
    /// data again), from what a plan found: `listed`, each manifest's place in git's index
    /// (`None`: not there) and whether it has the bytes of that entry (known from its `stat`
    /// data, or read), and `others`, the folder's entries the listing saw but did not read
    /// (files that are not manifests, hidden files and folders). Each entry under the folder
    /// that no manifest matched is looked at here (`lstat`, and read when its `stat` data
    /// changed). Anything unsure is [`Worktree::Unknown`]: git is then asked.
    pub fn committed(
        &self,
        listed: impl Iterator<Item = (Option<usize>, bool)>,
        others: &[PathBuf],
    ) -> Worktree {
        let count = self.file.entries().len();
        let mut matched = vec![false; count];
        for (place, same) in listed {
            // A manifest git does not list, or whose bytes are not its entry's: git tells.
            match place {
                Some(place) if same && place < count => matched[place] = true,
                _ => return Worktree::Unknown,
            }
        }
        let range = self
            .file
            .prefixed_entries_range(self.prefix.as_bytes().into())
            .unwrap_or(0..0);
        for place in range {
            if !matched[place] && !self.has_its_bytes(place) {
                return Worktree::Unknown;
            }
        }
        let mut paths = Vec::new();
        for other in others {
            if !self.untracked_under(other, &mut paths) {
                return Worktree::Unknown;
            }
        }
        Worktree::Indexed(paths)
    }

    /// Whether the entry at `place` (not matched by the plan) has its bytes: a regular file
    /// whose `stat` data are unchanged, or whose bytes read have its blob id (a file over
    /// 64 MiB is not read: git is asked).
    fn has_its_bytes(&self, place: usize) -> bool {
        const MOST_READ: i64 = 64 << 20;
        let entry = &self.file.entries()[place];
        if entry.stage_raw() != 0 {
            return false;
        }
        let Ok(path) = std::str::from_utf8(entry.path(&self.file)) else {
            return false;
        };
        let path = self.top.join(path);
        let Ok(now) = rustix::fs::lstat(&path) else {
            return false;
        };
        if self.unchanged_at(place, &now).is_some() {
            return true;
        }
        let Some(id) = self.id_at(place) else {
            return false;
        };
        // Only a regular file is opened (a FIFO would block the open).
        let regular =
            rustix::fs::FileType::from_raw_mode(now.st_mode) == rustix::fs::FileType::RegularFile;
        if !regular || now.st_size > MOST_READ {
            return false;
        }
        std::fs::read(&path).is_ok_and(|bytes| blob_id(&bytes) == id)
    }

    /// Adds to `paths` the files at `path` (a file, or a folder walked) that git's index
    /// does not list; `false` when there are too many to ask git about, one does not read,
    /// or a repository is inside.
    fn untracked_under(&self, path: &Path, paths: &mut Vec<PathBuf>) -> bool {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return false;
        };
        let (Some(name), Some(folder)) = (path.file_name(), path.parent()) else {
            return false;
        };
        let folder = if folder.as_os_str().is_empty() {
            Path::new(".")
        } else {
            folder
        };
        std::fs::canonicalize(folder)
            .is_ok_and(|folder| self.untracked_in(&folder, name, &meta, paths))
    }

    /// [`GitIndex::untracked_under`] of the entry `name` of the folder `folder` (a path
    /// without symbolic links), whose own metadata (not followed) are `meta`.
    fn untracked_in(
        &self,
        folder: &Path,
        name: &std::ffi::OsStr,
        meta: &std::fs::Metadata,
        paths: &mut Vec<PathBuf>,
    ) -> bool {
        const MOST: usize = 64;
        if name == ".git" {
            // The work tree's own; any other is a repository inside it (git status shows it
            // as one untracked folder, or a submodule): git is asked.
            return folder == self.top;
        }
        let path = folder.join(name);
        if meta.is_dir() {
            let Ok(entries) = std::fs::read_dir(&path) else {
                return false;
            };
            return entries.into_iter().all(|entry| {
                entry.is_ok_and(|entry| {
                    entry.metadata().is_ok_and(|meta| {
                        self.untracked_in(&path, &entry.file_name(), &meta, paths)
                    })
                })
            });
        }
        let Some(inside) = path.strip_prefix(&self.top).ok().and_then(Path::to_str) else {
            return false;
        };
        let listed = self
            .file
            .entry_index_by_path_and_stage(
                inside.as_bytes().into(),
                gix_index::entry::Stage::Unconflicted,
            )
            .is_some();
        if !listed {
            paths.push(path);
        }
        paths.len() <= MOST
    }
}

/// The top of the work tree `root` is in, and its git folder.
fn work_tree_of(root: &Path) -> Option<(PathBuf, PathBuf)> {
    for dir in root.ancestors() {
        let dot_git = dir.join(".git");
        match std::fs::symlink_metadata(&dot_git) {
            Ok(meta) if meta.is_dir() => return Some((dir.to_path_buf(), dot_git)),
            Ok(meta) if meta.is_file() => {
                // A linked work tree or a submodule: `gitdir: <folder>`.
                let text = std::fs::read_to_string(&dot_git).ok()?;
                let named = text.strip_prefix("gitdir:")?.trim();
                return Some((dir.to_path_buf(), dir.join(named)));
            }
            _ => {}
        }
    }
    None
}

/// `stat` data as git's index keeps them: the low 32 bits of each number, as git does.
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "git's index keeps the low 32 bits of each"
)]
fn stat_of(now: &rustix::fs::Stat) -> gix_index::entry::Stat {
    use gix_index::entry::stat::Time;
    gix_index::entry::Stat {
        mtime: Time {
            secs: now.st_mtime as u32,
            nsecs: now.st_mtime_nsec as u32,
        },
        ctime: Time {
            secs: now.st_ctime as u32,
            nsecs: now.st_ctime_nsec as u32,
        },
        dev: now.st_dev as u32,
        ino: now.st_ino as u32,
        uid: now.st_uid,
        gid: now.st_gid,
        size: now.st_size as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_id_is_the_one_git_gives() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            hex(&blob_id(b"hello\n")),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        // `git hash-object /dev/null`
        assert_eq!(
            hex(&blob_id(b"")),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
        let mut streamed = BlobHasher::new(6);
        streamed.update(b"hel");
        streamed.update(b"lo\n");
        assert_eq!(streamed.finish(), Some(blob_id(b"hello\n")));
    }

    /// Runs git in `dir` (no user or system configuration); whether it succeeded.
    fn git_ran(dir: &Path, args: &[&str]) -> bool {
        std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("git runs")
            .success()
    }

    fn git(dir: &Path, args: &[&str]) {
        assert!(git_ran(dir, args), "git {args:?}");
    }

    fn stat(path: &Path) -> rustix::fs::Stat {
        rustix::fs::lstat(path).unwrap()
    }

    /// Found from a folder inside the work tree, in the main work tree and in a linked one
    /// (whose `.git` is a file); nothing outside one.
    #[test]
    fn the_index_of_the_work_tree_a_folder_is_in_knows_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("repo");
        std::fs::create_dir_all(top.join("deploy/manifests")).unwrap();
        let file = top.join("deploy/manifests/a.yaml");
        std::fs::write(&file, "customers: []\n").unwrap();
        git(&top, &["init", "-q"]);
        git(&top, &["add", "-A"]);
        git(&top, &["commit", "-q", "-m", "one"]);
        git(&top, &["worktree", "add", "-q", "../linked"]);
        // Past the clock's grain, then the index written again: its entries are older.
        std::thread::sleep(std::time::Duration::from_millis(15));
        for tree in [top.clone(), dir.path().join("linked")] {
            git(&tree, &["update-index", "--really-refresh"]);
            git(&tree, &["status", "--porcelain"]);
            let folder = tree.join("deploy/manifests");
            let index = GitIndex::near(&folder).expect("in a work tree");
            let path = folder.join("a.yaml");
            let id = index.unchanged("a.yaml", &stat(&path));
            assert_eq!(id, Some(blob_id(b"customers: []\n")), "{}", tree.display());
            assert_eq!(index.unchanged("b.yaml", &stat(&path)), None);
        }
        assert!(GitIndex::near(dir.path()).is_none());
    }

    /// A place looked for after another is the place the search finds, whatever the hint:
    /// the entry right after it, another, past the end, or a path in conflict (its three
    /// stages listed, none unconflicted).
    #[test]
    fn a_place_found_after_another_is_the_place_searched() {
        let dir = tempfile::tempdir().unwrap();
        let top = std::fs::canonicalize(dir.path()).unwrap();
        let names = [
            "a.yaml", "b.yaml", "c/d.yaml", "c-e.yaml", "m.yaml", "z.yaml",
        ];
        for name in names {
            let path = top.join("m").join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, format!("# {name}\n")).unwrap();
        }
        git(&top, &["init", "-q", "-b", "main"]);
        git(&top, &["add", "-A"]);
        git(&top, &["commit", "-q", "-m", "one"]);
        git(&top, &["checkout", "-q", "-b", "other"]);
        std::fs::write(top.join("m/m.yaml"), "# other\n").unwrap();
        git(&top, &["commit", "-q", "-am", "other"]);
        git(&top, &["checkout", "-q", "main"]);
        std::fs::write(top.join("m/m.yaml"), "# main\n").unwrap();
        git(&top, &["commit", "-q", "-am", "main"]);
        // The merge stops on the conflict: m.yaml at stages 1-3.
        assert!(!git_ran(&top, &["merge", "-q", "other"]), "a conflict");
        let index = GitIndex::near(&top.join("m")).unwrap();
        let entries = index.file.entries().len();
        assert_eq!(
            entries,
            names.len() + 2,
            "m.yaml in conflict: three entries"
        );
        assert_eq!(index.place("m.yaml"), None);
        for name in names.iter().chain(&["absent.yaml", "c"]) {
            let searched = index.place(name);
            for hint in (0..entries + 2).map(Some).chain([None]) {
                assert_eq!(
                    index.place_after(name, hint),
                    searched,
                    "{name} after {hint:?}"
                );
            }
        }
    }

    /// The comparison behind an apply's `-dirty` mark: everything as git's index lists it is
    /// `Indexed` with the untracked files named; a tracked file turned into a FIFO, too many
    /// untracked files, or a repository inside is `Unknown` (git is asked), and a FIFO is
    /// never opened.
    #[test]
    fn the_work_tree_compared_with_git_s_index() {
        let dir = tempfile::tempdir().unwrap();
        let top = std::fs::canonicalize(dir.path()).unwrap();
        let m = top.join("m");
        std::fs::create_dir_all(m.join(".hidden")).unwrap();
        std::fs::write(m.join("a.yaml"), "customers: []\n").unwrap();
        std::fs::write(m.join("README.md"), "Access.\n").unwrap();
        std::fs::write(m.join(".hidden/x"), "x\n").unwrap();
        git(&top, &["init", "-q"]);
        git(&top, &["add", "-A"]);
        git(&top, &["commit", "-q", "-m", "one"]);
        let compare = || {
            let index = GitIndex::near(&m).unwrap();
            let a = index.place("a.yaml");
            assert!(a.is_some());
            let others = [m.join("README.md"), m.join(".hidden")];
            let (sent, got) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                sent.send(index.committed([(a, true)].into_iter(), &others))
            });
            got.recv_timeout(std::time::Duration::from_secs(10))
                .expect("the comparison does not block")
        };
        assert_eq!(compare(), Worktree::Indexed(Vec::new()));
        for n in 0..3 {
            std::fs::write(m.join(format!(".hidden/new{n}")), "n\n").unwrap();
        }
        let Worktree::Indexed(untracked) = compare() else {
            panic!("three untracked files are named");
        };
        assert_eq!(untracked.len(), 3);
        assert!(untracked.iter().all(|p| p.starts_with(m.join(".hidden"))));
        for n in 3..70 {
            std::fs::write(m.join(format!(".hidden/new{n}")), "n\n").unwrap();
        }
        assert_eq!(compare(), Worktree::Unknown, "too many to ask git about");
        std::fs::remove_dir_all(m.join(".hidden")).unwrap();
        std::fs::create_dir_all(m.join(".hidden/inner/.git")).unwrap();
        std::fs::write(m.join(".hidden/x"), "x\n").unwrap();
        assert_eq!(compare(), Worktree::Unknown, "a repository inside");
        std::fs::remove_dir_all(m.join(".hidden/inner")).unwrap();
        assert_eq!(compare(), Worktree::Indexed(Vec::new()));
        std::fs::remove_file(m.join("README.md")).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(m.join("README.md"))
            .status()
            .unwrap();
        assert!(made.success());
        assert_eq!(compare(), Worktree::Unknown, "a tracked file is a FIFO now");
    }

    /// An index that is not a regular file (a FIFO, a folder) is not opened: a plan reads
    /// every file instead of waiting on it.
    #[test]
    fn an_index_that_is_not_a_file_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let git_dir = dir.path().join(".git");
        std::fs::create_dir_all(&git_dir).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(git_dir.join("index"))
            .status()
            .unwrap();
        assert!(made.success());
        let root = dir.path().to_path_buf();
        let (sent, got) = std::sync::mpsc::channel();
        std::thread::spawn(move || sent.send(GitIndex::near(&root).is_none()));
        let none = got.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(none, Ok(true), "a FIFO index blocked or was read");
        std::fs::remove_file(git_dir.join("index")).unwrap();
        std::fs::create_dir(git_dir.join("index")).unwrap();
        assert!(GitIndex::near(dir.path()).is_none());
    }

    fn hex(id: &BlobId) -> String {
        id.iter().map(|b| format!("{b:02x}")).collect()
    }
}
