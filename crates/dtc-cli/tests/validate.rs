//! Golden tests for `dtc validate`: every directory under `tests/validate/` is one case.
//!
//! The binary runs with the case directory as working directory, on `.` (or on the arguments
//! listed in the case's `args` file). Its stdout, stderr and a final `exit code: N` line must
//! equal the case's `expected.txt`. `BLESS=1 cargo test -p dtc-cli --test validate` rewrites
//! the expected files instead.

use std::path::{Path, PathBuf};

mod common;
use common::{dtc, exit_code, repo, text};

fn cases_dir() -> PathBuf {
    repo().join("tests/validate")
}

fn run_case(dir: &Path) -> Result<String, String> {
    let args = match std::fs::read_to_string(dir.join("args")) {
        Ok(text) => text.split_whitespace().map(str::to_string).collect(),
        Err(_) => vec![".".to_string()],
    };
    let output = dtc()
        .arg("validate")
        .args(&args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run dtc: {e}"))?;
    Ok(format!(
        "{}{}exit code: {}\n",
        text(&output.stdout),
        text(&output.stderr),
        exit_code(&output)
    ))
}

#[test]
fn validate_golden_cases() {
    common::run_golden_cases(&cases_dir(), 20, run_case);
}
