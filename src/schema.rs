//! JSON Schemas generated from the Rust types; the committed copies live in `schemas/`.

use crate::manifest::model::Document;

/// The manifest schema, pretty-printed, with a trailing newline.
pub fn manifest_schema() -> String {
    let schema = schemars::schema_for!(Document);
    serde_json::to_string_pretty(&schema).expect("schema serialises")
}

/// The JSON plan schema (`plan --format json`, saved plans), pretty-printed.
pub fn plan_schema() -> String {
    let schema = schemars::schema_for!(crate::render::PlanDocument);
    serde_json::to_string_pretty(&schema).expect("schema serialises")
}

/// The new-access notification body schema, pretty-printed.
pub fn notification_schema() -> String {
    let schema = schemars::schema_for!(crate::notify::NotificationMessage);
    serde_json::to_string_pretty(&schema).expect("schema serialises")
}

/// The `access --format json` report schema, pretty-printed.
pub fn access_schema() -> String {
    let schema = schemars::schema_for!(crate::access::AccessReport);
    serde_json::to_string_pretty(&schema).expect("schema serialises")
}

/// The `validate --format json` report schema, pretty-printed.
pub fn validate_schema() -> String {
    let schema = schemars::schema_for!(crate::manifest::diagnostic::Report);
    serde_json::to_string_pretty(&schema).expect("schema serialises")
}

/// The `notify --status --format json` schema (a list of messages), pretty-printed.
pub fn outbox_schema() -> String {
    let schema = schemars::schema_for!(Vec<crate::store::OutboxRow>);
    serde_json::to_string_pretty(&schema).expect("schema serialises")
}

/// The `events --format json` schema (a list of sign-in events), pretty-printed.
pub fn events_schema() -> String {
    let schema = schemars::schema_for!(Vec<crate::store::serve::EventRow>);
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
    let schema = schemars::schema_for!(HistoryOutput);
    serde_json::to_string_pretty(&schema).expect("schema serialises")
}
