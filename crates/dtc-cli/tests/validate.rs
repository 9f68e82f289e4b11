//! Golden tests for `dtc validate`: every directory under `tests/validate/` is one case.
//!
//! The binary runs with the case directory as working directory, on `.` (or on the arguments
//! listed in the case's `args` file). Its stdout, stderr and a final `exit code: N` line must
//! equal the case's `expected.txt`. `BLESS=1 cargo test -p dtc-cli --test validate` rewrites
//! the expected files instead.

use std::path::{Path, PathBuf};
use std::process::Command;

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/validate")
}

fn run_case(dir: &Path) -> Result<String, String> {
    let args = match std::fs::read_to_string(dir.join("args")) {
        Ok(text) => text.split_whitespace().map(str::to_string).collect(),
        Err(_) => vec![".".to_string()],
    };
    let output = Command::new(env!("CARGO_BIN_EXE_dtc"))
        .arg("validate")
        .args(&args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .map_err(|e| format!("cannot run dtc: {e}"))?;
    let code = output
        .status
        .code()
        .map_or_else(|| "signal".to_string(), |c| c.to_string());
    Ok(format!(
        "{}{}exit code: {code}\n",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

#[test]
fn validate_golden_cases() {
    let bless = std::env::var_os("BLESS").is_some();
    let mut cases: Vec<PathBuf> = match std::fs::read_dir(cases_dir()) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect(),
        Err(e) => panic!("cannot list {}: {e}", cases_dir().display()),
    };
    cases.sort();
    assert!(
        cases.len() >= 20,
        "expected the golden cases, found {}",
        cases.len()
    );

    let mut failures = Vec::new();
    for case in &cases {
        let name = case
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let actual = match run_case(case) {
            Ok(actual) => actual,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let expected_path = case.join("expected.txt");
        if bless {
            if let Err(e) = std::fs::write(&expected_path, &actual) {
                failures.push(format!("{name}: cannot write expected.txt: {e}"));
            }
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "{name}: output differs\n--- expected\n{expected}\n--- actual\n{actual}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed (BLESS=1 to accept):\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
