//! Parsing expressions held in YAML scalars, with spans pointing into the file.
//!
//! The parser sees the scalar's value; when quoting escapes or line folding make the value
//! differ from the file text, positions are mapped back character by character (and clamped
//! into the scalar) so a caret still lands on the right token.

use std::collections::{HashMap, HashSet};

use crate::ast::{Expr, ExprKind};
use crate::parser::{ParseError, parse_expr};
use crate::span::Span;

/// Expressions a file repeats, parsed once. Specs repeat their conditions from field to field
/// (`source.event_id == 'game_end'`): the second time a text is met it is parsed at offset 0
/// and kept, and each later occurrence copies that tree. A text met once is parsed in place
/// and not kept, so a file of distinct expressions pays no copies.
#[derive(Debug, Default)]
pub(crate) struct ExprCache {
    /// Texts met once.
    seen: HashSet<String>,
    /// Texts met more than once, parsed at offset 0.
    parsed: HashMap<String, Result<Expr, ParseError>>,
}

impl ExprCache {
    /// Like [`parse_expr`]`(text, base)`.
    fn parse(&mut self, text: &str, base: usize) -> Result<Expr, ParseError> {
        let at_zero = match self.parsed.get(text) {
            Some(parsed) => parsed,
            None if self.seen.contains(text) => self
                .parsed
                .entry(text.to_string())
                .or_insert_with(|| parse_expr(text, 0)),
            None => {
                self.seen.insert(text.to_string());
                return parse_expr(text, base);
            }
        };
        let shift = |span: Span| Span::new(span.start + base, span.end + base);
        match at_zero.clone() {
            Ok(mut expr) => {
                remap(&mut expr, &shift);
                Ok(expr)
            }
            Err(mut e) => {
                e.span = shift(e.span);
                Err(e)
            }
        }
    }
}

/// Parses `value`, whose first character was written at file offset `content_start`, inside
/// the scalar `scalar_span` of `text`.
pub(crate) fn parse_scalar_expr(
    cache: &mut ExprCache,
    text: &str,
    value: &str,
    content_start: usize,
    scalar_span: Span,
) -> Result<Expr, ParseError> {
    let linear = text.get(content_start..content_start + value.len()) == Some(value);
    let result = cache.parse(value, content_start);
    if linear {
        return result;
    }
    let map = OffsetMap::new(text, value, content_start, scalar_span);
    let to_file = |span: Span| map.span(span);
    match result {
        Ok(mut expr) => {
            remap(&mut expr, &to_file);
            Ok(expr)
        }
        Err(mut e) => {
            e.span = map.span(e.span);
            Err(e)
        }
    }
}

/// File offset of every byte offset of the value (plus its end).
struct OffsetMap {
    base: usize,
    file_of: Vec<usize>,
    scalar: Span,
}

impl OffsetMap {
    fn new(text: &str, value: &str, content_start: usize, scalar: Span) -> Self {
        let raw = text
            .get(content_start..scalar.end.max(content_start))
            .unwrap_or("");
        let raw: Vec<(usize, char)> = raw.char_indices().collect();
        let mut j = 0;
        let mut file_of = Vec::with_capacity(value.len() + 1);
        for c in value.chars() {
            // Indentation and folded line breaks in the file have no counterpart in the value.
            if !c.is_whitespace() {
                while raw
                    .get(j)
                    .is_some_and(|(_, r)| r.is_whitespace() && *r != c)
                {
                    j += 1;
                }
            }
            let at = raw.get(j).map_or(raw.len(), |(o, _)| *o);
            file_of.extend(std::iter::repeat_n(content_start + at, c.len_utf8()));
            match raw.get(j) {
                Some((_, r)) if *r == c => j += 1,
                Some((_, r)) if c.is_whitespace() && r.is_whitespace() => {
                    while raw.get(j).is_some_and(|(_, r)| r.is_whitespace()) {
                        j += 1;
                    }
                }
                // An escape sequence: skip its backslash, the next char is matched or skipped.
                Some(_) => j += 2,
                None => {}
            }
        }
        file_of.push(content_start + raw.get(j).map_or_else(|| raw.len(), |(o, _)| *o));
        OffsetMap {
            base: content_start,
            file_of,
            scalar,
        }
    }

    fn offset(&self, offset: usize) -> usize {
        let i = offset.saturating_sub(self.base);
        let mapped = self
            .file_of
            .get(i)
            .or(self.file_of.last())
            .copied()
            .unwrap_or(self.base);
        mapped.clamp(self.scalar.start, self.scalar.end.max(self.scalar.start))
    }

    fn span(&self, span: Span) -> Span {
        let start = self.offset(span.start);
        Span::new(start, self.offset(span.end).max(start))
    }
}

/// Moves every span of `expr` with `map`.
fn remap(expr: &mut Expr, map: &dyn Fn(Span) -> Span) {
    expr.span = map(expr.span);
    match &mut expr.kind {
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Str(_)
        | ExprKind::Bool(_)
        | ExprKind::None
        | ExprKind::Name(_) => {}
        ExprKind::List(items) | ExprKind::Set(items) | ExprKind::Tuple(items) => {
            items.iter_mut().for_each(|e| remap(e, map));
        }
        ExprKind::Dict(pairs) => pairs.iter_mut().for_each(|(k, v)| {
            remap(k, map);
            remap(v, map);
        }),
        ExprKind::Attr(value, ident) => {
            remap(value, map);
            ident.span = map(ident.span);
        }
        ExprKind::Index(a, b) => {
            remap(a, map);
            remap(b, map);
        }
        ExprKind::Slice {
            value,
            lower,
            upper,
            step,
        } => {
            remap(value, map);
            for bound in [lower, upper, step].into_iter().flatten() {
                remap(bound, map);
            }
        }
        ExprKind::Call { func, args } => {
            remap(func, map);
            for arg in args {
                if let Some(k) = &mut arg.keyword {
                    k.span = map(k.span);
                }
                remap(&mut arg.value, map);
            }
        }
        ExprKind::Unary(_, e) | ExprKind::Not(e) => remap(e, map),
        ExprKind::Binary(first, rest) => {
            remap(first, map);
            for operation in rest {
                operation.span = map(operation.span);
                remap(&mut operation.rhs, map);
            }
        }
        ExprKind::Logical(_, operands) => operands.iter_mut().for_each(|e| remap(e, map)),
        ExprKind::Compare(first, rest) => {
            remap(first, map);
            rest.iter_mut().for_each(|(_, e)| remap(e, map));
        }
        ExprKind::IfElse { body, cond, orelse } => {
            remap(body, map);
            remap(cond, map);
            remap(orelse, map);
        }
        ExprKind::ListComp { elt, generators } => {
            remap(elt, map);
            for g in generators {
                g.targets.iter_mut().for_each(|t| t.span = map(t.span));
                remap(&mut g.iter, map);
                g.ifs.iter_mut().for_each(|e| remap(e, map));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_lines_map_back_to_their_file_positions() {
        // Plain multi-line scalar: the value is `a +\nb` folded to `a + b`.
        let text = "V: a +\n  b\n";
        let map = OffsetMap::new(text, "a + b", 3, Span::new(3, 10));
        assert_eq!(&text[map.offset(7)..map.offset(8)], "b");
        assert_eq!(&text[map.offset(3)..map.offset(4)], "a");
    }

    #[test]
    fn escapes_stay_inside_the_scalar() {
        let text = "V: \"x\\ty + z\"\n";
        let value = "x\ty + z";
        let map = OffsetMap::new(text, value, 4, Span::new(3, 13));
        let z = value.find('z').unwrap_or(0);
        assert_eq!(&text[map.offset(4 + z)..map.offset(4 + z + 1)], "z");
        assert!(map.offset(1000) <= 13);
    }
}
