//! What the golden-file tests of the `dtc` binary share: how to run it, how its output is
//! rendered into an expected file, and the case runner with its bless mode.
// Each test crate uses a part of this module.
#![allow(dead_code)]

pub mod kafka;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `dtc` binary under test, with colours off and no store taken from the environment.
pub fn dtc() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dtc"));
    cmd.env("NO_COLOR", "1").env_remove("DTC_STORE");
    cmd
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn exit_code(output: &Output) -> String {
    output
        .status
        .code()
        .map_or_else(|| "signal".to_string(), |c| c.to_string())
}

/// Runs every case directory under `cases_dir` through `run_case` and compares the result with
/// the case's `expected.txt`; with `BLESS` set in the environment it rewrites the expected
/// files instead. All cases run before the test fails, and the failure lists each of them.
pub fn run_golden_cases(
    cases_dir: &Path,
    at_least: usize,
    run_case: impl Fn(&Path) -> Result<String, String>,
) {
    let bless = std::env::var_os("BLESS").is_some();
    let mut cases: Vec<PathBuf> = match std::fs::read_dir(cases_dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect(),
        Err(e) => panic!("cannot list {}: {e}", cases_dir.display()),
    };
    cases.sort();
    assert!(
        cases.len() >= at_least,
        "expected at least {at_least} golden cases in {}, found {}",
        cases_dir.display(),
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

/// Offer-ai-shaped events for `users` users on the days of January 2018 in `day_range` (0 is the
/// 1st), several sessions each, some with offers and purchases, and a few lines that are
/// rejected.
pub fn offer_ai_events(users: u32, day_range: std::ops::Range<u32>) -> Vec<String> {
    let mut lines = Vec::new();
    for day in day_range {
        for u in 0..users {
            if (u + day) % 3 == 0 {
                continue;
            }
            let session = format!("S{u}-{day}");
            let t = |minute: u32| {
                format!(
                    "2018-01-{:02}T{:02}:{:02}:00",
                    day + 1,
                    (u % 20) + 1,
                    minute
                )
            };
            let id = format!("U{u:04}");
            lines.push(format!(
                r#"{{"event_id": "app_launched", "event_time": "{}", "customer_identifier": "{id}", "session_id": "{session}", "country": "DE", "signin_method": "fb"}}"#,
                t(0)
            ));
            lines.push(format!(
                r#"{{"event_id": "game_start", "event_time": "{}", "customer_identifier": "{id}", "session_id": "{session}"}}"#,
                t(1)
            ));
            lines.push(format!(
                r#"{{"event_id": "game_end", "event_time": "{}", "customer_identifier": "{id}", "session_id": "{session}", "won": {}}}"#,
                t(5),
                (u + day) % 2 == 0
            ));
            if day % 2 == 0 {
                lines.push(format!(
                    r#"{{"event_id": "offer_shown", "event_time": "{}", "customer_identifier": "{id}", "session_id": "{session}", "offer_type": "coins", "offer_price": "4.99", "offer_purchased": true}}"#,
                    t(6)
                ));
            }
            if (u + day) % 4 == 0 {
                lines.push(format!(
                    r#"{{"event_id": "purchase", "event_time": "{}", "customer_identifier": "{id}", "session_id": "{session}", "txn_amount": "4.99", "purchase_source": "offer"}}"#,
                    t(7)
                ));
            }
            if (u * 7 + day) % 29 == 0 {
                lines.push(format!(
                    r#"{{"event_id": "broken", "customer_identifier": "{id}""#
                ));
            }
        }
    }
    lines
}
