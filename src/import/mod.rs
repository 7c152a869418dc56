//! `portico import-csv`: NetSuite's bulk customer-access CSV applied to a manifest folder in
//! place. Customers already declared change where they are declared; new ones go to a new
//! file; plaintext passwords never reach a manifest.

pub mod columns;
pub mod edit;
pub mod read;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use compact_str::CompactString;

use crate::catalog;
use crate::manifest::model::{Contact, Customer, Document, PasswordSource};
use crate::manifest::path::{Segment, YamlPath};
use crate::manifest::{Declared, ManifestSet};
use crate::state::{PasswordMarkers, State, normalize_email};
use crate::validate::is_valid_email;
use read::{Cell, CustomerRow, Plaintext, RowError};

/// What to do with passwords found in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordMode {
    /// Hash each with argon2id and write `password: { argon2: … }`.
    Hash,
    /// Drop it and set `notify: true`: the user sets a password from the email link.
    Notify,
}

/// One manifest file that changes (or is created).
#[derive(Clone, Debug)]
pub struct FileChange {
    /// The file.
    pub path: PathBuf,
    /// Its text before (empty for a new file, and unless the import was asked to keep it:
    /// `--dry-run` shows it).
    pub before: String,
    /// Its text after.
    pub after: String,
}

/// The result of an import, before anything is written.
#[derive(Clone, Debug, Default)]
pub struct Import {
    /// Files to write.
    pub files: Vec<FileChange>,
    /// Customers changed where they are declared.
    pub updated: usize,
    /// Customers added to the new file.
    pub added: usize,
    /// Rows that changed nothing.
    pub unchanged: usize,
    /// Things the admin should know.
    pub warnings: Vec<String>,
    /// The CSV line of each customer the file changes or adds, for locating problems.
    pub lines: HashMap<String, usize>,
    /// The CSV line of each contact (customer id, lower-case email), for locating problems.
    pub contact_lines: HashMap<(String, String), usize>,
    /// The file had one row per contact (its contact columns are named differently).
    pub per_contact: bool,
}

/// A login's password decided from the file, before hashing.
enum NewPassword {
    Keep,
    Notify,
    Hash(Plaintext, Option<u32>),
}

/// What resolves role and website names, and what the live database already has.
struct Context<'a> {
    set: &'a ManifestSet,
    live: &'a Live,
    passwords: Option<PasswordMode>,
    min_length: usize,
    errors: Vec<RowError>,
}

/// The rows of the CSV `csv` and every problem found reading them; the text is let go
/// before the rows are merged (the peak).
pub fn read_rows(csv: String, ignore: &[String]) -> (Vec<CustomerRow>, Vec<RowError>) {
    let read = crate::progress::phase("read csv", || read::read(&csv, ignore));
    drop(csv);
    read
}

/// The ids of the rows' customers that no manifest of `set` declares: the live customers
/// whose names an import may take.
pub fn undeclared(set: &ManifestSet, rows: &[CustomerRow]) -> Vec<CompactString> {
    let declared: std::collections::HashSet<&str> = set
        .customers
        .iter()
        .flatten()
        .map(|d| d.value.id.as_str())
        .collect();
    let mut ids: Vec<CompactString> = rows
        .iter()
        .filter(|r| !declared.contains(r.id.as_str()))
        .map(|r| r.id.as_str().into())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// What an import needs of the live database, read without its customers
/// (`Store::read_part`): the small tables (role and website names, the login policy) and
/// the keys of the logins with access (what validation needs), the customers of the
/// [`undeclared`] rows (their names), and the reset markers portico last set (kept on the
/// logins the import edits).
#[derive(Debug, Default)]
pub struct Live {
    /// The small tables, the undeclared customers, the keys of the logins with access.
    pub state: State,
    /// The reset marker of every login holding one.
    pub markers: PasswordMarkers,
}

/// Computes the import of the CSV's `rows` (and the `errors` found reading them, see
/// [`read_rows`]) into the manifest folder `root` (already loaded as `set`). Nothing is
/// written; every problem of every row is returned at once.
///
/// # Errors
/// Every bad row, located by line and column.
pub fn import(
    (rows, mut errors): (Vec<CustomerRow>, Vec<RowError>),
    root: &Path,
    set: &ManifestSet,
    live: &Live,
    (passwords, keep_before): (Option<PasswordMode>, bool),
) -> Result<Import, Vec<RowError>> {
    let min_length = set
        .login_policy
        .as_ref()
        .map(|p| p.value.password.min_length)
        .or(live
            .state
            .login_policy
            .as_ref()
            .map(|p| p.password.min_length))
        .unwrap_or(10) as usize;
    let mut cx = Context {
        set,
        live,
        passwords,
        min_length,
        errors: Vec::new(),
    };
    // What errors found later need of the rows is taken first; the rows are then let go one
    // by one as they are merged, so they and the merged customers are not all held at once.
    let mut import = Import::of_rows(&rows);
    let (mut changed, unchanged) = crate::progress::phase("merge rows", || cx.merge_rows(rows));
    errors.append(&mut cx.errors);
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line);
        return Err(errors);
    }
    import.unchanged = unchanged;
    hash_pending(&mut changed);
    crate::progress::phase("edit files", || {
        write_changes(root, set, changed, &mut import)
    })
    .map_err(|e| vec![e])?;
    // The texts before are only shown (`--dry-run`'s diff); otherwise they would be held
    // while the edited manifests are checked, the import's other peak.
    if !keep_before {
        for file in &mut import.files {
            file.before = String::new();
        }
    }
    if set.customers.is_none() && import.added > 0 {
        import.warnings.push(
            "the manifests had no `customers:` section, so customers were unmanaged; from now on every live customer that no manifest declares will be deleted by apply (run `portico export --out DIR --database URL` first to adopt the existing ones)".into(),
        );
    }
    Ok(import)
}

impl Import {
    /// An import of `rows`, knowing each customer's and contact's line (for errors found
    /// later).
    fn of_rows(rows: &[CustomerRow]) -> Import {
        Import {
            lines: rows.iter().map(|r| (r.id.clone(), r.line)).collect(),
            contact_lines: rows
                .iter()
                .flat_map(|r| {
                    r.contacts.values().filter_map(|c| {
                        let email = c.email.as_ref()?.value.to_lowercase().to_string();
                        Some(((r.id.clone(), email), c.line))
                    })
                })
                .collect(),
            per_contact: rows.first().is_some_and(|r| r.per_contact),
            ..Import::default()
        }
    }
}

/// Where the contact with this (normalised) email is in the customer's list, added with no
/// access when it was not there.
fn contact_index(customer: &mut Customer, email: &CompactString, key: &CompactString) -> usize {
    if let Some(i) = customer
        .contacts
        .iter()
        .position(|x| normalize_email(&x.email) == *key)
    {
        return i;
    }
    customer.contacts.push(Contact {
        email: email.clone(),
        name: None,
        access: false,
        role: None,
        website: None,
        notify: false,
        password: None,
        expires: None,
    });
    customer.contacts.len() - 1
}

/// A password to hash, and where its hash goes: (login index: `None` for the customer's own
/// login, else the contact's email; plaintext; reset marker).
type PendingHash = (Option<CompactString>, Plaintext, Option<u32>);

/// A customer the CSV changes: where it is declared (`None`: new), its new value, and the
/// passwords still to hash into it.
type Changed<'a> = (Option<&'a Declared<Customer>>, Customer, Vec<PendingHash>);

impl<'a> Context<'a> {
    fn error(&mut self, line: usize, cell: &Cell, message: String, hint: Option<String>) {
        self.errors.push(RowError {
            line,
            column: cell.column.to_string(),
            message,
            hint,
        });
    }

    /// The customer as the row changes it (or creates it), and the passwords to hash.
    /// Merges each row into its declared customer (or a new one): the customers that
    /// change, and how many rows changed nothing. A row with an error is left out.
    fn merge_rows(&mut self, rows: Vec<CustomerRow>) -> (Vec<Changed<'a>>, usize) {
        let declared: HashMap<&str, &'a Declared<Customer>> = self
            .set
            .customers
            .iter()
            .flatten()
            .map(|d| (d.value.id.as_str(), d))
            .collect();
        // Room for every row at once: grown by doubling, the last step held two vectors of
        // customers (tens of MB at 100,000 rows) at the import's peak.
        let mut changed: Vec<Changed<'a>> = Vec::with_capacity(rows.len());
        let mut unchanged = 0;
        for row in rows {
            let existing = declared.get(row.id.as_str()).copied();
            let before = self.errors.len();
            let (customer, pending) = self.merge(&row, existing.map(|d| &d.value));
            if self.errors.len() > before {
                continue;
            }
            if existing.is_some_and(|d| d.value == customer) && pending.is_empty() {
                unchanged += 1;
            } else {
                changed.push((existing, customer, pending));
            }
        }
        (changed, unchanged)
    }

    fn merge(
        &mut self,
        row: &CustomerRow,
        existing: Option<&Customer>,
    ) -> (Customer, Vec<PendingHash>) {
        let mut customer = existing.cloned().unwrap_or_else(|| Customer {
            id: row.id.as_str().into(),
            name: CompactString::default(),
            email: None,
            access: Default::default(),
            protect: false,
            contacts: Vec::new(),
        });
        self.merge_name(row, existing.is_none(), &mut customer);
        if let Some(email) = &row.email {
            customer.email = self.email(row.line, email);
        }
        let inherited = (
            customer
                .access
                .role
                .clone()
                .unwrap_or_else(|| catalog::DEFAULT_ROLE.into()),
            customer.access.website.clone(),
        );
        let mut pending = Vec::new();
        self.merge_access(row, &mut customer, &mut pending);
        let customer_role = customer
            .access
            .role
            .clone()
            .unwrap_or_else(|| catalog::DEFAULT_ROLE.into());
        let listed: Vec<CompactString> = row
            .contacts
            .values()
            .filter_map(|c| c.email.as_ref().map(|e| normalize_email(&e.value)))
            .collect();
        pin_unlisted(&mut customer, &listed, &inherited);
        for contact_row in row.contacts.values() {
            self.merge_contact(
                row,
                contact_row,
                &mut customer,
                &customer_role,
                &mut pending,
            );
        }
        (customer, pending)
    }

    /// The customer's name from its row; a new customer without one takes the live name,
    /// else is an error.
    fn merge_name(&mut self, row: &CustomerRow, new: bool, customer: &mut Customer) {
        if let Some(name) = &row.name {
            customer.name = name.as_str().into();
        } else if new {
            let live_name = self
                .live
                .state
                .customers
                .get(row.id.as_str())
                .map(|c| c.record.name.clone());
            match live_name {
                Some(name) => customer.name = name,
                None => self.errors.push(RowError {
                    line: row.line,
                    column: "Company Name".into(),
                    message: format!("customer `{}` is new and has no name", row.id),
                    hint: Some("add a `Company Name` column (new customers need a name)".into()),
                }),
            }
        }
    }

    /// The customer's own access from its row: given, notified, role, website, password.
    fn merge_access(
        &mut self,
        row: &CustomerRow,
        customer: &mut Customer,
        pending: &mut Vec<PendingHash>,
    ) {
        let access = &mut customer.access;
        if let Some(give) = row.give_access {
            access.give_access = give;
        }
        if let Some(notify) = row.notify {
            access.notify = notify;
        }
        if let Some(cell) = &row.role
            && let Some(id) = self.role(row.line, cell)
        {
            customer.access.role =
                explicit(id, customer.access.role.as_deref(), catalog::DEFAULT_ROLE);
        }
        if let Some(cell) = &row.website {
            customer.access.website = self
                .website(row.line, cell)
                .or(customer.access.website.take());
        }
        let own_marker = self.live_marker(&row.id, None);
        let decided = self.password(
            row.line,
            row.password.as_ref(),
            row.confirm.as_ref(),
            row.manual_password,
            customer.access.password.as_deref(),
            own_marker,
        );
        match decided {
            NewPassword::Keep => {}
            NewPassword::Notify => customer.access.notify = true,
            NewPassword::Hash(plain, reset) => pending.push((None, plain, reset)),
        }
    }

    fn merge_contact(
        &mut self,
        row: &CustomerRow,
        c: &read::ContactRow,
        customer: &mut Customer,
        customer_role: &str,
        pending: &mut Vec<PendingHash>,
    ) {
        // The contact's own row (one-row-per-contact exports), else the customer's.
        let line = if c.line > 0 { c.line } else { row.line };
        let Some(email_cell) = &c.email else {
            self.errors.push(RowError {
                line,
                column: "Contact Access : Email".into(),
                message: "a contact entry has values but no email".into(),
                hint: Some(
                    "contacts are matched by email: fill in its `Contact Access N : Email`".into(),
                ),
            });
            return;
        };
        let Some(email) = self.email(line, email_cell) else {
            return;
        };
        let key = normalize_email(&email);
        let index = contact_index(customer, &email, &key);
        let role = c.role.as_ref().and_then(|cell| self.role(line, cell));
        let marker = self.live_marker(&row.id, Some(&key));
        let existing_source = customer.contacts[index].password.clone();
        let decided = self.password(
            line,
            c.password.as_ref(),
            c.confirm.as_ref(),
            None,
            existing_source.as_deref(),
            marker,
        );
        let contact = &mut customer.contacts[index];
        if let Some(name) = &c.name {
            contact.name = Some(name.as_str().into());
        }
        if let Some(access) = c.access {
            contact.access = access;
        }
        if let Some(notify) = c.notify {
            contact.notify = notify;
        }
        if let Some(role) = role {
            contact.role = explicit(role, contact.role.as_deref(), customer_role);
        }
        match decided {
            NewPassword::Keep => {}
            NewPassword::Notify => contact.notify = true,
            NewPassword::Hash(plain, reset) => pending.push((Some(key), plain, reset)),
        }
    }

    fn email(&mut self, line: usize, cell: &Cell) -> Option<CompactString> {
        if is_valid_email(&cell.value) {
            Some(cell.value.as_str().into())
        } else {
            let message = format!("`{}` is not a valid email address", cell.value);
            self.error(line, cell, message, None);
            None
        }
    }

    /// The reset marker portico last set for a live login, if any.
    fn live_marker(&self, customer: &str, contact: Option<&str>) -> Option<u32> {
        self.live.markers.get(customer, contact.unwrap_or(""))
    }

    /// Decides what a password cell does: nothing, notify instead, or hash with a reset
    /// marker that makes apply set it (a new login needs none; an existing one a new marker).
    fn password(
        &mut self,
        line: usize,
        given: Option<&(Plaintext, String)>,
        confirm: Option<&Plaintext>,
        manual: Option<bool>,
        existing: Option<&PasswordSource>,
        live_marker: Option<u32>,
    ) -> NewPassword {
        let Some((plain, column)) = given else {
            return NewPassword::Keep;
        };
        let cell = Cell {
            value: compact_str::CompactString::default(),
            column: column.as_str().into(),
        };
        if manual == Some(false) {
            self.error(
                line,
                &cell,
                "a password is given but `Manually Assign or Change Password` is No".into(),
                Some("set it to Yes to assign this password, or leave the password empty".into()),
            );
            return NewPassword::Keep;
        }
        if confirm.is_some_and(|c| c != plain) {
            self.error(
                line,
                &cell,
                "the password and its confirmation differ (values not shown)".into(),
                None,
            );
            return NewPassword::Keep;
        }
        match self.passwords {
            None => {
                self.error(line, &cell, "this row holds a plaintext password, which never goes into a manifest".into(), Some("pass --passwords hash (store an argon2id hash) or --passwords notify (drop it; the user sets one from the new-access email)".into()));
                NewPassword::Keep
            }
            Some(PasswordMode::Notify) => NewPassword::Notify,
            Some(PasswordMode::Hash) => {
                if plain.0.chars().count() < self.min_length {
                    let message = format!(
                        "the password is shorter than login_policy.password.min_length ({})",
                        self.min_length
                    );
                    self.error(line, &cell, message, None);
                    return NewPassword::Keep;
                }
                let previous = existing.map(|s| s.reset.unwrap_or(0)).or(live_marker);
                NewPassword::Hash(plain.clone(), previous.map(|m| m + 1))
            }
        }
    }

    fn role(&mut self, line: usize, cell: &Cell) -> Option<CompactString> {
        let mut named: Vec<(String, String)> = catalog::standard_roles()
            .iter()
            .map(|r| (r.id.to_string(), r.name.to_string()))
            .collect();
        named.extend(
            self.set
                .roles
                .iter()
                .flatten()
                .map(|r| (r.value.id.clone(), r.value.name.clone())),
        );
        named.extend(
            self.live
                .state
                .roles
                .iter()
                .map(|(id, r)| (id.clone(), r.name.clone())),
        );
        self.resolve(line, cell, &named, "role")
            .map(CompactString::from)
    }

    fn website(&mut self, line: usize, cell: &Cell) -> Option<CompactString> {
        let mut named: Vec<(String, String)> = self
            .set
            .websites
            .iter()
            .flatten()
            .map(|w| (w.value.id.clone(), w.value.name.clone()))
            .collect();
        named.extend(
            self.live
                .state
                .websites
                .iter()
                .map(|(id, w)| (id.clone(), w.name.clone())),
        );
        self.resolve(line, cell, &named, "website")
            .map(CompactString::from)
    }

    /// An id given by id or by display name (case-insensitive), manifests first.
    fn resolve(
        &mut self,
        line: usize,
        cell: &Cell,
        named: &[(String, String)],
        what: &str,
    ) -> Option<String> {
        let given = cell.value.trim();
        if let Some((id, _)) = named.iter().find(|(id, _)| id == given) {
            return Some(id.clone());
        }
        let lower = given.to_lowercase();
        let mut ids: Vec<&str> = named
            .iter()
            .filter(|(_, name)| name.to_lowercase() == lower)
            .map(|(id, _)| id.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        match ids.as_slice() {
            [] => {}
            [id] => return Some(id.to_string()),
            several => {
                // File order must never decide which role a customer gets.
                let list = several
                    .iter()
                    .map(|id| format!("`{id}`"))
                    .collect::<Vec<_>>();
                self.error(
                    line,
                    cell,
                    format!(
                        "{what} name `{given}` is ambiguous: it is the name of {}",
                        list.join(", ")
                    ),
                    Some(format!(
                        "write the {what}'s id instead, or give the {what}s different names"
                    )),
                );
                return None;
            }
        }
        let candidates = named
            .iter()
            .flat_map(|(id, name)| [id.as_str(), name.as_str()]);
        let hint = crate::manifest::diagnostic::did_you_mean(given, candidates)
            .map(|best| format!("did you mean `{best}`?"))
            .or_else(|| Some(format!("use a {what}'s id or its display name as the manifests or the live database define it")));
        self.error(
            line,
            cell,
            format!("{what} `{given}` is not defined (looked up by id and by name)"),
            hint,
        );
        None
    }
}

/// Contacts the row does not list stay as they are: when the customer's role or website
/// changes, a contact that inherited the old one gets it written out.
fn pin_unlisted(
    customer: &mut Customer,
    listed: &[CompactString],
    (role, website): &(CompactString, Option<CompactString>),
) {
    let new_role = customer
        .access
        .role
        .as_deref()
        .unwrap_or(catalog::DEFAULT_ROLE);
    let new_website = customer.access.website.clone();
    for contact in &mut customer.contacts {
        if listed.contains(&normalize_email(&contact.email)) {
            continue;
        }
        if contact.role.is_none() && new_role != role {
            contact.role = Some(role.clone());
        }
        if contact.website.is_none() && new_website != *website && website.is_some() {
            contact.website = website.clone();
        }
    }
}

/// `Some(id)` unless it is the default and the manifest did not name a role before, so that a
/// row that changes nothing writes nothing.
fn explicit(id: CompactString, before: Option<&str>, default: &str) -> Option<CompactString> {
    if id == default && before.is_none() {
        None
    } else {
        Some(id)
    }
}

/// Hashes every pending password on all cores and puts the hashes into the customers.
fn hash_pending(changed: &mut [Changed<'_>]) {
    let plain: Vec<&str> = changed
        .iter()
        .flat_map(|(_, _, pending)| pending.iter().map(|(_, p, _)| p.0.as_str()))
        .collect();
    if plain.is_empty() {
        return;
    }
    let hashes = crate::passwords::hash_many(&plain);
    let mut hashes = hashes.into_iter();
    for (_, customer, pending) in changed.iter_mut() {
        for (login, _, reset) in pending.drain(..) {
            let source = PasswordSource {
                env: None,
                file: None,
                argon2: hashes.next().map(Into::into),
                reset,
            };
            match login {
                None => customer.access.password = Some(Box::new(source)),
                Some(email) => {
                    if let Some(contact) = customer
                        .contacts
                        .iter_mut()
                        .find(|c| normalize_email(&c.email) == email)
                    {
                        contact.password = Some(Box::new(source));
                    }
                }
            }
        }
    }
}

/// Turns the changed customers into file edits and a new file.
fn write_changes(
    root: &Path,
    set: &ManifestSet,
    changed: Vec<Changed<'_>>,
    import: &mut Import,
) -> Result<(), RowError> {
    let mut splices: BTreeMap<usize, Vec<edit::Splice>> = BTreeMap::new();
    let mut found = Found::default();
    let mut added = Vec::new();
    for (existing, customer, _) in changed {
        let Some(declared) = existing else {
            added.push(customer);
            continue;
        };
        let splice = splice_for(set, declared, &customer, &mut found)?;
        splices.entry(declared.site.file).or_default().push(splice);
        import.updated += 1;
    }
    for (file, splices) in splices {
        let source = &set.sources[file];
        import.files.push(FileChange {
            path: source.path.clone(),
            before: source.text().to_string(),
            after: edit::apply(source.text(), splices),
        });
    }
    if !added.is_empty() {
        import.added = added.len();
        import.files.push(new_customers_file(root, set, added));
    }
    Ok(())
}

/// The list entries of each file's documents and each file's line ends, found once.
#[derive(Default)]
struct Found {
    /// By (file, document).
    ranges: HashMap<(usize, usize), Result<Vec<edit::Item>, String>>,
    /// Whether each file's lines end in CRLF, by file: looked at once per file (it was once
    /// per customer, each time over the whole file: 4 of an import's 5 seconds at 100,000
    /// customers).
    crlf: HashMap<usize, bool>,
}

/// The edit that rewrites a declared customer in place, keeping its comments; refused
/// where rewriting could change more than the customer (a flow entry, an anchor).
fn splice_for(
    set: &ManifestSet,
    declared: &Declared<Customer>,
    customer: &Customer,
    found: &mut Found,
) -> Result<edit::Splice, RowError> {
    let site = &declared.site;
    let source = &set.sources[site.file];
    let cannot = |why: String| RowError {
        line: 0,
        column: String::new(),
        message: format!(
            "cannot edit customer `{}` in {} in place: {why}",
            customer.id,
            source.path.display()
        ),
        hint: Some("write that customer as a block-style entry (`- id: …` on its own line)".into()),
    };
    let sequence = YamlPath(site.path.0[..site.path.0.len() - 1].to_vec());
    let index = match site.path.0.last() {
        Some(Segment::Index(i)) => *i,
        _ => return Err(cannot("its place in the file is unknown".into())),
    };
    let items = found
        .ranges
        .entry((site.file, site.doc))
        .or_insert_with(|| edit::sequence_items(source.text(), site.doc, &sequence));
    let (start, end, col) = match items {
        Ok(items) => items.get(index).copied(),
        Err(why) => return Err(cannot(why.clone())),
    }
    .ok_or_else(|| cannot("its list entry was not found".into()))?;
    // A safety net: the entry found must be this customer's.
    if !source.text()[start..end].contains(customer.id.as_str()) {
        return Err(cannot(
            "the list entry at its place is not this customer".into(),
        ));
    }
    if let Some(anchor) = edit::yaml_anchor(&source.text()[start..end]) {
        return Err(cannot(format!(
            "its entry defines or uses the YAML anchor or alias `{anchor}`, which rewriting it would break"
        )));
    }
    let crlf = *found
        .crlf
        .entry(site.file)
        .or_insert_with(|| source.text().contains("\r\n"));
    let text = edit::render_item_keeping_comments(&source.text()[start..end], customer, col, crlf);
    Ok(edit::Splice { start, end, text })
}

/// A new file of the customers the manifests did not have.
fn new_customers_file(root: &Path, set: &ManifestSet, added: Vec<Customer>) -> FileChange {
    // New customers go beside the first file that declares customers (or to the root).
    let dir = set
        .customers
        .iter()
        .flatten()
        .next()
        .and_then(|d| {
            set.sources[d.site.file]
                .path
                .parent()
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(|| folder_of(root));
    let path = new_file_path(&dir);
    let schema = schema_comment(set, &dir);
    let yaml = serde_yaml::to_string(&Document {
        customers: Some(added),
        ..Document::default()
    })
    .expect("a manifest serialises");
    FileChange {
        path,
        before: String::new(),
        after: format!("{schema}# Imported by portico import-csv.\n{yaml}"),
    }
}

/// The validation errors the manifests have before an import: not the CSV's to answer for.
/// Found before the import edits anything, while only the manifests and the live state are
/// held (found later, they were the import's peak memory).
pub fn known_problems(before: &ManifestSet, live: &State) -> Vec<String> {
    let (_, found) = crate::progress::phase("validate before", || {
        crate::validate::validate(before, Some(live))
    });
    found
        .into_iter()
        .filter(|d| d.is_error())
        .map(|d| d.message)
        .collect()
}

/// Checks the manifests as the import would leave them, before anything is written: every
/// validation error the import adds (a duplicate email, an invisible character in an id,
/// `notify` without an endpoint, …) is reported at the CSV row of the customer it is in.
/// `known` are the problems the manifests had before ([`known_problems`]).
///
/// # Errors
/// The problems, located by CSV line and column where they can be.
pub fn check_result(
    root: &Path,
    mut known: Vec<String>,
    reading: crate::manifest::load::Reading,
    import: &Import,
    live: &State,
) -> Result<(), Vec<RowError>> {
    let overlay: Vec<(&Path, &str)> = import
        .files
        .iter()
        .map(|f| (f.path.as_path(), f.after.as_str()))
        .collect();
    let (after, mut diagnostics) = crate::progress::phase("load after", || {
        crate::manifest::load::load_overlaid(root, &overlay, reading)
    });
    let loaded = diagnostics.iter().all(|d| !d.is_error());
    if loaded {
        diagnostics.extend(
            crate::progress::phase("validate after", || {
                crate::validate::validate(&after, Some(live))
            })
            .1,
        );
    }
    let mut errors = Vec::new();
    for d in diagnostics.into_iter().filter(|d| d.is_error()) {
        // Problems the manifests had before the import are not the CSV's.
        if let Some(i) = known.iter().position(|m| *m == d.message) {
            known.swap_remove(i);
            continue;
        }
        errors.push(locate_in_csv(&after, import, &d));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }
}

/// The CSV row (and column) a validation problem of the imported manifests comes from.
fn locate_in_csv(set: &ManifestSet, import: &Import, d: &crate::manifest::Diagnostic) -> RowError {
    let customer = d.site.as_ref().and_then(|site| {
        set.customers
            .iter()
            .flatten()
            .find(|c| {
                c.site.file == site.file
                    && c.site.doc == site.doc
                    && site.path.0.starts_with(&c.site.path.0)
            })
            .map(|c| (c, &site.path.0[c.site.path.0.len()..]))
    });
    let Some((customer, rest)) = customer else {
        return unlocated(set, d);
    };
    let column = csv_column(rest, import.per_contact);
    let key = |i: usize| match rest.get(i) {
        Some(Segment::Key(k)) => k.as_ref(),
        _ => "",
    };
    // A contact's problem points at the contact's own row when it had one.
    let contact_line = match (key(0), rest.get(1)) {
        ("contacts", Some(Segment::Index(i))) => customer
            .value
            .contacts
            .get(*i)
            .and_then(|c| {
                import.contact_lines.get(&(
                    customer.value.id.to_string(),
                    c.email.to_lowercase().to_string(),
                ))
            })
            .copied(),
        _ => None,
    };
    RowError {
        line: contact_line.unwrap_or_else(|| {
            import
                .lines
                .get(customer.value.id.as_str())
                .copied()
                .unwrap_or(0)
        }),
        column,
        message: d.message.clone(),
        hint: d.hint.clone(),
    }
}

/// A problem the import would leave that no customer of the CSV holds: said with its file.
fn unlocated(set: &ManifestSet, d: &crate::manifest::Diagnostic) -> RowError {
    let file = d
        .site
        .as_ref()
        .map(|s| s.file)
        .or(d.file)
        .and_then(|f| set.sources.get(f))
        .map(|s| format!("{}: ", s.path.display()))
        .unwrap_or_default();
    RowError {
        line: 0,
        column: String::new(),
        message: format!(
            "the manifests would not validate after this import: {file}{}",
            d.message
        ),
        hint: d.hint.clone(),
    }
}

/// The CSV column a customer's manifest key comes from (`rest`: the path below the
/// customer), in the export's layout.
fn csv_column(rest: &[Segment], per_contact: bool) -> String {
    let key = |i: usize| match rest.get(i) {
        Some(Segment::Key(k)) => k.as_ref(),
        _ => "",
    };
    match (key(0), key(1)) {
        ("id", _) => "Internal ID".to_string(),
        ("name", _) => "Company Name".to_string(),
        ("email", _) => "Email".to_string(),
        ("access", "role") => "Role".to_string(),
        ("access", "website") => "Assigned Website".to_string(),
        ("access", "notify") => "Send New Access Notification Email".to_string(),
        ("access", _) => "Give Access".to_string(),
        ("contacts", _) if per_contact => match key(2) {
            "email" => "Email".to_string(),
            "role" => "Access Role".to_string(),
            "notify" => "Send Notification Email".to_string(),
            "name" => "Contact".to_string(),
            _ => "Login Access".to_string(),
        },
        ("contacts", _) => match key(2) {
            "email" => "Contact Access : Email".to_string(),
            "role" => "Contact Access : Role".to_string(),
            "notify" => "Contact Access : Notify".to_string(),
            "name" => "Contact Access : Contact".to_string(),
            _ => "Contact Access : Access".to_string(),
        },
        _ => String::new(),
    }
}

/// The folder of a manifest path (itself when it is a folder).
fn folder_of(root: &Path) -> PathBuf {
    if root.is_dir() {
        root.to_path_buf()
    } else {
        root.parent().map(Path::to_path_buf).unwrap_or_default()
    }
}

/// `imported.yaml` in the folder, or `imported-2.yaml`… when taken.
fn new_file_path(dir: &Path) -> PathBuf {
    (1..)
        .map(|n| match n {
            1 => dir.join("imported.yaml"),
            n => dir.join(format!("imported-{n}.yaml")),
        })
        .find(|p| !p.exists())
        .expect("some name is free")
}

/// The `yaml-language-server` comment of a file in the same folder, so the new file is
/// checked by editors the same way.
fn schema_comment(set: &ManifestSet, root: &Path) -> String {
    set.sources
        .iter()
        .filter(|s| s.path.parent() == Some(root))
        .find_map(|s| {
            s.text()
                .lines()
                .find(|l| l.trim_start().starts_with("# yaml-language-server:"))
                .map(|l| format!("{l}\n"))
        })
        .unwrap_or_default()
}

/// Renders the problems as `FILE.csv:LINE: column "X": message` lines with hints.
pub fn render_errors(csv_path: &Path, errors: &[RowError]) -> String {
    let mut out = String::new();
    for e in errors {
        let at = if e.line == 0 {
            csv_path.display().to_string()
        } else {
            format!("{}:{}", csv_path.display(), e.line)
        };
        // Cells, headers and file names are someone else's bytes: terminal escapes, NULs and
        // bidi controls are shown as `\u{…}`, never sent to the terminal.
        let line = if e.column.is_empty() {
            format!("error: {at}: {}", e.message)
        } else {
            format!("error: {at}: column \"{}\": {}", e.column, e.message)
        };
        out.push_str(&crate::unicode::escape_invisible(&line));
        out.push('\n');
        if let Some(hint) = &e.hint {
            out.push_str(&crate::unicode::escape_invisible(&format!(
                "  hint: {hint}"
            )));
            out.push('\n');
        }
    }
    out
}
