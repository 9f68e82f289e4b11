//! Rendering diagnostics as rustc-style text or as JSON for CI.
//!
//! Text looks like rustc's (`error[E0200]: ...`, `--> file:line:col`, the source line with a
//! caret, `= help: ...`). JSON follows the schema documented in `docs/diagnostics.md`; lines and
//! columns are 1-based and columns count characters.

use std::io::Write as _;

use codespan_reporting::diagnostic::{Diagnostic as Report, Label};
use codespan_reporting::files::{Error as FilesError, Files};
use codespan_reporting::term::termcolor::{Buffer, WriteColor};
use codespan_reporting::term::{self, Chars, Config};
use serde::Serialize;

use crate::diagnostic::{Code, Diagnostic};
use crate::load::{SourceFile, SourceMap};
use crate::span::FileId;

/// Orders diagnostics by file, then position, so output does not depend on check order.
pub fn sort_diagnostics(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by_key(|d| (d.file, d.span.start, d.span.end, d.code));
}

/// Renders `diagnostics` (in the given order) as text; with `color`, ANSI colour codes are
/// included (callers pass `true` only when writing to a terminal).
pub fn render_text(sources: &SourceMap, diagnostics: &[Diagnostic], color: bool) -> String {
    let mut buffer = if color {
        Buffer::ansi()
    } else {
        Buffer::no_color()
    };
    write_text(&mut buffer, sources, diagnostics);
    String::from_utf8_lossy(buffer.as_slice()).into_owned()
}

fn write_text(out: &mut Buffer, sources: &SourceMap, diagnostics: &[Diagnostic]) {
    let config = Config {
        chars: Chars::ascii(),
        ..Config::default()
    };
    for d in diagnostics {
        let mut report = Report::error()
            .with_code(d.code.as_str())
            .with_message(&d.message);
        // An unreadable file has no text to show: the message names it.
        if d.code != Code::E0100 {
            report = report.with_labels(vec![
                Label::primary(d.file, d.span.range())
                    .with_message(d.label.clone().unwrap_or_default()),
            ]);
        }
        if let Some(hint) = &d.hint {
            report = report.with_notes(vec![format!("help: {hint}")]);
        }
        if term::emit_to_write_style(out, &config, sources, &report).is_err() {
            // A span outside its file would be a loader bug; still show the message.
            let _ = writeln!(out, "error[{}]: {}", d.code.as_str(), d.message);
        }
    }
    let _ = out.reset();
}

/// The `--format json` document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JsonReport {
    /// True when there are no errors.
    pub valid: bool,
    /// Number of files checked.
    pub files: usize,
    pub errors: Vec<JsonDiagnostic>,
}

/// One diagnostic in [`JsonReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JsonDiagnostic {
    pub code: &'static str,
    /// Always `"error"` today; kept so warnings can be added without a schema change.
    pub severity: &'static str,
    pub message: String,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    pub label: Option<String>,
    pub hint: Option<String>,
}

/// The JSON report for `diagnostics` (in the given order).
pub fn json_report(sources: &SourceMap, diagnostics: &[Diagnostic]) -> JsonReport {
    let errors = diagnostics
        .iter()
        .map(|d| {
            let file = sources.get(d.file);
            let (line, column) = file.map_or((1, 1), |f| f.line_col(d.span.start));
            let (end_line, end_column) = file.map_or((1, 1), |f| f.line_col(d.span.end));
            JsonDiagnostic {
                code: d.code.as_str(),
                severity: "error",
                message: d.message.clone(),
                file: file.map(SourceFile::path).unwrap_or_default().to_string(),
                line,
                column,
                end_line,
                end_column,
                label: d.label.clone(),
                hint: d.hint.clone(),
            }
        })
        .collect();
    JsonReport {
        valid: diagnostics.is_empty(),
        files: sources.len(),
        errors,
    }
}

/// [`json_report`] as pretty-printed JSON text.
pub fn render_json(sources: &SourceMap, diagnostics: &[Diagnostic]) -> String {
    let report = json_report(sources, diagnostics);
    serde_json::to_string_pretty(&report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

impl<'a> Files<'a> for SourceMap {
    type FileId = FileId;
    type Name = &'a str;
    type Source = &'a str;

    fn name(&'a self, id: FileId) -> Result<&'a str, FilesError> {
        Ok(self.get(id).ok_or(FilesError::FileMissing)?.path())
    }

    fn source(&'a self, id: FileId) -> Result<&'a str, FilesError> {
        Ok(self.get(id).ok_or(FilesError::FileMissing)?.text())
    }

    fn line_index(&'a self, id: FileId, byte_index: usize) -> Result<usize, FilesError> {
        Ok(self
            .get(id)
            .ok_or(FilesError::FileMissing)?
            .line_index(byte_index))
    }

    fn line_range(
        &'a self,
        id: FileId,
        line_index: usize,
    ) -> Result<std::ops::Range<usize>, FilesError> {
        let file = self.get(id).ok_or(FilesError::FileMissing)?;
        match file.line_range(line_index) {
            Some(range) => Ok(range),
            // codespan asks for the line after the last one when a span ends the file.
            None if line_index == file.line_index(file.text().len()) + 1 => {
                Ok(file.text().len()..file.text().len())
            }
            None => Err(FilesError::LineTooLarge {
                given: line_index,
                max: file.line_index(file.text().len()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::Span;

    fn sample() -> (SourceMap, Vec<Diagnostic>) {
        let mut sources = SourceMap::new();
        let a = sources.add("a.yml", "Type: Window\nFeilds: []\n");
        let b = sources.add("b.yml", "x: é\n");
        let diags = vec![
            Diagnostic::new(Code::E0204, b, Span::new(3, 5), "bad"),
            Diagnostic::new(
                Code::E0200,
                a,
                Span::new(13, 19),
                "unknown key `Feilds` in an aggregate",
            )
            .with_label("unknown key")
            .with_hint("did you mean `Fields`?"),
            Diagnostic::new(Code::E0202, a, Span::new(6, 12), "x"),
        ];
        (sources, diags)
    }

    #[test]
    fn text_looks_like_rustc_without_colours() {
        let (sources, mut diags) = sample();
        sort_diagnostics(&mut diags);
        let text = render_text(&sources, &diags, false);
        let expected = "\
error[E0200]: unknown key `Feilds` in an aggregate
  --> a.yml:2:1
  |
2 | Feilds: []
  | ^^^^^^ unknown key
  |
  = help: did you mean `Fields`?
";
        assert!(text.contains(expected), "{text}");
        assert!(!text.contains('\u{1b}'));
        assert!(text.find("E0202") < text.find("E0200"));
        assert!(text.find("E0200") < text.find("E0204"));
    }

    #[test]
    fn json_has_one_based_character_columns() {
        let (sources, mut diags) = sample();
        sort_diagnostics(&mut diags);
        let report = json_report(&sources, &diags);
        assert!(!report.valid);
        assert_eq!(report.files, 2);
        let last = &report.errors[2];
        assert_eq!(
            (last.file.as_str(), last.line, last.column, last.end_column),
            ("b.yml", 1, 4, 5)
        );
        let json: serde_json::Value =
            serde_json::from_str(&render_json(&sources, &diags)).unwrap_or_default();
        assert_eq!(json["errors"][0]["code"], "E0202");
        assert_eq!(json["errors"][1]["hint"], "did you mean `Fields`?");
        assert_eq!(json["errors"][0]["label"], serde_json::Value::Null);
    }

    #[test]
    fn unreadable_files_render_without_a_snippet() {
        let mut sources = SourceMap::new();
        let id = sources.add("gone.yml", "");
        let d = Diagnostic::new(
            Code::E0100,
            id,
            Span::new(0, 0),
            "cannot read `gone.yml`: not found",
        );
        assert_eq!(
            render_text(&sources, &[d], false),
            "error[E0100]: cannot read `gone.yml`: not found\n\n"
        );
    }
}
