//! Spec diagnostics: errors are data with a stable code, a place, a message and a hint.
//!
//! Codes are part of the public contract (CI pipelines match on them): a released code is never
//! reused for a different problem. The list with explanations lives in `docs/diagnostics.md`.

use serde::Serialize;

use crate::span::{FileId, Span};

/// Stable diagnostic codes. Append new codes; never renumber or reuse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Code {
    // E01xx: files and YAML
    /// The file could not be read.
    E0100,
    /// YAML syntax error.
    E0101,
    /// The document is not a mapping / a node has the wrong YAML shape.
    E0102,
    // E02xx: keys and header
    /// Unknown key.
    E0200,
    /// Missing required key.
    E0201,
    /// Bad `Type` (spec, aggregate or store).
    E0202,
    /// Bad `Version`.
    E0203,
    /// Invalid name (not an identifier, or starts with `_` / `run_`).
    E0204,
    /// Duplicate name.
    E0205,
    /// Key not allowed for this spec or aggregate kind.
    E0206,
    // E03xx: aggregates and fields
    /// Empty `Fields`.
    E0300,
    /// Unknown field type.
    E0301,
    /// Block aggregate with neither `Dimensions` nor `Split`.
    E0302,
    /// Dimension of a type other than string or integer.
    E0303,
    /// `SeparateByInactiveSeconds` missing, not an integer, or < 1.
    E0304,
    /// Bad `WindowType`.
    E0305,
    /// `WindowValue` not a non-zero integer.
    E0306,
    /// Window `Source` is not a block/activity aggregate of the named streaming spec.
    E0307,
    /// `Anchor.Max` < 1 or not an integer.
    E0308,
    /// `SourceBTS` names no loaded streaming spec.
    E0309,
    /// Unknown store name in an aggregate's `Store`.
    E0310,
    /// Bad store option (table, capacity units, retention).
    E0311,
    /// `SourceBTS` names several loaded streaming specs and none is in the window spec's
    /// directory; or two streaming specs of one directory share a name.
    E0312,
    /// Block aggregate with both `Dimensions` and `Split`.
    E0313,
    /// `Split` whose type is known not to be boolean.
    E0314,
    // E04xx: expressions
    /// Expression syntax error.
    E0400,
    /// Undefined name.
    E0401,
    /// Forward reference to an aggregate or field defined later.
    E0402,
    /// Unknown field of an aggregate.
    E0403,
    /// Unknown function or method.
    E0404,
    /// Wrong number or kind of arguments.
    E0405,
    /// Type mismatch.
    E0406,
    /// Unsupported `Import` module or name.
    E0407,
    /// A name that is not allowed in this context (`source` outside a Window aggregate, ...).
    E0408,
    // E05xx: test files (`dtc test`, docs/testing.md)
    /// A file that a test file names cannot be read (a spec, an `EventsFile`).
    E0500,
    /// `Streaming` / `Window` name a spec of the wrong kind, or a window spec reading another
    /// streaming spec.
    E0501,
    /// An expectation names an unknown aggregate, field, dimension or column.
    E0502,
    /// A bad expectation value: a date-time, a count, a line or event number, a reject reason.
    E0503,
    /// Rows or live features expected by a test file without `Window`.
    E0504,
    /// Two tests of one file share a `Name`.
    E0505,
    /// Nothing to test: a test file without tests, a test without expectations.
    E0506,
    /// An inline event that cannot be written as a JSON line.
    E0507,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::E0100 => "E0100",
            Code::E0101 => "E0101",
            Code::E0102 => "E0102",
            Code::E0200 => "E0200",
            Code::E0201 => "E0201",
            Code::E0202 => "E0202",
            Code::E0203 => "E0203",
            Code::E0204 => "E0204",
            Code::E0205 => "E0205",
            Code::E0206 => "E0206",
            Code::E0300 => "E0300",
            Code::E0301 => "E0301",
            Code::E0302 => "E0302",
            Code::E0303 => "E0303",
            Code::E0304 => "E0304",
            Code::E0305 => "E0305",
            Code::E0306 => "E0306",
            Code::E0307 => "E0307",
            Code::E0308 => "E0308",
            Code::E0309 => "E0309",
            Code::E0310 => "E0310",
            Code::E0311 => "E0311",
            Code::E0312 => "E0312",
            Code::E0313 => "E0313",
            Code::E0314 => "E0314",
            Code::E0400 => "E0400",
            Code::E0401 => "E0401",
            Code::E0402 => "E0402",
            Code::E0403 => "E0403",
            Code::E0404 => "E0404",
            Code::E0405 => "E0405",
            Code::E0406 => "E0406",
            Code::E0407 => "E0407",
            Code::E0408 => "E0408",
            Code::E0500 => "E0500",
            Code::E0501 => "E0501",
            Code::E0502 => "E0502",
            Code::E0503 => "E0503",
            Code::E0504 => "E0504",
            Code::E0505 => "E0505",
            Code::E0506 => "E0506",
            Code::E0507 => "E0507",
        }
    }
}

/// One problem in one spec file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    pub file: FileId,
    pub span: Span,
    pub message: String,
    /// Short text under the caret.
    pub label: Option<String>,
    /// "did you mean `game_stats`?" and similar.
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(code: Code, file: FileId, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            file,
            span,
            message: message.into(),
            label: None,
            hint: None,
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}
