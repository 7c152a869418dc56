//! Rendering a [`Plan`](crate::plan::Plan) for people and tools.

pub mod json;
pub mod markdown;
pub mod text;

pub use json::{PlanDocument, render_json};
pub use markdown::render_markdown;
pub use text::{SUMMARY_ABOVE, render_diff, render_summary, render_text};

#[cfg(test)]
pub(crate) mod tests {
    use crate::plan::Plan;

    /// The plan that creates what `text` declares on an empty database.
    pub fn plan_of(text: &str) -> Plan {
        let (set, diagnostics) = crate::manifest::load_text("t.yaml", text);
        let (desired, found) = crate::validate::validate(&set, None);
        let errors: Vec<_> = diagnostics
            .iter()
            .chain(&found)
            .filter(|d| d.is_error())
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
        crate::plan::diff(&desired, &crate::state::State::empty(), Default::default())
    }
}
