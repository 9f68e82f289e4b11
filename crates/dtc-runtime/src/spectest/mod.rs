//! Spec unit tests (`dtc test`, docs/testing.md): test files → tests bound to compiled specs →
//! runs over the test's events → failures as data.
//!
//! A test file is loaded by `dtc_lang::testfile` (keys, shapes, values); [`load_suite`] then
//! binds each of its expectations to the compiled specs it names (aggregates, columns, reject
//! reasons), reporting problems as diagnostics in the same form as spec diagnostics. A test runs
//! the same batch run as `dtc transform --source` (an in-memory store, rows computed in the same
//! pass), and live features with the window operator's `row_at` over the stored records, the
//! code a feature server runs.

mod bind;
mod run;
mod values;

use std::path::{Path, PathBuf};

use dtc_lang::diagnostic::{Code, Diagnostic};
use dtc_lang::load::SourceMap;
use dtc_lang::render::sort_diagnostics;
use dtc_lang::span::{FileId, Span};
use dtc_lang::testfile::load_test_file;

use crate::specs::display;

pub use bind::BoundTest;

/// Every test file found under some paths, checked and bound to its specs.
pub struct Suite {
    /// The test files, and the spec files whose diagnostics are reported.
    pub sources: SourceMap,
    /// Problems of test files and of the specs they name, sorted by file and position. A test
    /// file with any is not run.
    pub diagnostics: Vec<Diagnostic>,
    /// A path could not be read, or a directory holds no test file (E0100 is reported).
    pub unreadable: bool,
    /// The test files without problems, in path order.
    pub files: Vec<SuiteFile>,
}

/// A test file ready to run.
pub struct SuiteFile {
    /// The path as shown in messages.
    pub path: String,
    pub tests: Vec<BoundTest>,
    job: bind::Job,
}

/// Where tests may write their scratch files; the front end chooses (the library reads no
/// environment).
#[derive(Debug, Clone)]
pub struct TestOptions {
    pub scratch_dir: PathBuf,
}

/// What one test found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TestOutcome {
    /// Expectations the run did not meet, in the order of the test file.
    pub failures: Vec<Failure>,
    /// The run itself failed (an input that cannot be read, a full disk): nothing was
    /// compared.
    pub error: Option<String>,
}

impl TestOutcome {
    pub fn passed(&self) -> bool {
        self.failures.is_empty() && self.error.is_none()
    }
}

/// One expectation not met: where it is written, what it is about, and both sides rendered as
/// JSON values (or short descriptions when a record or row is missing).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Failure {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// `record `game_stats` of `U1` (session_id = "S1"), field `games_played``.
    pub what: String,
    pub expected: String,
    pub got: String,
}

/// Finds the test files under `paths` (files as given; directories searched recursively for
/// `*.test.yml` / `*.test.yaml`, hidden ones skipped), loads them and binds their tests to the
/// specs they name.
pub fn load_suite(paths: &[PathBuf]) -> Suite {
    let mut suite = Suite {
        sources: SourceMap::new(),
        diagnostics: Vec::new(),
        unreadable: false,
        files: Vec::new(),
    };
    let mut specs = bind::SpecCache::default();
    for path in paths {
        match test_files(path) {
            Ok(found) if found.is_empty() => suite.unreadable_file(
                display(path),
                "no `*.test.yml` or `*.test.yaml` files in this directory",
            ),
            Ok(found) => {
                for file in found {
                    suite.load_file(&file, &mut specs);
                }
            }
            Err(why) => suite.unreadable_file(display(path), &why),
        }
    }
    sort_diagnostics(&mut suite.diagnostics);
    suite
}

impl Suite {
    /// Runs test `test` of `file`.
    pub fn run(&self, file: &SuiteFile, test: &BoundTest, options: &TestOptions) -> TestOutcome {
        match run::execute(&file.job, test, options) {
            Ok(results) => TestOutcome {
                failures: run::check(&file.job, test, &results)
                    .into_iter()
                    .map(|(span, f)| self.failure(file.job.file, span, f))
                    .collect(),
                error: None,
            },
            Err(e) => TestOutcome {
                failures: Vec::new(),
                error: Some(e.to_string()),
            },
        }
    }

    fn failure(&self, file: FileId, span: Span, f: run::Unmet) -> Failure {
        let source = self.sources.get(file);
        let (line, column) = source.map_or((1, 1), |s| s.line_col(span.start));
        Failure {
            file: source.map(|s| s.path().to_string()).unwrap_or_default(),
            line,
            column,
            what: f.what,
            expected: f.expected,
            got: f.got,
        }
    }

    fn unreadable_file(&mut self, shown: String, why: &str) {
        self.unreadable = true;
        let message = format!("cannot read `{shown}`: {why}");
        let id = self.sources.add(shown, String::new());
        self.diagnostics
            .push(Diagnostic::new(Code::E0100, id, Span::new(0, 0), message));
    }

    fn load_file(&mut self, path: &Path, specs: &mut bind::SpecCache) {
        let shown = display(path);
        let text = match std::fs::read(path).map(String::from_utf8) {
            Ok(Ok(text)) => text,
            Ok(Err(_)) => return self.unreadable_file(shown, "the file is not UTF-8 text"),
            Err(e) => return self.unreadable_file(shown, &e.to_string()),
        };
        let id = self.sources.add(shown.clone(), text);
        let text = self.sources.get(id).map(|f| f.text()).unwrap_or_default();
        let (test_file, mut diagnostics) = load_test_file(id, text);
        let had_problems = !diagnostics.is_empty();
        let bound = test_file.and_then(|test_file| {
            let dir = path.parent().unwrap_or(Path::new(""));
            bind::bind(
                id,
                dir,
                &test_file,
                specs,
                &mut self.sources,
                &mut diagnostics,
            )
        });
        if let Some((job, tests)) = bound
            && !had_problems
            && diagnostics.is_empty()
        {
            self.files.push(SuiteFile {
                path: shown,
                tests,
                job,
            });
        }
        self.diagnostics.extend(diagnostics);
    }
}

/// The test files a command-line path stands for, sorted.
fn test_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let walk = walkdir::WalkDir::new(path)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walk {
        let entry = entry.map_err(|e| e.to_string())?;
        if entry.file_type().is_file() && is_test_file(entry.path()) {
            files.push(entry.into_path());
        }
    }
    files.sort();
    Ok(files)
}

/// Whether a file's name marks it as a test file (`*.test.yml`, `*.test.yaml`), not a spec.
pub fn is_test_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".test.yml") || n.ends_with(".test.yaml"))
}

#[cfg(test)]
mod tests;
