//! `dtc test`: spec unit tests (docs/testing.md), reported like `cargo test`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use dtc_lang::render::{JsonDiagnostic, json_report, render_text};
use dtc_runtime::spectest::{Failure, Suite, TestOptions, TestOutcome, load_suite};
use serde::Serialize;

use crate::cmd::validate::Format;

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Test files, or directories searched recursively for `*.test.yml` / `*.test.yaml`
    /// (default: the current directory).
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// One test's result.
struct Ran<'a> {
    file: &'a str,
    name: &'a str,
    outcome: TestOutcome,
}

pub fn run(args: &TestArgs) -> ExitCode {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let suite = load_suite(&paths);
    let options = TestOptions {
        scratch_dir: std::env::temp_dir(),
    };
    let written = match args.format {
        Format::Text => text(&suite, &options),
        Format::Json => json(&suite, &options),
    };
    match written {
        Ok(ran) => exit_code(&suite, &ran),
        Err(_) => ExitCode::from(2),
    }
}

/// Runs every test, printing a line per test as it finishes, then the failures and the
/// summary.
fn text<'a>(suite: &'a Suite, options: &TestOptions) -> std::io::Result<Vec<Ran<'a>>> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if !suite.diagnostics.is_empty() {
        let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
        out.write_all(render_text(&suite.sources, &suite.diagnostics, color).as_bytes())?;
    }
    let total: usize = suite.files.iter().map(|f| f.tests.len()).sum();
    writeln!(out, "running {total} {}", plural(total, "test", "tests"))?;
    let mut ran = Vec::with_capacity(total);
    for file in &suite.files {
        for test in &file.tests {
            write!(out, "test {} :: {} ... ", file.path, test.name)?;
            out.flush()?;
            let outcome = suite.run(file, test, options);
            writeln!(out, "{}", if outcome.passed() { "ok" } else { "FAILED" })?;
            ran.push(Ran {
                file: &file.path,
                name: &test.name,
                outcome,
            });
        }
    }
    let failed: Vec<&Ran> = ran.iter().filter(|r| !r.outcome.passed()).collect();
    if !failed.is_empty() {
        writeln!(out, "\nfailures:")?;
        for r in &failed {
            writeln!(out, "\n---- {} :: {} ----", r.file, r.name)?;
            if let Some(error) = &r.outcome.error {
                writeln!(out, "error: the test's run failed: {error}")?;
            }
            for f in &r.outcome.failures {
                write_failure(&mut out, f)?;
            }
        }
        writeln!(out, "\nfailures:")?;
        for r in &failed {
            writeln!(out, "    {} :: {}", r.file, r.name)?;
        }
    }
    writeln!(out)?;
    let problems = suite.diagnostics.len();
    if problems > 0 {
        writeln!(
            out,
            "error: {problems} {}; the tests of a test file with errors did not run",
            plural(problems, "error", "errors"),
        )?;
    }
    writeln!(
        out,
        "result: {} passed, {} failed",
        ran.len() - failed.len(),
        failed.len()
    )?;
    out.flush()?;
    Ok(ran)
}

/// Where, what, and both sides one under the other, like a diff.
fn write_failure(out: &mut impl Write, f: &Failure) -> std::io::Result<()> {
    writeln!(out, "{}:{}:{}: {}", f.file, f.line, f.column, f.what)?;
    writeln!(out, "  - expected: {}", f.expected)?;
    writeln!(out, "  + got:      {}", f.got)
}

#[derive(Serialize)]
struct JsonSuite<'a> {
    passed: usize,
    failed: usize,
    /// Diagnostics of test files and specs, as `dtc validate --format json` gives them.
    errors: Vec<JsonDiagnostic>,
    tests: Vec<JsonTest<'a>>,
}

#[derive(Serialize)]
struct JsonTest<'a> {
    file: &'a str,
    name: &'a str,
    /// `ok` or `failed`.
    result: &'static str,
    error: Option<&'a str>,
    failures: &'a [Failure],
}

fn json<'a>(suite: &'a Suite, options: &TestOptions) -> std::io::Result<Vec<Ran<'a>>> {
    let mut ran = Vec::new();
    for file in &suite.files {
        for test in &file.tests {
            ran.push(Ran {
                file: &file.path,
                name: &test.name,
                outcome: suite.run(file, test, options),
            });
        }
    }
    let failed = ran.iter().filter(|r| !r.outcome.passed()).count();
    let document = JsonSuite {
        passed: ran.len() - failed,
        failed,
        errors: json_report(&suite.sources, &suite.diagnostics).errors,
        tests: ran
            .iter()
            .map(|r| JsonTest {
                file: r.file,
                name: r.name,
                result: if r.outcome.passed() { "ok" } else { "failed" },
                error: r.outcome.error.as_deref(),
                failures: &r.outcome.failures,
            })
            .collect(),
    };
    let text = serde_json::to_string_pretty(&document).map_err(std::io::Error::other)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(ran)
}

/// 2 when a test file or spec is unreadable or invalid, or a test's run failed; 1 when a test
/// failed; 0 otherwise.
fn exit_code(suite: &Suite, ran: &[Ran<'_>]) -> ExitCode {
    if suite.unreadable
        || !suite.diagnostics.is_empty()
        || ran.iter().any(|r| r.outcome.error.is_some())
    {
        ExitCode::from(2)
    } else if ran.iter().any(|r| !r.outcome.passed()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}
