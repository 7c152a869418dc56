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

/// The version of every JSON output's format but the plan's (which has its own,
/// `render::json::FORMAT_VERSION`); bumped on any incompatible change.
pub const OUTPUT_VERSION: u32 = 1;

/// A JSON output (`access`, `validate`, `notify --status`, `events`, `history`): its body
/// beside the version of its format, so a tool reading it can tell.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Versioned<T> {
    /// Version of this output's format (currently 1).
    #[schemars(extend("const" = 1))]
    pub format_version: u32,
    #[serde(flatten)]
    pub body: T,
}

/// `body` as a versioned JSON output, pretty-printed.
pub fn to_json<T: serde::Serialize>(body: T) -> String {
    serde_json::to_string_pretty(&Versioned {
        format_version: OUTPUT_VERSION,
        body,
    })
    .expect("outputs serialise")
}

/// A versioned output's schema with its title, pretty-printed.
fn versioned<T: schemars::JsonSchema>(title: &str) -> String {
    let mut schema = generate::<Versioned<T>>();
    schema.insert("title".into(), title.into());
    serde_json::to_string_pretty(&schema).expect("schema serialises")
}

/// The `access --format json` report schema, pretty-printed.
pub fn access_schema() -> String {
    versioned::<crate::access::AccessReport>("portico access report")
}

/// The `validate --format json` report schema, pretty-printed.
pub fn validate_schema() -> String {
    versioned::<crate::manifest::diagnostic::Report>("portico validate report")
}

/// `notify --status --format json`: every message of the outbox.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Messages {
    /// Oldest first.
    pub messages: Vec<crate::store::OutboxRow>,
}

/// The `notify --status --format json` schema, pretty-printed.
pub fn outbox_schema() -> String {
    versioned::<Messages>("portico outbox")
}

/// `events --format json`: sign-in events.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Events {
    /// Newest first.
    pub events: Vec<crate::store::serve::EventRow>,
}

/// The `events --format json` schema, pretty-printed.
pub fn events_schema() -> String {
    versioned::<Events>("portico sign-in events")
}

/// `history --format json` lists applies; `history show ID --format json` shows one.
#[derive(serde::Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum HistoryOutput {
    /// `history show ID`: the one apply.
    One {
        apply: Box<crate::history::ApplyRecord>,
    },
    /// `history`: every apply, oldest first.
    Many {
        applies: Vec<crate::history::ApplyRecord>,
    },
}

/// The `history --format json` schema, pretty-printed.
pub fn history_schema() -> String {
    versioned::<HistoryOutput>("portico history")
}
