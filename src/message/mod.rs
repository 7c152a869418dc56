//! The new-access message before it is sent: its templates (rendered and checked) and the
//! syntax of the endpoints it goes to. Pure, so validation checks both at plan time; the
//! `notify` service delivers.

pub mod endpoint;
pub mod template;
