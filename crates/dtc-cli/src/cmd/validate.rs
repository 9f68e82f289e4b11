//! `dtc validate`: load and compile specs together, print every diagnostic.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use dtc_lang::diagnostic::{Code, Diagnostic};
use dtc_lang::load::{SourceMap, load_spec};
use dtc_lang::render::{render_json, render_text, sort_diagnostics};
use dtc_lang::span::{FileId, Span};
use dtc_plan::compile::{Catalog, compile_with_dirs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// rustc-style messages with the source line and a caret.
    Text,
    /// One JSON document (schema in docs/diagnostics.md), for CI.
    Json,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Spec files, or directories searched recursively for `*.yml` / `*.yaml`.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Every spec file found under some paths, loaded and compiled together.
pub struct LoadedSpecs {
    pub sources: SourceMap,
    /// Load and compile diagnostics, sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
    /// A file or directory could not be read (E0100 is among the diagnostics).
    pub unreadable: bool,
    /// The specs that compiled without errors.
    pub catalog: Catalog,
}

/// Loads every spec file under `paths` (directories recursively, files in sorted order) and
/// compiles all of them together, so window specs are checked against their streaming spec.
pub fn load_paths(paths: &[PathBuf]) -> LoadedSpecs {
    let mut sources = SourceMap::new();
    let mut diagnostics = Vec::new();
    let mut unreadable = false;
    let mut files = Vec::new();
    for path in paths {
        match spec_files(path) {
            Ok(found) if found.is_empty() => {
                unreadable = true;
                unreadable_file(
                    &mut sources,
                    &mut diagnostics,
                    display(path),
                    "no `*.yml` or `*.yaml` files in this directory".into(),
                );
            }
            Ok(found) => files.extend(found),
            Err(why) => {
                unreadable = true;
                unreadable_file(&mut sources, &mut diagnostics, display(path), why);
            }
        }
    }
    let mut loaded = Vec::new();
    for file in files {
        let shown = display(&file);
        match std::fs::read(&file).map(String::from_utf8) {
            Ok(Ok(text)) => {
                let id = sources.add(shown, text);
                let text = sources.get(id).map(|f| f.text()).unwrap_or_default();
                let (spec, diags) = load_spec(id, text);
                diagnostics.extend(diags);
                loaded.extend(spec);
            }
            Ok(Err(_)) => {
                unreadable = true;
                unreadable_file(
                    &mut sources,
                    &mut diagnostics,
                    shown,
                    "the file is not UTF-8 text".into(),
                );
            }
            Err(e) => {
                unreadable = true;
                unreadable_file(&mut sources, &mut diagnostics, shown, e.to_string());
            }
        }
    }
    let dir_of = |file: FileId| {
        sources
            .get(file)
            .and_then(|f| Path::new(f.path()).parent().map(Path::to_path_buf))
    };
    let (catalog, compile_diags) = compile_with_dirs(&loaded, &|a, b| dir_of(a) == dir_of(b));
    diagnostics.extend(compile_diags);
    sort_diagnostics(&mut diagnostics);
    LoadedSpecs {
        sources,
        diagnostics,
        unreadable,
        catalog,
    }
}

/// Records a path that could not be read as an empty file with an E0100, so the report can
/// name it like any other file.
fn unreadable_file(
    sources: &mut SourceMap,
    diagnostics: &mut Vec<Diagnostic>,
    shown: String,
    why: String,
) {
    let message = format!("cannot read `{shown}`: {why}");
    let id = sources.add(shown, String::new());
    diagnostics.push(Diagnostic::new(Code::E0100, id, Span::new(0, 0), message));
}

/// The spec files a command-line path stands for, sorted.
fn spec_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
        let entry = entry.map_err(|e| e.to_string())?;
        let is_spec = entry
            .path()
            .extension()
            .is_some_and(|ext| ext == "yml" || ext == "yaml");
        if entry.file_type().is_file() && is_spec {
            files.push(entry.into_path());
        }
    }
    files.sort();
    Ok(files)
}

/// A path as the user would write it: `spec.yml`, not `./spec.yml`.
fn display(path: &Path) -> String {
    let shown = path.strip_prefix(".").unwrap_or(path);
    if shown.as_os_str().is_empty() {
        path.display().to_string()
    } else {
        shown.display().to_string()
    }
}

pub fn run(args: &ValidateArgs) -> ExitCode {
    let loaded = load_paths(&args.paths);
    let stdout = std::io::stdout();
    let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let output = match args.format {
        Format::Json => render_json(&loaded.sources, &loaded.diagnostics) + "\n",
        Format::Text => {
            let mut text = render_text(&loaded.sources, &loaded.diagnostics, color);
            text.push_str(&summary(&loaded));
            text
        }
    };
    let mut out = stdout.lock();
    if out
        .write_all(output.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        return ExitCode::from(2);
    }
    exit_code(&loaded)
}

fn exit_code(loaded: &LoadedSpecs) -> ExitCode {
    if loaded.unreadable {
        ExitCode::from(2)
    } else if loaded.diagnostics.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn summary(loaded: &LoadedSpecs) -> String {
    let files = loaded.sources.len();
    let n = loaded.diagnostics.len();
    if n == 0 {
        return format!("ok: {files} {} valid\n", plural(files, "spec", "specs"));
    }
    let mut with_errors: Vec<_> = loaded.diagnostics.iter().map(|d| d.file).collect();
    with_errors.dedup();
    format!(
        "error: {n} {} in {} of {files} {}\n",
        plural(n, "error", "errors"),
        with_errors.len(),
        plural(files, "file", "files"),
    )
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_dot_is_dropped_from_shown_paths() {
        assert_eq!(display(Path::new("./a/spec.yml")), "a/spec.yml");
        assert_eq!(display(Path::new(".")), ".");
        assert_eq!(display(Path::new("../x.yml")), "../x.yml");
    }

    #[test]
    fn missing_paths_are_unreadable() {
        let loaded = load_paths(&[PathBuf::from("/nonexistent/dtc/spec.yml")]);
        assert!(loaded.unreadable);
        assert_eq!(
            loaded.diagnostics.first().map(|d| d.code),
            Some(Code::E0100)
        );
        assert_eq!(exit_code(&loaded), ExitCode::from(2));
    }
}
