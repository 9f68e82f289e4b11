//! YAML spec files → [`crate::syntax::Spec`] plus diagnostics.
