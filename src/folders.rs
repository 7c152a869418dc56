//! The folders of a list of manifest files, each opened once, so that each file is looked
//! up by its name in its folder (`statat`, `openat`) instead of by a path walked again from
//! the root: for 100,000 files in `customers/`, each walk of five components took longer
//! than the work on the file.
//!
//! A leaf: it imports nothing from the rest of the crate.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fd::OwnedFd;

/// The folders of a list of files (the listing's order: a folder's files together).
pub struct Folders {
    /// Each file's folder (an index in `open`), by the file's place in the list.
    of: Vec<usize>,
    /// Each folder, when it could be opened (a file in one that could not is opened by
    /// its path, which then reports the problem).
    open: Vec<Option<Arc<OwnedFd>>>,
    /// Each folder's name relative to the root, ending in `/` (empty for the root), when it
    /// is text inside the root.
    names: Vec<Option<String>>,
}

impl Folders {
    /// Opens the folders of `paths` (found under `root`), each once.
    pub fn of(root: &Path, paths: &[PathBuf]) -> Folders {
        use rustix::fs::{Mode, OFlags};
        let mut folders = Folders {
            of: Vec::with_capacity(paths.len()),
            open: Vec::new(),
            names: Vec::new(),
        };
        let mut last: Option<&Path> = None;
        for path in paths {
            let parent = split_name(path).0.unwrap_or(Path::new("."));
            if last.map(Path::as_os_str) != Some(parent.as_os_str()) {
                let parent_or_here = if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                };
                let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
                let opened = rustix::fs::open(parent_or_here, flags, Mode::empty()).ok();
                folders.open.push(opened.map(Arc::new));
                let name = parent.strip_prefix(root).ok().and_then(Path::to_str);
                folders.names.push(name.map(|name| match name {
                    "" => String::new(),
                    name => format!("{name}/"),
                }));
                last = Some(parent);
            }
            folders.of.push(folders.open.len() - 1);
        }
        folders
    }

    /// The name, relative to the root and ending in `/`, of the `at`-th file's folder, when
    /// it is text inside the root.
    pub fn folder_name(&self, at: usize) -> Option<&str> {
        self.of.get(at).and_then(|&f| self.names[f].as_deref())
    }

    /// The `at`-th file's folder, opened, when it could be.
    pub fn folder(&self, at: usize) -> Option<&Arc<OwnedFd>> {
        self.of.get(at).and_then(|&f| self.open[f].as_ref())
    }

    /// The status of the `at`-th file of the list, `path`, looked up in its folder, of the
    /// file itself when it is a symlink (as git records it); `None` when it cannot be had.
    pub fn lstat(&self, at: usize, path: &Path) -> Option<rustix::fs::Stat> {
        self.stat_with(at, path, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
    }

    /// The status of the `at`-th file of the list, `path`, looked up in its folder, of what
    /// it leads to when it is a symlink (as reading it finds); `None` when it cannot be had.
    pub fn stat(&self, at: usize, path: &Path) -> Option<rustix::fs::Stat> {
        self.stat_with(at, path, rustix::fs::AtFlags::empty())
    }

    fn stat_with(
        &self,
        at: usize,
        path: &Path,
        flags: rustix::fs::AtFlags,
    ) -> Option<rustix::fs::Stat> {
        let folder = self.folder(at)?;
        rustix::fs::statat(&**folder, split_name(path).1?, flags).ok()
    }

    /// Opens the `at`-th file of the list, `path`, for reading.
    ///
    /// # Errors
    /// The open's.
    pub fn open(&self, at: usize, path: &Path) -> std::io::Result<std::fs::File> {
        open_in(self.folder(at).map(|f| &**f), path)
    }
}

/// Opens `path` for reading by its name in `folder` (its folder, opened), or by its path
/// when there is none or the path has no name.
///
/// # Errors
/// The open's.
pub fn open_in(folder: Option<&OwnedFd>, path: &Path) -> std::io::Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags};
    match (folder, split_name(path).1) {
        (Some(folder), Some(name)) => {
            let flags = OFlags::RDONLY | OFlags::CLOEXEC;
            let fd = rustix::fs::openat(folder, name, flags, Mode::empty())?;
            Ok(std::fs::File::from(fd))
        }
        _ => std::fs::File::open(path),
    }
}

/// A listed file's folder and name ([`Path::parent`], [`Path::file_name`]), found by its last
/// `/` as the listing joined them: taking the path apart into its components, three times a
/// file, was 3 ms of a plan of 100,000 files, one of them on its critical path. A path that
/// is not plainly `folder/name` is taken apart as before.
pub fn split_name(path: &Path) -> (Option<&Path>, Option<&OsStr>) {
    use std::os::unix::ffi::OsStrExt as _;
    let bytes = path.as_os_str().as_bytes();
    match bytes.iter().rposition(|&b| b == b'/') {
        Some(at) if at > 0 && bytes[at - 1] != b'/' => {
            let (folder, name) = (&bytes[..at], &bytes[at + 1..]);
            if !name.is_empty() && name != b"." && name != b".." {
                let folder = Path::new(OsStr::from_bytes(folder));
                return (Some(folder), Some(OsStr::from_bytes(name)));
            }
            (path.parent(), path.file_name())
        }
        _ => (path.parent(), path.file_name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path split at its last `/` is the path taken apart by its components, whatever its
    /// shape (the folder compared as a path: `a//b`'s is `a/`, the same folder as `a`).
    #[test]
    fn a_path_split_at_its_last_slash_is_its_parent_and_file_name() {
        for path in [
            "x.yaml",
            "./x.yaml",
            "a/x.yaml",
            "/a/b/x.yaml",
            "/x.yaml",
            "a//x.yaml",
            "a/./x.yaml",
            "../a/x.yaml",
            "a/..",
            "a/.",
            "a/",
            "/",
            "",
            "a/b c/é.yaml",
            "a/.hidden.yaml",
        ] {
            let path = Path::new(path);
            let (folder, name) = split_name(path);
            assert_eq!(folder, path.parent(), "{}", path.display());
            assert_eq!(name, path.file_name(), "{}", path.display());
        }
    }

    /// A file opened or looked up through its folder is the file its path names, in the
    /// root, deeper, and in a folder with a space; one whose folder went away is opened by
    /// its path (and fails as that does).
    #[test]
    fn a_file_found_in_its_folder_is_the_file_its_path_names() {
        use std::io::Read as _;
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for (folder, text) in [("", "top"), ("a", "a"), ("a/b c", "deeper")] {
            let folder = dir.path().join(folder);
            std::fs::create_dir_all(&folder).unwrap();
            let path = folder.join("x.yaml");
            std::fs::write(&path, text).unwrap();
            paths.push(path);
        }
        let folders = Folders::of(dir.path(), &paths);
        for (at, path) in paths.iter().enumerate() {
            let mut text = String::new();
            folders
                .open(at, path)
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
            assert_eq!(text, std::fs::read_to_string(path).unwrap());
            let stat = folders.stat(at, path).unwrap();
            assert_eq!(stat.st_size as u64, std::fs::metadata(path).unwrap().len());
        }
        assert_eq!(folders.folder_name(0), Some(""));
        assert_eq!(folders.folder_name(2), Some("a/b c/"));
        // A symlink: `stat` is of the file it leads to, `lstat` of the link.
        let link = dir.path().join("link.yaml");
        std::os::unix::fs::symlink(&paths[2], &link).unwrap();
        let folders = Folders::of(dir.path(), std::slice::from_ref(&link));
        let followed = folders.stat(0, &link).unwrap().st_size as u64;
        assert_eq!(followed, std::fs::metadata(&link).unwrap().len());
        let own = folders.lstat(0, &link).unwrap().st_size as u64;
        assert_eq!(own, std::fs::symlink_metadata(&link).unwrap().len());
        assert_ne!(followed, own);
        let gone = Folders::of(dir.path(), &[dir.path().join("missing/x.yaml")]);
        assert!(gone.folder(0).is_none());
        assert!(gone.open(0, &dir.path().join("missing/x.yaml")).is_err());
    }
}
