//! Window runs of `dtc transform` (docs/language.md sections 11 and 15).
//!
//! Golden cases: every directory under `tests/window/` holds `streaming.yml`, `window.yml`
//! (whose leading comment says what the case demonstrates and the expected values),
//! `events.jsonl`, an optional `args` file (e.g. `--format blurr`) and `expected.txt`. The
//! binary runs a combined run with the case directory as working directory and the memory
//! store; `expected.txt` must equal its stdout, `--- summary` and stderr without the `elapsed:`
//! line, and `exit code: N`. `BLESS=1 cargo test -p dtc-cli --test window` rewrites the
//! expected files.
//!
//! The other tests check what no golden file can: Parquet output read back with the arrow
//! reader equals the JSON-lines rows, rows computed from a store equal the rows of the run
//! that filled it, and the Blurr offer-ai specs reproduce an independent implementation
//! (the DuckDB baseline, `tests/window/offer-ai-duckdb-expected.jsonl`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow::array::{
    Array, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value as Json};

mod common;
use common::{dtc, exit_code, repo, text};

fn cases_dir() -> PathBuf {
    repo().join("tests/window")
}

fn offer_ai(file: &str) -> PathBuf {
    repo().join("dtc-specs/offer-ai").join(file)
}

fn offer_ai_events() -> PathBuf {
    repo().join("examples/offer-ai/events.jsonl")
}

/// Runs `dtc` and fails with its stderr unless it exits with 0.
fn run_ok(cmd: &mut Command) -> Output {
    let output = match cmd.output() {
        Ok(output) => output,
        Err(e) => panic!("cannot run dtc: {e}"),
    };
    assert!(
        output.status.success(),
        "dtc failed ({}):\n{}",
        exit_code(&output),
        text(&output.stderr)
    );
    output
}

fn run_case(dir: &Path) -> Result<String, String> {
    let tmp = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let extra: Vec<String> = match std::fs::read_to_string(dir.join("args")) {
        Ok(text) => text.split_whitespace().map(str::to_string).collect(),
        Err(_) => Vec::new(),
    };
    let mut cmd = dtc();
    // The dead-letter file goes to a temporary directory so runs leave the case untouched.
    cmd.current_dir(dir)
        .args(["transform", "--streaming", "streaming.yml"])
        .args(["--window", "window.yml", "--source", "events.jsonl"])
        .args(["--store", "memory:", "--dead-letter"])
        .arg(tmp.path().join("dl.jsonl"));
    if !extra.iter().any(|a| a == "--format") {
        cmd.args(["--format", "jsonl"]);
    }
    let output = cmd
        .args(&extra)
        .output()
        .map_err(|e| format!("cannot run dtc: {e}"))?;
    let tmp_name = tmp.path().display().to_string();
    let summary: String = text(&output.stderr)
        .lines()
        .filter(|l| !l.starts_with("elapsed:"))
        .map(|l| l.replace(&tmp_name, "<tmp>") + "\n")
        .collect();
    Ok(format!(
        "{}--- summary\n{summary}exit code: {}\n",
        text(&output.stdout),
        exit_code(&output)
    ))
}

#[test]
fn window_golden_cases() {
    common::run_golden_cases(&cases_dir(), 12, run_case);
}

/// Parses JSON lines (rows or Blurr text lines).
fn json_lines(stdout: &[u8]) -> Vec<Json> {
    text(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str(l) {
            Ok(v) => v,
            Err(e) => panic!("not a JSON line ({e}): {l}"),
        })
        .collect()
}

/// A combined run's rows as JSON lines on stdout.
fn jsonl_rows(streaming: &Path, window: &Path, source: &Path) -> Vec<Json> {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let output = run_ok(
        dtc()
            .args(["transform", "-q", "--streaming"])
            .arg(streaming)
            .arg("--window")
            .arg(window)
            .arg("--source")
            .arg(source)
            .args(["--store", "memory:", "--format", "jsonl", "--dead-letter"])
            .arg(tmp.path().join("dl.jsonl")),
    );
    json_lines(&output.stdout)
}

/// Regression: a window or variable field reading an earlier field of its own aggregate
/// (`derived.growing: derived.spend_change > 0`) saw null instead of the value just computed.
#[test]
fn window_field_sees_earlier_fields_of_its_own_aggregate() {
    let case = cases_dir().join("variable-aggregate");
    let rows = jsonl_rows(
        &case.join("streaming.yml"),
        &case.join("window.yml"),
        &case.join("events.jsonl"),
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["derived.spend_change"], Json::from(5.0));
    assert_eq!(rows[0]["derived.growing"], Json::Bool(true));
    assert_eq!(rows[0]["derived.label"], Json::from("u1:gems:growing"));
}

/// One Parquet cell as the JSON value the JSON-lines output gives for it.
fn cell(column: &dyn Array, row: usize) -> Json {
    if column.is_null(row) {
        return Json::Null;
    }
    let any = column.as_any();
    if let Some(a) = any.downcast_ref::<StringArray>() {
        return Json::from(a.value(row));
    }
    if let Some(a) = any.downcast_ref::<Int64Array>() {
        return Json::from(a.value(row));
    }
    if let Some(a) = any.downcast_ref::<Float64Array>() {
        return Json::from(a.value(row));
    }
    if let Some(a) = any.downcast_ref::<BooleanArray>() {
        return Json::Bool(a.value(row));
    }
    if let Some(a) = any.downcast_ref::<TimestampMicrosecondArray>() {
        return match a.value_as_datetime(row) {
            Some(t) if t.and_utc().timestamp_subsec_micros() == 0 => {
                Json::from(t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string())
            }
            Some(t) => Json::from(t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()),
            None => panic!("timestamp out of range at row {row}"),
        };
    }
    panic!("unexpected column type {:?}", column.data_type())
}

/// Every row of every Parquet file in `dir` (in file name order), with the schema of the
/// first file.
fn read_parquet_dir(dir: &Path) -> (Vec<RecordBatch>, Vec<Map<String, Json>>) {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
            .collect(),
        Err(e) => panic!("cannot list {}: {e}", dir.display()),
    };
    files.sort();
    assert!(!files.is_empty(), "no Parquet file in {}", dir.display());
    let mut batches = Vec::new();
    for path in &files {
        let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for batch in reader {
            batches.push(batch.unwrap_or_else(|e| panic!("{}: {e}", path.display())));
        }
    }
    let mut rows = Vec::new();
    for batch in &batches {
        let schema = batch.schema();
        for row in 0..batch.num_rows() {
            let mut object = Map::new();
            for (field, column) in schema.fields().iter().zip(batch.columns()) {
                object.insert(field.name().clone(), cell(column.as_ref(), row));
            }
            rows.push(object);
        }
    }
    (batches, rows)
}

/// Writes Parquet for a combined run and checks its schema and values against the
/// JSON-lines run of the same specs; returns the Arrow schema's (name, type) pairs.
fn parquet_round_trip(streaming: &Path, window: &Path, source: &Path) -> Vec<(String, DataType)> {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let out = tmp.path().join("rows");
    run_ok(
        dtc()
            .args(["transform", "-q", "--streaming"])
            .arg(streaming)
            .arg("--window")
            .arg(window)
            .arg("--source")
            .arg(source)
            .args(["--store", "memory:", "--format", "parquet", "--output"])
            .arg(&out)
            .arg("--dead-letter")
            .arg(tmp.path().join("dl.jsonl")),
    );
    let (batches, parquet_rows) = read_parquet_dir(&out);
    let expected = jsonl_rows(streaming, window, source);
    assert!(!expected.is_empty(), "the run produced no rows");
    let expected: Vec<Map<String, Json>> = expected
        .into_iter()
        .map(|row| match row {
            Json::Object(map) => map,
            other => panic!("a row is not an object: {other}"),
        })
        .collect();
    assert_eq!(parquet_rows, expected);

    let schema = batches[0].schema();
    let identity = schema.field(0);
    assert_eq!(identity.name(), "identity");
    assert_eq!(identity.data_type(), &DataType::Utf8);
    assert!(!identity.is_nullable(), "identity must be non-null");
    let anchor = schema.field(1);
    assert_eq!(anchor.name(), "anchor_time");
    assert_eq!(
        anchor.data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert!(!anchor.is_nullable(), "anchor_time must be non-null");
    schema
        .fields()
        .iter()
        .skip(2)
        .map(|f| {
            assert!(
                f.is_nullable(),
                "feature column {} must be nullable",
                f.name()
            );
            (f.name().clone(), f.data_type().clone())
        })
        .collect()
}

#[test]
fn parquet_output_reads_back_as_the_jsonl_rows_with_typed_columns() {
    let features = parquet_round_trip(
        &offer_ai("offer-ai-streaming.yml"),
        &offer_ai("offer-ai-window.yml"),
        &offer_ai_events(),
    );
    let expected: Vec<(String, DataType)> = [
        ("user.country", DataType::Utf8),
        ("user.facebook_connected", DataType::Boolean),
        ("offer.offer_type", DataType::Utf8),
        ("offer.offer_price", DataType::Float64),
        ("offer.offer_purchased", DataType::Boolean),
        ("last_session.games_played", DataType::Int64),
        ("last_session.win_ratio", DataType::Float64),
        ("prev_week.purchase_amount", DataType::Float64),
        ("next_week.purchase_amount", DataType::Float64),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t))
    .collect();
    assert_eq!(features, expected);
}

#[test]
fn parquet_types_string_datetime_and_boolean_columns() {
    let case = cases_dir().join("anchor-identity-field");
    let features = parquet_round_trip(
        &case.join("streaming.yml"),
        &case.join("window.yml"),
        &case.join("events.jsonl"),
    );
    let types: Vec<DataType> = features.into_iter().map(|(_, t)| t).collect();
    assert_eq!(
        types,
        [
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            DataType::Utf8,
        ]
    );

    let case = cases_dir().join("variable-aggregate");
    let features = parquet_round_trip(
        &case.join("streaming.yml"),
        &case.join("window.yml"),
        &case.join("events.jsonl"),
    );
    assert!(
        features
            .iter()
            .any(|(n, t)| n == "derived.growing" && *t == DataType::Boolean),
        "{features:?}"
    );
}

/// List, set and map columns are Utf8 in Parquet, holding the JSON-lines value as compact
/// JSON text (docs/output.md).
#[test]
fn parquet_container_columns_hold_compact_json() {
    let case = cases_dir().join("container-columns");
    let (streaming, window, events) = (
        case.join("streaming.yml"),
        case.join("window.yml"),
        case.join("events.jsonl"),
    );
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let out = tmp.path().join("rows");
    run_ok(
        dtc()
            .args(["transform", "-q", "--streaming"])
            .arg(&streaming)
            .arg("--window")
            .arg(&window)
            .arg("--source")
            .arg(&events)
            .args(["--store", "memory:", "--output"])
            .arg(&out)
            .arg("--dead-letter")
            .arg(tmp.path().join("dl.jsonl")),
    );
    let (batches, parquet_rows) = read_parquet_dir(&out);
    let expected = jsonl_rows(&streaming, &window, &events);
    assert_eq!(parquet_rows.len(), 3, "{parquet_rows:?}");
    assert_eq!(expected.len(), parquet_rows.len(), "{expected:?}");
    let columns = ["week.sessions", "week.offers", "week.spend_by_session"];
    let schema = batches[0].schema();
    for column in columns {
        let field = schema
            .field_with_name(column)
            .unwrap_or_else(|e| panic!("{column}: {e}"));
        assert_eq!(field.data_type(), &DataType::Utf8, "{column}");
    }
    for (row, expected) in parquet_rows.iter().zip(&expected) {
        for column in columns {
            let Some(Json::String(text)) = row.get(column) else {
                panic!("{column} is not text: {:?}", row.get(column));
            };
            assert!(
                !text.contains(": ") && !text.contains(", "),
                "not compact: {text}"
            );
            let parsed: Json = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parsed, expected[column], "{column}");
            assert!(
                parsed.is_array() || parsed.is_object(),
                "{column} holds no container: {parsed}"
            );
        }
    }
}

/// Rows sorted by identity and anchor time (a run over a store visits identities in key
/// order, a combined run in order of first appearance).
fn sorted(mut rows: Vec<Json>) -> Vec<Json> {
    rows.sort_by_key(|r| (r["identity"].to_string(), r["anchor_time"].to_string()));
    rows
}

#[test]
fn rows_from_stored_blocks_equal_rows_of_the_combined_run() {
    for (streaming, window) in [
        ("offer-ai-streaming.yml", "offer-ai-window.yml"),
        (
            "blurr/offer-ai-streaming-bts.yml",
            "blurr/offer-ai-window-bts.yml",
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let store = tmp.path().join("store");
        let base = || {
            let mut cmd = dtc();
            cmd.args(["transform", "-q", "--streaming"])
                .arg(offer_ai(streaming))
                .arg("--window")
                .arg(offer_ai(window))
                .arg("--store")
                .arg(&store)
                .args(["--format", "jsonl", "--dead-letter"])
                .arg(tmp.path().join("dl.jsonl"));
            cmd
        };
        let combined = run_ok(base().arg("--source").arg(offer_ai_events()));
        let stored = run_ok(&mut base());
        let combined = json_lines(&combined.stdout);
        assert!(combined.len() >= 10, "{window}: {} rows", combined.len());
        assert_eq!(
            sorted(combined),
            sorted(json_lines(&stored.stdout)),
            "{window}"
        );
    }
}

/// `tests/window/offer-ai-duckdb-expected.jsonl` holds the rows of the DuckDB baseline
/// (`/work/shared/bench/duckdb_offer_ai.py`, an SQL re-implementation of Blurr's semantics
/// checked against Blurr itself) for examples/offer-ai/events.jsonl; see tests/window/README.md
/// for how it was produced. The Blurr specs must give exactly those rows, in that order.
#[test]
fn blurr_offer_ai_rows_equal_the_duckdb_baseline() {
    let expected_path = cases_dir().join("offer-ai-duckdb-expected.jsonl");
    let expected = match std::fs::read(&expected_path) {
        Ok(bytes) => json_lines(&bytes),
        Err(e) => panic!("{}: {e}", expected_path.display()),
    };
    assert!(expected.len() >= 20, "baseline has {} rows", expected.len());
    let actual = jsonl_rows(
        &offer_ai("blurr/offer-ai-streaming-bts.yml"),
        &offer_ai("blurr/offer-ai-window-bts.yml"),
        &offer_ai_events(),
    );
    assert_eq!(actual, expected);
}

/// The README's first command: the native offer-ai rows carry the model's whole feature set
/// (profile, action, outcome, history, label), and a user's first session, which has no
/// session before it, is a null `last_session.*`, not an evaluation error.
#[test]
fn offer_ai_rows_carry_the_model_features_without_evaluation_errors() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let output = run_ok(
        dtc()
            .args(["transform", "--streaming"])
            .arg(offer_ai("offer-ai-streaming.yml"))
            .arg("--window")
            .arg(offer_ai("offer-ai-window.yml"))
            .arg("--source")
            .arg(offer_ai_events())
            .args(["--store", "memory:", "--format", "jsonl", "--dead-letter"])
            .arg(tmp.path().join("dl.jsonl")),
    );
    let summary = text(&output.stderr);
    assert_eq!(
        summary.matches("evaluation errors: 0").count(),
        2,
        "{summary}"
    );
    let rows = json_lines(&output.stdout);
    assert_eq!(rows.len(), 30);
    let mut columns = [
        "identity",
        "anchor_time",
        "user.country",
        "user.facebook_connected",
        "offer.offer_type",
        "offer.offer_price",
        "offer.offer_purchased",
        "last_session.games_played",
        "last_session.win_ratio",
        "prev_week.purchase_amount",
        "next_week.purchase_amount",
    ];
    // JSON objects come back with their keys sorted; the column order is the Parquet test's.
    columns.sort_unstable();
    for row in &rows {
        let keys: Vec<&str> = row
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(keys, columns);
        assert!(row["user.country"].is_string(), "{row}");
        assert!(row["offer.offer_type"].is_string(), "{row}");
    }
    let first_sessions = rows
        .iter()
        .filter(|r| r["last_session.games_played"].is_null())
        .count();
    assert_eq!(first_sessions, 3);
}
