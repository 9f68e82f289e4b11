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

// The run protocol (issue 19): each loss a user met, and what a run does now.

mod common;

/// A directory with offer-ai events for 10 users (`events.jsonl`, with a few bad lines).
fn offer_ai_case() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let events = common::offer_ai_events(10, 0..14).join("\n") + "\n";
    std::fs::write(dir.path().join("events.jsonl"), events).expect("write events");
    dir
}

/// `dtc transform` with the offer-ai specs, `--source events.jsonl` unless `extra` names
/// sources, into `store` in `dir`, rows as JSON lines into `out`.
fn offer_ai(dir: &Path, store: &str, out: &str, extra: &[&str]) -> Output {
    let specs = common::repo().join("dtc-specs/offer-ai");
    let mut cmd = common::dtc();
    cmd.current_dir(dir)
        .arg("transform")
        .arg("--streaming")
        .arg(specs.join("offer-ai-streaming.yml"))
        .arg("--window")
        .arg(specs.join("offer-ai-window.yml"))
        .args(["--store", store, "--output", out, "--format", "jsonl"]);
    if !extra.contains(&"--source") && !extra.contains(&"--window-only") {
        cmd.args(["--source", "events.jsonl"]);
    }
    cmd.args(extra.iter().filter(|a| **a != "--window-only"))
        .output()
        .expect("run dtc")
}

/// All rows in the published parts of `out`, sorted.
fn published_rows(dir: &Path, out: &str) -> Vec<String> {
    let mut rows = Vec::new();
    for entry in std::fs::read_dir(dir.join(out))
        .expect("output dir")
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("part-") {
            let text = std::fs::read_to_string(entry.path()).expect("part");
            rows.extend(text.lines().map(str::to_string));
        }
    }
    rows.sort();
    rows
}

fn ok(output: &Output) {
    assert!(
        output.status.success(),
        "dtc failed:\n{}",
        common::text(&output.stderr)
    );
}

/// Killed after the store's last write and before the output's rename, a run left its rows in
/// a hidden temporary file, and the re-run, finding its input applied, wrote no rows.
#[test]
fn rows_were_lost_when_killed_between_the_store_commit_and_the_output_rename() {
    let dir = offer_ai_case();
    ok(&offer_ai(dir.path(), "clean", "clean-out", &[]));
    let clean = published_rows(dir.path(), "clean-out");
    assert!(!clean.is_empty());
    for point in ["runtime.commit.durable:1", "io.local.publish.renamed:1"] {
        let name = point.replace([':', '.'], "-");
        let (store, out) = (format!("s-{name}"), format!("o-{name}"));
        let killed = offer_ai(dir.path(), &store, &out, &["--failpoint", point]);
        assert!(!killed.status.success(), "{point}: the run was not killed");
        ok(&offer_ai(dir.path(), &store, &out, &[]));
        assert_eq!(published_rows(dir.path(), &out), clean, "{point}");
    }
}

/// An unwritable `--output` failed the run after the store had committed its input, saying
/// "running again may help"; running again with a good `--output` then wrote no rows.
#[test]
fn an_unwritable_output_left_a_rerun_with_no_rows() {
    let dir = offer_ai_case();
    ok(&offer_ai(dir.path(), "clean", "clean-out", &[]));
    std::fs::write(dir.path().join("not-a-dir"), "a file").expect("file");
    let failed = offer_ai(dir.path(), "store", "not-a-dir/out", &[]);
    assert_eq!(failed.status.code(), Some(1));
    let stderr = common::text(&failed.stderr);
    assert!(stderr.contains("not-a-dir"), "{stderr}");
    assert!(
        stderr.contains("cause: the input or the command line"),
        "{stderr}"
    );
    ok(&offer_ai(dir.path(), "store", "out", &[]));
    assert_eq!(
        published_rows(dir.path(), "out"),
        published_rows(dir.path(), "clean-out")
    );
}

/// A window run over the store repeated into the same output doubled the rows.
#[test]
fn a_repeated_window_run_doubled_the_rows() {
    let dir = offer_ai_case();
    ok(&offer_ai(dir.path(), "store", "first", &[]));
    let once = published_rows(dir.path(), "first");
    for _ in 0..2 {
        ok(&offer_ai(dir.path(), "store", "again", &["--window-only"]));
    }
    assert_eq!(published_rows(dir.path(), "again"), once);
    // Append is there, but only when asked for.
    ok(&offer_ai(
        dir.path(),
        "store",
        "again",
        &["--window-only", "--mode", "append"],
    ));
    assert_eq!(published_rows(dir.path(), "again").len(), 2 * once.len());
}

/// Every run truncated the dead-letter file, erasing the rejects of earlier runs.
#[test]
fn a_rerun_truncated_the_dead_letters() {
    let dir = offer_ai_case();
    let dead = |dir: &Path| {
        std::fs::read_to_string(dir.join("store/dead-letters.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    ok(&offer_ai(dir.path(), "store", "out", &[]));
    let first = dead(dir.path());
    assert!(!first.is_empty());
    // The same input again: applied already, so no reject is added twice.
    ok(&offer_ai(dir.path(), "store", "out", &[]));
    assert_eq!(dead(dir.path()), first);
    // New lines with a reject: appended after the earlier ones, with their line number.
    let mut events = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("events.jsonl"))
        .expect("events");
    use std::io::Write;
    writeln!(events, "not json").expect("append");
    drop(events);
    ok(&offer_ai(dir.path(), "store", "out", &[]));
    let now = dead(dir.path());
    assert_eq!(&now[..first.len()], &first[..]);
    assert_eq!(now.len(), first.len() + 1);
    assert!(now[first.len()].contains("\"reason\":\"invalid_json\""));
    assert!(
        now[first.len()].starts_with("{\"run\":\""),
        "{}",
        now[first.len()]
    );
}

/// A UTF-8 byte-order mark at the start of a file turned its first event into a dead letter.
#[test]
fn a_byte_order_mark_turned_the_first_event_into_a_dead_letter() {
    let dir = case(
        "Type: Streaming\n\
         Version: '2026-11-01'\n\
         Name: bom\n\
         Identity: source.user\n\
         Time: parse_time(source.ts)\n\
         Aggregates:\n\
         \x20 - Type: Identity\n\
         \x20   Name: seen\n\
         \x20   Fields:\n\
         \x20     - Name: count\n\
         \x20       Type: integer\n\
         \x20       Value: seen.count + 1\n",
        "\u{feff}{\"user\": \"u1\", \"ts\": \"2024-05-01T10:00:00\"}\n\
         {\"user\": \"u1\", \"ts\": \"2024-05-01T11:00:00\"}\n",
    );
    let output = transform(dir.path(), &["--format", "jsonl"]);
    let stderr = common::text(&output.stderr);
    assert!(stderr.contains("rejected:         0"), "{stderr}");
    assert!(stderr.contains("byte-order marks skipped: 1"), "{stderr}");
    assert!(common::text(&output.stdout).contains("\"count\":2"));
}

/// A truncated `.gz` aborted the run after writing hundreds of garbage dead letters, and said
/// "running again may help".
#[test]
fn a_corrupt_gzip_aborted_the_run_after_garbage_dead_letters() {
    use std::io::Write;
    let dir = offer_ai_case();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(common::offer_ai_events(30, 14..28).join("\n").as_bytes())
        .expect("gzip");
    let gz = gz.finish().expect("gzip");
    std::fs::write(dir.path().join("cut.jsonl.gz"), &gz[..gz.len() * 2 / 3]).expect("write");
    let sources = ["--source", "events.jsonl", "cut.jsonl.gz"];

    let failed = offer_ai(dir.path(), "store", "out", &sources);
    assert_eq!(failed.status.code(), Some(1));
    let stderr = common::text(&failed.stderr);
    assert!(
        stderr.contains("cut.jsonl.gz is corrupt or truncated at compressed byte"),
        "{stderr}"
    );
    assert!(
        stderr.contains("nothing of this run was committed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("cause: the input or the command line"),
        "{stderr}"
    );
    assert!(!dir.path().join("store/dead-letters.jsonl").exists());
    assert!(
        !dir.path()
            .join("out")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    );

    let skipped = offer_ai(
        dir.path(),
        "store",
        "out",
        &[
            "--source",
            "events.jsonl",
            "cut.jsonl.gz",
            "--skip-bad-files",
        ],
    );
    ok(&skipped);
    let stderr = common::text(&skipped.stderr);
    assert!(stderr.contains("files left out (damaged): 1"), "{stderr}");
    let letters =
        std::fs::read_to_string(dir.path().join("store/dead-letters.jsonl")).expect("dead letters");
    let corrupt: Vec<&str> = letters
        .lines()
        .filter(|l| l.contains("\"reason\":\"corrupt_file\""))
        .collect();
    assert_eq!(corrupt.len(), 1, "{letters}");
    assert!(corrupt[0].contains("cut.jsonl.gz"));
    // Only the good file's rejects besides: nothing decoded from the damaged one.
    assert!(
        letters
            .lines()
            .all(|l| !l.contains("\"input\":\"cut.jsonl.gz\"") || l.contains("corrupt_file"))
    );
    ok(&offer_ai(dir.path(), "clean", "clean-out", &[]));
    assert_eq!(
        published_rows(dir.path(), "out"),
        published_rows(dir.path(), "clean-out")
    );
}

/// `dtc blocks` or a window run over a mistyped `--store` created an empty store there and
/// reported "0 identities".
#[test]
fn read_only_commands_created_an_empty_store_at_a_mistyped_path() {
    let dir = offer_ai_case();
    ok(&offer_ai(dir.path(), "dtc-data", "out", &[]));
    let specs = common::repo().join("dtc-specs/offer-ai");
    let blocks = common::dtc()
        .current_dir(dir.path())
        .arg("blocks")
        .arg("--streaming")
        .arg(specs.join("offer-ai-streaming.yml"))
        .args(["--store", "dtc-dta", "U0001"])
        .output()
        .expect("run dtc");
    let window = offer_ai(dir.path(), "dtc-dta", "out2", &["--window-only"]);
    for output in [blocks, window] {
        assert_eq!(output.status.code(), Some(2));
        let stderr = common::text(&output.stderr);
        assert!(
            stderr.contains("no store at dtc-dta (did you mean `dtc-data`?)"),
            "{stderr}"
        );
    }
    assert!(!dir.path().join("dtc-dta").exists());
}

/// A corrupt gzip and an unwritable output both said "running again may help"; an S3 source
/// location error read "invalid sink option".
#[test]
fn errors_blamed_the_wrong_party() {
    let dir = offer_ai_case();
    let bad_source = offer_ai(dir.path(), "store", "out", &["--source", "s3://"]);
    let stderr = common::text(&bad_source.stderr);
    assert!(stderr.contains("is not an S3 location"), "{stderr}");
    assert!(!stderr.contains("sink"), "{stderr}");
    assert!(
        stderr.contains("cause: the input or the command line"),
        "{stderr}"
    );
}
