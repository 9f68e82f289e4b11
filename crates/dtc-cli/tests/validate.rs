//! Golden tests for `dtc validate`: every directory under `tests/validate/` is one case.
//!
//! The binary runs with the case directory as working directory, on `.` (or on the arguments
//! listed in the case's `args` file). Its stdout, stderr and a final `exit code: N` line must
//! equal the case's `expected.txt`. `BLESS=1 cargo test -p dtc-cli --test validate` rewrites
//! the expected files instead.
//!
//! Also here: `dtc schema`, and the committed schema that the specs in `dtc-specs/` point
//! editors at.

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

const MODELINE: &str = "# yaml-language-server: $schema=";

fn spec_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            spec_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml")
            && !dtc_runtime::spectest::is_test_file(&path)
        {
            out.push(path);
        }
    }
}

#[test]
fn the_committed_schema_is_what_dtc_schema_prints() {
    let output = dtc()
        .arg("schema")
        .output()
        .unwrap_or_else(|e| panic!("cannot run dtc: {e}"));
    assert_eq!(exit_code(&output), "0", "{}", text(&output.stderr));
    let committed = std::fs::read_to_string(repo().join("dtc-specs/dtc.schema.json"))
        .unwrap_or_else(|e| panic!("dtc-specs/dtc.schema.json: {e}"));
    assert!(
        text(&output.stdout) == committed,
        "dtc-specs/dtc.schema.json is out of date: regenerate it with \
         `dtc schema > dtc-specs/dtc.schema.json`"
    );
    let schema: serde_json::Value =
        serde_json::from_str(&committed).unwrap_or_else(|e| panic!("the schema is not JSON: {e}"));
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
}

#[test]
fn every_spec_in_dtc_specs_points_at_the_committed_schema() {
    let dir = repo().join("dtc-specs");
    let schema = std::fs::canonicalize(dir.join("dtc.schema.json"))
        .unwrap_or_else(|e| panic!("dtc-specs/dtc.schema.json: {e}"));
    let mut files = Vec::new();
    spec_files(&dir, &mut files);
    assert!(files.len() >= 4, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let first = text.lines().next().unwrap_or_default();
        let Some(path) = first.strip_prefix(MODELINE) else {
            panic!("{}: the first line is not `{MODELINE}...`", file.display());
        };
        let target = file
            .parent()
            .map(|d| d.join(path.trim()))
            .unwrap_or_default();
        assert_eq!(
            std::fs::canonicalize(&target).ok(),
            Some(schema.clone()),
            "{}: {path} is not dtc-specs/dtc.schema.json",
            file.display()
        );
    }
}
