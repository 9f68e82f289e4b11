//! Test files of `dtc test` (docs/testing.md): YAML with spans → [`TestFile`] plus
//! diagnostics.
//!
//! This stage checks what a test file says on its own: its keys, shapes, names and values.
//! Whether the aggregates, fields and columns it names exist is checked against the compiled
//! specs by the run library (`dtc_runtime::spectest`), which reports in the same form.

mod literal;

use chrono::{DateTime, Utc};

pub use literal::{Literal, LiteralKind, parse_datetime};

use crate::diagnostic::{Code, Diagnostic};
use crate::load::names::did_you_mean;
use crate::load::reader::{Entries, NodeReader, line_of};
use crate::load::yaml::{self, Node, NodeKind};
use crate::load::yaml_syntax_error;
use crate::span::{FileId, Span, Spanned};

/// One test file: the specs it tests and its tests.
#[derive(Debug, Clone, PartialEq)]
pub struct TestFile {
    /// The streaming spec's path, relative to the test file.
    pub streaming: Spanned<String>,
    /// The window spec's path, relative to the test file.
    pub window: Option<Spanned<String>>,
    pub tests: Vec<Test>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Test {
    pub name: Spanned<String>,
    /// Inline events, each as the line a JSON-lines file would hold.
    pub events: Vec<Spanned<String>>,
    /// A JSON-lines file of events, relative to the test file; read before the inline events.
    pub events_file: Option<Spanned<String>>,
    pub expect: Expect,
}

/// What a test expects. Lists hold expectations to find; `Option`s are checked when given.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Expect {
    pub records: Vec<RecordExpectation>,
    pub rows: Vec<RowExpectation>,
    /// The exact number of training rows.
    pub row_count: Option<Spanned<u64>>,
    /// Exactly the rejected events (the list's span for unexpected ones).
    pub rejects: Option<Spanned<Vec<RejectExpectation>>>,
    pub features: Vec<FeatureExpectation>,
    /// Exactly the evaluation errors per field; the span is the `Errors` key's.
    pub errors: Option<Spanned<Vec<ErrorCount>>>,
}

/// `<aggregate>.<field>: <count>` of `Errors`.
pub type ErrorCount = (Spanned<String>, Spanned<u64>);

impl Expect {
    fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.rows.is_empty()
            && self.row_count.is_none()
            && self.rejects.is_none()
            && self.features.is_empty()
            && self.errors.is_none()
    }
}

/// A named value an expectation compares: a field, a dimension or a row column.
pub type NamedLiteral = (Spanned<String>, Literal);

/// A stored record: an identity record or a block.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordExpectation {
    pub span: Span,
    pub identity: Spanned<String>,
    pub aggregate: Spanned<String>,
    pub dimensions: Vec<NamedLiteral>,
    pub fields: Vec<NamedLiteral>,
}

/// A training row.
#[derive(Debug, Clone, PartialEq)]
pub struct RowExpectation {
    pub span: Span,
    pub identity: Spanned<String>,
    pub anchor_time: Option<Spanned<DateTime<Utc>>>,
    pub columns: Vec<NamedLiteral>,
}

/// The live features of an identity at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureExpectation {
    pub span: Span,
    pub identity: Spanned<String>,
    pub at: Spanned<DateTime<Utc>>,
    pub columns: Vec<NamedLiteral>,
}

/// A rejected event.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectExpectation {
    pub span: Span,
    /// A dead-letter reason name (`bad_time`), checked by the run library.
    pub reason: Spanned<String>,
    pub position: Option<RejectPosition>,
    /// Text the reject's detail must contain.
    pub detail: Option<Spanned<String>>,
}

/// Which input line was rejected.
#[derive(Debug, Clone, PartialEq)]
pub enum RejectPosition {
    /// The N-th (1-based) of the test's inline `Events`.
    Event(Spanned<u64>),
    /// Line N (1-based) of the test's `EventsFile`.
    Line(Spanned<u64>),
}

const FILE_KEYS: &[&str] = &["Streaming", "Window", "Description", "Tests"];
const TEST_KEYS: &[&str] = &["Name", "Description", "Events", "EventsFile", "Expect"];
const EXPECT_KEYS: &[&str] = &[
    "Records", "Rows", "RowCount", "Rejects", "Features", "Errors",
];
const RECORD_KEYS: &[&str] = &["Identity", "Aggregate", "Dimensions", "Fields"];
const ROW_KEYS: &[&str] = &["Identity", "AnchorTime", "Columns"];
const FEATURE_KEYS: &[&str] = &["Identity", "At", "Columns"];
const REJECT_KEYS: &[&str] = &["Reason", "Event", "Line", "Detail"];

/// Where each key belongs, for "belongs in ..." hints on a key used in the wrong place.
const PLACES: &[(&str, &[&str])] = &[
    ("the test file's top level", FILE_KEYS),
    ("a test", TEST_KEYS),
    ("`Expect`", EXPECT_KEYS),
    ("a `Records` entry", RECORD_KEYS),
    ("a `Rows` entry", ROW_KEYS),
    ("a `Features` entry", FEATURE_KEYS),
    ("a `Rejects` entry", REJECT_KEYS),
];

/// Loads the test file in `text` (the contents of `file`). Returns the file when its
/// `Streaming` spec could be read, even if other parts have errors, and every diagnostic
/// found.
pub fn load_test_file(file: FileId, text: &str) -> (Option<TestFile>, Vec<Diagnostic>) {
    let parsed = match yaml::parse(text) {
        Ok(parsed) => parsed,
        Err(e) => return (None, vec![yaml_syntax_error(file, text, &e)]),
    };
    let mut loader = Loader {
        file,
        text,
        diagnostics: Vec::new(),
    };
    for (key, name, _) in &parsed.duplicate_keys {
        loader.report(
            loader
                .diag(Code::E0101, *key, format!("duplicate key `{name}`"))
                .with_label("repeated key")
                .with_hint("a key may appear once in a mapping"),
        );
    }
    let mut documents = parsed.documents.iter();
    let Some(doc) = documents.next() else {
        loader.report(
            loader
                .diag(
                    Code::E0102,
                    Span::new(0, 0),
                    "the file holds no YAML document",
                )
                .with_hint("a test file starts with `Streaming: <spec file>`"),
        );
        return (None, loader.diagnostics);
    };
    if let Some(extra) = documents.next() {
        loader.report(
            loader
                .diag(
                    Code::E0102,
                    extra.span,
                    "a test file holds exactly one YAML document",
                )
                .with_label("second document"),
        );
    }
    let test_file = loader.test_file(doc);
    (test_file, loader.diagnostics)
}

struct Loader<'t> {
    file: FileId,
    text: &'t str,
    diagnostics: Vec<Diagnostic>,
}

impl NodeReader for Loader<'_> {
    fn file(&self) -> FileId {
        self.file
    }

    fn diagnostics(&mut self) -> &mut Vec<Diagnostic> {
        &mut self.diagnostics
    }
}

impl Loader<'_> {
    /// Reads `node` as a mapping whose keys must be among `allowed`.
    fn mapping<'a>(&mut self, node: &'a Node, what: &str, allowed: &[&str]) -> Option<Entries<'a>> {
        self.mapping_with(node, what, allowed, |this, span, key| {
            let d = this
                .diag(Code::E0200, span, format!("unknown key `{key}` in {what}"))
                .with_label("unknown key");
            let elsewhere = PLACES
                .iter()
                .filter(|(_, keys)| keys.contains(&key))
                .map(|(place, _)| *place)
                .collect::<Vec<_>>();
            if let Some(hint) = did_you_mean(key, allowed.iter().copied()) {
                d.with_hint(hint)
            } else if !elsewhere.is_empty() {
                d.with_hint(format!(
                    "`{key}` belongs in {}; {what} takes {}",
                    elsewhere.join(" or "),
                    list(allowed)
                ))
            } else {
                d.with_hint(format!("{what} takes {}", list(allowed)))
            }
        })
    }

    fn sequence<'a>(&mut self, node: &'a Node, what: &str) -> Option<&'a [Node]> {
        match &node.kind {
            NodeKind::Seq(items) => Some(items),
            _ => {
                let found = node.shape();
                self.report(
                    self.diag(
                        Code::E0102,
                        node.span,
                        format!("expected a list for `{what}`, found {found}"),
                    )
                    .with_label("expected a list (`- ...` items)"),
                );
                None
            }
        }
    }

    /// An integer ≥ `min`, written as a plain YAML integer.
    fn count(&mut self, node: &Node, what: &str, min: u64) -> Option<Spanned<u64>> {
        let value = node
            .as_scalar()
            .filter(|s| !s.is_quoted())
            .and_then(|s| s.value.trim().parse::<u64>().ok())
            .filter(|n| *n >= min);
        if value.is_none() {
            self.report(
                self.diag(
                    Code::E0503,
                    node.span,
                    format!("`{what}` must be an integer ≥ {min}"),
                )
                .with_label("not a count"),
            );
        }
        value.map(|n| Spanned::new(n, node.span))
    }

    fn datetime(&mut self, node: &Node, what: &str) -> Option<Spanned<DateTime<Utc>>> {
        let text = self.string(node, what)?;
        let parsed = parse_datetime(&text.value);
        if parsed.is_none() {
            self.report(
                self.diag(
                    Code::E0503,
                    node.span,
                    format!("`{what}` is not a date-time: `{}`", text.value),
                )
                .with_label("not a date-time")
                .with_hint("write `2018-01-01T10:00:00` (UTC), with `Z` or `+01:00`, or a date"),
            );
        }
        parsed.map(|t| Spanned::new(t, node.span))
    }

    /// A mapping of names to values (`Fields`, `Dimensions`, `Columns`).
    fn named_values(&mut self, node: &Node, what: &str) -> Vec<NamedLiteral> {
        let NodeKind::Map(entries) = &node.kind else {
            let found = node.shape();
            self.report(
                self.diag(
                    Code::E0102,
                    node.span,
                    format!("expected a mapping of names to values for `{what}`, found {found}"),
                )
                .with_label("expected `name: value` entries"),
            );
            return Vec::new();
        };
        let mut out = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            if let Some(name) = self.string(key, what) {
                out.push((name, Literal::from_node(value)));
            }
        }
        out
    }

    fn test_file(&mut self, doc: &Node) -> Option<TestFile> {
        let entries = self.mapping(doc, "a test file", FILE_KEYS)?;
        let streaming = self.required_string(&entries, "Streaming", "a test file");
        let window = entries.get("Window").and_then(|n| self.string(n, "Window"));
        let mut tests = Vec::new();
        if let Some(node) = self.require(&entries, "Tests", "a test file")
            && let Some(items) = self.sequence(node, "Tests")
        {
            if items.is_empty() {
                self.report(
                    self.diag(Code::E0506, node.span, "a test file without tests")
                        .with_label("no tests"),
                );
            }
            let mut names: Vec<&Spanned<String>> = Vec::new();
            for item in items {
                let Some(test) = self.test(item) else {
                    continue;
                };
                tests.push(test);
            }
            for test in &tests {
                match names.iter().find(|n| n.value == test.name.value) {
                    Some(first) => {
                        let first_line = line_of(self.text, first.span.start);
                        self.report(
                            self.diag(
                                Code::E0505,
                                test.name.span,
                                format!("two tests are named `{}`", test.name.value),
                            )
                            .with_label("repeated name")
                            .with_hint(format!(
                                "the first is on line {first_line}; names identify failures, so they are unique in a file"
                            )),
                        );
                    }
                    None => names.push(&test.name),
                }
            }
        }
        Some(TestFile {
            streaming: streaming?,
            window,
            tests,
        })
    }

    fn test(&mut self, node: &Node) -> Option<Test> {
        let entries = self.mapping(node, "a test", TEST_KEYS)?;
        let name = self.required_string(&entries, "Name", "a test");
        let events = match entries.get("Events") {
            Some(node) => self.events(node),
            None => Vec::new(),
        };
        let events_file = entries
            .get("EventsFile")
            .and_then(|n| self.string(n, "EventsFile"));
        let before = self.diagnostics.len();
        let expect = match self.require(&entries, "Expect", "a test") {
            Some(node) => self.expect(node, events.len(), events_file.is_some()),
            None => None,
        };
        let expect = expect?;
        // Expectations dropped for their own errors are reported already.
        if expect.is_empty() && self.diagnostics.len() == before {
            let span = entries.key_span("Expect").unwrap_or(node.span);
            self.report(
                self.diag(Code::E0506, span, "a test without expectations")
                    .with_label("expects nothing")
                    .with_hint(format!(
                        "a test that cannot fail tests nothing: give {}",
                        list(EXPECT_KEYS)
                    )),
            );
        }
        Some(Test {
            name: name?,
            events,
            events_file,
            expect,
        })
    }

    fn events(&mut self, node: &Node) -> Vec<Spanned<String>> {
        let Some(items) = self.sequence(node, "Events") else {
            return Vec::new();
        };
        let mut lines = Vec::with_capacity(items.len());
        for item in items {
            let line = match &item.kind {
                NodeKind::Map(_) => match Literal::from_node(item).to_json() {
                    Ok(json) => json.to_string(),
                    Err((span, why)) => {
                        self.report(
                            self.diag(
                                Code::E0507,
                                span,
                                format!("this event cannot be a JSON line: {why}"),
                            )
                            .with_label("not JSON"),
                        );
                        continue;
                    }
                },
                NodeKind::Scalar(s) if !s.is_null() => {
                    if s.value.contains(['\n', '\r']) {
                        self.report(
                            self.diag(
                                Code::E0507,
                                item.span,
                                "a raw event line holds a line break",
                            )
                            .with_label("more than one line")
                            .with_hint(
                                "a string event is one line of a JSON-lines file, written as is",
                            ),
                        );
                        continue;
                    }
                    s.value.clone()
                }
                _ => {
                    let found = item.shape();
                    self.report(
                        self.diag(
                            Code::E0102,
                            item.span,
                            format!("expected an event, found {found}"),
                        )
                        .with_label("not an event")
                        .with_hint("an event is a mapping (its JSON object) or a string (a raw line, written as is)"),
                    );
                    continue;
                }
            };
            lines.push(Spanned::new(line, item.span));
        }
        lines
    }

    fn expect(&mut self, node: &Node, inline_events: usize, events_file: bool) -> Option<Expect> {
        let entries = self.mapping(node, "`Expect`", EXPECT_KEYS)?;
        let mut expect = Expect::default();
        if let Some(n) = entries.get("Records") {
            expect.records = self.list(n, "Records", Self::record);
        }
        if let Some(n) = entries.get("Rows") {
            expect.rows = self.list(n, "Rows", Self::row);
        }
        if let Some(n) = entries.get("RowCount") {
            expect.row_count = self.count(n, "RowCount", 0);
        }
        if let Some(n) = entries.get("Rejects") {
            let span = entries.key_span("Rejects").unwrap_or(n.span);
            let rejects = self.list(n, "Rejects", |l, item| {
                l.reject(item, inline_events, events_file)
            });
            expect.rejects = Some(Spanned::new(rejects, span));
        }
        if let Some(n) = entries.get("Features") {
            expect.features = self.list(n, "Features", Self::feature);
        }
        if let Some(n) = entries.get("Errors") {
            let span = entries.key_span("Errors").unwrap_or(n.span);
            let mut counts = Vec::new();
            if let NodeKind::Map(pairs) = &n.kind {
                for (key, value) in pairs {
                    if let (Some(name), Some(count)) =
                        (self.string(key, "Errors"), self.count(value, "Errors", 0))
                    {
                        counts.push((name, count));
                    }
                }
            } else if !n.as_scalar().is_some_and(|s| s.is_null()) {
                let found = n.shape();
                self.report(
                    self.diag(
                        Code::E0102,
                        n.span,
                        format!("expected a mapping of fields to error counts for `Errors`, found {found}"),
                    )
                    .with_label("expected `<aggregate>.<field>: <count>` entries")
                    .with_hint("`Errors: {}` expects no evaluation error at all"),
                );
            }
            expect.errors = Some(Spanned::new(counts, span));
        }
        Some(expect)
    }

    /// The items of a list, each read by `item`; an empty mapping (`{}`) or null reads as an
    /// empty list.
    fn list<T>(
        &mut self,
        node: &Node,
        what: &str,
        item: impl Fn(&mut Self, &Node) -> Option<T>,
    ) -> Vec<T> {
        if node.as_scalar().is_some_and(|s| s.is_null()) {
            return Vec::new();
        }
        let Some(items) = self.sequence(node, what) else {
            return Vec::new();
        };
        items.iter().filter_map(|n| item(self, n)).collect()
    }

    fn record(&mut self, node: &Node) -> Option<RecordExpectation> {
        let what = "a `Records` entry";
        let entries = self.mapping(node, what, RECORD_KEYS)?;
        let identity = self.required_string(&entries, "Identity", what);
        let aggregate = self.required_string(&entries, "Aggregate", what);
        let dimensions = entries
            .get("Dimensions")
            .map(|n| self.named_values(n, "Dimensions"))
            .unwrap_or_default();
        let fields = entries
            .get("Fields")
            .map(|n| self.named_values(n, "Fields"))
            .unwrap_or_default();
        Some(RecordExpectation {
            span: node.span,
            identity: identity?,
            aggregate: aggregate?,
            dimensions,
            fields,
        })
    }

    fn row(&mut self, node: &Node) -> Option<RowExpectation> {
        let what = "a `Rows` entry";
        let entries = self.mapping(node, what, ROW_KEYS)?;
        let identity = self.required_string(&entries, "Identity", what);
        let anchor_time = match entries.get("AnchorTime") {
            Some(n) => Some(self.datetime(n, "AnchorTime")?),
            None => None,
        };
        let columns = entries
            .get("Columns")
            .map(|n| self.named_values(n, "Columns"))
            .unwrap_or_default();
        Some(RowExpectation {
            span: node.span,
            identity: identity?,
            anchor_time,
            columns,
        })
    }

    fn feature(&mut self, node: &Node) -> Option<FeatureExpectation> {
        let what = "a `Features` entry";
        let entries = self.mapping(node, what, FEATURE_KEYS)?;
        let identity = self.required_string(&entries, "Identity", what);
        let at = self
            .require(&entries, "At", what)
            .and_then(|n| self.datetime(n, "At"));
        let columns = self
            .require(&entries, "Columns", what)
            .map(|n| self.named_values(n, "Columns"));
        Some(FeatureExpectation {
            span: node.span,
            identity: identity?,
            at: at?,
            columns: columns?,
        })
    }

    fn reject(
        &mut self,
        node: &Node,
        inline_events: usize,
        events_file: bool,
    ) -> Option<RejectExpectation> {
        let what = "a `Rejects` entry";
        let entries = self.mapping(node, what, REJECT_KEYS)?;
        let reason = self.required_string(&entries, "Reason", what);
        let event = entries.get("Event").and_then(|n| self.count(n, "Event", 1));
        let line = entries.get("Line").and_then(|n| self.count(n, "Line", 1));
        let position = match (event, line) {
            (Some(event), Some(line)) => {
                self.report(
                    self.diag(
                        Code::E0503,
                        line.span,
                        "a reject has an `Event` or a `Line`, not both",
                    )
                    .with_label("second position")
                    .with_hint(
                        "`Event: N` is the N-th inline event, `Line: N` line N of `EventsFile`",
                    ),
                );
                Some(RejectPosition::Event(event))
            }
            (Some(event), None) => {
                if event.value > inline_events as u64 {
                    self.report(
                        self.diag(
                            Code::E0503,
                            event.span,
                            format!(
                                "`Event: {}`, but the test has {inline_events} inline event{}",
                                event.value,
                                if inline_events == 1 { "" } else { "s" }
                            ),
                        )
                        .with_label("no such event")
                        .with_hint("`Event: N` is the N-th (1-based) of the test's `Events`; `Line: N` is line N of its `EventsFile`"),
                    );
                }
                Some(RejectPosition::Event(event))
            }
            (None, Some(line)) => {
                if !events_file {
                    self.report(
                        self.diag(Code::E0503, line.span, "`Line` without an `EventsFile`")
                            .with_label("a line of no file")
                            .with_hint("`Line: N` is line N of the test's `EventsFile`; `Event: N` is the N-th of its inline `Events`"),
                    );
                }
                Some(RejectPosition::Line(line))
            }
            (None, None) => None,
        };
        let detail = entries.get("Detail").and_then(|n| self.string(n, "Detail"));
        Some(RejectExpectation {
            span: node.span,
            reason: reason?,
            position,
            detail,
        })
    }
}

/// `` `A`, `B` or `C` ``.
fn list(keys: &[&str]) -> String {
    let quoted: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}

#[cfg(test)]
mod tests;
