//! Streaming runs of `dtc transform` (no window).
//!
//! Golden cases: every directory under `tests/transform/` holds a streaming DTC `spec.yml`, one
//! or more `events*` files (JSON lines, `.gz` too) and `expected.txt`; an optional `args` file
//! adds arguments (e.g. `--format blurr`). The binary runs with the case directory as working
//! directory and the memory store; `expected.txt` must equal its stdout, `--- dead letters` and
//! the dead-letter file, `--- summary` and stderr without the `elapsed:` line, and
//! `exit code: N`. `BLESS=1 cargo test -p dtc-cli --test transform` rewrites the expected files.
//!
//! The other tests check properties no single golden file can: input order and file splits do
//! not change the result, spilling does not either, the embedded store reads back what a run
//! printed, and stdin and gzip inputs read like plain files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

mod common;
use common::{dtc, exit_code, repo, text};

fn cases_dir() -> PathBuf {
    repo().join("tests/transform")
}

fn offer_ai_spec() -> PathBuf {
    repo().join("dtc-specs/offer-ai/offer-ai-streaming.yml")
}

fn offer_ai_events() -> PathBuf {
    repo().join("examples/offer-ai/events.jsonl")
}

/// The case's input files (`events*`), in name order.
fn event_files(dir: &Path) -> Result<Vec<String>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list: {e}"))?;
    let mut files: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("events"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err("no events* file".into());
    }
    Ok(files)
}

/// A dead letter with its run id (a fingerprint of the input's absolute paths, which differ
/// between checkouts) shown as `<run>`.
fn without_run_id(line: &str) -> String {
    match line
        .strip_prefix("{\"run\":\"")
        .and_then(|rest| rest.split_once('"'))
    {
        Some((_, rest)) => format!("{{\"run\":\"<run>\"{rest}"),
        None => line.to_string(),
    }
}

fn run_case(dir: &Path) -> Result<String, String> {
    let tmp = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let dead_letters = tmp.path().join("dl.jsonl");
    let extra: Vec<String> = match std::fs::read_to_string(dir.join("args")) {
        Ok(text) => text.split_whitespace().map(str::to_string).collect(),
        Err(_) => Vec::new(),
    };
    let mut cmd = dtc();
    cmd.current_dir(dir)
        .args(["transform", "--streaming", "spec.yml", "--source"])
        .args(event_files(dir)?)
        .args(["--store", "memory:", "--dead-letter"])
        .arg(&dead_letters);
    if !extra.iter().any(|a| a == "--format") {
        cmd.args(["--format", "jsonl"]);
    }
    let output = cmd
        .args(&extra)
        .output()
        .map_err(|e| format!("cannot run dtc: {e}"))?;
    let dead: String = text(&std::fs::read(&dead_letters).unwrap_or_default())
        .lines()
        .map(|l| without_run_id(l) + "\n")
        .collect();
    let tmp_name = tmp.path().display().to_string();
    let summary: String = text(&output.stderr)
        .lines()
        .filter(|l| !l.starts_with("elapsed:"))
        .map(|l| l.replace(&tmp_name, "<tmp>") + "\n")
        .collect();
    Ok(format!(
        "{}--- dead letters\n{}--- summary\n{summary}exit code: {}\n",
        text(&output.stdout),
        dead,
        exit_code(&output)
    ))
}

#[test]
fn transform_golden_cases() {
    common::run_golden_cases(&cases_dir(), 14, run_case);
}

/// Runs a streaming-only transform of `spec` over `sources` and returns its output, after
/// checking that it succeeded.
fn streaming(dir: &Path, spec: &Path, sources: &[&str], store: &str, extra: &[&str]) -> Output {
    let output = dtc()
        .current_dir(dir)
        .arg("transform")
        .arg("--streaming")
        .arg(spec)
        .arg("--source")
        .args(sources)
        .args(["--store", store, "--format", "jsonl", "--dead-letter"])
        .arg(dir.join("dl.jsonl"))
        .args(extra)
        .output()
        .expect("run dtc");
    assert_eq!(
        output.status.code(),
        Some(0),
        "dtc failed:\n{}",
        text(&output.stderr)
    );
    output
}

/// A small deterministic generator (xorshift64*), so shuffles and generated inputs are the same
/// on every run without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read events")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").expect("write events");
}

/// Records printed by a streaming run, sorted: identities come out in order of first
/// appearance, which legitimately depends on the input order.
fn sorted_records(output: &Output) -> Vec<String> {
    let mut lines: Vec<String> = text(&output.stdout).lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// Contract section 7: each identity's events are applied in event-time order, so shuffling
/// the input and splitting it across files gives the same records. The example's events have
/// distinct timestamps per identity, so no tie depends on input order.
#[test]
fn shuffled_and_split_input_equals_sorted_input() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let sorted = streaming(
        dir,
        &offer_ai_spec(),
        &[&offer_ai_events().display().to_string()],
        "memory:",
        &[],
    );

    let mut lines = read_lines(&offer_ai_events());
    Rng(0x5eed_0001).shuffle(&mut lines);
    let third = lines.len().div_ceil(3);
    let mut names = Vec::new();
    for (i, chunk) in lines.chunks(third).enumerate() {
        let name = format!("part-{i}.jsonl");
        write_lines(&dir.join(&name), chunk);
        names.push(name);
    }
    assert_eq!(names.len(), 3);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let shuffled = streaming(dir, &offer_ai_spec(), &names, "memory:", &[]);

    let expected = sorted_records(&sorted);
    assert!(expected.len() > 20, "the example produced too few records");
    assert_eq!(sorted_records(&shuffled), expected);
    assert!(text(&shuffled.stderr).contains("applied:          728"));
}

/// Offer-ai-shaped events for `users` users over `days` days, written in a shuffled order.
fn generated_events(users: u32, days: u32, seed: u64) -> Vec<String> {
    let mut rng = Rng(seed);
    let mut lines = Vec::new();
    for u in 0..users {
        let id = format!("U{u:05}");
        for day in 0..days {
            let hour = (rng.below(20) + 1) as u32;
            let session = format!("S{u}-{day}");
            let at = |minute: u32, second: u32| {
                format!("2018-01-{:02}T{hour:02}:{minute:02}:{second:02}", day + 1)
            };
            lines.push(format!(
                r#"{{"event_id": "app_launched", "event_time": "{}", "customer_identifier": "{id}", "session_id": "{session}", "country": "DE", "signin_method": "fb", "padding": "{}"}}"#,
                at(0, 0),
                "x".repeat(64)
            ));
            for game in 0..(rng.below(6) as u32) {
                lines.push(format!(
                    r#"{{"event_id": "game_start", "event_time": "{}", "customer_identifier": "{id}", "session_id": "{session}"}}"#,
                    at(game * 5 + 1, 0)
                ));
                lines.push(format!(
                    r#"{{"event_id": "game_end", "event_time": "{}", "customer_identifier": "{id}", "session_id": "{session}", "won": {}}}"#,
                    at(game * 5 + 4, 30),
                    rng.below(2) == 0
                ));
            }
            if rng.below(3) == 0 {
                lines.push(format!(
                    r#"{{"event_id": "offer_shown", "event_time": "{}", "customer_identifier": "{id}", "session_id": "{session}", "offer_type": "coins", "offer_price": "4.99", "offer_purchased": true}}"#,
                    at(40, 0)
                ));
                lines.push(format!(
                    r#"{{"event_id": "purchase", "event_time": "{}", "customer_identifier": "{id}", "session_id": "{session}", "txn_amount": "4.99", "purchase_source": "offer"}}"#,
                    at(41, 0)
                ));
            }
        }
    }
    rng.shuffle(&mut lines);
    lines
}

/// The sorter's memory bound: with a 1 MiB budget the run spills sorted runs to disk and
/// merges them, and the result equals the in-memory sort's.
#[test]
fn forced_spill_equals_in_memory_sort() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    // Enough events that, even with only the paths the aggregates read kept, they do not fit
    // in the 1 MiB buffer.
    let lines = generated_events(300, 10, 3);
    assert!(lines.len() > 15_000, "only {} events", lines.len());
    write_lines(&dir.join("events.jsonl"), &lines);
    let spill_dir = dir.join("spill");
    std::fs::create_dir(&spill_dir).expect("spill dir");

    let in_memory = streaming(dir, &offer_ai_spec(), &["events.jsonl"], "memory:", &[]);
    let spilled = streaming(
        dir,
        &offer_ai_spec(),
        &["events.jsonl"],
        "memory:",
        &["--sort-memory-mb", "1", "--spill-dir", "spill"],
    );
    let summary = text(&spilled.stderr);
    assert!(
        summary.contains("sorted runs spilled:"),
        "no spill happened:\n{summary}"
    );
    assert!(!text(&in_memory.stderr).contains("sorted runs spilled:"));
    assert_eq!(text(&spilled.stdout), text(&in_memory.stdout));
    let leftovers = std::fs::read_dir(&spill_dir)
        .expect("list spill dir")
        .count();
    assert_eq!(leftovers, 0, "spill files were left behind");
}

/// `dtc blocks` prints an identity's records sorted by aggregate and start time; a streaming
/// run prints them in creation order. Both are compared sorted.
fn records_of(output: &str, identity: &str) -> Vec<String> {
    let prefix = format!("{{\"identity\":\"{identity}\",");
    let mut lines: Vec<String> = output
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

fn blocks(dir: &Path, store: &str, identity: &str) -> String {
    let output = dtc()
        .current_dir(dir)
        .arg("blocks")
        .arg("--streaming")
        .arg(offer_ai_spec())
        .args(["--store", store, identity])
        .output()
        .expect("run dtc blocks");
    assert_eq!(
        output.status.code(),
        Some(0),
        "dtc blocks failed:\n{}",
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// The embedded store keeps what a run wrote: reopened by `dtc blocks`, it holds the records
/// the memory run printed. A second run over the same file into the same store applies
/// nothing: the store's per-file checkpoint says every line was applied (docs/language.md section 13,
/// re-delivery must not apply events twice).
#[test]
fn embedded_store_reopens_and_a_second_run_does_not_double_count() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    std::fs::copy(offer_ai_events(), dir.join("events.jsonl")).expect("copy events");
    let memory = streaming(dir, &offer_ai_spec(), &["events.jsonl"], "memory:", &[]);
    let memory_out = text(&memory.stdout);

    let store = "store";
    let first = streaming(dir, &offer_ai_spec(), &["events.jsonl"], store, &[]);
    assert_eq!(text(&first.stdout), memory_out);

    for identity in ["U00000000", "U9E3779B1"] {
        let expected = records_of(&memory_out, identity);
        assert!(
            expected.len() > 1,
            "{identity} has no blocks in the example"
        );
        assert_eq!(
            records_of(&blocks(dir, store, identity), identity),
            expected
        );
    }

    let second = streaming(dir, &offer_ai_spec(), &["events.jsonl"], store, &[]);
    let summary = text(&second.stderr);
    assert!(
        summary.contains("skipped, applied by an earlier run into this store: 728"),
        "{summary}"
    );
    assert!(summary.contains("applied:          0"), "{summary}");
    for identity in ["U00000000", "U9E3779B1"] {
        assert_eq!(
            records_of(&blocks(dir, store, identity), identity),
            records_of(&memory_out, identity),
            "a second run changed {identity}'s records"
        );
    }
}

/// Contract section 7: a late event for a block that an earlier run closed and persisted
/// updates that block (resumed from the store), instead of opening a new one.
#[test]
fn late_event_in_a_later_run_updates_the_stored_block() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    std::fs::copy(offer_ai_events(), dir.join("events.jsonl")).expect("copy events");
    let first = streaming(dir, &offer_ai_spec(), &["events.jsonl"], "store", &[]);
    let before = records_of(&text(&first.stdout), "U00000000");
    let rf1 = r#"{"identity":"U00000000","aggregate":"game_stats","dims":["RF1"],"record":{"_identity":"U00000000","_start_time":"2018-01-01T06:32:42+00:00","_end_time":"2018-01-01T06:53:48+00:00","games_played":5,"#;
    assert!(before.iter().any(|r| r.starts_with(rf1)), "{before:#?}");

    std::fs::write(
        dir.join("late.jsonl"),
        r#"{"event_id": "game_start", "event_time": "2018-01-01T06:40:00", "customer_identifier": "U00000000", "session_id": "RF1"}"#,
    )
    .expect("write late event");
    let second = streaming(dir, &offer_ai_spec(), &["late.jsonl"], "store", &[]);
    let after = records_of(&blocks(dir, "store", "U00000000"), "U00000000");
    assert_eq!(
        after.len(),
        before.len(),
        "the late event opened a new block"
    );
    let updated = rf1.replace("\"games_played\":5,", "\"games_played\":6,");
    assert!(after.iter().any(|r| r.starts_with(&updated)), "{after:#?}");
    let unchanged = |set: &[String]| -> Vec<String> {
        set.iter()
            .filter(|r| !r.contains("\"dims\":[\"RF1\"]"))
            .cloned()
            .collect()
    };
    assert_eq!(unchanged(&after), unchanged(&before));
    assert!(text(&second.stderr).contains("records written:  1"));
}

/// A file with more lines than the last run saw is a partition that grew: only the new lines
/// are applied, on top of the stored blocks.
#[test]
fn appended_lines_are_applied_once() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let lines = read_lines(&offer_ai_events());
    let memory = streaming(
        dir,
        &offer_ai_spec(),
        &[&offer_ai_events().display().to_string()],
        "memory:",
        &[],
    );
    let half = lines.len() / 2;
    write_lines(&dir.join("events.jsonl"), &lines[..half]);
    streaming(dir, &offer_ai_spec(), &["events.jsonl"], "store", &[]);
    write_lines(&dir.join("events.jsonl"), &lines);
    let second = streaming(dir, &offer_ai_spec(), &["events.jsonl"], "store", &[]);
    let summary = text(&second.stderr);
    assert!(
        summary.contains(&format!(
            "skipped, applied by an earlier run into this store: {half}"
        )),
        "{summary}"
    );
    let memory_out = text(&memory.stdout);
    for identity in ["U3C6EF362", "UDAA66D13"] {
        assert_eq!(
            records_of(&blocks(dir, "store", identity), identity),
            records_of(&memory_out, identity),
            "{identity}"
        );
    }
}

/// `--source -` reads stdin, and a `.gz` file reads like the plain file.
#[test]
fn stdin_and_gzip_inputs_read_like_a_plain_file() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let plain_bytes = std::fs::read(offer_ai_events()).expect("read events");
    std::fs::write(dir.join("events.jsonl"), &plain_bytes).expect("write events");
    let plain = streaming(dir, &offer_ai_spec(), &["events.jsonl"], "memory:", &[]);

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain_bytes).expect("compress");
    std::fs::write(dir.join("events.jsonl.gz"), gz.finish().expect("compress")).expect("write gz");
    let gzipped = streaming(dir, &offer_ai_spec(), &["events.jsonl.gz"], "memory:", &[]);
    assert_eq!(text(&gzipped.stdout), text(&plain.stdout));

    let mut child = dtc()
        .current_dir(dir)
        .arg("transform")
        .arg("--streaming")
        .arg(offer_ai_spec())
        .args(["--source", "-", "--store", "memory:", "--format", "jsonl"])
        .arg("--dead-letter")
        .arg(dir.join("dl.jsonl"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run dtc");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&plain_bytes));
    let from_stdin = child.wait_with_output().expect("wait for dtc");
    writer.join().expect("writer thread").expect("write stdin");
    assert_eq!(
        from_stdin.status.code(),
        Some(0),
        "{}",
        text(&from_stdin.stderr)
    );
    assert!(!from_stdin.stdout.is_empty());
    assert_eq!(text(&from_stdin.stdout), text(&plain.stdout));
}
