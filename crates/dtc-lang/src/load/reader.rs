//! Reading YAML nodes as the mappings, keys and scalars a file is made of, with a diagnostic
//! for each node that is not what it should be. The spec loader and the test-file loader both
//! read this way, so their shared diagnostics (E0102 shapes, E0200 keys, E0201 missing keys)
//! are worded alike.

use crate::diagnostic::{Code, Diagnostic};
use crate::span::{FileId, Span, Spanned};

use super::yaml::{Node, NodeKind, Scalar};

/// The entries of one YAML mapping, looked up by key.
pub(crate) struct Entries<'a> {
    entries: &'a [(Node, Node)],
    /// Where "missing key" errors point: the mapping's first key, or the node itself.
    pub anchor: Span,
}

impl<'a> Entries<'a> {
    pub fn get(&self, key: &str) -> Option<&'a Node> {
        find_entry(self.entries, key).map(|(_, v)| v)
    }

    /// The entry's key node, for messages about the whole entry.
    pub fn key_span(&self, key: &str) -> Option<Span> {
        find_entry(self.entries, key).map(|(k, _)| k.span)
    }
}

fn find_entry<'a>(entries: &'a [(Node, Node)], key: &str) -> Option<&'a (Node, Node)> {
    entries
        .iter()
        .find(|(k, _)| k.as_scalar().is_some_and(|s| s.value == key))
}

/// The value of `key` when `node` is a mapping, read before its keys are checked: a `Type`
/// decides which keys the rest of the mapping may have.
pub(crate) fn value_of<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    match &node.kind {
        NodeKind::Map(entries) => find_entry(entries, key).map(|(_, v)| v),
        _ => None,
    }
}

/// A loader that reads YAML nodes of one file and collects what is wrong with them.
pub(crate) trait NodeReader {
    fn file(&self) -> FileId;

    fn diagnostics(&mut self) -> &mut Vec<Diagnostic>;

    fn diag(&self, code: Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(code, self.file(), span, message)
    }

    fn report(&mut self, diagnostic: Diagnostic) {
        self.diagnostics().push(diagnostic);
    }

    /// Reads `node` as `what` (a mapping) whose keys must be among `allowed`. A key that is
    /// not gets the diagnostic `stray_key` makes from its span and name: what a key means
    /// elsewhere, and so the best hint, differs between the files read.
    fn mapping_with<'a>(
        &mut self,
        node: &'a Node,
        what: &str,
        allowed: &[&str],
        stray_key: impl Fn(&Self, Span, &str) -> Diagnostic,
    ) -> Option<Entries<'a>>
    where
        Self: Sized,
    {
        let NodeKind::Map(entries) = &node.kind else {
            let found = node.shape();
            self.report(
                self.diag(
                    Code::E0102,
                    node.span,
                    format!("expected {what} (a mapping), found {found}"),
                )
                .with_label(format!("this should be {what}")),
            );
            return None;
        };
        for (key, _) in entries {
            let Some(k) = key.as_scalar() else {
                self.report(self.diag(Code::E0102, key.span, "keys must be plain names"));
                continue;
            };
            if !allowed.contains(&k.value.as_str()) {
                let d = stray_key(self, key.span, &k.value);
                self.report(d);
            }
        }
        let anchor = entries.first().map_or(node.span, |(k, _)| k.span);
        Some(Entries { entries, anchor })
    }

    /// The value of `key`, which `what` must have (E0201 otherwise).
    fn require<'a>(&mut self, entries: &Entries<'a>, key: &str, what: &str) -> Option<&'a Node> {
        let node = entries.get(key);
        if node.is_none() {
            self.report(
                self.diag(
                    Code::E0201,
                    entries.anchor,
                    format!("missing key `{key}` in {what}"),
                )
                .with_label(format!("{what} without `{key}`")),
            );
        }
        node
    }

    /// The text of `key`, which `what` must have.
    fn required_string(
        &mut self,
        entries: &Entries<'_>,
        key: &str,
        what: &str,
    ) -> Option<Spanned<String>> {
        self.require(entries, key, what)
            .and_then(|n| self.string(n, key))
    }

    /// A non-null scalar, the value of `what`.
    fn scalar<'a>(&mut self, node: &'a Node, what: &str) -> Option<&'a Scalar> {
        match node.as_scalar() {
            Some(s) if !s.is_null() => Some(s),
            _ => {
                let found = node.shape();
                self.report(
                    self.diag(
                        Code::E0102,
                        node.span,
                        format!("expected a value for `{what}`, found {found}"),
                    )
                    .with_label("expected a scalar"),
                );
                None
            }
        }
    }

    /// A non-null scalar's text.
    fn string(&mut self, node: &Node, what: &str) -> Option<Spanned<String>> {
        self.scalar(node, what)
            .map(|s| Spanned::new(s.value.clone(), node.span))
    }
}

/// 1-based line of byte `offset`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |p| p.matches('\n').count() + 1)
}
