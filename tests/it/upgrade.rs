//! Databases made by earlier versions of portico: brought up to date by the next command
//! that writes, with nothing they hold lost.

use std::path::Path;

use sqlx::Connection as _;

use crate::common::{ACCOUNT, Env, block_on};

/// The schema of `migrations/<engine>/` up to `version`, as an earlier release left it.
fn migrate_to(env: &Env, engine: &str, version: i64) {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(engine);
    block_on(async {
        let migrator = sqlx::migrate::Migrator::new(folder).await.unwrap();
        if env.is_sqlite() {
            let options = env
                .url
                .parse::<sqlx::sqlite::SqliteConnectOptions>()
                .unwrap();
            let mut conn = sqlx::SqliteConnection::connect_with(&options.create_if_missing(true))
                .await
                .unwrap();
            migrator.run_to(version, &mut conn).await.unwrap();
        } else {
            let mut conn = sqlx::PgConnection::connect(&env.url).await.unwrap();
            migrator.run_to(version, &mut conn).await.unwrap();
        }
    });
}

crate::common::on_every_engine!(the_compact_bookkeeping_keeps_every_digest_and_message);

/// Migration 0016 rebuilds `applied_objects` (SQLite: WITHOUT ROWID) and `notifications`
/// (no unique index on the idempotency key) and drops two login indexes: the rows they held
/// before are all there after, and the next apply works on them.
fn the_compact_bookkeeping_keeps_every_digest_and_message(env: Env) {
    let engine = if env.is_sqlite() {
        "sqlite"
    } else {
        "postgres"
    };
    migrate_to(&env, engine, 15);
    env.sql(
        "INSERT INTO applied_objects (address, digest, apply_id) VALUES
            ('role[\"gone\"]', '0123456789abcdef', NULL);
         INSERT INTO notifications (idempotency_key, created_at, customer_id, contact, email,
            password_assigned, status, attempts, last_error, kind)
         VALUES ('k-before', '2026-01-01T00:00:00Z', 'C9', '', 'old@x.example', false, 'failed', 3,
            'refused', 'new_access')",
    );
    // `init` brings the schema up to date (and writes the standard roles, as the earlier
    // release's `init` had), then an apply writes on it.
    env.portico(&["init"]).assert().success();
    env.write("account.yaml", ACCOUNT);
    let out = env.apply();
    assert!(out.contains("Apply complete"), "{out}");
    assert_eq!(
        env.rows("SELECT digest FROM applied_objects WHERE address = 'role[\"gone\"]'"),
        ["0123456789abcdef"]
    );
    assert_eq!(
        env.rows(
            "SELECT email || ' ' || status || ' ' || CAST(attempts AS TEXT) || ' ' || last_error
             FROM notifications WHERE idempotency_key = 'k-before'"
        ),
        ["old@x.example failed 3 refused"]
    );
    // The apply recorded its own objects beside the old row.
    let applied = env.rows("SELECT CAST(count(*) AS TEXT) FROM applied_objects");
    assert!(applied[0].parse::<i64>().unwrap() > 3, "{applied:?}");
    let (code, _, err) = env.plan(&["--detailed-exitcode"]);
    assert_eq!(code, 0, "{err}");
    if env.is_sqlite() {
        let schema = env.rows("SELECT sql FROM sqlite_master WHERE name = 'applied_objects'");
        assert!(schema[0].contains("WITHOUT ROWID"), "{schema:?}");
        let indexes = env.rows(
            "SELECT name FROM sqlite_master WHERE type = 'index'
             AND tbl_name IN ('notifications', 'logins') ORDER BY name",
        );
        assert_eq!(
            indexes,
            [
                "notifications_status",
                "sqlite_autoindex_logins_1",
                "sqlite_autoindex_logins_2"
            ]
        );
    } else {
        let indexes = env.rows(
            "SELECT indexrelid::regclass::text FROM pg_index
             WHERE indrelid IN ('notifications'::regclass, 'logins'::regclass) ORDER BY 1",
        );
        assert_eq!(
            indexes,
            [
                "logins_email_key",
                "logins_pkey",
                "notifications_pkey",
                "notifications_status"
            ]
        );
    }
}
