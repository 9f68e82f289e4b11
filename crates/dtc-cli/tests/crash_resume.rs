//! Kill and resume: a batch run that dies after writing part of its identities, re-run with the
//! same input, must end with exactly the state and rows of a run that never died.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn dtc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dtc"))
}

fn specs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dtc-specs/offer-ai")
}

/// Offer-ai-shaped events for `users` users, several sessions each, some with offers and
/// purchases, in time order across users.
fn write_events(path: &Path, users: u32) {
    let mut lines = Vec::new();
    for day in 0..14u32 {
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
        }
    }
    std::fs::write(path, lines.join("\n") + "\n").expect("write events");
}

fn transform(dir: &Path, store: &str, out: &str, crash_after: Option<u32>) -> Output {
    let mut cmd = dtc();
    cmd.current_dir(dir)
        .arg("transform")
        .arg("--streaming")
        .arg(specs().join("offer-ai-streaming.yml"))
        .arg("--window")
        .arg(specs().join("offer-ai-window.yml"))
        .args([
            "--source",
            "events.jsonl",
            "--store",
            store,
            "--output",
            out,
        ])
        .args(["--format", "jsonl", "--write-batch", "10", "--quiet"]);
    if let Some(n) = crash_after {
        cmd.env("DTC_CRASH_AFTER_IDENTITIES", n.to_string());
    }
    cmd.output().expect("run dtc")
}

/// All rows of the JSON-lines parts in `dir`, sorted.
fn rows(dir: &Path) -> Vec<String> {
    let mut rows = Vec::new();
    for entry in std::fs::read_dir(dir).expect("output dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().map(|n| n.to_string_lossy().to_string());
        if name.is_some_and(|n| n.starts_with("part-") && n.ends_with(".jsonl")) {
            let text = std::fs::read_to_string(&path).expect("part");
            rows.extend(text.lines().map(str::to_string));
        }
    }
    rows.sort();
    rows
}

fn blocks(dir: &Path, store: &str, identity: &str) -> String {
    let out = dtc()
        .current_dir(dir)
        .arg("blocks")
        .arg("--streaming")
        .arg(specs().join("offer-ai-streaming.yml"))
        .args(["--store", store, identity])
        .output()
        .expect("run dtc blocks");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_run_killed_midway_resumes_without_applying_events_twice() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    write_events(&dir.join("events.jsonl"), 40);

    let clean = transform(dir, "clean-store", "clean-out", None);
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );

    let crashed = transform(dir, "store", "out", Some(12));
    assert!(
        !crashed.status.success(),
        "the injected crash must kill the run"
    );
    let partial = rows(&dir.join("out"));
    assert!(
        partial.len() < rows(&dir.join("clean-out")).len(),
        "the crashed run must not have finished its output"
    );

    let resumed = transform(dir, "store", "out", None);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );

    assert_eq!(rows(&dir.join("out")), rows(&dir.join("clean-out")));
    for identity in ["U0000", "U0007", "U0039"] {
        assert_eq!(
            blocks(dir, "store", identity),
            blocks(dir, "clean-store", identity),
            "stored records of {identity}"
        );
    }

    // A third run over the same, fully applied input changes nothing.
    let again = transform(dir, "store", "out", None);
    assert!(again.status.success());
    assert_eq!(
        blocks(dir, "store", "U0007"),
        blocks(dir, "clean-store", "U0007")
    );
}
