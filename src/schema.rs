//! JSON Schemas generated from the Rust types; the committed copies live in `schemas/`.

use crate::manifest::model::Document;

/// A type's schema as committed: JSON Schema 2020-12 without the non-standard `format`s
/// schemars adds for Rust integers (`uint32`, `int64`, …), which strict validators such as
/// ajv refuse; the `minimum` beside them stays.
fn generate<T: schemars::JsonSchema>() -> schemars::Schema {
    fn drop_rust_formats(schema: &mut schemars::Schema) {
        let rust_format = schema
            .get("format")
            .and_then(|f| f.as_str())
            .is_some_and(|f| {
                matches!(
                    f,
                    "uint"
                        | "uint8"
                        | "uint16"
                        | "uint32"
                        | "uint64"
                        | "int"
                        | "int8"
                        | "int16"
                        | "int32"
                        | "int64"
                        | "float"
                        | "double"
                )
            });
        if rust_format {
            schema.remove("format");
        }
    }
    schemars::generate::SchemaSettings::draft2020_12()
        .with_transform(schemars::transform::RecursiveTransform(drop_rust_formats))
        .into_generator()
        .into_root_schema_for::<T>()
}

/// The manifest schema, pretty-printed, with a trailing newline.
pub fn manifest_schema() -> String {
    let schema = generate::<Document>();
    serde_json::to_string_pretty(&schema).expect("schema serialises")
}

/// The JSON plan schema (`plan --format json`, saved plans), pretty-printed.
pub fn plan_schema() -> String {
    let schema = generate::<crate::render::PlanDocument>();
    serde_json::to_string_pretty(&schema).expect("schema serialises")
}

/// The new-access notification body schema, pretty-printed.
pub fn notification_schema() -> String {
    let schema = generate::<crate::notify::NotificationMessage>();
    serde_json::to_string_pretty(&schema).expect("schema serialises")
}

/// The `access --format json` report schema, pretty-printed.
pub fn access_schema() -> String {
    let schema = generate::<crate::access::AccessReport>();
    serde_json::to_string_pretty(&schema).expect("schema serialises")
}

/// The `validate --format json` report schema, pretty-printed.
pub fn validate_schema() -> String {
    let schema = generate::<crate::manifest::diagnostic::Report>();
    serde_json::to_string_pretty(&schema).expect("schema serialises")
}

/// The `notify --status --format json` schema (a list of messages), pretty-printed.
pub fn outbox_schema() -> String {
    let schema = generate::<Vec<crate::store::OutboxRow>>();
    serde_json::to_string_pretty(&schema).expect("schema serialises")
}

/// The `events --format json` schema (a list of sign-in events), pretty-printed.
pub fn events_schema() -> String {
    let schema = generate::<Vec<crate::store::serve::EventRow>>();
    serde_json::to_string_pretty(&schema).expect("schema serialises")
}

/// `history --format json` prints a list of applies; `history show ID --format json` one.
#[derive(serde::Serialize, schemars::JsonSchema)]
#[serde(untagged)]
#[schemars(title = "portico history")]
pub enum HistoryOutput {
    /// `history show ID`.
    One(Box<crate::history::ApplyRecord>),
    /// `history`.
    Many(Vec<crate::history::ApplyRecord>),
}

/// The `history --format json` schema, pretty-printed.
pub fn history_schema() -> String {
    let schema = generate::<HistoryOutput>();
    serde_json::to_string_pretty(&schema).expect("schema serialises")
}
