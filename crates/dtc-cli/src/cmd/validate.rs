//! `dtc validate`: load and compile specs together, print every diagnostic.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use dtc_lang::render::{render_json, render_text};
use dtc_runtime::specs::{LoadedSpecs, load_paths};

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
    fn missing_paths_exit_with_2() {
        let loaded = load_paths(&[PathBuf::from("/nonexistent/dtc/spec.yml")]);
        assert_eq!(exit_code(&loaded), ExitCode::from(2));
    }
}
