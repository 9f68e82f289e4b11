//! Expression parser: text → [`crate::ast::Expr`].

use crate::ast::Expr;
use crate::span::Span;

/// A syntax error inside one expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// Absolute span (already shifted by `base`).
    pub span: Span,
    pub message: String,
}

/// Parses one expression. Every span in the result (and in the error) is `base` + the byte
/// offset inside `text`, so callers pass the offset of the expression's first character in the
/// spec file.
pub fn parse_expr(text: &str, base: usize) -> Result<Expr, ParseError> {
    Err(ParseError {
        span: Span::new(base, base + text.len()),
        message: "expression parser not built yet".to_string(),
    })
}
