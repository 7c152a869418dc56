//! Files the manifests point at (templates, `password: { file: }`), read only from inside the
//! manifest root, and files portico writes, replaced whole or not at all.
//!
//! A leaf: it imports nothing from the rest of the crate.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Why a referenced file was not read. The message never holds the file's content.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The path, after symlinks, leads outside the manifest root (`../x`, `/proc/self/environ`).
    #[error("{what} `{path}` is outside the manifest folder: referenced files must be inside it")]
    Outside { what: &'static str, path: String },
    /// A device, a FIFO or a folder (`/dev/zero`, a named pipe): only regular files are read.
    #[error("{what} `{path}` is not a regular file")]
    NotAFile { what: &'static str, path: String },
    /// Larger than the limit (`--max-file-size`).
    #[error("{what} `{path}` is larger than the limit of {limit_mib} MiB (--max-file-size)")]
    TooLarge {
        what: &'static str,
        path: String,
        limit_mib: u64,
    },
    /// Not UTF-8 text.
    #[error("{what} `{path}` is not valid UTF-8 text")]
    NotText { what: &'static str, path: String },
    /// Missing, or unreadable.
    #[error("cannot read {what} `{path}`: {reason}")]
    Io {
        what: &'static str,
        path: String,
        reason: String,
    },
}

/// Reads `path` (relative to `base`) as text, but only when it resolves, after every
/// symlink, to a regular file inside `root` of at most `limit` bytes. `what` names the kind
/// of file in messages ("template", "password file").
///
/// # Errors
/// [`ReadError`], naming `path` as written and never the content.
pub fn read_inside(
    what: &'static str,
    root: &Path,
    base: &Path,
    path: &str,
    limit: u64,
) -> Result<String, ReadError> {
    let shown = path.to_string();
    let io = |e: std::io::Error| ReadError::Io {
        what,
        path: shown.clone(),
        reason: e.kind().to_string(),
    };
    let root = std::fs::canonicalize(root).map_err(io)?;
    let full = std::fs::canonicalize(base.join(path)).map_err(io)?;
    if !full.starts_with(&root) {
        return Err(ReadError::Outside { what, path: shown });
    }
    // Checked before opening too: opening a FIFO blocks until someone writes to it.
    if !std::fs::metadata(&full).map_err(io)?.is_file() {
        return Err(ReadError::NotAFile { what, path: shown });
    }
    let mut file = std::fs::File::open(&full).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile { what, path: shown });
    }
    let too_large = || ReadError::TooLarge {
        what,
        path: shown.clone(),
        limit_mib: limit / (1024 * 1024),
    };
    if meta.len() > limit {
        return Err(too_large());
    }
    // The length can change between the check and the read: never read past the limit.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    Read::by_ref(&mut file)
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|_| ReadError::NotText { what, path: shown })
}

/// Writes several files, each whole or not at all: every new text is first written and
/// flushed to a unique temporary sibling, and only then are they renamed into place, one
/// after the other. A crash during the renames leaves every file old or new, never half.
///
/// # Errors
/// Any I/O error; when it happens before the renames, nothing was changed.
pub fn write_all_atomic(files: &[(PathBuf, &[u8])]) -> std::io::Result<()> {
    let mut staged = Vec::with_capacity(files.len());
    for (path, bytes) in files {
        let dir = parent_of(path);
        std::fs::create_dir_all(&dir)?;
        let mut temp = tempfile::Builder::new()
            .prefix(".portico-")
            .suffix(".tmp")
            .tempfile_in(&dir)?;
        temp.write_all(bytes)?;
        temp.as_file().sync_all()?;
        staged.push((temp, path));
    }
    for (temp, path) in staged {
        temp.persist(path).map_err(|e| e.error)?;
        sync_dir(&parent_of(path));
    }
    Ok(())
}

/// Replaces the folder `target` by one `build` fills, only once it is complete: `build`
/// writes into a new sibling folder; files of the old folder that `keep` accepts (and the
/// new one does not have) are hard-linked into it; then the old folder is renamed aside,
/// the new one renamed into place, and the old one removed. A crash leaves the old folder
/// whole, or the new one whole (between the two renames `target` is briefly missing, which
/// every command reports as an error, never as an empty account).
///
/// # Errors
/// Any I/O error; `target` is then as it was (a leftover `.portico-*` sibling may remain).
pub fn replace_dir(
    target: &Path,
    build: impl FnOnce(&Path) -> std::io::Result<()>,
    keep: impl Fn(&Path) -> bool,
) -> std::io::Result<()> {
    let parent = parent_of(target);
    std::fs::create_dir_all(&parent)?;
    let staging = tempfile::Builder::new()
        .prefix(".portico-new-")
        .tempdir_in(&parent)?;
    build(staging.path())?;
    let exists = target.exists();
    if exists {
        link_kept(target, staging.path(), Path::new(""), &keep)?;
    }
    sync_tree(staging.path())?;
    let staging = staging.keep();
    if exists {
        let aside = tempfile::Builder::new()
            .prefix(".portico-old-")
            .tempdir_in(&parent)?
            .keep();
        std::fs::remove_dir(&aside)?;
        std::fs::rename(target, &aside)?;
        std::fs::rename(&staging, target)?;
        sync_dir(&parent);
        std::fs::remove_dir_all(&aside)?;
    } else {
        std::fs::rename(&staging, target)?;
        sync_dir(&parent);
    }
    Ok(())
}

/// Hard-links (symlinks: recreates) every entry under `from/relative` that `keep` accepts and
/// `to` does not have yet.
fn link_kept(
    from: &Path,
    to: &Path,
    relative: &Path,
    keep: &impl Fn(&Path) -> bool,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from.join(relative))? {
        let entry = entry?;
        let rel = relative.join(entry.file_name());
        let kind = entry.file_type()?;
        let dest = to.join(&rel);
        if kind.is_dir() {
            link_kept(from, to, &rel, keep)?;
        } else if keep(&rel) && !dest.exists() {
            std::fs::create_dir_all(parent_of(&dest))?;
            if kind.is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &dest)?;
            } else {
                std::fs::hard_link(entry.path(), &dest)?;
            }
        }
    }
    Ok(())
}

/// Flushes every file and folder under `dir` to disk.
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            sync_tree(&entry.path())?;
        } else if kind.is_file() {
            std::fs::File::open(entry.path())?.sync_all()?;
        }
    }
    sync_dir(dir);
    Ok(())
}

/// The folder holding `path` (`.` for a bare file name).
pub fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Flushes a folder's entries (renames) to disk; a no-op where folders cannot be opened.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_inside_the_root_under_the_limit_are_read() {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("m");
        std::fs::create_dir_all(root.join("t")).unwrap();
        std::fs::write(root.join("t/ok.txt"), "hello").unwrap();
        std::fs::write(outer.path().join("secret"), "TOKEN=1").unwrap();
        std::os::unix::fs::symlink(outer.path().join("secret"), root.join("link")).unwrap();
        assert_eq!(
            read_inside("file", &root, &root, "t/ok.txt", 100).unwrap(),
            "hello"
        );
        assert_eq!(
            read_inside("file", &root, &root.join("t"), "ok.txt", 100).unwrap(),
            "hello"
        );
        for bad in ["../secret", "link", "/etc/hostname", "/proc/self/environ"] {
            let e = read_inside("file", &root, &root, bad, 100).unwrap_err();
            assert!(matches!(e, ReadError::Outside { .. }), "{bad}: {e}");
            assert!(!e.to_string().contains("TOKEN"));
        }
        assert!(matches!(
            read_inside("file", &root, &root, "t/ok.txt", 4),
            Err(ReadError::TooLarge { .. })
        ));
        assert!(matches!(
            read_inside("file", &root, &root, "t", 100),
            Err(ReadError::NotAFile { .. })
        ));
        assert!(matches!(
            read_inside("file", Path::new("/"), Path::new("/"), "/dev/zero", 100),
            Err(ReadError::NotAFile { .. })
        ));
    }

    #[test]
    fn a_replaced_folder_keeps_what_it_is_told_and_nothing_is_left_aside() {
        let outer = tempfile::tempdir().unwrap();
        let target = outer.path().join("out");
        std::fs::create_dir_all(target.join(".git")).unwrap();
        std::fs::create_dir_all(target.join("customers")).unwrap();
        std::fs::write(target.join(".git/HEAD"), "ref").unwrap();
        std::fs::write(target.join("notes.md"), "mine").unwrap();
        std::fs::write(target.join("customers/old.yaml"), "old").unwrap();
        std::fs::write(target.join("shared.yaml"), "old").unwrap();
        replace_dir(
            &target,
            |dir| std::fs::write(dir.join("shared.yaml"), "new"),
            |rel| rel.extension().is_none_or(|e| e != "yaml"),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(target.join("shared.yaml")).unwrap(),
            "new"
        );
        assert_eq!(
            std::fs::read_to_string(target.join(".git/HEAD")).unwrap(),
            "ref"
        );
        assert_eq!(
            std::fs::read_to_string(target.join("notes.md")).unwrap(),
            "mine"
        );
        assert!(!target.join("customers/old.yaml").exists());
        let names: Vec<_> = std::fs::read_dir(outer.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["out"], "no staging or old folder is left");
        // A failing build changes nothing.
        let failed = replace_dir(&target, |_| Err(std::io::Error::other("no")), |_| true);
        assert!(failed.is_err());
        assert_eq!(
            std::fs::read_to_string(target.join("shared.yaml")).unwrap(),
            "new"
        );
    }

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.yaml");
        std::fs::write(&path, "old").unwrap();
        write_all_atomic(&[(path.clone(), b"new")]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
