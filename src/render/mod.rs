//! Rendering a [`Plan`](crate::plan::Plan) for people and tools.

pub mod text;

pub use text::{render_diff, render_text};
