//! Test harness: a temp folder with manifests, a real database, and the real binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use sqlx::Connection;
use tempfile::TempDir;

/// One test's world: manifests under `dir/manifests`, a live database, the binary.
pub struct Env {
    pub dir: TempDir,
    pub url: String,
}

impl Env {
    /// A fresh folder with an empty (not yet created) SQLite database.
    pub fn new() -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("live.db").display());
        Env { dir, url }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn db_path(&self) -> PathBuf {
        self.path("live.db")
    }

    /// Writes a manifest file under `manifests/` (replacing the whole folder's file).
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
        let mut cmd = Command::cargo_bin("portico").unwrap();
        cmd.current_dir(self.dir.path())
            .env("PORTICO_DATABASE_URL", &self.url)
            .env("NO_COLOR", "1")
            .env_remove("PORTICO_MANIFESTS")
            .args(args);
        cmd
    }

    /// `portico apply -f manifests --auto-approve`, asserting success.
    pub fn apply(&self) -> String {
        let out = self.portico(&["apply", "-f", "manifests", "--auto-approve"]).output().unwrap();
        assert!(out.status.success(), "apply failed: {}", String::from_utf8_lossy(&out.stderr));
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
        block_on(async {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(&mut conn).await.unwrap();
        })
    }

    /// Rows of a query whose single column is text.
    pub fn rows(&self, sql: &str) -> Vec<String> {
        block_on(async {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql.to_string())).fetch_all(&mut conn).await.unwrap()
        })
    }
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
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
}

pub fn read_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// A small valid account used by many tests.
pub const ACCOUNT: &str = "\
features:
  customer_access: true
  websites: true
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
