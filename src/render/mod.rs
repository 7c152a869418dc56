//! Rendering a [`Plan`](crate::plan::Plan) for people and tools.

pub mod json;
pub mod markdown;
pub mod text;

pub use json::{PlanDocument, render_json};
pub use markdown::render_markdown;
pub use text::{SUMMARY_ABOVE, render_diff, render_summary, render_text};
