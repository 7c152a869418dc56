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
