//! Stamps `portico --version` with the git commit and the build date when built from a
//! checkout (a packaged crate has no `.git`, and says only its version), and lists the
//! migrations to embed (what `sqlx::migrate!` does, without sqlx's proc-macro crate).

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let version = env!("CARGO_PKG_VERSION");
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|c| !c.is_empty() && std::path::Path::new(".git").exists());
    let long = match commit {
        Some(commit) => format!("{version} (commit {commit}, built {})", build_date()),
        None => version.to_string(),
    };
    println!("cargo:rustc-env=PORTICO_LONG_VERSION={long}");
    embed_migrations();
}

/// Writes `$OUT_DIR/migrations.rs`: for each engine, `(version, description, sql)` of every
/// `migrations/<engine>/<version>_<description>.sql`, in version order, the SQL included
/// from the file. Names are read as sqlx reads them (`_` in the description becomes a space).
fn embed_migrations() {
    let root =
        std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let mut code = String::new();
    for engine in ["sqlite", "postgres"] {
        let folder = root.join("migrations").join(engine);
        println!("cargo:rerun-if-changed={}", folder.display());
        let mut found: Vec<(i64, String, std::path::PathBuf)> = std::fs::read_dir(&folder)
            .unwrap_or_else(|e| panic!("reading {}: {e}", folder.display()))
            .map(|entry| entry.expect("a readable folder").path())
            .filter_map(|path| {
                let name = path.file_name()?.to_str()?.to_string();
                let (version, rest) = name.split_once('_')?;
                let description = rest.strip_suffix(".sql")?.replace('_', " ");
                let version = version
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}: no version"));
                Some((version, description, path))
            })
            .collect();
        found.sort();
        code.push_str(&format!(
            "pub(crate) const {}: &[(i64, &str, &str)] = &[\n",
            engine.to_uppercase()
        ));
        for (version, description, path) in found {
            code.push_str(&format!(
                "    ({version}, {description:?}, include_str!({:?})),\n",
                path.display().to_string()
            ));
        }
        code.push_str("];\n");
    }
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    std::fs::write(out.join("migrations.rs"), code).expect("writing the migrations list");
}

/// Today (UTC) as YYYY-MM-DD, or SOURCE_DATE_EPOCH's day for reproducible builds.
fn build_date() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
