//! The plan index of a valid manifest set (see `state::PlanIndex`): each file's digest, what
//! it declares, its customers' ids and the password sources it names.

use compact_str::CompactString;
use std::path::Path;

use super::{Desired, Sections};
use crate::manifest::load::ManifestSet;
use crate::manifest::model::PasswordSource;
use crate::state::{FileId, FileWrites, Ids, IndexedFile, PlanIndex, SecretCheck, State};

impl Sections {
    /// The eight flags in a fixed order (what the plan index records).
    pub fn as_list(&self) -> Vec<bool> {
        vec![
            self.features,
            self.websites,
            self.login_policy,
            self.notifications,
            self.roles,
            self.customers,
            self.policies,
            self.oidc_clients,
        ]
    }
}

/// A file's path as the index and the manifests' digest name it: relative to the root.
pub fn relative_name(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The digest of a template file read as validation reads it (inside the manifest folder,
/// a regular file, within `limit`); one that cannot be read has the digest of nothing, and
/// then differs from any recorded one.
pub fn template_digest(root: &Path, path: &str, limit: u64) -> String {
    let text = crate::files::read_inside("template", root, root, path, limit).unwrap_or_default();
    file_digest(text.as_bytes()).to_string()
}

/// The digest of a manifest or template file: its git blob id.
pub fn file_digest(bytes: &[u8]) -> FileId {
    FileId(crate::gitindex::blob_id(bytes))
}

/// The size and digest ([`file_digest`]) of an open file's bytes, streamed through one
/// buffer per thread. Reading stops past `limit` bytes (the size then says so; the digest is
/// of no use). A file whose size changes while it is read, or crafted to collide SHA-1, does
/// not read (an error: a plan is then full, and reads what it parses).
pub fn file_digest_of(mut file: std::fs::File, limit: u64) -> std::io::Result<(u64, FileId)> {
    use std::io::Read as _;
    thread_local! {
        // Made once per thread: a new zeroed 128 KiB buffer per file was a fifth of the
        // time of hashing an account of 100,000 one-customer files.
        static BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 1 << 17]);
    }
    let changed = || std::io::Error::other("the file changed while it was read");
    BUFFER.with_borrow_mut(|buffer| {
        // A blob id starts with the size: a file that fits the buffer is read whole first
        // (most do), a bigger one is streamed after asking the file system its size.
        let mut held = 0;
        while held < buffer.len() {
            match file.read(&mut buffer[held..]) {
                Ok(0) => {
                    return Ok((held as u64, file_digest(&buffer[..held])));
                }
                Ok(n) => held += n,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        let expected = file.metadata()?.len();
        if expected > limit {
            return Ok((expected, FileId::default()));
        }
        let mut hasher = crate::gitindex::BlobHasher::new(expected);
        hasher.update(&buffer[..held]);
        let mut size = held as u64;
        loop {
            match file.read(buffer) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&buffer[..n]);
                    size += n as u64;
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
            if size > expected {
                return Err(changed());
            }
        }
        let id = hasher
            .finish()
            .ok_or_else(|| std::io::Error::other("crafted to collide SHA-1"))?;
        if size != expected {
            return Err(changed());
        }
        Ok((size, FileId(id)))
    })
}

/// The index of `set`, validated into `desired` against `live`. `logins` is left at 0: the
/// store counts them after the apply.
pub fn index_of(set: &ManifestSet, desired: &Desired, live: Option<&State>) -> PlanIndex {
    let min = desired
        .state
        .login_policy
        .as_ref()
        .or_else(|| live.and_then(|l| l.login_policy.as_ref()))
        .map_or(10, |p| p.password.min_length as usize);
    let mut ids: Vec<Option<Vec<CompactString>>> = set
        .sources
        .iter()
        .enumerate()
        .map(|(index, _)| {
            let declared = set.declared.get(index).copied().unwrap_or_default();
            declared.customers.then(Vec::new)
        })
        .collect();
    let mut files: Vec<IndexedFile> = set
        .sources
        .iter()
        .enumerate()
        .map(|(index, source)| {
            let declared = set.declared.get(index).copied().unwrap_or_default();
            IndexedFile {
                path: relative_name(&set.root, &source.path).into(),
                digest: FileId(*source.digest()),
                size: source.digested_size(),
                only_customers: !declared.other,
                customers: declared.customers,
                secrets: Vec::new(),
                groups: false,
                ids: Vec::new(),
            }
        })
        .collect();
    for customer in set.customers.iter().flatten() {
        let file = &mut files[customer.site.file];
        if let Some(ids) = &mut ids[customer.site.file] {
            ids.push(customer.value.id.as_str().into());
        }
        let base = set.sources[customer.site.file].path.parent();
        let sources = std::iter::once(customer.value.access.password.as_deref())
            .chain(
                customer
                    .value
                    .contacts
                    .iter()
                    .map(|c| c.password.as_deref()),
            )
            .flatten();
        for source in sources {
            if let Some(check) = secret_check(set, base, source, min) {
                file.secrets.push(check);
            }
        }
    }
    for client in set.oidc_clients.iter().flatten() {
        let base = set.sources[client.site.file].path.parent();
        if let Some(source) = &client.value.secret
            && let Some(check) = secret_check(set, base, source, super::MIN_CLIENT_SECRET)
        {
            files[client.site.file].secrets.push(check);
        }
    }
    let rows = rows_of_files(set, &mut files, ids);
    for file in &mut files {
        file.secrets.sort();
        file.secrets.dedup();
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    PlanIndex {
        reading: (set.reading.max_file_bytes, set.reading.policy_warn_only),
        files,
        templates: templates(set),
        logins: 0,
        managed: desired.managed.as_list(),
        rows,
        ..PlanIndex::default()
    }
}

/// The rows of the files with customers (their ids, and for the files of customers alone
/// their runs of items, marked in their entries), to record in place of every stored one.
fn rows_of_files(
    set: &ManifestSet,
    files: &mut [IndexedFile],
    ids: Vec<Option<Vec<CompactString>>>,
) -> FileWrites {
    let work: Vec<(usize, bool, Vec<CompactString>)> = ids
        .into_iter()
        .enumerate()
        .filter_map(|(index, ids)| Some((index, files[index].only_customers, ids?)))
        .collect();
    // A file of fewer customers than two runs' worth is compared whole when it changes: its
    // runs are not worth reading it again for (for 100,000 one-customer files, a third of
    // the time an index took).
    let least = 2 * usize::from(crate::manifest::split::group_items());
    let rows = crate::parallel::map_in_order(work, |(index, alone, ids)| {
        let runs = (alone && ids.len() >= least)
            .then(|| groups_of(&set.sources[index], ids.len()))
            .flatten();
        if runs.is_none() && !ids.is_empty() && ids.len() <= crate::state::INLINE_IDS {
            return (index, Stored::Inline(ids), None);
        }
        (index, Stored::Row(Ids::of(&ids)), runs)
    });
    let mut writes = FileWrites {
        all: true,
        ..FileWrites::default()
    };
    for (index, ids, runs) in rows {
        let file = &mut files[index];
        file.groups = runs.is_some();
        match ids {
            Stored::Inline(ids) => file.ids = ids,
            Stored::Row(ids) => {
                writes
                    .rows
                    .push((file.path.to_string(), file.digest.to_string(), ids.0, runs));
            }
        }
    }
    writes
}

/// Where a file's customer ids are kept: in its entry (a few, no runs), or in its row.
enum Stored {
    Inline(Vec<CompactString>),
    Row(Ids),
}

/// The runs of items of a file of `count` customers, as stored, read again from disk (the
/// parse released its text): `None` when the file is not of the plainest layout, has
/// anchors, changed since it was parsed, or its items are not its customers one for one.
fn groups_of(source: &crate::manifest::Source, count: usize) -> Option<Vec<u8>> {
    // A file of another size now, or parsed from a part of its text (an incremental plan's
    // changed runs: that apply records the runs it read), is not read again: reading and
    // hashing a changed 1.6 MB file to find that was 3 ms of a 10-login apply's 25.
    let size = std::fs::metadata(&source.path).ok()?.len();
    if size != source.digested_size() {
        return None;
    }
    let text = std::fs::read_to_string(&source.path).ok()?;
    if file_digest(text.as_bytes()).0 != *source.digest() {
        return None;
    }
    let runs = crate::manifest::split::groups(&text)?;
    let items: usize = runs.iter().map(|g| g.items as usize).sum();
    (items == count).then(|| crate::manifest::split::encode(&runs))
}

/// What a plan checks again of a password source: an environment variable or a file.
fn secret_check(
    set: &ManifestSet,
    base: Option<&Path>,
    source: &PasswordSource,
    min: usize,
) -> Option<SecretCheck> {
    if let Some(name) = &source.env {
        return Some(SecretCheck::Env(name.clone(), min));
    }
    let path = source.file.as_ref()?;
    let full = base.unwrap_or(Path::new(".")).join(path);
    Some(SecretCheck::File(relative_name(&set.root, &full), min))
}

/// The message template files the notifications section names, with their digests.
fn templates(set: &ManifestSet) -> Vec<(String, String)> {
    let Some(notifications) = &set.notifications else {
        return Vec::new();
    };
    let n = &notifications.value;
    let mut paths: Vec<&String> = Vec::new();
    for files in [&n.template, &n.reset_template].into_iter().flatten() {
        paths.extend([&files.subject, &files.text]);
        paths.extend(files.html.as_ref());
    }
    let mut found: Vec<(String, String)> = paths
        .into_iter()
        .map(|path| {
            (
                path.clone(),
                template_digest(&set.root, path, set.reading.max_file_bytes),
            )
        })
        .collect();
    found.sort();
    found.dedup();
    found
}
