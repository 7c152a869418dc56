//! The end of an everyday apply in one round trip.
//!
//! An apply ends by raising the write count and recording the plan index: its own bytes, the
//! pages of its list that changed and the rows of the files it read. For a change to a few
//! logins that is one page and one file, yet each was a statement of its own, and each
//! statement is a round trip: to SQLite's worker thread (two thread wake-ups besides the
//! work), to the PostgreSQL server (a prepare and an execute for a statement the
//! connection has not run). Here the writes go as one: SQLite runs the statements of one
//! string in turn (sqlx numbers their `$N` parameters across the string), PostgreSQL takes
//! one statement whose writes are parts of its `WITH`.
//!
//! The SQL is built from the constants below and placeholders only (how many of each
//! write); every value is bound. Bigger writes (a first apply's whole index) keep the
//! statements of [`super::shared::finish_apply`].

use std::collections::BTreeSet;
use std::fmt::Write as _;

use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};

use super::{Doing as _, StoreError};
use crate::state::{FileRow, FileWrites, Sealed};

/// How an engine sends several writes as one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Together {
    /// Statements one after the other in one string (SQLite).
    Statements,
    /// One statement, each write a part of its `WITH` (PostgreSQL).
    With,
}

/// At most this many pages, and as many file rows, are written together (an everyday apply
/// writes one or two of each).
const AT_MOST: usize = 32;

/// Raises the write count (the parameter `$1` is the standard roles' digest) and returns it,
/// `n`, with the messages still to deliver counted up to `$2`, `waiting`. Also the first
/// statement of the writes one by one ([`super::shared::finish_apply`]).
pub(crate) const RAISE: &str =
    "UPDATE managed_changes SET n = n + 1, roles_digest = $1, roles_at = n + 1 WHERE id = 1
    RETURNING n,
        (SELECT count(*) FROM (SELECT 1 FROM notifications WHERE status = 0 LIMIT $2) AS p)
        AS waiting";

const UPSERT_INDEX: &str =
    "ON CONFLICT (id) DO UPDATE SET changes = excluded.changes, body = excluded.body";

const UPSERT_PAGES: &str = "ON CONFLICT (first) DO UPDATE SET body = excluded.body";

const UPSERT_FILES: &str = "ON CONFLICT (path) DO UPDATE
    SET digest = excluded.digest, ids = excluded.ids, groups = excluded.groups";

/// The index writes of an everyday apply, when they are few enough to go together.
pub(crate) struct InOne<'a> {
    sealed: &'a Sealed,
    /// The pages that go and are not written again (a page written again is replaced by
    /// its insert: a part of one statement may not touch a row another part touches).
    pages_gone: Vec<&'a str>,
    files_gone: Vec<&'a str>,
    files: &'a [FileRow],
    /// Each file row's digest as its bytes.
    digests: Vec<Vec<u8>>,
}

impl<'a> InOne<'a> {
    /// The writes of `sealed` and `files` together, or `None` when they are too many (or a
    /// key repeats, or a digest is not hex: the statements one by one handle those).
    pub fn of(sealed: &'a Sealed, files: &'a FileWrites) -> Option<Self> {
        if sealed.all || files.all || sealed.pages.len() > AT_MOST || files.rows.len() > AT_MOST {
            return None;
        }
        let pages: BTreeSet<&str> = sealed.pages.iter().map(|(f, _)| f.as_str()).collect();
        let paths: BTreeSet<&str> = files.rows.iter().map(|(p, ..)| p.as_str()).collect();
        if pages.len() != sealed.pages.len() || paths.len() != files.rows.len() {
            return None;
        }
        let gone = |keys: &'a [String], written: &BTreeSet<&str>| -> Vec<&'a str> {
            let gone: BTreeSet<&'a str> = keys
                .iter()
                .map(String::as_str)
                .filter(|k| !written.contains(k))
                .collect();
            gone.into_iter().collect()
        };
        let pages_gone = gone(&sealed.gone, &pages);
        let files_gone = gone(&files.gone, &paths);
        if pages_gone.len() > AT_MOST || files_gone.len() > AT_MOST {
            return None;
        }
        let digests = files
            .rows
            .iter()
            .map(|(_, digest, ..)| hex::decode(digest).ok())
            .collect::<Option<Vec<Vec<u8>>>>()?;
        Some(InOne {
            sealed,
            pages_gone,
            files_gone,
            files: &files.rows,
            digests,
        })
    }

    /// The one statement (or string of statements). Parameters: `$1` the roles' digest,
    /// `$2` the bound of the count, `$3` the index's bytes, then the pages that go, the
    /// pages (key, bytes), the files that go, the files (path, digest, ids, groups).
    pub fn sql(&self, together: Together) -> String {
        let counts = Counts {
            pages_gone: self.pages_gone.len(),
            pages: self.sealed.pages.len(),
            files_gone: self.files_gone.len(),
            files: self.files.len(),
        };
        sql(counts, together)
    }

    /// Raises the write count and writes the index, in one round trip; returns the messages
    /// still to deliver (counted up to `pending`).
    ///
    /// # Errors
    /// Database errors.
    pub async fn run<DB>(
        self,
        conn: &mut DB::Connection,
        pending: i64,
        together: Together,
    ) -> Result<i64, StoreError>
    where
        DB: Database,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        DB::Arguments: IntoArguments<DB>,
        for<'q> i64: Encode<'q, DB> + Type<DB>,
        for<'q> &'q str: Encode<'q, DB> + Type<DB>,
        for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
        for<'q> Option<&'q [u8]>: Encode<'q, DB> + Type<DB>,
        for<'r> (i64, i64): FromRow<'r, DB::Row>,
    {
        let sql = self.sql(together);
        let mut query = sqlx::query_as::<DB, (i64, i64)>(sqlx::AssertSqlSafe(sql))
            .bind(super::sql::standard_roles_digest())
            .bind(pending)
            .bind(self.sealed.body.as_slice());
        for first in &self.pages_gone {
            query = query.bind(*first);
        }
        for (first, body) in &self.sealed.pages {
            query = query.bind(first.as_str()).bind(body.as_slice());
        }
        for path in &self.files_gone {
            query = query.bind(*path);
        }
        for ((path, _, ids, groups), digest) in self.files.iter().zip(&self.digests) {
            query = query
                .bind(path.as_str())
                .bind(digest.as_slice())
                .bind(ids.as_slice())
                .bind(groups.as_deref());
        }
        // Every statement runs: the rows of all are read (only the first returns one).
        let rows = query
            .fetch_all(&mut *conn)
            .await
            .doing("recording the plan index")?;
        rows.first()
            .map(|&(_, waiting)| waiting)
            .ok_or_else(|| StoreError::Corrupt("the write count has no row".to_string()))
    }
}

/// How many of each write [`sql`] holds: pages of the index's list removed and written,
/// rows of its files removed and written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub pages_gone: usize,
    pub pages: usize,
    pub files_gone: usize,
    pub files: usize,
}

/// The SQL of [`InOne`] for these counts (see [`InOne::sql`]): the same text for the same
/// counts, so a statement prepared ahead ([`super::Store::prepare_apply`]) is the one run.
pub(crate) fn sql(counts: Counts, together: Together) -> String {
    let mut next = 3;
    let mut params = |count: usize, width: usize| -> Vec<String> {
        (0..count)
            .map(|_| {
                let tuple: Vec<String> = (0..width)
                    .map(|_| {
                        next += 1;
                        format!("${next}")
                    })
                    .collect();
                tuple.join(", ")
            })
            .collect()
    };
    let pages_gone = params(counts.pages_gone, 1);
    let pages = params(counts.pages, 2);
    let files_gone = params(counts.files_gone, 1);
    let files = params(counts.files, 4);
    let mut writes = Vec::new();
    if !pages_gone.is_empty() {
        writes.push(format!(
            "DELETE FROM plan_index_pages WHERE first IN ({})",
            pages_gone.join(", ")
        ));
    }
    if !pages.is_empty() {
        writes.push(format!(
            "INSERT INTO plan_index_pages (first, body) VALUES ({}) {UPSERT_PAGES}",
            pages.join("), (")
        ));
    }
    if !files_gone.is_empty() {
        writes.push(format!(
            "DELETE FROM plan_index_files WHERE path IN ({})",
            files_gone.join(", ")
        ));
    }
    if !files.is_empty() {
        writes.push(format!(
            "INSERT INTO plan_index_files (path, digest, ids, groups) VALUES ({}) {UPSERT_FILES}",
            files.join("), (")
        ));
    }
    let mut sql = String::new();
    match together {
        Together::Statements => {
            // The index reads the count the first statement raised.
            let _ = write!(
                sql,
                "{RAISE};
                INSERT INTO plan_index (id, changes, body)
                VALUES (1, (SELECT n FROM managed_changes WHERE id = 1), $3) {UPSERT_INDEX}"
            );
            for write in writes {
                let _ = write!(sql, ";\n{write}");
            }
        }
        Together::With => {
            let _ = write!(
                sql,
                "WITH raised AS ({RAISE}),
                ix AS (INSERT INTO plan_index (id, changes, body)
                    SELECT 1, n, $3 FROM raised {UPSERT_INDEX})"
            );
            for (i, write) in writes.iter().enumerate() {
                let _ = write!(sql, ",\nw{i} AS ({write})");
            }
            sql.push_str("\nSELECT n, waiting FROM raised");
        }
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::{InOne, Together};
    use crate::state::{FileWrites, Sealed};

    fn sealed(pages: &[&str], gone: &[&str]) -> Sealed {
        Sealed {
            body: vec![1, 2, 3],
            listed: Vec::new(),
            pages: pages.iter().map(|p| (p.to_string(), vec![9])).collect(),
            gone: gone.iter().map(|g| g.to_string()).collect(),
            all: false,
        }
    }

    fn files(rows: &[&str], gone: &[&str]) -> FileWrites {
        FileWrites {
            all: false,
            gone: gone.iter().map(|g| g.to_string()).collect(),
            rows: rows
                .iter()
                .map(|p| (p.to_string(), "ab".repeat(20), vec![1], None))
                .collect(),
        }
    }

    #[test]
    fn each_value_has_its_own_parameter_and_a_key_written_again_is_not_deleted() {
        let sealed = sealed(&["a", "b"], &["a", "z"]);
        let files = files(&["x.yaml"], &["x.yaml", "gone.yaml"]);
        let one = InOne::of(&sealed, &files).expect("few enough");
        assert_eq!(one.pages_gone, ["z"]);
        assert_eq!(one.files_gone, ["gone.yaml"]);
        for together in [Together::Statements, Together::With] {
            let sql = one.sql(together);
            // $1–$3, one page gone, two pages of two, one file gone, one file of four.
            for n in 1..=13 {
                assert!(sql.contains(&format!("${n}")), "${n} in {sql}");
            }
            assert!(!sql.contains("$14"), "{sql}");
            assert!(sql.contains("WHERE first IN ($4)"), "{sql}");
            assert!(sql.contains("VALUES ($5, $6), ($7, $8)"), "{sql}");
            assert!(sql.contains("WHERE path IN ($9)"), "{sql}");
            assert!(sql.contains("VALUES ($10, $11, $12, $13)"), "{sql}");
        }
    }

    #[test]
    fn the_sql_prepared_ahead_for_some_counts_is_the_one_run() {
        let sealed = sealed(&["a", "b"], &["a", "z"]);
        let files = files(&["x.yaml"], &["x.yaml", "gone.yaml"]);
        let one = InOne::of(&sealed, &files).expect("few enough");
        let counts = super::Counts {
            pages_gone: 1,
            pages: 2,
            files_gone: 1,
            files: 1,
        };
        for together in [Together::Statements, Together::With] {
            assert_eq!(super::sql(counts, together), one.sql(together));
        }
        let none = super::Counts::default();
        assert!(!super::sql(none, Together::With).contains("$4"));
    }

    #[test]
    fn many_writes_a_whole_index_or_a_repeated_key_are_left_to_the_statements_one_by_one() {
        let many: Vec<String> = (0..=super::AT_MOST).map(|i| format!("p{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(InOne::of(&sealed(&many, &[]), &files(&[], &[])).is_none());
        assert!(InOne::of(&sealed(&[], &many), &files(&[], &[])).is_none());
        assert!(InOne::of(&sealed(&[], &[]), &files(&many, &[])).is_none());
        let mut whole = sealed(&["a"], &[]);
        whole.all = true;
        assert!(InOne::of(&whole, &files(&[], &[])).is_none());
        let mut all_files = files(&["x"], &[]);
        all_files.all = true;
        assert!(InOne::of(&sealed(&["a"], &[]), &all_files).is_none());
        assert!(InOne::of(&sealed(&["a", "a"], &[]), &files(&[], &[])).is_none());
        assert!(InOne::of(&sealed(&[], &[]), &files(&["x", "x"], &[])).is_none());
        let mut not_hex = files(&["x"], &[]);
        not_hex.rows[0].1 = "not hex".to_string();
        assert!(InOne::of(&sealed(&[], &[]), &not_hex).is_none());
        assert!(InOne::of(&sealed(&["a"], &["b"]), &files(&["x"], &["y"])).is_some());
    }
}
