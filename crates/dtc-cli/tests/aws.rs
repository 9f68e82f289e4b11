//! `dtc transform` on the AWS backends, end to end against DynamoDB Local and the moto S3
//! server (started by scripts/local-services.sh): the offer-ai example with a DynamoDB store
//! and S3 output gives exactly the rows of an embedded run, and window runs split with
//! --segment give together exactly the rows of one unsegmented run. Skipped, with a notice,
//! unless DTC_TEST_DYNAMODB=1 and DTC_TEST_S3=1.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow::util::display::array_value_to_string;
use dtc_aws::s3::S3;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn enabled() -> bool {
    let on = |v: &str| std::env::var(v).as_deref() == Ok("1");
    if !(on("DTC_TEST_DYNAMODB") && on("DTC_TEST_S3")) {
        eprintln!(
            "skipped: DTC_TEST_DYNAMODB and DTC_TEST_S3 are not 1 (run scripts/test.sh to start \
             the local DynamoDB and S3 servers)"
        );
        return false;
    }
    true
}

fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "dtc-e2e-{what}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000
    )
}

/// Runs `dtc transform` with the offer-ai specs and `args`; returns stderr.
fn transform(args: &[&str]) -> String {
    let specs = repo().join("dtc-specs/offer-ai");
    let out = Command::new(env!("CARGO_BIN_EXE_dtc"))
        .arg("transform")
        .arg("--streaming")
        .arg(specs.join("offer-ai-streaming.yml"))
        .arg("--window")
        .arg(specs.join("offer-ai-window.yml"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "dtc transform {args:?} failed:\n{stderr}"
    );
    stderr
}

/// Every row of the Parquet files in `files`, as text cells, sorted.
fn rows_of(files: &[PathBuf]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for file in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(file).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            for row in 0..batch.num_rows() {
                rows.push(batch.columns().iter().map(|c| cell(c, row)).collect());
            }
        }
    }
    rows.sort();
    rows
}

/// A cell as text; timestamps as their integer value (formatting a named time zone needs
/// arrow's chrono-tz feature, which the workspace does not enable).
fn cell(column: &arrow::array::ArrayRef, row: usize) -> String {
    if let arrow::datatypes::DataType::Timestamp(..) = column.data_type() {
        let ints = arrow::compute::cast(column, &arrow::datatypes::DataType::Int64).unwrap();
        return array_value_to_string(&ints, row).unwrap();
    }
    array_value_to_string(column, row).unwrap()
}

fn local_parquet(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    files.sort();
    files
}

/// Downloads the Parquet objects under `prefix` into `into`; returns their keys and paths.
fn s3_parquet(s3: &S3, bucket: &str, prefix: &str, into: &Path) -> (Vec<String>, Vec<PathBuf>) {
    std::fs::create_dir_all(into).unwrap();
    let listed = s3
        .block_on(
            s3.client()
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .send(),
        )
        .unwrap();
    let keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    let mut paths = Vec::new();
    for key in &keys {
        assert!(
            key.ends_with(".parquet"),
            "only finished parts are visible: {key}"
        );
        let body = s3.block_on(async {
            let out = s3
                .client()
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap();
            out.body.collect().await.unwrap().into_bytes()
        });
        let path = into.join(key.replace('/', "_"));
        std::fs::write(&path, &body).unwrap();
        paths.push(path);
    }
    (keys, paths)
}

#[test]
fn offer_ai_on_dynamodb_and_s3_matches_the_embedded_run_and_segments_add_up() {
    if !enabled() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let events = repo().join("examples/offer-ai/events.jsonl");
    let events = events.to_str().unwrap();

    let embedded_out = tmp.path().join("embedded-out");
    let embedded_store = tmp.path().join("embedded-store");
    transform(&[
        "--source",
        events,
        "--store",
        embedded_store.to_str().unwrap(),
        "--output",
        embedded_out.to_str().unwrap(),
        "-q",
    ]);
    let expected = rows_of(&local_parquet(&embedded_out));
    assert!(expected.len() > 10, "the example produces rows");

    let s3 = S3::connect(std::env::var("AWS_ENDPOINT_URL_S3").ok().as_deref()).unwrap();
    let bucket = unique("bucket");
    s3.block_on(s3.client().create_bucket().bucket(&bucket).send())
        .unwrap();
    let table = unique("table");
    let store = format!("dynamodb://{table}");

    let summary = transform(&[
        "--source",
        events,
        "--store",
        &store,
        "--create-table",
        "--output",
        &format!("s3://{bucket}/out/"),
    ]);
    assert!(
        summary.contains(" 0 Scan"),
        "no scans in a streaming run:\n{summary}"
    );
    let (_, files) = s3_parquet(&s3, &bucket, "out/", &tmp.path().join("s3-out"));
    assert_eq!(
        rows_of(&files),
        expected,
        "DynamoDB + S3 rows equal the embedded rows"
    );

    // The same rows again from the stored blocks, in one run and split over three workers.
    transform(&[
        "--store",
        &store,
        "--output",
        &format!("s3://{bucket}/all/"),
        "-q",
    ]);
    let (_, files) = s3_parquet(&s3, &bucket, "all/", &tmp.path().join("s3-all"));
    assert_eq!(
        rows_of(&files),
        expected,
        "window run over the DynamoDB store"
    );

    for segment in ["0", "1", "2"] {
        transform(&[
            "--store",
            &store,
            "--output",
            &format!("s3://{bucket}/seg/"),
            "--segment",
            segment,
            "--total-segments",
            "3",
            "-q",
        ]);
    }
    let (keys, files) = s3_parquet(&s3, &bucket, "seg/", &tmp.path().join("s3-seg"));
    let mut names = keys.clone();
    names.dedup();
    assert_eq!(names.len(), keys.len());
    assert_eq!(
        rows_of(&files),
        expected,
        "segments 0..3 together give every row once"
    );
}

#[test]
fn s3_sources_are_read_like_files() {
    if !enabled() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s3 = S3::connect(std::env::var("AWS_ENDPOINT_URL_S3").ok().as_deref()).unwrap();
    let bucket = unique("src");
    s3.block_on(s3.client().create_bucket().bucket(&bucket).send())
        .unwrap();
    let events = std::fs::read(repo().join("examples/offer-ai/events.jsonl")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &events).unwrap();
    s3.block_on(
        s3.client()
            .put_object()
            .bucket(&bucket)
            .key("raw/events.jsonl.gz")
            .body(gz.finish().unwrap().into())
            .send(),
    )
    .unwrap();

    let local_out = tmp.path().join("local");
    transform(&[
        "--source",
        repo()
            .join("examples/offer-ai/events.jsonl")
            .to_str()
            .unwrap(),
        "--store",
        "memory:",
        "--dead-letter",
        tmp.path().join("dead-letters.jsonl").to_str().unwrap(),
        "--output",
        local_out.to_str().unwrap(),
        "-q",
    ]);
    let s3_out = tmp.path().join("from-s3");
    let store = tmp.path().join("store");
    let summary = transform(&[
        "--source",
        &format!("s3://{bucket}/raw/"),
        "--store",
        store.to_str().unwrap(),
        "--output",
        s3_out.to_str().unwrap(),
    ]);
    assert!(summary.contains("events read:      728"), "{summary}");
    assert_eq!(
        rows_of(&local_parquet(&s3_out)),
        rows_of(&local_parquet(&local_out))
    );
    // The object is an input partition: a re-run into the same store applies nothing twice.
    let again = transform(&[
        "--source",
        &format!("s3://{bucket}/raw/events.jsonl.gz"),
        "--store",
        store.to_str().unwrap(),
        "--output",
        tmp.path().join("again").to_str().unwrap(),
    ]);
    assert!(again.contains("applied:          0"), "{again}");
}
