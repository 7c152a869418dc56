//! The migrations embedded in the binary, one list per engine. `src/build.rs` lists
//! `migrations/<engine>/` at build time (what `sqlx::migrate!` does, without sqlx's
//! proc-macro crate); the checksums are sqlx's own, so databases migrated before keep
//! matching.

use std::borrow::Cow;
use std::sync::LazyLock;

use sqlx::SqlStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// The SQLite schema's migrations.
pub(crate) static SQLITE_MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| migrator(SQLITE));

/// The PostgreSQL schema's migrations.
pub(crate) static POSTGRES_MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| migrator(POSTGRES));

fn migrator(list: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        list.iter()
            .map(|&(version, description, sql)| {
                let no_transaction = sql.starts_with("-- no-transaction");
                let sql = SqlStr::from_static(sql);
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql,
                    no_transaction,
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both engines have every migration, numbered from 1 without a gap, in order.
    #[test]
    fn both_engines_list_the_same_numbered_migrations() {
        for list in [SQLITE, POSTGRES] {
            let versions: Vec<i64> = list.iter().map(|m| m.0).collect();
            assert_eq!(versions, (1..=versions.len() as i64).collect::<Vec<_>>());
            assert!(list.iter().all(|m| !m.2.trim().is_empty()));
        }
        let names =
            |list: &[(i64, &str, &str)]| list.iter().map(|m| m.1.to_string()).collect::<Vec<_>>();
        assert_eq!(names(SQLITE), names(POSTGRES));
        assert!(
            names(SQLITE).contains(&"login service".to_string()),
            "{:?}",
            names(SQLITE)
        );
        let versions = |m: &Migrator| m.iter().map(|m| m.version).collect::<Vec<_>>();
        assert_eq!(versions(&SQLITE_MIGRATOR).len(), SQLITE.len());
        assert_eq!(versions(&POSTGRES_MIGRATOR).len(), POSTGRES.len());
    }
}
