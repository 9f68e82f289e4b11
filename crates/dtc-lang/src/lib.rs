//! The DTC spec language, up to the syntax tree: YAML with source positions, the expression
//! grammar (pest), and diagnostics with stable codes rendered like rustc.
//!
//! Test files of `dtc test` load through [`testfile`] into a typed [`testfile::TestFile`].
//!
//! Data path: spec text → [`load`] (YAML nodes with spans) → [`syntax::Spec`] whose expressions
//! are [`ast::Expr`] trees from [`parser`]. Binding names and types happens in `dtc-plan`.

pub mod ast;
pub mod diagnostic;
pub mod load;
pub mod parser;
pub mod render;
pub mod span;
pub mod syntax;
pub mod testfile;

/// "Did you mean" suggestions, for names outside specs too (a store path, a source key).
pub mod suggest {
    pub use crate::load::names::closest;
}
