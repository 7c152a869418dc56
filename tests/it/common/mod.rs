//! Test harness: a temp folder with manifests, a real database, and the real binary.

pub mod browser;
pub mod http;
pub mod schema;
pub mod smtp;
pub mod web;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use assert_cmd::Command;
use sqlx::Connection;
use tempfile::TempDir;

/// One test's world: manifests under `dir/manifests`, a live database, the binary.
pub struct Env {
    pub dir: TempDir,
    pub url: String,
}

/// A test's PostgreSQL database is dropped with it, so a suite run keeps only the databases
/// of the tests running at that moment on disk (each one is ~8 MB; the CI machine's disk can
/// be small). Errors are ignored: this also runs while a failed test unwinds.
impl Drop for Env {
    fn drop(&mut self) {
        let Some(name) = self.postgres_database() else {
            return;
        };
        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        let admin = postgres_admin_url();
        block_on(async {
            if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await;
            }
        });
    }
}

/// Generates, for each named `fn name(env: Env)`, a test per engine: `name::sqlite` and
/// `name::postgres`.
#[macro_export]
macro_rules! on_every_engine {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    super::$name($crate::common::Env::sqlite())
                }
                #[test]
                fn postgres() {
                    super::$name($crate::common::Env::postgres())
                }
            }
        )*
    };
}
#[allow(unused_imports)]
pub use on_every_engine;

/// A boolean column as '1' or '0' on both engines.
pub fn b(column: &str) -> String {
    format!("(CASE WHEN {column} THEN '1' ELSE '0' END)")
}

static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

impl Env {
    /// A fresh folder with an empty (not yet created) SQLite database.
    pub fn sqlite() -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("live.db").display());
        Env { dir, url }
    }

    /// Alias of [`Env::sqlite`] for tests that only need a folder.
    pub fn new() -> Env {
        Env::sqlite()
    }

    /// A fresh, empty database on the test PostgreSQL server (`bash .ci/test` starts one and
    /// sets `PORTICO_TEST_POSTGRES_URL`).
    pub fn postgres() -> Env {
        Env::postgres_with("")
    }

    /// [`Env::postgres`] with an ICU collation (`en-US`), whose order differs from the
    /// bytes' (`_x 0 a A a_b a-b Äpfel B`).
    pub fn postgres_icu() -> Env {
        Env::postgres_with(" LOCALE_PROVIDER icu ICU_LOCALE 'en-US' TEMPLATE template0")
    }

    fn postgres_with(options: &str) -> Env {
        let admin = postgres_admin_url();
        let name = format!(
            "portico_t{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::SeqCst)
        );
        block_on(async {
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .expect("connect to the test PostgreSQL");
            // FILE_COPY: the template's files are copied, not written through the WAL
            // (WAL_LOG, the default, writes ~8 MB of WAL per database made).
            let sql = format!("CREATE DATABASE {name}{options} STRATEGY FILE_COPY");
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        });
        let (base, _) = admin.rsplit_once('/').unwrap();
        Env {
            dir: tempfile::tempdir().unwrap(),
            url: format!("{base}/{name}"),
        }
    }

    /// The PostgreSQL database's name, or `None` on SQLite.
    fn postgres_database(&self) -> Option<&str> {
        if self.is_sqlite() {
            return None;
        }
        self.url.rsplit_once('/').map(|(_, name)| name)
    }

    /// `column` (bytes) as lower-case hex text, in this engine's SQL.
    pub fn hex(&self, column: &str) -> String {
        if self.is_sqlite() {
            format!("lower(hex({column}))")
        } else {
            format!("encode({column}, 'hex')")
        }
    }

    pub fn is_sqlite(&self) -> bool {
        self.url.starts_with("sqlite:")
    }

    /// Engine-specific SQL.
    pub fn pick<'a>(&self, sqlite: &'a str, postgres: &'a str) -> &'a str {
        if self.is_sqlite() { sqlite } else { postgres }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn db_path(&self) -> PathBuf {
        self.path("live.db")
    }

    /// Writes a manifest file under `manifests/`.
    pub fn write(&self, rel: &str, text: &str) -> &Env {
        let path = self.path("manifests").join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.path("manifests").join(rel)).unwrap();
    }

    /// The real binary, run in the temp folder against this database, without colour.
    pub fn portico(&self, args: &[&str]) -> Command {
        Command::from_std(self.std_command(args))
    }

    /// The same as [`Env::portico`], as a `std` command for spawning and piping.
    pub fn std_command(&self, args: &[&str]) -> std::process::Command {
        #[allow(deprecated)]
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("portico"));
        cmd.current_dir(self.dir.path())
            .env("PORTICO_DATABASE_URL", &self.url)
            .env("NO_COLOR", "1")
            // Tests that deliver notifications remove this; the others only queue them.
            .env("PORTICO_NO_NOTIFY", "true")
            .env_remove("PORTICO_MANIFESTS")
            .env_remove("CLICOLOR_FORCE")
            .args(args);
        cmd
    }

    /// `portico apply -f manifests --auto-approve`, asserting success.
    pub fn apply(&self) -> String {
        let out = self
            .portico(&["apply", "-f", "manifests", "--auto-approve"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `portico plan -f manifests`: (exit code, stdout, stderr).
    pub fn plan(&self, extra: &[&str]) -> (i32, String, String) {
        let mut args = vec!["plan", "-f", "manifests"];
        args.extend_from_slice(extra);
        run(self.portico(&args))
    }

    /// Runs SQL against the live database.
    pub fn sql(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        block_on(async {
            if self.is_sqlite() {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
            } else {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
            }
        })
    }

    /// Rows of a query whose single column is text.
    pub fn rows(&self, sql: &str) -> Vec<String> {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        block_on(async {
            if self.is_sqlite() {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar::<_, String>(sql)
                    .fetch_all(&mut conn)
                    .await
                    .unwrap()
            } else {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar::<_, String>(sql)
                    .fetch_all(&mut conn)
                    .await
                    .unwrap()
            }
        })
    }

    /// Every row of every portico table as text, sorted; empty when the schema is missing.
    pub fn dump(&self) -> Vec<String> {
        if self.is_sqlite() && !self.db_path().exists() {
            return Vec::new();
        }
        let exists = self.pick(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'logins'",
            "SELECT table_name::text FROM information_schema.tables WHERE table_name = 'logins'",
        );
        if self.rows(exists).is_empty() {
            return Vec::new();
        }
        let cast = |c: &str| format!("coalesce(CAST({c} AS TEXT), '∅')");
        let tables: [(&str, &[&str]); 10] = [
            (
                "notification_settings",
                &["url", "auth_env", "login_url", "token_ttl_hours"],
            ),
            (
                "notifications",
                &[
                    "id",
                    "customer_id",
                    "contact",
                    "email",
                    "password_assigned",
                    "status",
                    "attempts",
                    "last_error",
                ],
            ),
            (
                "set_password_tokens",
                &[
                    "token_hash",
                    "customer_id",
                    "contact",
                    "expires_at",
                    "used_at",
                    "revoked_at",
                ],
            ),
            ("features", &["name", "enabled"]),
            (
                "login_policy",
                &[
                    "id",
                    "max_failed_attempts",
                    "lockout_minutes",
                    "session_timeout_minutes",
                    "password_min_length",
                ],
            ),
            ("websites", &["id", "name", "url"]),
            ("roles", &["id", "name", "base", "standard", "two_factor"]),
            ("role_permissions", &["role_id", "permission", "level"]),
            ("customers", &["id", "name", "protect"]),
            (
                "logins",
                &[
                    "customer_id",
                    "contact",
                    "email",
                    "name",
                    "access",
                    "role_id",
                    "website_id",
                    "notify",
                    "password_hash",
                    "password_marker",
                    "failed_attempts",
                    "locked_until",
                    "last_login_at",
                ],
            ),
        ];
        let mut out = Vec::new();
        for (table, columns) in tables {
            let row = columns
                .iter()
                .map(|c| cast(c))
                .collect::<Vec<_>>()
                .join(" || '|' || ");
            out.extend(self.rows(&format!("SELECT '{table}|' || {row} FROM {table}")));
        }
        out.sort();
        out
    }
}

/// The test server's admin URL.
pub fn postgres_admin_url() -> String {
    std::env::var("PORTICO_TEST_POSTGRES_URL").expect(
        "PORTICO_TEST_POSTGRES_URL is not set: run the suite with `bash .ci/test`, which starts a throwaway PostgreSQL",
    )
}

/// (exit code, stdout, stderr) of a command.
pub fn run(mut cmd: Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

pub fn read_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// A small valid account used by many tests.
/// A message's status as its word (it is stored as a number: migration 0018).
pub const STATUS: &str = "(CASE status WHEN 0 THEN 'pending' WHEN 1 THEN 'sent' WHEN 2 THEN 'cancelled' WHEN 3 THEN 'failed' END)";

pub const ACCOUNT: &str = "\
features:
  customer_access: true
  websites: true
notifications:
  url: http://127.0.0.1:9/portico
  login_url: https://customers.example.com/login
websites:
  - id: store-eu
    name: EU Store
    url: https://eu.example.com
roles:
  - id: acme-center
    name: Customer Center (no payments)
    base: customer_center
    permissions:
      customer_payment: none
      invoice: view
customers:
  - id: CUST-0042
    name: Acme Ltd
    email: ap@acme.example
    access:
      give_access: true
      role: acme-center
      website: store-eu
      notify: true
    contacts:
      - email: jane@acme.example
        name: Jane Doe
        access: true
        notify: true
  - id: CUST-0043
    name: Beta GmbH
    email: info@beta.example
    access:
      give_access: true
      notify: true
";

/// The message `notify --status --format json` lists with `field` equal to `value`.
pub fn outbox_message(env: &Env, field: &str, value: &str) -> serde_json::Value {
    let (code, out, err) = run(env.portico(&["notify", "--status", "--format", "json"]));
    assert_eq!(code, 0, "{out}{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    listed["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m[field] == value)
        .cloned()
        .unwrap_or_else(|| panic!("no message with {field} {value}: {out}"))
}
