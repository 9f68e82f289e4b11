//! Loading the specs a command needs, reporting their diagnostics like `dtc validate` does.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use dtc_lang::render::render_text;
use dtc_runtime::RunError;
use dtc_runtime::specs::{JobSpecs, LoadedSpecs, SpecFailure};

/// A job's specs; `None` after printing their diagnostics on stderr.
pub fn load_job(streaming: &Path, windows: &[PathBuf]) -> Option<Result<JobSpecs, RunError>> {
    match dtc_runtime::specs::load_job(streaming, windows) {
        Ok(specs) => Some(Ok(specs)),
        Err(SpecFailure::Run(e)) => Some(Err(e)),
        Err(SpecFailure::Diagnostics(loaded)) => {
            print_diagnostics(&loaded);
            None
        }
    }
}

fn print_diagnostics(loaded: &LoadedSpecs) {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    eprint!(
        "{}",
        render_text(&loaded.sources, &loaded.diagnostics, color)
    );
    eprintln!(
        "error: the specs have {} error(s); nothing was run",
        loaded.diagnostics.len()
    );
}
