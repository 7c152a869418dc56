//! The live database: one [`Store`] trait, one implementation per engine, all SQL inside.

/// A struct read from a query row by column name: sqlx's `FromRow` derive, without its
/// proc-macro crate (which builds both database drivers a second time, for the compiler:
/// about a minute of every clean build on two cores). Each field is read from the column of
/// its name.
macro_rules! from_row {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $($(#[$field_meta:meta])* $field_vis:vis $field:ident: $ty:ty),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $($(#[$field_meta])* $field_vis $field: $ty),*
        }

        impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for $name
        where
            &'r str: sqlx::ColumnIndex<R>,
            $($ty: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,)*
        {
            fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
                Ok(Self {
                    $($field: row.try_get(stringify!($field))?),*
                })
            }
        }
    };
}

/// A column stored compactly and read as text: `$stored` decoded, then `$convert`ed. Shown,
/// serialised and described in schemas as the text.
macro_rules! stored_as {
    ($(#[$meta:meta])* $name:ident, $stored:ty, $convert:expr) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl schemars::JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> std::borrow::Cow<'static, str> {
                <String as schemars::JsonSchema>::schema_name()
            }
            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                <String as schemars::JsonSchema>::json_schema(generator)
            }
        }

        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            $stored: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <$stored as sqlx::Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <$stored as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            $stored: sqlx::Decode<'r, DB>,
        {
            fn decode(
                value: <DB as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let stored = <$stored as sqlx::Decode<'r, DB>>::decode(value)?;
                let convert: fn($stored) -> Result<String, sqlx::error::BoxDynError> = $convert;
                Ok($name(convert(stored)?))
            }
        }
    };
}

stored_as!(
    /// Raw bytes (an idempotency key: 16 bytes, half the room of its hex), read as
    /// lower-case hex; empty when there are none (a key derived when read, see
    /// `shared::read_outbox`).
    HexText,
    Option<Vec<u8>>,
    |bytes| Ok(bytes.map(|b| crate::state::hex(&b)).unwrap_or_default())
);

stored_as!(
    /// A time stored as Unix seconds (4 bytes where its text took 20), read as RFC 3339 (UTC).
    SecondsText,
    i64,
    |seconds| Ok(crate::clock::format(jiff::Timestamp::from_second(seconds)?))
);

pub mod day2;
mod finish;
mod migrations;
mod postgres;
pub mod rows;
pub mod serve;
mod shared;
mod sql;
mod sqlite;

use compact_str::CompactString;
use std::time::Duration;

pub use postgres::{APPLY_LOCK as POSTGRES_APPLY_LOCK, PostgresStore};
pub use sql::History;
pub use sqlite::SqliteStore;

pub use day2::LoginRuntime;
pub use finish::Counts as IndexWrites;

use crate::history::{ApplyRecord, Provenance};
use crate::passwords::PasswordRow;
use crate::plan::Plan;
use crate::state::State;

/// What can go wrong talking to the live database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no engine portico supports.
    #[error("unsupported database URL `{0}`: use sqlite://FILE or postgres://…")]
    UnsupportedUrl(String),
    /// Could not open or connect.
    #[error("cannot open database {url}: {source}")]
    Connect {
        /// The URL with any password hidden.
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Creating or upgrading the schema failed.
    #[error("cannot migrate the database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database was created by a newer portico.
    #[error(
        "the database schema is newer than this portico (version {found}, this build knows up to {known}); upgrade portico"
    )]
    TooNew {
        /// Highest migration applied in the database.
        found: i64,
        /// Highest migration embedded in this build.
        known: i64,
    },
    /// A statement failed.
    #[error("database error while {doing}: {source}")]
    Query {
        /// What portico was doing.
        doing: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The database holds a value portico never writes.
    #[error("the database holds data portico cannot read: {0}")]
    Corrupt(String),
    /// The live state changed between plan and apply.
    #[error(
        "the live database changed since this plan was computed; nothing was applied. Run plan again"
    )]
    Stale,
    /// The database was written by an older portico and needs its schema upgraded.
    #[error(
        "the database schema is older than this portico (version {found}, this build needs {known}); run `portico init` or apply to upgrade it"
    )]
    Outdated {
        /// Highest migration applied in the database.
        found: i64,
        /// Highest migration embedded in this build.
        known: i64,
    },
    /// Another apply holds the apply lock.
    #[error(
        "another apply holds the lock{}; gave up after {}s (raise --lock-timeout to wait longer)",
        held_by.as_ref().map(|h| format!(" ({h})")).unwrap_or_default(),
        waited.as_secs_f32()
    )]
    LockTimeout {
        /// How long portico waited.
        waited: Duration,
        /// Who holds it, when known.
        held_by: Option<String>,
    },
    /// The lock could not be taken for another reason.
    #[error("{0}")]
    Lock(String),
    /// A set-password token was refused.
    #[error("{0}")]
    Token(String),
    /// No login has this email.
    #[error("no login has the email `{0}`")]
    UnknownLogin(String),
    /// A day-2 operation was refused; nothing changed.
    #[error("{0}; nothing changed")]
    Refused(String),
}

/// Adds "while …" context to a driver error. A serialization failure (another writer
/// changed the rows this transaction read) is [`StoreError::Stale`]: nothing was applied.
pub(crate) trait Doing<T> {
    fn doing(self, doing: &'static str) -> Result<T, StoreError>;
}

impl<T> Doing<T> for Result<T, sqlx::Error> {
    fn doing(self, doing: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| {
            let serialization = source
                .as_database_error()
                .and_then(|e| e.code())
                .is_some_and(|code| code == "40001");
            if serialization {
                StoreError::Stale
            } else {
                StoreError::Query { doing, source }
            }
        })
    }
}

/// Options for opening a store.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// How long to wait for a lock held by another connection.
    pub busy_timeout: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// Statements an everyday apply runs after its plan ([`Store::prepare_apply`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyStatements {
    /// The version check, the history row, and the writes of customers, logins and
    /// messages an edit of customer files makes.
    Rows,
    /// The plan index's writes, as many of each as expected, then [`ApplyStatements::Rows`].
    Index(IndexWrites),
}

/// A live database portico reconciles.
#[allow(async_fn_in_trait)]
pub trait Store {
    /// Creates or upgrades the schema (embedded migrations) and writes the standard roles.
    async fn init(&mut self) -> Result<(), StoreError>;

    /// Upgrades the schema of an existing database; creates nothing.
    async fn migrate(&mut self) -> Result<(), StoreError>;

    /// Whether an apply has created portico's tables here.
    async fn has_schema(&mut self) -> Result<bool, StoreError>;

    /// Takes the apply lock for as long as this store lives, waiting up to `timeout`.
    /// `holder` says who holds it, for the error another apply gets.
    ///
    /// # Errors
    /// [`StoreError::LockTimeout`] naming the holder when known.
    async fn lock(&mut self, timeout: Duration, holder: &str) -> Result<(), StoreError>;

    /// Gives the apply lock back (after a commit, before slow work such as delivery).
    async fn unlock_apply(&mut self) -> Result<(), StoreError>;

    /// Every login's runtime activity (last login, lockout), for the access report. Empty
    /// for a database portico never initialised.
    async fn login_activity(&mut self) -> Result<Activity, StoreError>;

    /// Reads the managed state. Never writes; a database portico never initialised reads as
    /// an empty account.
    async fn read(&mut self) -> Result<State, StoreError>;

    /// The managed state and the digests of what portico last wrote, read in one consistent
    /// snapshot (what plan reads).
    async fn read_with_applied(&mut self) -> Result<(State, Applied), StoreError>;

    /// The live state's version and the plan index the last apply recorded (with the
    /// version it left), if any: `None` inside when it does not read (written by another
    /// version of portico, or damaged).
    async fn read_index(
        &mut self,
    ) -> Result<(LiveVersion, Option<(i64, Option<PlanIndex>)>), StoreError>;

    /// What an incremental plan reads, in one consistent snapshot: the small tables, the
    /// asked customers with their logins and digests, and the few facts about the others it
    /// checks ([`Part`]).
    async fn read_part(&mut self, query: &PartQuery<'_>) -> Result<Part, StoreError>;

    /// The rows of the plan index's files at `paths` (relative to the manifest root), for
    /// those that have one.
    async fn read_files(&mut self, paths: &[String]) -> Result<Vec<FileRow>, StoreError>;

    /// The stored pages of the plan index's file list whose first paths are `firsts`
    /// (first path and bytes), for those there are.
    async fn read_pages(&mut self, firsts: &[String])
    -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Prepares statements an everyday apply runs after its plan, while the plan works
    /// elsewhere (hashes and reads files), one after another until `done` (a statement more
    /// at most; `|| false` for all): compiled then, they are not compiled inside the apply's
    /// transaction, which they lengthened by a fifth. Best effort: a statement that does not
    /// prepare is prepared, and reported, when the apply runs it; one prepared again is
    /// found in the connection's cache.
    async fn prepare_apply(&mut self, which: ApplyStatements, done: &(dyn Fn() -> bool + Sync));

    /// Which of `customers` exist, and `(email, customer id)` of each of `emails` a login
    /// holds; with the version read.
    async fn owners(
        &mut self,
        customers: &[CompactString],
        emails: &[CompactString],
    ) -> Result<Owners, StoreError>;

    /// Which of `roles` a login of a customer not in `customers` has, and the version read.
    async fn roles_elsewhere(
        &mut self,
        roles: &[CompactString],
        customers: &[CompactString],
    ) -> Result<(LiveVersion, Vec<CompactString>), StoreError>;

    /// After an apply with nothing to change: records `index` as the plan index, in one
    /// transaction, when nothing was written since the plan was read (`fingerprint`).
    async fn record_index(
        &mut self,
        index: &PlanIndex,
        fingerprint: &str,
    ) -> Result<(), StoreError>;

    /// A mark of the last [`Store::read_with_applied`], when this engine can tell later
    /// that nothing has been written since. A plan carrying it lets apply skip reading the
    /// whole state again to check it is not stale.
    fn read_mark(&self) -> Option<ReadMark> {
        None
    }

    /// Every apply (without change lists), or the one with this id in full.
    async fn history(&mut self, id: Option<i64>) -> Result<Vec<ApplyRecord>, StoreError>;

    /// Applies `plan` in one transaction, all or nothing, under the apply lock, and records
    /// it in history. Refuses with [`StoreError::Stale`], changing nothing, when the live
    /// state's fingerprint is no longer the plan's. Returns the history id, and how many
    /// messages wait.
    ///
    /// With `index`, the apply also records it as the plan index (the files it was computed
    /// from left the database exactly as they describe it); without, it removes the old one.
    /// With a `pending` bound, it also counts the messages still to deliver once it is
    /// applied, up to that bound, as a count after it would (in the same statement as its
    /// last write: a round trip less).
    async fn apply(
        &mut self,
        plan: &std::sync::Arc<Plan>,
        history: History,
        writes: (Vec<PasswordRow>, Option<crate::state::SealingIndex>),
        pending: u64,
    ) -> Result<Recorded, StoreError>;

    /// The outbox, oldest first: only messages still to deliver, or all of them.
    async fn outbox(&mut self, pending_only: bool) -> Result<Vec<OutboxRow>, StoreError>;

    /// Stores the hash of a new set-password token for each message's login (its older
    /// links revoked), in one transaction; returns each token's expiry (RFC 3339, UTC), in
    /// order.
    async fn issue_tokens(&mut self, tokens: &[NewToken<'_>]) -> Result<Vec<String>, StoreError>;

    /// Claims pending messages for delivery for a few minutes, in one transaction; returns
    /// the ids claimed (not those another run holds or that are no longer pending). Two
    /// `portico notify` runs never send one twice.
    async fn claim_many(&mut self, ids: &[i64]) -> Result<Vec<i64>, StoreError>;

    /// Puts every `failed` message back in the queue with a fresh attempt budget; returns
    /// how many.
    async fn requeue_failed(&mut self) -> Result<u64, StoreError>;

    /// Records what messages' deliveries came to, in one transaction: each attempt (a
    /// successful one ends the claim), then, for a message given back, its release.
    async fn record_results(&mut self, results: &[Settled]) -> Result<(), StoreError>;

    /// Redeems a set-password token (by its hash) once, storing `password_hash`. Returns the
    /// login's email.
    ///
    /// # Errors
    /// [`StoreError::Token`] for an unknown, used, revoked or expired token.
    async fn redeem_token(
        &mut self,
        token_hash: &str,
        password_hash: &str,
    ) -> Result<String, StoreError>;

    /// A login's runtime data (password set, lockout, last login), its newest notification
    /// and set-password link, and the last history entry that touched it; `None` when no
    /// login has this (normalised) email. Never writes.
    async fn login_runtime(&mut self, email: &str) -> Result<Option<LoginRuntime>, StoreError>;

    /// Clears one login's lockout (failed attempts, locked until) under the apply lock, in
    /// one transaction recorded in history. Returns the history id.
    ///
    /// # Errors
    /// [`StoreError::UnknownLogin`], or [`StoreError::Refused`] for a login without access.
    async fn unlock(&mut self, email: &str, provenance: &Provenance) -> Result<i64, StoreError>;

    /// Queues a fresh new-access notification (with a new set-password link, older links
    /// revoked) for one login under the apply lock, in one transaction recorded in history.
    /// Returns the history id.
    ///
    /// # Errors
    /// [`StoreError::UnknownLogin`], or [`StoreError::Refused`] for a login without access.
    async fn resend(&mut self, email: &str, provenance: &Provenance) -> Result<i64, StoreError>;
}

from_row! {
    /// One login's runtime activity.
    #[derive(Clone, Debug)]
    pub struct LoginActivity {
        pub customer_id: String,
        /// `""` for the customer's own login.
        pub contact: String,
        pub last_login_at: Option<String>,
        pub locked_until: Option<String>,
        /// A password hash is stored.
        pub password_set: bool,
        /// Consecutive failed sign-ins.
        pub failed_attempts: i64,
    }
}

/// An apply recorded: its id in history, and the messages still to deliver after it,
/// counted up to the bound asked (0 when none was).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub id: i64,
    pub pending: u64,
}

/// What the access review reads besides the state: each login's runtime facts, and the apply
/// that last wrote each customer and contact.
#[derive(Clone, Debug, Default)]
pub struct Activity {
    pub logins: Vec<LoginActivity>,
    /// By resource address (`customer["C1"]`, `customer["C1"].contact["a@b"]`).
    pub written_by: std::collections::HashMap<String, WrittenBy>,
}

impl Activity {
    /// The two reads' rows, the second keyed by address.
    pub(crate) fn new(logins: Vec<LoginActivity>, written: Vec<WrittenBy>) -> Activity {
        Activity {
            logins,
            written_by: written
                .into_iter()
                .map(|w| {
                    let address = crate::state::Address::login(&w.customer_id, &w.contact);
                    (address.to_string(), w)
                })
                .collect(),
        }
    }
}

/// A set-password token to store for a message's login.
pub struct NewToken<'a> {
    /// The message it goes out with.
    pub message: &'a OutboxRow,
    /// The SHA-256 of the token (hex).
    pub token_hash: String,
    /// How long it stays valid.
    pub ttl_minutes: u32,
}

/// What one message's delivery came to in a run.
#[derive(Clone, Debug)]
pub struct Settled {
    /// The message.
    pub id: i64,
    /// Each attempt made, in order: `None` when it was sent, else the error.
    pub attempts: Vec<Option<String>>,
    /// Given back to the queue (`Some(false)`) or failed for good (`Some(true)`); `None`
    /// when sent (the successful attempt ended the claim).
    pub release: Option<bool>,
}

from_row! {
    /// The apply that last wrote an object, and its commit.
    #[derive(Clone, Debug)]
    pub struct WrittenBy {
        pub customer_id: String,
        /// `""` for the customer's own login.
        pub contact: String,
        pub apply_id: i64,
        pub git_commit: Option<String>,
    }
}

/// Reads [`WrittenBy`] rows (the same SQL on both engines).
pub(crate) const WRITTEN_BY: &str =
    "SELECT l.customer_id, l.contact, a.id AS apply_id, a.git_commit
    FROM logins l JOIN applies a ON a.id = l.applied_apply_id";

/// Reads [`LoginActivity`] rows (the same SQL on both engines).
pub(crate) const LOGIN_ACTIVITY: &str = "SELECT customer_id, contact, last_login_at, locked_until,
    (password_hash IS NOT NULL) AS password_set, CAST(failed_attempts AS BIGINT) AS failed_attempts
    FROM logins";

from_row! {
    /// A row of the notification outbox. It never holds a password or a token.
    #[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
    pub struct OutboxRow {
        /// Sequential id.
        pub id: i64,
        /// The message's idempotency key (HTTP `Idempotency-Key`, email `Message-ID`).
        pub idempotency_key: HexText,
        /// When the apply queued it (UTC, RFC 3339).
        pub created_at: SecondsText,
        /// The login's customer.
        pub customer_id: String,
        /// The contact's email; empty for the customer's own login.
        pub contact: String,
        /// The address it was queued for.
        pub email: String,
        /// Whether an initial password was assigned (then the message has no link).
        pub password_assigned: bool,
        /// `pending`, `sent`, `failed` (refused for good or out of attempts) or `cancelled`
        /// (access revoked before delivery).
        #[schemars(regex(pattern = "^(pending|sent|failed|cancelled)$"))]
        pub status: String,
        /// Delivery attempts so far.
        pub attempts: i64,
        /// The last attempt's error.
        pub last_error: Option<String>,
        /// When it was last tried (UTC).
        pub last_attempt_at: Option<String>,
        /// When it was delivered (UTC).
        pub sent_at: Option<String>,
        /// When a pending message that failed is tried next (UTC): the wait doubles after each
        /// failed attempt, from 1 minute up to about 4 hours.
        pub next_attempt_at: Option<String>,
        /// `new_access` (queued by an apply or `resend`) or `reset` (queued by "forgot password"
        /// on `portico serve`).
        #[schemars(regex(pattern = "^(new_access|reset)$"))]
        pub kind: String,
    }
}

/// Classifies the schema version found in a database against the newest this build knows:
/// `Ok(false)` when portico never initialised it, `Ok(true)` when current.
///
/// # Errors
/// [`StoreError::Outdated`] (run `portico init`) or [`StoreError::TooNew`] (upgrade portico).
pub(crate) fn schema_status(found: Option<i64>, known: i64) -> Result<bool, StoreError> {
    match found {
        None => Ok(false),
        Some(found) if found > known => Err(StoreError::TooNew { found, known }),
        Some(found) if found < known => Err(StoreError::Outdated { found, known }),
        Some(_) => Ok(true),
    }
}

/// A database URL safe to print: the password in the user part and any `password`-like
/// query parameter become `***`. A URL that does not parse (for example a password holding
/// `/` or `@` that was not percent-encoded) shows nothing after its scheme, since nobody can
/// tell where its password ends.
pub fn redact_url(raw: &str) -> String {
    if raw.trim().is_empty() {
        // A CI secret that is not set (a pull request from a fork) arrives as nothing.
        return "(empty: is PORTICO_DATABASE_URL set to nothing?)".to_string();
    }
    let scheme = raw.split_once("://").map_or("", |(s, _)| s);
    let Ok(mut parsed) = url::Url::parse(raw) else {
        return format!("{scheme}://… (URL not shown: it does not parse)");
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    let secret = |key: &str| {
        let key = key.to_ascii_lowercase();
        key.contains("password")
            || key.contains("secret")
            || key == "sslkey"
            || key.contains("token")
    };
    if parsed.query_pairs().any(|(k, _)| secret(&k)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret(&k) {
                    "***".to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// Batch size for multi-row statements: large enough to amortise a round trip, small
/// enough to keep each statement's parameter modest.
pub(crate) const BATCH: usize = 5_000;

/// Serialises rows as one JSON array parameter.
pub(crate) fn json<T: serde::Serialize>(rows: &[T]) -> String {
    serde_json::to_string(rows).expect("rows serialise")
}

/// Any supported engine, chosen by URL.
pub enum AnyStore {
    /// `sqlite://…`
    Sqlite(Box<SqliteStore>),
    /// `postgres://…` or `postgresql://…`
    Postgres(PostgresStore),
}

/// Opens the database named by `url`; `writable` stores may create it.
///
/// # Errors
/// [`StoreError::UnsupportedUrl`] or [`StoreError::Connect`].
pub async fn open(url: &str, writable: bool) -> Result<AnyStore, StoreError> {
    open_with(url, writable, OpenOptions::default()).await
}

/// [`open`] with options (the busy timeout follows `--lock-timeout` for apply).
///
/// # Errors
/// [`StoreError::UnsupportedUrl`] or [`StoreError::Connect`].
pub async fn open_with(
    url: &str,
    writable: bool,
    opts: OpenOptions,
) -> Result<AnyStore, StoreError> {
    if url.starts_with("sqlite:") {
        let store = SqliteStore::open(url, writable, &opts).await?;
        return Ok(AnyStore::Sqlite(Box::new(store)));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(AnyStore::Postgres(PostgresStore::open(url, &opts).await?));
    }
    Err(StoreError::UnsupportedUrl(redact_url(url)))
}

pub use crate::state::{Applied, FileRow, LiveVersion, ObjectDigest, PlanIndex, ReadMark};

/// What an incremental plan (or a delivery) asks of the live state, ids as stored.
#[derive(Debug, Default)]
pub struct PartQuery<'a> {
    /// The customers whose rows are read: those the changed files declared before (or
    /// those the messages to deliver are for).
    pub customers: &'a [CompactString],
    /// Logins of other customers with access that expires before this time (stored form).
    pub expiring_before: &'a str,
    /// Whether to read the keys of every login with access too (`state.access`): what
    /// validation may need of the customers when they are read after it.
    pub access_keys: bool,
    /// Whether to read the reset markers of every login holding one (`Part::markers`).
    pub password_markers: bool,
}

/// What [`Store::owners`] read.
#[derive(Debug, Default)]
pub struct Owners {
    /// The version read.
    pub version: LiveVersion,
    /// The asked customers that exist.
    pub customers: Vec<CompactString>,
    /// `(email, customer id)` of each asked email a login holds.
    pub emails: Vec<(CompactString, CompactString)>,
}

/// What [`Store::read_part`] read.
#[derive(Debug, Default)]
pub struct Part {
    /// The small tables (features, roles, websites, policies, settings, clients) and the
    /// asked customers.
    pub state: State,
    /// Their digests, and the version read.
    pub applied: Applied,
    /// `(customer id, contact, email, expires)` of the other customers' logins with access
    /// that expire before the asked time.
    pub expiring: Vec<(
        CompactString,
        CompactString,
        Option<CompactString>,
        CompactString,
    )>,
    /// The reset markers of every login holding one, when asked.
    pub markers: crate::state::PasswordMarkers,
}

impl Part {
    /// What a database portico never initialised reads as: an empty account.
    pub fn empty() -> Part {
        Part {
            state: State::empty(),
            ..Part::default()
        }
    }
}

/// Forwards a call to whichever engine this is.
macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($store) => $call,
            AnyStore::Postgres($store) => $call,
        }
    };
}

impl Store for AnyStore {
    async fn init(&mut self) -> Result<(), StoreError> {
        dispatch!(self, s => s.init().await)
    }

    async fn migrate(&mut self) -> Result<(), StoreError> {
        dispatch!(self, s => s.migrate().await)
    }

    async fn has_schema(&mut self) -> Result<bool, StoreError> {
        dispatch!(self, s => s.has_schema().await)
    }

    async fn lock(&mut self, timeout: Duration, holder: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.lock(timeout, holder).await)
    }

    async fn unlock_apply(&mut self) -> Result<(), StoreError> {
        dispatch!(self, s => s.unlock_apply().await)
    }

    async fn login_activity(&mut self) -> Result<Activity, StoreError> {
        dispatch!(self, s => s.login_activity().await)
    }

    async fn read(&mut self) -> Result<State, StoreError> {
        dispatch!(self, s => s.read().await)
    }

    async fn read_with_applied(&mut self) -> Result<(State, Applied), StoreError> {
        dispatch!(self, s => s.read_with_applied().await)
    }

    fn read_mark(&self) -> Option<ReadMark> {
        dispatch!(self, s => s.read_mark())
    }

    async fn read_index(
        &mut self,
    ) -> Result<(LiveVersion, Option<(i64, Option<PlanIndex>)>), StoreError> {
        dispatch!(self, s => s.read_index().await)
    }

    async fn read_part(&mut self, query: &PartQuery<'_>) -> Result<Part, StoreError> {
        dispatch!(self, s => s.read_part(query).await)
    }

    async fn read_files(&mut self, paths: &[String]) -> Result<Vec<FileRow>, StoreError> {
        dispatch!(self, s => s.read_files(paths).await)
    }

    async fn read_pages(
        &mut self,
        firsts: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        dispatch!(self, s => s.read_pages(firsts).await)
    }

    async fn prepare_apply(&mut self, which: ApplyStatements, done: &(dyn Fn() -> bool + Sync)) {
        dispatch!(self, s => s.prepare_apply(which, done).await)
    }

    async fn record_index(
        &mut self,
        index: &PlanIndex,
        fingerprint: &str,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.record_index(index, fingerprint).await)
    }

    async fn owners(
        &mut self,
        customers: &[CompactString],
        emails: &[CompactString],
    ) -> Result<Owners, StoreError> {
        dispatch!(self, s => s.owners(customers, emails).await)
    }

    async fn roles_elsewhere(
        &mut self,
        roles: &[CompactString],
        customers: &[CompactString],
    ) -> Result<(LiveVersion, Vec<CompactString>), StoreError> {
        dispatch!(self, s => s.roles_elsewhere(roles, customers).await)
    }

    async fn history(&mut self, id: Option<i64>) -> Result<Vec<ApplyRecord>, StoreError> {
        dispatch!(self, s => s.history(id).await)
    }

    async fn apply(
        &mut self,
        plan: &std::sync::Arc<Plan>,
        history: History,
        writes: (Vec<PasswordRow>, Option<crate::state::SealingIndex>),
        pending: u64,
    ) -> Result<Recorded, StoreError> {
        dispatch!(self, s => s.apply(plan, history, writes, pending).await)
    }

    async fn outbox(&mut self, pending_only: bool) -> Result<Vec<OutboxRow>, StoreError> {
        dispatch!(self, s => s.outbox(pending_only).await)
    }

    async fn issue_tokens(&mut self, tokens: &[NewToken<'_>]) -> Result<Vec<String>, StoreError> {
        dispatch!(self, s => s.issue_tokens(tokens).await)
    }

    async fn record_results(&mut self, results: &[Settled]) -> Result<(), StoreError> {
        dispatch!(self, s => s.record_results(results).await)
    }

    async fn claim_many(&mut self, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        dispatch!(self, s => s.claim_many(ids).await)
    }

    async fn requeue_failed(&mut self) -> Result<u64, StoreError> {
        dispatch!(self, s => s.requeue_failed().await)
    }

    async fn redeem_token(
        &mut self,
        token_hash: &str,
        password_hash: &str,
    ) -> Result<String, StoreError> {
        dispatch!(self, s => s.redeem_token(token_hash, password_hash).await)
    }

    async fn login_runtime(&mut self, email: &str) -> Result<Option<LoginRuntime>, StoreError> {
        dispatch!(self, s => s.login_runtime(email).await)
    }

    async fn unlock(&mut self, email: &str, provenance: &Provenance) -> Result<i64, StoreError> {
        dispatch!(self, s => s.unlock(email, provenance).await)
    }

    async fn resend(&mut self, email: &str, provenance: &Provenance) -> Result<i64, StoreError> {
        dispatch!(self, s => s.resend(email, provenance).await)
    }
}
#[cfg(test)]
mod tests {
    use super::{ObjectDigest, redact_url};

    #[test]
    fn an_object_digest_reads_back_only_from_its_sixteen_hex_digits() {
        let digest = ObjectDigest::from_hex("79d2f743b3701e76");
        assert_eq!(digest, ObjectDigest(0x79d2_f743_b370_1e76));
        assert_eq!(ObjectDigest::from_hex("79D2F743B3701E76"), digest);
        let parsed: ObjectDigest = serde_json::from_str("\"79d2f743b3701e76\"").unwrap();
        assert_eq!(parsed, digest);
        // Edited by hand: never the digest of an object.
        for bad in [
            "",
            "79d2f743b3701e7",
            "79d2f743b3701e761",
            "+9d2f743b3701e76",
            "x9d2f743b3701e76",
        ] {
            assert_eq!(ObjectDigest::from_hex(bad), ObjectDigest(u64::MAX), "{bad}");
        }
    }

    #[test]
    fn hides_passwords() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redact_url("sqlite://portico.db"), "sqlite://portico.db");
        // An empty URL (a CI secret not set) says so instead of "://…".
        assert!(redact_url("").starts_with("(empty"), "{}", redact_url(""));
    }

    #[test]
    fn hides_passwords_in_every_form() {
        for (url, secret) in [
            ("postgres://u@host/db?password=S3cret", "S3cret"),
            ("postgres://host/db?user=u&password=S3cret", "S3cret"),
            (
                "postgres://host/db?sslmode=require&PASSWORD=S3cret",
                "S3cret",
            ),
            ("postgres://u:pa/ss@host/db", "pa/ss"),
            ("postgres://u:pa/ss@x@host/db", "ss@x"),
            ("postgres://u:p%40ss@host/db", "p%40ss"),
            ("postgresql://u:S3cret@[::1]:5432/db", "S3cret"),
        ] {
            let shown = redact_url(url);
            assert!(!shown.contains(secret), "{url} → {shown}");
            assert!(shown.starts_with("postgres"), "{shown}");
        }
        assert_eq!(
            redact_url("postgres://host/db?user=u&password=S"),
            "postgres://host/db?user=u&password=***"
        );
    }
}
