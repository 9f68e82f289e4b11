//! YAML spec files → [`crate::syntax::Spec`] plus diagnostics.
//!
//! One pass reports every problem it finds, each at the YAML node (or expression character) it
//! concerns; a node that cannot be read is left out of the tree so checking goes on.

mod expr;
pub(crate) mod names;
pub(crate) mod reader;
mod schema;
mod source_map;
mod spec;
pub(crate) mod yaml;

pub use schema::json_schema;
pub use source_map::{SourceFile, SourceMap};

use crate::diagnostic::{Code, Diagnostic};
use crate::span::{FileId, Span};
use crate::syntax::Spec;

/// Loads the spec in `text` (the contents of `file`). Returns the spec when its header (`Type`,
/// `Name`, `Version`) could be read, even if other parts have errors, and every diagnostic found.
pub fn load_spec(file: FileId, text: &str) -> (Option<Spec>, Vec<Diagnostic>) {
    let parsed = match yaml::parse(text) {
        Ok(parsed) => parsed,
        Err(e) => {
            let mut d = yaml_syntax_error(file, text, &e);
            if let Some(hint) = yaml::indentation_hint(text, d.span.start) {
                d = d.with_hint(hint);
            }
            return (None, vec![d]);
        }
    };
    let mut loader = spec::Loader::new(file, text);
    for (key, name, first) in &parsed.duplicate_keys {
        let line = reader::line_of(text, first.start);
        loader.diagnostics.push(
            Diagnostic::new(Code::E0101, file, *key, format!("duplicate key `{name}`"))
                .with_label("repeated key")
                .with_hint(format!(
                    "`{name}` is first given on line {line}; a key may appear once in a mapping"
                )),
        );
    }
    let mut documents = parsed.documents.iter();
    let Some(doc) = documents.next() else {
        loader.diagnostics.push(
            Diagnostic::new(
                Code::E0102,
                file,
                Span::new(0, 0),
                "the file holds no YAML document",
            )
            .with_hint("a spec starts with `Type: Streaming` or `Type: Window`"),
        );
        return (None, loader.diagnostics);
    };
    if let Some(extra) = documents.next() {
        loader.diagnostics.push(
            Diagnostic::new(
                Code::E0102,
                file,
                extra.span,
                "a spec file holds exactly one YAML document",
            )
            .with_label("second document")
            .with_hint("put each spec in its own file"),
        );
    }
    let spec = loader.spec(doc);
    (spec, loader.diagnostics)
}

/// E0101 at the character where the YAML stopped making sense.
pub(crate) fn yaml_syntax_error(file: FileId, text: &str, error: &yaml::YamlError) -> Diagnostic {
    let at = clamp_to_char(text, error.offset);
    let end = text[at..].chars().next().map_or(at, |c| at + c.len_utf8());
    Diagnostic::new(
        Code::E0101,
        file,
        Span::new(at, end),
        format!("YAML syntax error: {}", error.message),
    )
    .with_label("here")
}

fn clamp_to_char(text: &str, offset: usize) -> usize {
    let mut at = offset.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests;
