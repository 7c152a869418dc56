//! Customers and contacts: emails, access prerequisites, references and password sources.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::Path;

use compact_str::CompactString;

use super::{Context, Desired, Passwords, roles};
use crate::catalog::{self, Feature};
use crate::manifest::diagnostic::{Diagnostic, Site};
use crate::manifest::load::{Declared, duplicate};
use crate::manifest::model::{Customer, PasswordSource};
use crate::passwords::SecretRef;
use crate::state::LiveAccess;
use crate::state::{CustomerRecord, CustomerState, LoginState, contacts_of, normalize_email};

/// What a login asks for, before it becomes a [`LoginState`].
struct LoginSpec<'a> {
    /// The customer's id and, for a contact, its normalised email.
    key: (&'a str, Option<CompactString>),
    email: Option<&'a str>,
    name: Option<&'a str>,
    access: bool,
    role: Option<&'a str>,
    default_role: &'a str,
    website: Option<&'a str>,
    notify: bool,
    password: Option<&'a PasswordSource>,
    /// `expires` as written (a contact's, else its customer's), and where.
    expires: Option<(&'a str, Place<'a>)>,
}

pub(super) fn customers<'a>(
    cx: &mut Context<'a>,
    desired: &Desired,
) -> (crate::state::Customers, Passwords) {
    let known_roles = roles::known_roles(cx, desired).map(Known::new);
    let websites = cx.website_ids(desired);
    let set: &'a crate::manifest::load::ManifestSet = cx.set;
    let declared = declared_all(set);
    // Customer ids declared twice: the later declarations are reported and skipped.
    let first_of = earlier_declarations(declared);
    // Customers are checked in chunks of a fixed size (so results never depend on the
    // number of cores), on every core; the chunks' findings are then joined in order.
    let chunks: Vec<(usize, &'a [Declared<Customer>])> = declared
        .chunks(CHUNK)
        .enumerate()
        .map(|(i, chunk)| (i * CHUNK, chunk))
        .collect();
    let check = |(offset, chunk): (usize, &'a [Declared<Customer>])| {
        let mut cx = cx.fork();
        let logins = chunk.iter().map(|d| 1 + d.value.contacts.len()).sum();
        let mut checker = Checker {
            known_roles: known_roles.clone(),
            websites: websites.clone(),
            emails: Vec::with_capacity(logins),
            used_roles: foldhash::HashSet::default(),
            passwords: Passwords::default(),
        };
        let mut customers = Vec::with_capacity(chunk.len());
        for (at, declared) in chunk.iter().enumerate() {
            let customer = &declared.value;
            if let Some(first) = first_of[offset + at] {
                let d = duplicate(
                    &format!("customer `{}`", customer.id),
                    &cx.set.sources,
                    &declared_all(set)[first].site.key("id"),
                    declared.site.key("id"),
                );
                cx.diagnostics.push(d);
                continue;
            }
            let state = checker.customer(&mut cx, desired, customer, &declared.site);
            customers.push((customer.id.clone(), state));
        }
        (customers, checker, cx.diagnostics)
    };
    let done = crate::parallel::map_in_order(chunks, check);
    let logins = declared.iter().map(|d| 1 + d.value.contacts.len()).sum();
    let (customers, mut used_roles, passwords) = join_chunks(cx, done, (declared.len(), logins));
    for role in desired.state.roles.values() {
        used_roles.insert(role.base.clone());
    }
    roles::warn_unused(cx, desired, &used_roles);
    (crate::state::customers_of(customers), passwords)
}

/// For each declared customer, the index of an earlier declaration of the same id.
fn earlier_declarations(declared: &[Declared<Customer>]) -> Vec<Option<usize>> {
    let mut first_site: foldhash::HashMap<&str, usize> =
        foldhash::HashMap::with_capacity_and_hasher(declared.len(), Default::default());
    declared
        .iter()
        .enumerate()
        .map(|(index, d)| first_site.insert(&d.value.id, index))
        .collect()
}

/// What one chunk of customers found.
type ChunkFound<'a> = (
    Vec<(CompactString, CustomerState)>,
    Checker<'a>,
    Vec<Diagnostic>,
);

/// Joins the chunks' findings in order, with an error for each use of an email after its
/// first (each chunk's after its other findings), naming the first in whichever chunk it
/// is. The email maps are gone when this returns, before the customers are put in order
/// (the peak of a plan).
fn join_chunks<'a>(
    cx: &mut Context<'a>,
    done: Vec<ChunkFound<'a>>,
    (customers, logins): (usize, usize),
) -> (
    Vec<(CompactString, CustomerState)>,
    BTreeSet<String>,
    Passwords,
) {
    let mut found = Vec::with_capacity(done.len());
    let mut uses = Vec::with_capacity(done.len());
    let mut rest = Vec::with_capacity(done.len());
    for (customers, checker, diagnostics) in done {
        found.push((customers, diagnostics));
        uses.push(checker.emails);
        rest.push((checker.used_roles, checker.passwords));
    }
    // The emails are joined on every core while this thread gathers the rest.
    let (again, (used_roles, passwords)) = std::thread::scope(|scope| {
        let again = scope.spawn(|| emails_used_again(&uses, logins));
        let mut used_roles = BTreeSet::new();
        let mut chunks = Vec::with_capacity(rest.len());
        for (used, theirs) in rest {
            used_roles.extend(used.into_iter().map(String::from));
            chunks.push(theirs);
        }
        let passwords = Passwords::joined(chunks);
        let again = again.join().expect("the email join does not panic");
        (again, (used_roles, passwords))
    });
    // Sized once: grown by pushing, the list would hold up to twice the room.
    let mut all = Vec::with_capacity(customers);
    let mut again = again.into_iter().peekable();
    for (chunk, (customers, diagnostics)) in found.into_iter().enumerate() {
        all.extend(customers);
        cx.diagnostics.extend(diagnostics);
        while let Some((_, at, first)) = again.next_if(|(c, ..)| *c == chunk) {
            let (email, second) = &uses[chunk][at];
            duplicate_email(cx, email, first, *second);
        }
    }
    (all, used_roles, passwords)
}

/// Each use of an email after its first: (chunk, index in the chunk's uses, the first use),
/// in declaration order. Emails are shared out among the cores by a fixed hash, each core
/// going through its share in declaration order, so what is found never depends on the
/// number of cores.
fn emails_used_again<'a>(
    uses: &[Vec<(Cow<'a, str>, Place<'a>)>],
    logins: usize,
) -> Vec<(usize, usize, Place<'a>)> {
    use std::hash::BuildHasher;
    let shares = crate::parallel::cores();
    let share_of = foldhash::fast::FixedState::with_seed(0);
    let share = |mine: usize| {
        // The first use of each email by where it is in `uses` (8 bytes, not a 24-byte
        // place: at 300,000 logins these maps were 14 MB of a full plan's peak).
        let mut seen: foldhash::HashMap<&str, (u32, u32)> =
            foldhash::HashMap::with_capacity_and_hasher(logins / shares + 1, Default::default());
        let mut again = Vec::new();
        for (chunk, emails) in uses.iter().enumerate() {
            for (at, (email, _)) in emails.iter().enumerate() {
                if share_of.hash_one(email.as_ref()) as usize % shares != mine {
                    continue;
                }
                match seen.get(email.as_ref()) {
                    Some(&(c, a)) => again.push((chunk, at, uses[c as usize][a as usize].1)),
                    None => {
                        let first = (to_u32(chunk), to_u32(at));
                        seen.insert(email, first);
                    }
                }
            }
        }
        again
    };
    let mut again: Vec<(usize, usize, Place<'a>)> =
        crate::parallel::map_in_order((0..shares).collect(), share)
            .into_iter()
            .flatten()
            .collect();
    again.sort_unstable_by_key(|(chunk, at, _)| (*chunk, *at));
    again
}

/// An index into the lists of email uses (fewer than 2^32 chunks and logins a chunk).
fn to_u32(index: usize) -> u32 {
    u32::try_from(index).expect("fewer than 2^32 email uses")
}

/// Customers checked together on one thread.
const CHUNK: usize = 4096;

/// Reports a login email used again at `second`.
fn duplicate_email(cx: &mut Context<'_>, email: &str, first: Place<'_>, second: Place<'_>) {
    let d = duplicate(
        &format!("login email `{email}`"),
        &cx.set.sources,
        &first.key("email"),
        second.key("email"),
    );
    cx.diagnostics
        .push(d.with_hint("an email can belong to one login only (compared in lower case)"));
}

fn declared_all(set: &crate::manifest::load::ManifestSet) -> &[Declared<Customer>] {
    set.customers.as_deref().unwrap_or_default()
}

/// Where a login's fields are written: a customer's own fields, its `access:` block, or a
/// contact. Made into a [`Site`] only for a diagnostic: this runs for every login, and a
/// site is an allocation.
#[derive(Clone, Copy)]
enum Place<'a> {
    Customer(&'a Site),
    Access(&'a Site),
    Contact(&'a Site, usize),
}

impl Place<'_> {
    fn site(self) -> Site {
        match self {
            Place::Customer(site) => site.clone(),
            Place::Access(site) => site.key("access"),
            Place::Contact(site, index) => contact_site(site, index),
        }
    }

    /// The site of one of its fields.
    fn key(self, key: &'static str) -> Site {
        self.site().key(key)
    }
}

fn contact_site(customer: &Site, index: usize) -> Site {
    Site {
        path: customer.path.key("contacts").index(index),
        ..customer.clone()
    }
}

/// The site of a desired login, found again from its customer id and contact email (for
/// the few diagnostics that name a login after validation, such as policy violations).
pub(super) fn login_site(
    set: &crate::manifest::load::ManifestSet,
    customer: &str,
    contact: Option<&str>,
) -> Option<Site> {
    let declared = set
        .customers
        .iter()
        .flatten()
        .find(|d| d.value.id == customer)?;
    let Some(email) = contact else {
        return Some(declared.site.clone());
    };
    let index = declared
        .value
        .contacts
        .iter()
        .position(|c| normalize_email(&c.email) == email)?;
    Some(contact_site(&declared.site, index))
}

/// Names that exist, in the order suggestions are drawn from, and as a set (looked up for
/// every login: an account can define dozens of roles).
#[derive(Clone)]
struct Known {
    order: Vec<String>,
    set: foldhash::HashSet<String>,
}

impl Known {
    fn new(order: Vec<String>) -> Known {
        let set = order.iter().cloned().collect();
        Known { order, set }
    }
}

struct Checker<'a> {
    known_roles: Option<Known>,
    websites: Option<BTreeSet<String>>,
    /// Each valid login email and where it is declared, in declaration order: whether an
    /// email is used twice is found once every chunk is checked (sites are built only for
    /// a duplicate).
    emails: Vec<(Cow<'a, str>, Place<'a>)>,
    /// Roles the chunk's logins use.
    used_roles: foldhash::HashSet<CompactString>,
    passwords: Passwords,
}

impl<'a> Checker<'a> {
    fn customer(
        &mut self,
        cx: &mut Context<'_>,
        desired: &Desired,
        customer: &'a Customer,
        site: &'a Site,
    ) -> CustomerState {
        cx.non_empty(site, "id", &customer.id);
        cx.non_empty(site, "name", &customer.name);
        let access = &customer.access;
        let fields = Place::Access(site);
        let login = self.login(
            cx,
            desired,
            LoginSpec {
                key: (&customer.id, None),
                email: customer.email.as_deref(),
                name: None,
                access: access.give_access,
                role: access.role.as_deref(),
                default_role: catalog::DEFAULT_ROLE,
                website: access.website.as_deref(),
                notify: access.notify,
                password: access.password.as_deref(),
                expires: access.expires.as_deref().map(|e| (e, fields)),
            },
            fields,
            (Place::Customer(site), customer.email.as_deref()),
        );
        let mut contacts = Vec::with_capacity(customer.contacts.len());
        for (index, contact) in customer.contacts.iter().enumerate() {
            let state = self.contact(cx, desired, (customer, site), (index, contact), &login);
            if let Some(email) = state.email.clone() {
                contacts.push((email, state));
            }
        }
        self.passwords.fit(&customer.id);
        // Duplicates were reported above; like a map insert, the last one stays.
        let contacts = contacts_of(contacts);
        let record = CustomerRecord {
            name: customer.name.clone(),
            protect: customer.protect,
            login,
        };
        CustomerState { record, contacts }
    }

    /// Checks one contact of `customer`, whose own login (`login`) gives it its defaults.
    fn contact(
        &mut self,
        cx: &mut Context<'_>,
        desired: &Desired,
        (customer, site): (&'a Customer, &'a Site),
        (index, contact): (usize, &'a crate::manifest::model::Contact),
        login: &LoginState,
    ) -> LoginState {
        let access = &customer.access;
        let place = Place::Contact(site, index);
        self.login(
            cx,
            desired,
            LoginSpec {
                key: (&customer.id, Some(normalize_email(&contact.email))),
                email: Some(&contact.email),
                name: contact.name.as_deref(),
                access: contact.access,
                role: contact.role.as_deref(),
                default_role: &login.role,
                website: contact.website.as_deref().or(login.website.as_deref()),
                notify: contact.notify,
                password: contact.password.as_deref(),
                expires: match (&contact.expires, &access.expires) {
                    (Some(own), _) => Some((own.as_str(), place)),
                    (None, Some(inherited)) => Some((inherited.as_str(), Place::Access(site))),
                    (None, None) => None,
                },
            },
            place,
            (place, Some(&contact.email)),
        )
    }

    /// Checks one login, declared at `place`. `fields` is where `role`, `website`, `notify`
    /// and `password` live (the customer's `access:` block, or the contact itself).
    fn login(
        &mut self,
        cx: &mut Context<'_>,
        desired: &Desired,
        spec: LoginSpec<'_>,
        fields: Place<'_>,
        (place, written): (Place<'a>, Option<&'a str>),
    ) -> LoginState {
        let email = match (&spec.key.1, spec.email) {
            (Some(normalized), _) => Some(normalized.clone()),
            (None, raw) => raw.map(normalize_email),
        };
        if let Some(name) = spec.name
            && name.chars().any(crate::unicode::is_invisible)
        {
            cx.visible(&place.site(), "name", name, false);
        }
        if let (Some(raw), Some(normalized)) = (spec.email, &email) {
            self.check_email(cx, (raw, normalized), place, written);
        }
        let role = self.check_role(cx, &spec, fields);
        if let Some(website) = spec.website {
            self.website(cx, desired, website, fields);
        }
        let expires = self.expiry(cx, &spec);
        // Access ends by itself once the expiry has passed: apply revokes it.
        let expired = spec.access
            && expires
                .as_deref()
                .is_some_and(|e| crate::clock::expired(e, &cx.now));
        let spec = LoginSpec {
            access: spec.access && !expired,
            ..spec
        };
        if spec.access {
            self.access(cx, desired, &spec, fields, email.is_some());
        }
        if let Some(password) = spec.password {
            self.record_password(cx, &spec, password, fields);
        }
        LoginState {
            email,
            name: spec.name.map(CompactString::from),
            access: spec.access,
            role,
            website: spec.website.map(CompactString::from),
            notify: spec.notify,
            password: spec.password.map(|p| p.reset.unwrap_or(0)),
            expires,
        }
    }

    /// A login's email: visible and valid. Kept with its place, to find another login's use
    /// of it once every chunk is checked.
    fn check_email(
        &mut self,
        cx: &mut Context<'_>,
        (raw, normalized): (&str, &CompactString),
        place: Place<'a>,
        written: Option<&'a str>,
    ) {
        if raw.chars().any(crate::unicode::is_invisible) {
            cx.visible(&place.site(), "email", raw, true);
        } else if !is_valid_normalized_email(normalized) {
            cx.error(
                &place.key("email"),
                format!("`{raw}` is not a valid email address"),
            );
        } else {
            // The email as written when it is already normalised (most are).
            let key = match written {
                Some(written) if written == normalized => Cow::Borrowed(written),
                _ => Cow::Owned(normalized.to_string()),
            };
            self.emails.push((key, place));
        }
    }

    /// The login's role (the default when none is named), which must be defined.
    fn check_role(
        &mut self,
        cx: &mut Context<'_>,
        spec: &LoginSpec<'_>,
        fields: Place<'_>,
    ) -> CompactString {
        let role = CompactString::from(spec.role.unwrap_or(spec.default_role));
        if let (Some(name), Some(known)) = (spec.role, &self.known_roles)
            && !known.set.contains(name)
        {
            let d = Diagnostic::error(fields.key("role"), format!("role `{name}` is not defined"))
                .suggest(name, known.order.iter().map(String::as_str));
            cx.diagnostics.push(d);
        }
        if !self.used_roles.contains(role.as_str()) {
            self.used_roles.insert(role.clone());
        }
        role
    }

    /// A login's initial password source, when it is a valid one, by address.
    fn record_password(
        &mut self,
        cx: &mut Context<'_>,
        spec: &LoginSpec<'_>,
        password: &crate::manifest::model::PasswordSource,
        fields: Place<'_>,
    ) {
        let min = (
            "password",
            min_password_length(cx),
            "login_policy.password.min_length",
        );
        let Some(source) = check_secret(cx, password, || fields.key("password"), min) else {
            return;
        };
        let (customer, contact) = &spec.key;
        self.passwords
            .insert_login(customer, contact.as_deref(), source);
    }

    /// Parses the login's expiry; a past one is a warning (apply revokes the login).
    fn expiry(&mut self, cx: &mut Context<'_>, spec: &LoginSpec<'_>) -> Option<CompactString> {
        let (raw, place) = spec.expires?;
        match crate::clock::parse(raw) {
            Ok(at) => {
                let stored = crate::clock::format(at);
                if spec.access && stored.as_str() <= cx.now.as_str() {
                    // Named: contacts inherit their customer's `expires`, so several
                    // warnings can point at one line.
                    let who = spec
                        .email
                        .map(|e| format!("access of {e}"))
                        .unwrap_or_else(|| "access".into());
                    cx.diagnostics.push(Diagnostic::warning(
                        Some(place.key("expires")),
                        format!(
                            "{who} expired {}: this login loses access (plan shows it as revoked)",
                            crate::clock::display(&stored)
                        ),
                    ));
                }
                Some(stored.into())
            }
            Err(why) => {
                cx.error(&place.key("expires"), why);
                None
            }
        }
    }

    fn website(
        &mut self,
        cx: &mut Context<'_>,
        desired: &Desired,
        website: &str,
        fields: Place<'_>,
    ) {
        let site = || fields.key("website");
        if let Some(known) = &self.websites
            && !known.contains(website)
        {
            let d = Diagnostic::error(site(), format!("website `{website}` is not defined"))
                .suggest(website, known.iter().map(String::as_str));
            cx.diagnostics.push(d);
        }
        cx.require_feature(desired, Feature::Websites, site, "assigning a website");
    }

    fn access(
        &mut self,
        cx: &mut Context<'_>,
        desired: &Desired,
        spec: &LoginSpec<'_>,
        fields: Place<'_>,
        has_email: bool,
    ) {
        // A contact's flag is `access`, in its own fields; a customer's is `give_access`.
        let flag = if matches!(fields, Place::Contact(..)) {
            "access"
        } else {
            "give_access"
        };
        // Sites are built only for a diagnostic: this runs for every login with access.
        let flag_site = || fields.key(flag);
        if !has_email {
            cx.error(&flag_site(), "a login with access needs an email")
                .hint = Some("add `email:` to the customer".into());
        }
        cx.require_feature(desired, Feature::CustomerAccess, flag_site, "giving access");
        // `gains_access` comes last in each rule: it may need the live customers.
        if spec.notify && !has_endpoint(cx, desired) && gains_access(cx, spec) {
            let notify_site = fields.key("notify");
            cx.error(&notify_site, "this login would be sent a new-access notification, but no `notifications:` endpoint is configured (in the manifests or the live database), so nobody would ever receive it")
                .hint = Some("add a `notifications:` section, or give an initial `password:` instead of `notify: true`".into());
        }
        if spec.notify
            && spec.password.is_none()
            && spec.website.is_none()
            && has_endpoint(cx, desired)
            && !has_login_page(cx, desired)
            && gains_access(cx, spec)
        {
            let notify_site = fields.key("notify");
            cx.error(&notify_site, "this login has no website and `notifications.login_url` is not set, so its set-password link would have no address to point at")
                .hint = Some("assign a `website:` or set `notifications.login_url`".into());
        }
        if !spec.notify && spec.password.is_none() && gains_access(cx, spec) {
            cx.error(&flag_site(), "this login gets access but no password and no notification, so nobody could ever log in")
                .hint = Some("add `notify: true` (the user sets a password) or an initial `password:`".into());
        }
    }
}

/// Whether this login gets access it does not have in the live database. Offline (no live
/// state) nobody can tell, so the "nobody could log in" rule waits for plan: an exported
/// account's logins already have access and need neither a password source nor `notify`.
fn gains_access(cx: &Context<'_>, spec: &LoginSpec<'_>) -> bool {
    let Some(live) = cx.live else {
        return false;
    };
    let (customer, contact) = &spec.key;
    match &live.access {
        LiveAccess::Customers => {}
        LiveAccess::Keys(keys) => {
            return !keys.contains(customer, contact.as_deref().unwrap_or(""));
        }
        LiveAccess::Unread => {
            // Asked last in each rule, so only for a login the answer decides: the caller
            // reads the keys and validates again.
            cx.asked_access
                .store(true, std::sync::atomic::Ordering::Relaxed);
            return false;
        }
    }
    let login = live.customers.get(*customer).and_then(|c| match contact {
        None => Some(&c.record.login),
        Some(email) => c.contacts.get(email.as_str()),
    });
    !login.is_some_and(|l| l.access)
}

/// Whether new-access notifications have somewhere to go: the manifests' `notifications:`
/// section when they manage it, else the live database's.
fn has_endpoint(cx: &Context<'_>, desired: &Desired) -> bool {
    if desired.managed.notifications {
        desired.state.notifications.is_some()
    } else {
        cx.live.is_some_and(|live| live.notifications.is_some())
    }
}

/// Whether set-password links of logins without a website have a page to point at.
fn has_login_page(cx: &Context<'_>, desired: &Desired) -> bool {
    let settings = if desired.managed.notifications {
        desired.state.notifications.as_ref()
    } else {
        cx.live.and_then(|live| live.notifications.as_ref())
    };
    settings.is_some_and(|n| n.login_url.is_some())
}

/// A pragmatic address check: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn is_valid_email(email: &str) -> bool {
    // Checked as stored: in Unicode NFC (a combining diaeresis becomes `ü`).
    is_valid_normalized_email(&normalize_email(email))
}

/// [`is_valid_email`] of an email already normalised ([`normalize_email`]).
fn is_valid_normalized_email(email: &str) -> bool {
    use email_address::{EmailAddress, Options};
    // A bare address with a dotted domain: no display name or `<…>`, no `[ip]` literal.
    let options = Options::default()
        .with_required_tld()
        .without_domain_literal()
        .without_display_text();
    email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && EmailAddress::parse_with_options(email, options).is_ok()
}

/// Checks that exactly one source is given and that it can be read, without ever printing
/// the value. Returns the source when it is usable.
/// The password length the manifests' policy sets, else the live one's (when the section
/// is not managed), else 10.
fn min_password_length(cx: &Context<'_>) -> usize {
    cx.set
        .login_policy
        .as_ref()
        .map(|p| p.value.password.min_length)
        .or_else(|| {
            cx.live
                .and_then(|l| l.login_policy.as_ref())
                .map(|p| p.password.min_length)
        })
        .unwrap_or(10) as usize
}

/// A `password: { file: }` source: read from inside the manifest folder, kept as a path
/// relative to the manifest root (the same plan digest from any checkout folder).
fn password_file(cx: &mut Context<'_>, path: &str, site: &Site) -> Option<(SecretRef, String)> {
    let base = cx
        .set
        .sources
        .get(site.file)
        .and_then(|s| s.path.parent())
        .unwrap_or(Path::new("."));
    let full = base.join(path);
    let limit = cx.set.reading.max_file_bytes;
    let value = match crate::files::read_inside("password file", &cx.set.root, base, path, limit) {
        Ok(value) => value.trim_end_matches(['\r', '\n']).to_string(),
        Err(error) => {
            cx.error(&site.key("file"), error.to_string());
            return None;
        }
    };
    let relative = cx.set.relative(&full).to_path_buf();
    Some((SecretRef::File(relative), value))
}

/// Checks where a secret (a login's password, a client's secret) comes from: exactly one
/// source, readable, at least `min` characters (the number and the rule that sets it), or a
/// strong argon2id hash. `site` gives where the source is declared (built only for a
/// diagnostic); the last argument is (what the secret is, its minimum length, the rule
/// that sets it).
pub(super) fn check_secret(
    cx: &mut Context<'_>,
    source: &PasswordSource,
    site: impl Fn() -> Site,
    (noun, min, rule): (&str, usize, &str),
) -> Option<SecretRef> {
    let given = [
        source.env.is_some(),
        source.file.is_some(),
        source.argon2.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        cx.error(
            &site(),
            format!("a {noun} needs exactly one of `env`, `file` or `argon2`"),
        );
        return None;
    }
    let (key, secret, value) = if let Some(name) = &source.env {
        let Ok(value) = std::env::var(name) else {
            cx.error(
                &site().key("env"),
                format!("environment variable `{name}` is not set"),
            );
            return None;
        };
        ("env", SecretRef::Env(name.clone()), value)
    } else if let Some(path) = &source.file {
        let (secret, value) = password_file(cx, path, &site())?;
        ("file", secret, value)
    } else {
        let hash = source.argon2.clone().unwrap_or_default();
        if !crate::passwords::is_strong_argon2id(&hash) {
            cx.error(
                &site().key("argon2"),
                "`argon2` must be an argon2id hash (`$argon2id$…`) with OWASP parameters or stronger (m ≥ 19456, t ≥ 2)",
            );
            return None;
        }
        return Some(SecretRef::Argon2 { hash });
    };
    if value.chars().count() < min {
        cx.error(
            &site().key(key),
            format!("this {noun} is shorter than {rule} ({min})"),
        );
        return None;
    }
    Some(secret)
}

#[cfg(test)]
mod tests {
    use super::is_valid_email;

    #[test]
    fn emails() {
        for good in [
            "jane@acme.example",
            "j.o+tag@sub.acme.example",
            "jürgen@müller.example",
            "ju\u{308}rgen@x.example",
            "o'brien@acme.example",
        ] {
            assert!(is_valid_email(good), "{good}");
        }
        for bad in [
            "",
            "jane",
            "@acme.example",
            "jane@acme",
            "jane@.acme",
            "ja ne@acme.example",
            "a@b@c.d",
            "jane@acme..example",
            "<jane@acme.example>",
            "Jane <jane@acme.example>",
            "jane@-acme.example",
            "jane@[127.0.0.1]",
            "jane@acme.example.",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }
}
