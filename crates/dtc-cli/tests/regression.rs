//! One test per bug fixed in streaming runs, named after the bug.

use std::path::Path;
use std::process::{Command, Output};

fn transform(dir: &Path, extra: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_dtc"))
        .current_dir(dir)
        .args([
            "transform",
            "--streaming",
            "spec.yml",
            "--source",
            "events.jsonl",
            "--store",
            "memory:",
            "--dead-letter",
            "dl.jsonl",
        ])
        .args(extra)
        .env_remove("DTC_STORE")
        .output()
        .expect("run dtc");
    assert_eq!(
        output.status.code(),
        Some(0),
        "dtc failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn case(spec: &str, events: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("spec.yml"), spec).expect("write spec");
    std::fs::write(dir.path().join("events.jsonl"), events).expect("write events");
    dir
}

/// `--format blurr` printed an activity block's key with dtc's internal block id as its
/// dimension (`u1/visits/1520462131000000/`); Blurr (and docs/output.md) key activity blocks
/// by their start time: `u1/visits//2018-03-07T22:35:31+00:00`.
#[test]
fn blurr_key_of_activity_block_showed_internal_id() {
    let dir = case(
        "Type: Blurr:Transform:Streaming\n\
         Version: '2018-03-01'\n\
         Name: visits_spec\n\
         Identity: source.user\n\
         Time: parse_time(source.ts)\n\
         Aggregates:\n\
         \x20 - Type: Blurr:Aggregate:Activity\n\
         \x20   Name: visits\n\
         \x20   SeparateByInactiveSeconds: 60\n\
         \x20   Fields:\n\
         \x20     - Name: events\n\
         \x20       Type: integer\n\
         \x20       Value: visits.events + 1\n",
        "{\"user\": \"u1\", \"ts\": \"2018-03-07T22:35:31\"}\n\
         {\"user\": \"u1\", \"ts\": \"2018-03-07T22:36:00\"}\n\
         {\"user\": \"u1\", \"ts\": \"2018-03-07T23:00:00\"}\n",
    );
    let output = transform(dir.path(), &["--format", "blurr"]);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "[\"u1/visits//2018-03-07T22:35:31+00:00\", {\"_identity\": \"u1\", \
         \"_start_time\": \"2018-03-07T22:35:31+00:00\", \"_end_time\": \"2018-03-07T22:36:00+00:00\", \
         \"events\": 2}]\n\
         [\"u1/visits//2018-03-07T23:00:00+00:00\", {\"_identity\": \"u1\", \
         \"_start_time\": \"2018-03-07T23:00:00+00:00\", \"_end_time\": \"2018-03-07T23:00:00+00:00\", \
         \"events\": 1}]\n"
    );
}

/// Runs `spec.yml` over `source` into the embedded store `store` (inside `dir`) and returns
/// the identity's records as printed (`--format jsonl`).
fn run_into_store(dir: &Path, source: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_dtc"))
        .current_dir(dir)
        .args(["transform", "--streaming", "spec.yml", "--source", source])
        .args(["--store", "store", "--format", "jsonl", "--quiet"])
        .args(["--dead-letter", "dl.jsonl"])
        .env_remove("DTC_STORE")
        .output()
        .expect("run dtc");
    assert_eq!(
        output.status.code(),
        Some(0),
        "dtc failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A late event inside an activity block persisted by an earlier run opened a new, overlapping
/// block when the identity's latest block was a later one (the loaded state continues only the
/// latest block). Contract section 7: a late event for a closed, persisted block updates it.
#[test]
fn late_event_in_a_persisted_activity_block_opened_an_overlapping_block() {
    let dir = case(
        "Type: Streaming\n\
         Version: '2026-11-01'\n\
         Name: visits_spec\n\
         Identity: source.user\n\
         Time: parse_time(source.ts)\n\
         Aggregates:\n\
         \x20 - Type: Activity\n\
         \x20   Name: visits\n\
         \x20   SeparateByInactiveSeconds: 60\n\
         \x20   Fields:\n\
         \x20     - Name: events\n\
         \x20       Type: integer\n\
         \x20       Value: visits.events + 1\n",
        "{\"user\": \"u1\", \"ts\": \"2024-05-01T10:00:00\"}\n\
         {\"user\": \"u1\", \"ts\": \"2024-05-01T10:01:00\"}\n\
         {\"user\": \"u1\", \"ts\": \"2024-05-01T11:00:00\"}\n",
    );
    let first = run_into_store(dir.path(), "events.jsonl");
    assert_eq!(first.lines().count(), 2, "{first}");
    std::fs::write(
        dir.path().join("late.jsonl"),
        "{\"user\": \"u1\", \"ts\": \"2024-05-01T10:00:45\"}\n\
         {\"user\": \"u1\", \"ts\": \"2024-05-01T11:00:30\"}\n",
    )
    .expect("write late events");
    let second = run_into_store(dir.path(), "late.jsonl");
    assert_eq!(
        second,
        "{\"identity\":\"u1\",\"aggregate\":\"visits\",\"dims\":[1714557600000000],\"record\":\
         {\"_identity\":\"u1\",\"_start_time\":\"2024-05-01T10:00:00+00:00\",\
         \"_end_time\":\"2024-05-01T10:01:00+00:00\",\"events\":3}}\n\
         {\"identity\":\"u1\",\"aggregate\":\"visits\",\"dims\":[1714561200000000],\"record\":\
         {\"_identity\":\"u1\",\"_start_time\":\"2024-05-01T11:00:00+00:00\",\
         \"_end_time\":\"2024-05-01T11:00:30+00:00\",\"events\":2}}\n"
    );
}

const GAMES_SPEC: &str = "Type: Streaming\n\
     Version: '2026-11-01'\n\
     Name: games\n\
     Identity: source.user\n\
     Time: parse_time(source.ts)\n\
     Aggregates:\n\
     \x20 - Type: Block\n\
     \x20   Name: session\n\
     \x20   Dimensions:\n\
     \x20     - Name: session_id\n\
     \x20       Value: source.session\n\
     \x20   Fields:\n\
     \x20     - Name: offer\n\
     \x20       Type: string\n\
     \x20       Value: source.offer\n";

const GAMES_EVENTS: &str = "{\"user\": \"u1\", \"ts\": \"2024-05-01T10:00:00\", \"session\": \"s1\"}\n\
     {\"user\": \"u1\", \"ts\": \"2024-05-02T10:00:00\", \"session\": \"s2\", \"offer\": \"gems\"}\n";

/// `--format parquet` without `--window` printed the stored records as JSON lines on stdout,
/// as if `--format jsonl` had been given, instead of saying that Parquet is for window rows.
#[test]
fn parquet_format_without_a_window_printed_json_records() {
    let dir = case(GAMES_SPEC, GAMES_EVENTS);
    let output = Command::new(env!("CARGO_BIN_EXE_dtc"))
        .current_dir(dir.path())
        .args([
            "transform",
            "--streaming",
            "spec.yml",
            "--source",
            "events.jsonl",
        ])
        .args(["--store", "memory:", "--format", "parquet"])
        .env_remove("DTC_STORE")
        .output()
        .expect("run dtc");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--format parquet writes window rows"),
        "{stderr}"
    );
}

/// A window run with `--format jsonl --output DIR` ended its preview with "Parquet output:
/// DIR", naming the wrong format.
#[test]
fn json_lines_output_was_announced_as_parquet() {
    let dir = case(GAMES_SPEC, GAMES_EVENTS);
    std::fs::write(
        dir.path().join("window.yml"),
        "Type: Window\n\
         Version: '2026-11-01'\n\
         Name: offers\n\
         SourceDTC: games\n\
         Anchor:\n\
         \x20 Condition: anchor.offer == 'gems'\n\
         Aggregates:\n\
         \x20 - Type: Window\n\
         \x20   Name: before\n\
         \x20   WindowType: count\n\
         \x20   WindowValue: -1\n\
         \x20   Source: games.session\n\
         \x20   Fields:\n\
         \x20     - Name: sessions\n\
         \x20       Type: integer\n\
         \x20       Value: len(source.offer)\n",
    )
    .expect("write window spec");
    let output = transform(
        dir.path(),
        &[
            "--window",
            "window.yml",
            "--format",
            "jsonl",
            "--output",
            "rows",
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("JSON lines output: rows"), "{stdout}");
    assert!(!stdout.contains("Parquet"), "{stdout}");
}

/// Window rows (`--format jsonl`) of a `dtc transform` with `streaming.yml` and `window.yml`
/// in `dir`, plus `args` (sources and store).
fn window_rows(dir: &Path, args: &[&str]) -> Vec<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_dtc"))
        .current_dir(dir)
        .args([
            "transform",
            "--streaming",
            "streaming.yml",
            "--window",
            "window.yml",
        ])
        .args(["--format", "jsonl", "--quiet", "--dead-letter", "dl.jsonl"])
        .args(args)
        .env_remove("DTC_STORE")
        .output()
        .expect("run dtc");
    assert_eq!(
        output.status.code(),
        Some(0),
        "dtc failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Blocks read back from a store (a window run without `--source`, or an identity a later
/// run loads) broke ties on `_start_time` by their store key instead of by their first event,
/// as the run that created them did: a different block in a `count` window, another order of
/// a `source.<field>` list, another anchor kept by `Max`. Here `z` and `m` start at the same
/// instant and `z` came first, but `m` has the smaller key; a later run adds `a`, which ties
/// with both, comes last and has the smallest key.
#[test]
fn stored_blocks_with_equal_start_times_keep_first_event_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = [
        (
            "streaming.yml",
            "Type: Streaming\n\
             Version: '2026-11-01'\n\
             Name: games\n\
             Identity: source.user\n\
             Time: parse_time(source.time)\n\
             Aggregates:\n\
             \x20 - Type: Block\n\
             \x20   Name: session\n\
             \x20   Dimensions:\n\
             \x20     - Name: session_id\n\
             \x20       Type: string\n\
             \x20       Value: source.session\n\
             \x20   Fields:\n\
             \x20     - Name: offer\n\
             \x20       Type: string\n\
             \x20       Value: source.offer\n",
        ),
        (
            "window.yml",
            "Type: Window\n\
             Version: '2026-11-01'\n\
             Name: ties\n\
             SourceDTC: games\n\
             Anchor:\n\
             \x20 Condition: games.session.offer != ''\n\
             \x20 Max: 1\n\
             Aggregates:\n\
             \x20 - Type: Window\n\
             \x20   Name: last\n\
             \x20   WindowType: count\n\
             \x20   WindowValue: -1\n\
             \x20   Source: games.session\n\
             \x20   Fields:\n\
             \x20     - Name: sessions\n\
             \x20       Type: list\n\
             \x20       Value: source.session_id\n\
             \x20 - Type: Window\n\
             \x20   Name: day\n\
             \x20   WindowType: day\n\
             \x20   WindowValue: -1\n\
             \x20   Source: games.session\n\
             \x20   Fields:\n\
             \x20     - Name: sessions\n\
             \x20       Type: list\n\
             \x20       Value: source.session_id\n\
             \x20 - Type: Variable\n\
             \x20   Name: v\n\
             \x20   Fields:\n\
             \x20     - Name: session\n\
             \x20       Value: anchor.session_id\n",
        ),
        (
            "events.jsonl",
            "{\"user\": \"u1\", \"time\": \"2024-05-01T09:00:00Z\", \"session\": \"z\", \"offer\": \"gems\"}\n\
             {\"user\": \"u1\", \"time\": \"2024-05-01T09:00:00Z\", \"session\": \"m\", \"offer\": \"gems\"}\n\
             {\"user\": \"u1\", \"time\": \"2024-05-02T08:00:00Z\", \"session\": \"q\", \"offer\": \"gems\"}\n",
        ),
        (
            "later.jsonl",
            "{\"user\": \"u1\", \"time\": \"2024-05-01T09:00:00Z\", \"session\": \"a\", \"offer\": \"gems\"}\n\
             {\"user\": \"u1\", \"time\": \"2024-05-03T07:00:00Z\", \"session\": \"r\", \"offer\": \"gems\"}\n",
        ),
    ];
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write case file");
    }
    let dir = dir.path();

    let combined = window_rows(dir, &["--source", "events.jsonl", "--store", "store"]);
    assert_eq!(
        combined,
        [
            "{\"identity\":\"u1\",\"anchor_time\":\"2024-05-01T09:00:00+00:00\",\
             \"last.sessions\":[],\"day.sessions\":[],\"v.session\":\"z\"}",
            "{\"identity\":\"u1\",\"anchor_time\":\"2024-05-02T08:00:00+00:00\",\
             \"last.sessions\":[\"m\"],\"day.sessions\":[\"z\",\"m\"],\"v.session\":\"q\"}",
        ]
    );
    assert_eq!(window_rows(dir, &["--store", "store"]), combined);

    // A later run over the same store orders `a` after `z` and `m`, as one run over all the
    // events does.
    let all = window_rows(
        dir,
        &[
            "--source",
            "events.jsonl",
            "--source",
            "later.jsonl",
            "--store",
            "memory:",
        ],
    );
    assert_eq!(
        all[1],
        "{\"identity\":\"u1\",\"anchor_time\":\"2024-05-02T08:00:00+00:00\",\
         \"last.sessions\":[\"a\"],\"day.sessions\":[\"z\",\"m\",\"a\"],\"v.session\":\"q\"}"
    );
    assert_eq!(
        window_rows(dir, &["--source", "later.jsonl", "--store", "store"]),
        all
    );
    assert_eq!(window_rows(dir, &["--store", "store"]), all);
}
