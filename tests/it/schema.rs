//! The committed JSON Schemas match the Rust types.

use std::path::Path;

#[test]
fn manifest_schema_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/manifest.schema.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let current = portico::schema::manifest_schema() + "\n";
    assert!(
        committed == current,
        "schemas/manifest.schema.json is stale: run `cargo run -- schema > schemas/manifest.schema.json`"
    );
}

#[test]
fn manifest_schema_lists_the_catalogs() {
    let schema: serde_json::Value =
        serde_json::from_str(&portico::schema::manifest_schema()).unwrap();
    let text = schema.to_string();
    for name in [
        "customer_access",
        "two_factor_authentication",
        "customer_payment",
        "return_authorization",
        "full",
    ] {
        assert!(text.contains(name), "{name} missing from the schema");
    }
    assert_eq!(
        schema["additionalProperties"],
        serde_json::Value::Bool(false)
    );
}

#[test]
fn plan_schema_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/plan.schema.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let current = portico::schema::plan_schema() + "\n";
    assert!(
        committed == current,
        "schemas/plan.schema.json is stale: run `cargo run -- schema plan > schemas/plan.schema.json`"
    );
}

#[test]
fn notification_schema_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/notification.schema.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let current = portico::schema::notification_schema() + "\n";
    assert!(
        committed == current,
        "schemas/notification.schema.json is stale: run `cargo run -- schema notification > schemas/notification.schema.json`"
    );
}

#[test]
fn access_schema_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/access.schema.json");
    let committed = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        committed.trim_end(),
        portico::schema::access_schema().trim_end(),
        "schemas/access.schema.json is stale: run `cargo run -- schema access > schemas/access.schema.json`"
    );
}

/// Every committed schema compiles in ajv's strict mode (JSON Schema 2020-12, formats
/// checked): editors and other validators read them without warnings.
#[test]
fn every_schema_compiles_in_ajv_strict_mode() {
    let modules = std::env::var("PORTICO_TEST_NODE_MODULES")
        .expect("PORTICO_TEST_NODE_MODULES: bash .ci/test installs ajv with npm");
    let script = r#"
const Ajv2020 = require("ajv/dist/2020");
const addFormats = require("ajv-formats");
const fs = require("fs");
let failed = 0;
for (const file of process.argv.slice(1)) {
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  addFormats(ajv);
  try { ajv.compile(JSON.parse(fs.readFileSync(file, "utf8"))); }
  catch (e) { failed++; console.log(file + ": " + e.message); }
}
process.exit(failed ? 1 : 0);
"#;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "{files:?}");
    let out = std::process::Command::new("node")
        .arg("-e")
        .arg(script)
        .args(&files)
        .env("NODE_PATH", &modules)
        .output()
        .expect("node: bash .ci/test installs it");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_plan_schema_pins_its_format_version() {
    let schema: serde_json::Value = serde_json::from_str(&portico::schema::plan_schema()).unwrap();
    assert_eq!(schema["properties"]["format_version"]["const"], 1);
}

/// Every number portico refuses in a manifest, the committed schema refuses too (checked by
/// ajv, a validator nobody here wrote), so an editor underlines it before portico runs; and
/// the edges portico accepts, the schema accepts.
#[test]
fn the_schema_refuses_every_number_portico_refuses() {
    let validator = crate::common::schema::Schema::committed("manifest");
    let notifications = |field: &str| {
        format!(
            "notifications: {{ url: https://hooks.example/p, login_url: https://c.example/login, {field} }}\n"
        )
    };
    let cases: Vec<(String, bool)> = vec![
        (
            "login_policy: { session_timeout_minutes: 0 }\n".into(),
            false,
        ),
        (
            "login_policy: { session_timeout_minutes: 1 }\n".into(),
            true,
        ),
        ("login_policy: { session_max_hours: 0 }\n".into(), false),
        ("login_policy: { session_max_hours: 721 }\n".into(), false),
        ("login_policy: { session_max_hours: 720 }\n".into(), true),
        (
            "login_policy: { lockout: { max_failed_attempts: 0, duration_minutes: 5 } }\n".into(),
            false,
        ),
        (
            "login_policy: { lockout: { max_failed_attempts: 5, duration_minutes: 0 } }\n".into(),
            false,
        ),
        (
            "login_policy: { password: { min_length: 0 } }\n".into(),
            false,
        ),
        (notifications("token_ttl_hours: 0"), false),
        (notifications("token_ttl_hours: 721"), false),
        (notifications("token_ttl_hours: 720"), true),
        (notifications("reset_ttl_minutes: 4"), false),
        (notifications("reset_ttl_minutes: 1441"), false),
        (notifications("reset_ttl_minutes: 5"), true),
        (notifications("max_attempts: 0"), false),
        (
            "policies:\n  - { id: p, message: m, max_logins_per_customer: 0 }\n".into(),
            false,
        ),
        (
            "policies:\n  - { id: p, message: m, max_logins_per_customer: 1 }\n".into(),
            true,
        ),
    ];
    let manifests: Vec<String> = cases
        .iter()
        .map(|(text, _)| format!("features: {{ customer_access: true }}\n{text}"))
        .collect();
    let values: Vec<serde_json::Value> = manifests
        .iter()
        .map(|m| serde_yaml::from_str(m).unwrap())
        .collect();
    let verdicts = validator.errors_each(&values);
    for (((text, accepted), manifest), errors) in cases.iter().zip(&manifests).zip(&verdicts) {
        let accepted = *accepted;
        let env = crate::common::Env::new();
        env.write("a.yaml", manifest);
        let (code, _, err) = crate::common::run(env.portico(&["validate", "-f", "manifests"]));
        assert_eq!(code == 0, accepted, "portico on {text:?}: {err}");
        assert_eq!(
            errors.is_empty(),
            accepted,
            "the schema on {text:?} (portico {})",
            if accepted { "accepts" } else { "refuses" }
        );
    }
}
