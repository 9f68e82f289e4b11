//! `dtc test`: golden cases, and the repository's spec tests failing when a spec is broken.
//!
//! Every directory under `tests/spectest/` is one case: the binary runs with the case directory
//! as working directory, with the arguments listed in the case's `args` file (none: the
//! current directory is searched). Its stdout, stderr and a final `exit code: N` line must
//! equal the case's `expected.txt`. `BLESS=1 cargo test -p dtc-cli --test spectest` rewrites
//! the expected files instead.

use std::path::{Path, PathBuf};

mod common;
use common::{dtc, exit_code, repo, text};

fn cases_dir() -> PathBuf {
    repo().join("tests/spectest")
}

fn run_case(dir: &Path) -> Result<String, String> {
    let args: Vec<String> = match std::fs::read_to_string(dir.join("args")) {
        Ok(text) => text.split_whitespace().map(str::to_string).collect(),
        Err(_) => Vec::new(),
    };
    let output = dtc()
        .arg("test")
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
fn spectest_golden_cases() {
    common::run_golden_cases(&cases_dir(), 6, run_case);
}

/// Copies `dtc-specs/` and the example events its tests read to `dir`.
fn copy_specs(dir: &Path) {
    let repo = repo();
    let mut pending = vec![PathBuf::from("dtc-specs")];
    while let Some(relative) = pending.pop() {
        std::fs::create_dir_all(dir.join(&relative)).unwrap();
        for entry in std::fs::read_dir(repo.join(&relative)).unwrap() {
            let entry = entry.unwrap();
            let path = relative.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                pending.push(path);
            } else {
                std::fs::copy(entry.path(), dir.join(&path)).unwrap();
            }
        }
    }
    std::fs::create_dir_all(dir.join("examples/offer-ai")).unwrap();
    std::fs::copy(
        repo.join("examples/offer-ai/events.jsonl"),
        dir.join("examples/offer-ai/events.jsonl"),
    )
    .unwrap();
}

#[test]
fn the_spec_tests_pass_and_fail_with_a_diff_when_a_spec_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    copy_specs(dir.path());
    let run = || {
        dtc()
            .args(["test", "dtc-specs/"])
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let passed = run();
    let stdout = text(&passed.stdout);
    assert_eq!(exit_code(&passed), "0", "{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("result: ") && last.ends_with(" passed, 0 failed"),
        "{stdout}"
    );

    let streaming = dir.path().join("dtc-specs/offer-ai/offer-ai-streaming.yml");
    let spec = std::fs::read_to_string(&streaming).unwrap();
    let broken = spec.replace("game_stats.games_played + 1", "game_stats.games_played + 2");
    assert_ne!(spec, broken);
    std::fs::write(&streaming, broken).unwrap();
    let failed = run();
    let stdout = text(&failed.stdout);
    assert_eq!(exit_code(&failed), "1", "{stdout}");
    assert!(
        stdout.contains(
            "test dtc-specs/offer-ai/offer-ai.test.yml :: a session counts its games, wins and win ratio ... FAILED\n"
        ),
        "{stdout}"
    );
    // The expectation's place, what it is about, and both values.
    let test_file =
        std::fs::read_to_string(dir.path().join("dtc-specs/offer-ai/offer-ai.test.yml")).unwrap();
    let (line, text_line) = test_file
        .lines()
        .enumerate()
        .find(|(_, l)| l.trim() == "games_played: 3")
        .unwrap();
    let column = text_line.find('3').unwrap() + 1;
    let diff = format!(
        "dtc-specs/offer-ai/offer-ai.test.yml:{}:{column}: record `game_stats` of `U1` (session_id = \"S1\"), field `games_played`\n  - expected: 3\n  + got:      6\n",
        line + 1
    );
    assert!(stdout.contains(&diff), "{diff}\nnot in:\n{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.starts_with("result: ") && !last.ends_with(" 0 failed"));
}
