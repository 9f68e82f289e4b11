//! YAML text → a small node tree with byte spans and scalar styles.
//!
//! Built on saphyr's event parser rather than its document loader because the loader drops the
//! scalar style (the contract needs `Version` to be quoted) and reports duplicate keys without
//! a position.

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError};

use crate::span::Span;

/// Alias expansion is capped so a "billion laughs" document cannot exhaust memory.
const MAX_NODES: usize = 200_000;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub kind: NodeKind,
    /// Whole node; for quoted scalars the quotes are included.
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NodeKind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scalar {
    pub value: String,
    pub style: ScalarStyle,
    /// Where the scalar's content starts (after an opening quote).
    pub content_start: usize,
}

impl Scalar {
    pub fn is_quoted(&self) -> bool {
        matches!(
            self.style,
            ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted
        )
    }

    /// YAML 1.2 core-schema null: an empty or `~`/`null` plain scalar.
    pub fn is_null(&self) -> bool {
        self.style == ScalarStyle::Plain
            && matches!(self.value.as_str(), "" | "~" | "null" | "Null" | "NULL")
    }
}

impl Node {
    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            NodeKind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// A short description of the node's shape for "expected X, found Y" messages.
    pub fn shape(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar(s) if s.is_null() => "nothing",
            NodeKind::Scalar(_) => "a scalar",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }
}

/// A problem that stops reading the YAML, with the byte offset it was found at.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct YamlError {
    pub offset: usize,
    pub message: String,
}

/// Result of reading one file: the documents found plus problems that did not stop reading.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub documents: Vec<Node>,
    /// Duplicate keys: (span of the repeated key, key text, span of the first occurrence).
    pub duplicate_keys: Vec<(Span, String, Span)>,
}

/// Converts saphyr's character indices to byte offsets.
struct Offsets {
    /// `byte_of[i]` = byte offset of character `i`; one extra entry for the end of the text.
    byte_of: Vec<usize>,
}

impl Offsets {
    fn new(text: &str) -> Self {
        let mut byte_of: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
        byte_of.push(text.len());
        Offsets { byte_of }
    }

    fn byte(&self, char_index: usize) -> usize {
        self.byte_of
            .get(char_index)
            .or(self.byte_of.last())
            .copied()
            .unwrap_or(0)
    }

    fn span(&self, span: saphyr_parser::Span) -> Span {
        Span::new(self.byte(span.start.index()), self.byte(span.end.index()))
    }
}

enum Frame {
    Seq {
        start: usize,
        items: Vec<Node>,
        anchor: usize,
    },
    Map {
        start: usize,
        entries: Vec<(Node, Node)>,
        pending_key: Option<Node>,
        anchor: usize,
    },
}

/// Reads all documents of `text`, or the first error that stops the YAML parser.
pub(crate) fn parse(text: &str) -> Result<Parsed, YamlError> {
    let offsets = Offsets::new(text);
    let mut parser = Parser::new_from_str(text);
    let mut parsed = Parsed::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: std::collections::HashMap<usize, Node> = std::collections::HashMap::new();
    let mut node_count = 0usize;

    while let Some(event) = parser.next_event() {
        let (event, raw_span) = event.map_err(|e| scan_error(&offsets, &e))?;
        let span = offsets.span(raw_span);
        let (node, anchor) = match event {
            Event::SequenceStart(anchor, _) => {
                stack.push(Frame::Seq {
                    start: span.start,
                    items: Vec::new(),
                    anchor,
                });
                continue;
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Map {
                    start: span.start,
                    entries: Vec::new(),
                    pending_key: None,
                    anchor,
                });
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq {
                    start,
                    items,
                    anchor,
                }) => {
                    let end = items
                        .last()
                        .map_or(span.end, |n| n.span.end)
                        .max(flow_end(text, span));
                    (
                        Node {
                            kind: NodeKind::Seq(items),
                            span: Span::new(start, end.max(start)),
                        },
                        anchor,
                    )
                }
                _ => return Err(unbalanced(span)),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map {
                    start,
                    entries,
                    anchor,
                    ..
                }) => {
                    let end = entries
                        .last()
                        .map_or(span.end, |(_, v)| {
                            v.span.end.max(span.start.min(v.span.end))
                        })
                        .max(flow_end(text, span));
                    (
                        Node {
                            kind: NodeKind::Map(entries),
                            span: Span::new(start, end.max(start)),
                        },
                        anchor,
                    )
                }
                _ => return Err(unbalanced(span)),
            },
            Event::Scalar(value, style, anchor, _) => {
                let content_start = match style {
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => {
                        (span.start + 1).min(span.end)
                    }
                    _ => span.start,
                };
                let span = trim_block_end(text, style, span);
                (
                    Node {
                        kind: NodeKind::Scalar(Scalar {
                            value: value.into_owned(),
                            style,
                            content_start,
                        }),
                        span,
                    },
                    anchor,
                )
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some(target) => {
                    node_count = node_count.saturating_add(count_nodes(target));
                    if node_count > MAX_NODES {
                        return Err(YamlError {
                            offset: span.start,
                            message: format!(
                                "the document expands to more than {MAX_NODES} nodes through aliases"
                            ),
                        });
                    }
                    (
                        Node {
                            kind: target.kind.clone(),
                            span,
                        },
                        0,
                    )
                }
                None => {
                    return Err(YamlError {
                        offset: span.start,
                        message: "alias to an unknown anchor".into(),
                    });
                }
            },
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd
            | Event::Nothing => continue,
        };
        node_count = node_count.saturating_add(1);
        if node_count > MAX_NODES {
            return Err(YamlError {
                offset: node.span.start,
                message: format!("the document has more than {MAX_NODES} nodes"),
            });
        }
        if anchor != 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => parsed.documents.push(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => {
                    if let NodeKind::Scalar(k) = &key.kind
                        && let Some((first, _)) = entries.iter().find(|(first, _)| {
                            first.as_scalar().is_some_and(|f| f.value == k.value)
                        })
                    {
                        parsed
                            .duplicate_keys
                            .push((key.span, k.value.clone(), first.span));
                    }
                    entries.push((key, node));
                }
            },
        }
    }
    Ok(parsed)
}

/// A flow collection's closing bracket is part of its end event's span; a block collection's
/// end event sits wherever the next token is, which must not widen the node.
fn flow_end(text: &str, span: Span) -> usize {
    match text.get(span.range()) {
        Some("]") | Some("}") => span.end,
        _ => 0,
    }
}

/// Block scalars end after their trailing line breaks; pointing at those would put the caret
/// on the next line.
fn trim_block_end(text: &str, style: ScalarStyle, span: Span) -> Span {
    if !matches!(style, ScalarStyle::Literal | ScalarStyle::Folded) {
        return span;
    }
    let trimmed = text.get(span.range()).map_or(0, |s| s.trim_end().len());
    Span::new(span.start, span.start + trimmed)
}

fn count_nodes(node: &Node) -> usize {
    match &node.kind {
        NodeKind::Scalar(_) => 1,
        NodeKind::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        NodeKind::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| count_nodes(k) + count_nodes(v))
                .sum::<usize>()
        }
    }
}

/// A hint for a YAML syntax error found at byte `offset` when the lines there suggest that
/// indentation caused it: a tab in the indentation, or a line indented differently from the
/// line above it.
pub(crate) fn indentation_hint(text: &str, offset: usize) -> Option<String> {
    let lines: Vec<(usize, &str)> = text
        .split('\n')
        .scan(0, |start, line| {
            let at = *start;
            *start += line.len() + 1;
            Some((at, line.strip_suffix('\r').unwrap_or(line)))
        })
        .collect();
    let is_content = |line: &str| {
        let body = line.trim_start_matches([' ', '\t']);
        !body.is_empty() && !body.starts_with('#')
    };
    let indent = |line: &str| line.len() - line.trim_start_matches(' ').len();
    // The parser stops on a line, or at the end of the line before the one it could not read.
    let at = lines
        .iter()
        .rposition(|(start, _)| *start <= offset)
        .unwrap_or(0);
    let rest_blank = lines
        .get(at)
        .and_then(|(start, line)| line.get(offset.saturating_sub(*start)..))
        .is_none_or(|rest| rest.trim().is_empty());
    let from = if rest_blank { at + 1 } else { at };
    let line = (from..lines.len())
        .find(|&i| is_content(lines[i].1))
        .or_else(|| {
            (0..=at.min(lines.len().saturating_sub(1)))
                .rev()
                .find(|&i| is_content(lines[i].1))
        })?;
    // A tab is reported a line early or late as often as on its own line.
    let next = (at + 1..lines.len()).find(|&i| is_content(lines[i].1));
    for i in [Some(at.saturating_sub(1)), Some(at), Some(line), next]
        .into_iter()
        .flatten()
    {
        let text = lines[i].1;
        let leading = &text[..text.len() - text.trim_start_matches([' ', '\t']).len()];
        if leading.contains('\t') {
            return Some(format!(
                "line {} is indented with a tab: YAML indentation must be spaces",
                i + 1
            ));
        }
    }
    let above = (0..line).rev().find(|&i| is_content(lines[i].1))?;
    let (here, there) = (indent(lines[line].1), indent(lines[above].1));
    if here == there {
        return None;
    }
    // The indentations still open at `line`: those of the lines it could be nested in or be a
    // sibling of (a list item's content is indented past its `- `).
    let mut open: Vec<usize> = Vec::new();
    for (_, text) in lines[..line].iter().filter(|(_, l)| is_content(l)) {
        let i = indent(text);
        while open.last().is_some_and(|&top| top > i) {
            open.pop();
        }
        if open.last() != Some(&i) {
            open.push(i);
        }
        if let Some(item) = text[i..].strip_prefix('-') {
            let content = i + 1 + item.len() - item.trim_start_matches(' ').len();
            if item.starts_with(' ') && content > i + 1 {
                open.push(content);
            }
        }
    }
    let open: Vec<String> = open.iter().map(usize::to_string).collect();
    let spaces = if here == 1 { "space" } else { "spaces" };
    Some(format!(
        "YAML reads indentation as structure: line {} is indented by {here} {spaces} and line {} \
         above it by {there}; keys of one mapping must line up, and a nested block is indented \
         further than its key (indentations in use above: {})",
        line + 1,
        above + 1,
        open.join(", ")
    ))
}

fn scan_error(offsets: &Offsets, e: &ScanError) -> YamlError {
    YamlError {
        offset: offsets.byte(e.marker().index()),
        message: e.info().to_string(),
    }
}

fn unbalanced(span: Span) -> YamlError {
    YamlError {
        offset: span.start,
        message: "unbalanced collection end".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Node {
        match parse(text) {
            Ok(mut p) => p.documents.remove(0),
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn scalar_spans_are_byte_offsets_and_keep_quotes() {
        let text = "é: 'x'\nb: plain\n";
        let NodeKind::Map(entries) = doc(text).kind else {
            panic!("not a map")
        };
        let (k, v) = &entries[0];
        assert_eq!(&text[k.span.range()], "é");
        assert_eq!(&text[v.span.range()], "'x'");
        let s = v.as_scalar().map(|s| (s.is_quoted(), s.content_start));
        assert_eq!(s, Some((true, 5)));
        assert_eq!(&text[entries[1].1.span.range()], "plain");
    }

    #[test]
    fn block_collections_end_at_their_last_child() {
        let text = "a:\n  - x\n  - y\nb: 1\n";
        let NodeKind::Map(entries) = doc(text).kind else {
            panic!("not a map")
        };
        assert_eq!(&text[entries[0].1.span.range()], "- x\n  - y");
    }

    #[test]
    fn block_scalar_starts_at_content_and_drops_trailing_newlines() {
        let text = "a: |\n  x +\n  1\n\nb: 2\n";
        let NodeKind::Map(entries) = doc(text).kind else {
            panic!("not a map")
        };
        assert_eq!(&text[entries[0].1.span.range()], "x +\n  1");
    }

    #[test]
    fn duplicate_keys_are_reported_with_both_places() {
        let parsed = parse("a: 1\na: 2\n").map_err(|e| e.message);
        let dups = parsed.map(|p| p.duplicate_keys);
        assert_eq!(
            dups,
            Ok(vec![(Span::new(5, 6), "a".to_string(), Span::new(0, 1))])
        );
    }

    #[test]
    fn syntax_errors_carry_their_offset() {
        let err = parse("a: [1, 2\nb: 3\n").err().map(|e| e.offset > 0);
        assert_eq!(err, Some(true));
    }

    /// The hint for `text`'s syntax error.
    fn hint(text: &str) -> Option<String> {
        match parse(text) {
            Ok(_) => panic!("{text:?} parsed"),
            Err(e) => indentation_hint(text, e.offset),
        }
    }

    #[test]
    fn indentation_errors_say_which_lines_disagree() {
        let fields = "a:\n  - Name: x\n    Type: integer\n";
        // A key dedented to the list's level, indented past its siblings, a list item
        // between two levels, a top-level key indented by one space.
        for (text, line, here, there) in [
            (format!("{fields}  When: y\n    Value: 1\n"), 4, 2, 4),
            (format!("{fields}     When: y\n"), 4, 5, 4),
            (format!("{fields}   - Name: z\n"), 4, 3, 4),
            ("a: 1\n b: 2\n".to_string(), 2, 1, 0),
        ] {
            let hint = hint(&text).unwrap_or_default();
            let spaces = if here == 1 { "space" } else { "spaces" };
            let expected = format!(
                "line {line} is indented by {here} {spaces} and line {} above it by {there}",
                line - 1
            );
            assert!(hint.contains(&expected), "{text:?}: {hint}");
        }
        let hint = hint(&format!("{fields}     When: y\n")).unwrap_or_default();
        assert!(
            hint.ends_with("(indentations in use above: 0, 2, 4)"),
            "{hint}"
        );
    }

    #[test]
    fn a_tab_in_the_indentation_is_named() {
        let hint = hint("a:\n  - b: 1\n\tc: 2\n");
        assert_eq!(
            hint.as_deref(),
            Some("line 3 is indented with a tab: YAML indentation must be spaces")
        );
    }

    #[test]
    fn other_syntax_errors_get_no_indentation_hint() {
        assert_eq!(hint("a: [1, 2\nb: 3\n"), None);
        assert_eq!(hint("a: 'x\n"), None);
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = i - 1;
            text.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
        }
        assert!(parse(&text).is_err());
    }
}
