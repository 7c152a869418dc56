//! Manifests: the YAML format, loading a set of files, and located diagnostics.

pub mod diagnostic;
pub mod load;
pub mod model;
pub mod oidc;
pub mod path;
pub mod policy;
pub(crate) mod split;

pub use diagnostic::{Diagnostic, Severity, Site, Source};
pub use load::{Declared, ManifestSet, load, load_text};
