//! A loaded test file + the compiled specs it names → tests whose expectations refer to
//! aggregates and columns by index, with expected values typed by their column.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use dtc_io::RejectReason;
use dtc_lang::diagnostic::{Code, Diagnostic};
use dtc_lang::load::{SourceMap, load_spec};
use dtc_lang::span::{FileId, Span, Spanned};
use dtc_lang::suggest::closest;
use dtc_lang::syntax::SpecKind;
use dtc_lang::testfile::{
    ErrorCount, FeatureExpectation, NamedLiteral, RecordExpectation, RejectExpectation,
    RejectPosition, RowExpectation, Test, TestFile,
};
use dtc_plan::plan::{ColumnRole, FieldType, StreamAggregateKind, StreamingPlan, WindowPlan};
use dtc_plan::value::Value;

use super::values::expected_value;
use crate::specs::{LoadedSpecs, display, load_paths};

/// The specs a test file tests.
pub(crate) struct Job {
    /// The test file.
    pub file: FileId,
    pub streaming: Arc<StreamingPlan>,
    pub window: Option<Arc<WindowPlan>>,
}

/// A test whose expectations are bound to the specs.
pub struct BoundTest {
    pub name: String,
    /// Inline events, one JSON line each.
    pub(crate) events: Vec<String>,
    pub(crate) events_file: Option<PathBuf>,
    pub(crate) records: Vec<RecordCheck>,
    pub(crate) rows: Vec<RowCheck>,
    pub(crate) row_count: Option<Spanned<u64>>,
    pub(crate) rejects: Option<Spanned<Vec<RejectCheck>>>,
    pub(crate) features: Vec<FeatureCheck>,
    pub(crate) errors: Option<ErrorsCheck>,
}

/// The evaluation errors a test expects, exactly.
pub(crate) struct ErrorsCheck {
    /// The `Errors` key, where fields with unexpected errors are reported.
    pub span: Span,
    /// Field name (`<aggregate>.<field>`) → error count.
    pub counts: Vec<(Spanned<String>, u64)>,
}

/// An expected value of one column.
pub(crate) struct ValueCheck {
    pub name: String,
    pub column: usize,
    pub expected: Value,
    pub span: Span,
}

pub(crate) struct RecordCheck {
    pub span: Span,
    pub identity: String,
    /// Index into the streaming plan's aggregates.
    pub aggregate: usize,
    pub dimensions: Vec<ValueCheck>,
    pub fields: Vec<ValueCheck>,
}

pub(crate) struct RowCheck {
    pub span: Span,
    pub identity: String,
    pub anchor_time: Option<DateTime<Utc>>,
    pub columns: Vec<ValueCheck>,
}

/// The live features of an identity at a time.
pub(crate) struct FeatureCheck {
    pub identity: String,
    pub at: DateTime<Utc>,
    pub columns: Vec<ValueCheck>,
}

pub(crate) struct RejectCheck {
    pub span: Span,
    pub reason: RejectReason,
    pub position: Option<Position>,
    pub detail: Option<String>,
}

/// Where a rejected event was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Position {
    /// The N-th inline event.
    Event(u64),
    /// Line N of the events file.
    Line(u64),
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::Event(n) => write!(f, "event {n}"),
            Position::Line(n) => write!(f, "line {n} of `EventsFile`"),
        }
    }
}

/// The specs that test files named, loaded once per set of files: test files naming the same
/// specs share their plans, and the specs' diagnostics are reported once.
#[derive(Default)]
pub(crate) struct SpecCache(HashMap<Vec<PathBuf>, Option<LoadedSpecs>>);

/// Loads the specs `test_file` names (paths relative to `dir`) and binds its tests to them.
/// Problems go to `diagnostics` (spec files with problems are added to `sources`, so their
/// diagnostics render like `dtc validate`'s); `None` when the specs cannot be had.
pub(crate) fn bind(
    file: FileId,
    dir: &Path,
    test_file: &TestFile,
    cache: &mut SpecCache,
    sources: &mut SourceMap,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<(Job, Vec<BoundTest>)> {
    let mut binder = Binder {
        file,
        dir,
        diagnostics,
    };
    let streaming_path = binder.readable(&test_file.streaming, "spec");
    let window_path = match &test_file.window {
        Some(window) => Some(binder.readable(window, "spec")?),
        None => None,
    };
    let streaming_path = streaming_path?;
    let mut paths = vec![streaming_path.clone()];
    paths.extend(window_path.iter().cloned());
    let key = paths
        .iter()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
        .collect();
    let loaded = match cache.0.entry(key) {
        Entry::Occupied(known) => known.into_mut().as_ref()?,
        Entry::Vacant(new) => {
            let loaded = load_paths(&paths);
            if !loaded.diagnostics.is_empty() {
                import(&loaded, sources, binder.diagnostics);
                new.insert(None);
                return None;
            }
            new.insert(Some(loaded)).as_ref()?
        }
    };
    let streaming = binder.spec_of_kind(loaded, 0, &test_file.streaming, SpecKind::Streaming);
    let window = match &test_file.window {
        Some(w) => Some(binder.spec_of_kind(loaded, 1, w, SpecKind::Window)?),
        None => None,
    };
    streaming?;
    let streaming = loaded.catalog.streaming.first()?.clone();
    let window = match window {
        Some(span) => {
            let plan = loaded.catalog.window.first()?.clone();
            if plan.streaming.name != streaming.name {
                binder.error(
                    Code::E0501,
                    span,
                    format!(
                        "window DTC `{}` reads streaming DTC `{}`, not `{}`",
                        plan.name, plan.streaming.name, streaming.name
                    ),
                    "a window spec of another streaming spec",
                    None,
                );
                return None;
            }
            Some(plan)
        }
        None => None,
    };
    let job = Job {
        file,
        streaming,
        window,
    };
    let tests = test_file
        .tests
        .iter()
        .map(|test| binder.test(&job, test))
        .collect();
    Some((job, tests))
}

/// Adds the files of `loaded` to `sources` and its diagnostics, re-pointed at them.
fn import(loaded: &LoadedSpecs, sources: &mut SourceMap, diagnostics: &mut Vec<Diagnostic>) {
    let ids: Vec<FileId> = loaded
        .sources
        .iter()
        .map(|(_, f)| sources.add(f.path(), f.text()))
        .collect();
    for d in &loaded.diagnostics {
        let mut d = d.clone();
        if let Some(id) = usize::try_from(d.file.0).ok().and_then(|i| ids.get(i)) {
            d.file = *id;
        }
        diagnostics.push(d);
    }
}

struct Binder<'a> {
    file: FileId,
    dir: &'a Path,
    diagnostics: &'a mut Vec<Diagnostic>,
}

impl Binder<'_> {
    fn error(
        &mut self,
        code: Code,
        span: Span,
        message: String,
        label: &str,
        hint: Option<String>,
    ) {
        let mut d = Diagnostic::new(code, self.file, span, message).with_label(label);
        d.hint = hint;
        self.diagnostics.push(d);
    }

    /// The path a test file names, if it is a readable file.
    fn readable(&mut self, path: &Spanned<String>, what: &str) -> Option<PathBuf> {
        let resolved = self.dir.join(&path.value);
        let problem = match std::fs::metadata(&resolved) {
            Ok(meta) if meta.is_file() => return Some(resolved),
            Ok(_) => "not a file".to_string(),
            Err(e) => e.to_string(),
        };
        self.error(
            Code::E0500,
            path.span,
            format!("cannot read {what} `{}`: {problem}", display(&resolved)),
            "named here",
            Some("paths in a test file are relative to the test file's directory".into()),
        );
        None
    }

    /// Checks that the `index`-th loaded file is a spec of `kind`; its span in the test file
    /// when it is.
    fn spec_of_kind(
        &mut self,
        loaded: &LoadedSpecs,
        index: u32,
        named: &Spanned<String>,
        kind: SpecKind,
    ) -> Option<Span> {
        let found = loaded
            .sources
            .get(FileId(index))
            .and_then(|f| load_spec(FileId(index), f.text()).0)
            .map(|spec| spec.kind.value);
        if found == Some(kind) {
            return Some(named.span);
        }
        let name = |kind: SpecKind| match kind {
            SpecKind::Streaming => "a streaming DTC",
            SpecKind::Window => "a window DTC",
        };
        let message = match found {
            Some(other) => format!("`{}` is {}, not {}", named.value, name(other), name(kind)),
            None => format!("`{}` is not {}", named.value, name(kind)),
        };
        self.error(
            Code::E0501,
            named.span,
            message,
            "a spec of the wrong kind",
            Some("`Streaming` names the streaming spec, `Window` the window spec".into()),
        );
        None
    }

    fn test(&mut self, job: &Job, test: &Test) -> BoundTest {
        let expect = &test.expect;
        let window = job.window.as_deref();
        let events_file = test
            .events_file
            .as_ref()
            .and_then(|f| self.readable(f, "events file"));
        let needs_window = |binder: &mut Self, span: Span, what: &str| {
            if window.is_none() {
                binder.error(
                    Code::E0504,
                    span,
                    format!("{what} without a window spec"),
                    "needs `Window`",
                    Some("name the window spec at the top of the file: `Window: <file>`".into()),
                );
            }
        };
        for row in &expect.rows {
            needs_window(self, row.span, "a training row expected");
        }
        if let Some(count) = &expect.row_count {
            needs_window(self, count.span, "a row count expected");
        }
        for feature in &expect.features {
            needs_window(self, feature.span, "live features expected");
        }
        BoundTest {
            name: test.name.value.clone(),
            events: test.events.iter().map(|e| e.value.clone()).collect(),
            events_file,
            records: expect
                .records
                .iter()
                .filter_map(|r| self.record(&job.streaming, r))
                .collect(),
            rows: match window {
                Some(w) => expect.rows.iter().map(|r| self.row(w, r)).collect(),
                None => Vec::new(),
            },
            row_count: expect.row_count.clone(),
            rejects: expect.rejects.as_ref().map(|r| {
                let checks = r.value.iter().filter_map(|x| self.reject(x)).collect();
                Spanned::new(checks, r.span)
            }),
            features: match window {
                Some(w) => expect.features.iter().map(|f| self.feature(w, f)).collect(),
                None => Vec::new(),
            },
            errors: expect
                .errors
                .as_ref()
                .map(|e| self.errors(&job.streaming, window, &e.value, e.span)),
        }
    }

    fn record(&mut self, plan: &StreamingPlan, r: &RecordExpectation) -> Option<RecordCheck> {
        let stored = |k: &StreamAggregateKind| *k != StreamAggregateKind::Variable;
        let name = &r.aggregate;
        let Some(index) = plan.aggregates.iter().position(|a| a.name == name.value) else {
            let names = plan
                .aggregates
                .iter()
                .filter(|a| stored(&a.kind))
                .map(|a| a.name.as_str());
            let hint = closest(&name.value, names.clone())
                .map(|c| format!("did you mean `{c}`?"))
                .unwrap_or_else(|| format!("its stored aggregates: {}", quoted(names)));
            self.error(
                Code::E0502,
                name.span,
                format!(
                    "streaming DTC `{}` has no aggregate `{}`",
                    plan.name, name.value
                ),
                "unknown aggregate",
                Some(hint),
            );
            return None;
        };
        let agg = &plan.aggregates[index];
        if !stored(&agg.kind) {
            self.error(
                Code::E0502,
                name.span,
                format!(
                    "`{}` is a Variable aggregate: it stores no record",
                    name.value
                ),
                "not stored",
                None,
            );
            return None;
        }
        let columns = &agg.layout.columns;
        let mut dimensions = Vec::new();
        for (dim, literal) in &r.dimensions {
            let found = columns
                .iter()
                .position(|c| c.name == dim.value && c.role == ColumnRole::Dimension);
            match found {
                Some(column) => {
                    dimensions.extend(self.value(dim, literal, column, columns[column].ty));
                }
                None => {
                    let dims = columns
                        .iter()
                        .filter(|c| c.role == ColumnRole::Dimension)
                        .map(|c| c.name.as_str());
                    let hint = if columns.iter().any(|c| c.name == dim.value) {
                        format!("`{}` is a field: expect it under `Fields`", dim.value)
                    } else {
                        match closest(&dim.value, dims.clone()) {
                            Some(c) => format!("did you mean `{c}`?"),
                            None if dims.clone().next().is_none() => {
                                format!("`{}` has no dimensions", agg.name)
                            }
                            None => format!("its dimensions: {}", quoted(dims)),
                        }
                    };
                    self.error(
                        Code::E0502,
                        dim.span,
                        format!("`{}` has no dimension `{}`", agg.name, dim.value),
                        "unknown dimension",
                        Some(hint),
                    );
                }
            }
        }
        let mut fields = Vec::new();
        for (field, literal) in &r.fields {
            match columns.iter().position(|c| c.name == field.value) {
                Some(column) => {
                    fields.extend(self.value(field, literal, column, columns[column].ty));
                }
                None => {
                    let names = columns.iter().map(|c| c.name.as_str());
                    let hint = closest(&field.value, names.clone())
                        .map(|c| format!("did you mean `{c}`?"))
                        .unwrap_or_else(|| format!("its columns: {}", quoted(names)));
                    self.error(
                        Code::E0502,
                        field.span,
                        format!("`{}` has no field `{}`", agg.name, field.value),
                        "unknown field",
                        Some(hint),
                    );
                }
            }
        }
        Some(RecordCheck {
            span: r.span,
            identity: r.identity.value.clone(),
            aggregate: index,
            dimensions,
            fields,
        })
    }

    fn row(&mut self, plan: &WindowPlan, r: &RowExpectation) -> RowCheck {
        RowCheck {
            span: r.span,
            identity: r.identity.value.clone(),
            anchor_time: r.anchor_time.as_ref().map(|t| t.value),
            columns: self.row_columns(plan, &r.columns),
        }
    }

    fn feature(&mut self, plan: &WindowPlan, f: &FeatureExpectation) -> FeatureCheck {
        FeatureCheck {
            identity: f.identity.value.clone(),
            at: f.at.value,
            columns: self.row_columns(plan, &f.columns),
        }
    }

    fn row_columns(&mut self, plan: &WindowPlan, columns: &[NamedLiteral]) -> Vec<ValueCheck> {
        let mut checks = Vec::new();
        for (name, literal) in columns {
            match plan.field_names.iter().position(|n| *n == name.value) {
                Some(column) => {
                    let ty = column_type(plan, column);
                    checks.extend(self.value(name, literal, column, ty));
                }
                None => {
                    let hint = column_hint(&name.value, &plan.field_names);
                    self.error(
                        Code::E0502,
                        name.span,
                        format!("window DTC `{}` has no column `{}`", plan.name, name.value),
                        "unknown column",
                        Some(hint),
                    );
                }
            }
        }
        checks
    }

    fn value(
        &mut self,
        name: &Spanned<String>,
        literal: &dtc_lang::testfile::Literal,
        column: usize,
        ty: FieldType,
    ) -> Option<ValueCheck> {
        match expected_value(literal, ty) {
            Ok(expected) => Some(ValueCheck {
                name: name.value.clone(),
                column,
                expected,
                span: literal.span,
            }),
            Err(why) => {
                self.error(
                    Code::E0503,
                    literal.span,
                    format!("`{}` is a {} column, and {why}", name.value, ty.name()),
                    "not a date-time",
                    Some(
                        "write `2018-01-01T10:00:00` (UTC), with `Z` or `+01:00`, or a date".into(),
                    ),
                );
                None
            }
        }
    }

    fn reject(&mut self, r: &RejectExpectation) -> Option<RejectCheck> {
        let reason = RejectReason::ALL
            .into_iter()
            .find(|x| x.as_str() == r.reason.value);
        let Some(reason) = reason else {
            let names = RejectReason::ALL.map(RejectReason::as_str);
            let hint = closest(&r.reason.value, names)
                .map(|c| format!("did you mean `{c}`?"))
                .unwrap_or_else(|| format!("the reasons: {}", quoted(names.into_iter())));
            self.error(
                Code::E0503,
                r.reason.span,
                format!("unknown reject reason `{}`", r.reason.value),
                "unknown reason",
                Some(hint),
            );
            return None;
        };
        Some(RejectCheck {
            span: r.span,
            reason,
            position: r.position.as_ref().map(|p| match p {
                RejectPosition::Event(n) => Position::Event(n.value),
                RejectPosition::Line(n) => Position::Line(n.value),
            }),
            detail: r.detail.as_ref().map(|d| d.value.clone()),
        })
    }

    fn errors(
        &mut self,
        streaming: &StreamingPlan,
        window: Option<&WindowPlan>,
        counts: &[ErrorCount],
        span: Span,
    ) -> ErrorsCheck {
        let mut names: Vec<String> = streaming.field_names.clone();
        names.extend(window.iter().flat_map(|w| w.field_names.iter().cloned()));
        let mut checks = Vec::new();
        for (name, count) in counts {
            if names.contains(&name.value) {
                checks.push((name.clone(), count.value));
            } else {
                self.error(
                    Code::E0502,
                    name.span,
                    format!("no field `{}` in the specs", name.value),
                    "unknown field",
                    Some(column_hint(&name.value, &names)),
                );
            }
        }
        ErrorsCheck {
            span,
            counts: checks,
        }
    }
}

/// The declared type of row column `column` (an index into `field_names`).
fn column_type(plan: &WindowPlan, column: usize) -> FieldType {
    plan.aggregates
        .iter()
        .flat_map(|a| &a.fields)
        .find(|f| f.error_id as usize == column)
        .map_or(FieldType::String, |f| f.ty)
}

/// "did you mean" for an `<aggregate>.<field>` name, also when the aggregate was left out.
fn column_hint(name: &str, names: &[String]) -> String {
    let suffix = format!(".{name}");
    if let Some(full) = names.iter().find(|n| n.ends_with(&suffix)) {
        return format!("did you mean `{full}`? (columns are `<aggregate>.<field>`)");
    }
    match closest(name, names.iter().map(String::as_str)) {
        Some(c) => format!("did you mean `{c}`?"),
        None => format!("the columns: {}", quoted(names.iter().map(String::as_str))),
    }
}

fn quoted<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
