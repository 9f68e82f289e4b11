//! `dtc transform` on the AWS backends, end to end against DynamoDB Local and the moto S3
//! server (started by scripts/local-services.sh): the offer-ai example with a DynamoDB store
//! and S3 output gives exactly the rows of an embedded run, and window runs split with
//! --segment give together exactly the rows of one unsegmented run. Skipped, with a notice,
//! unless DTC_TEST_DYNAMODB=1 and DTC_TEST_S3=1 (under CI=true the missing servers fail).

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
    dtc_aws::test_support::services_up(
        &["DTC_TEST_DYNAMODB", "DTC_TEST_S3"],
        "the local DynamoDB and S3 servers",
    )
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

/// Runs `dtc transform` with the offer-ai specs and `args` in `dir` (where a DynamoDB run's
/// dead letters go); returns stderr.
fn transform(dir: &Path, args: &[&str]) -> String {
    let out = transform_output(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "dtc transform {args:?} failed:\n{stderr}"
    );
    stderr
}

fn transform_output(dir: &Path, args: &[&str]) -> std::process::Output {
    let specs = repo().join("dtc-specs/offer-ai");
    Command::new(env!("CARGO_BIN_EXE_dtc"))
        .current_dir(dir)
        .arg("transform")
        .arg("--streaming")
        .arg(specs.join("offer-ai-streaming.yml"))
        .arg("--window")
        .arg(specs.join("offer-ai-window.yml"))
        .args(args)
        .output()
        .unwrap()
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
    let (names, _) = s3_objects(s3, bucket, prefix);
    let keys: Vec<String> = names
        .iter()
        .filter(|n| !n.starts_with("_dtc-commit-"))
        .map(|n| format!("{prefix}{n}"))
        .collect();
    let mut paths = Vec::new();
    for key in &keys {
        assert!(
            key.ends_with(".parquet"),
            "only published parts and commit files are visible: {key}"
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
    transform(
        tmp.path(),
        &[
            "--source",
            events,
            "--store",
            embedded_store.to_str().unwrap(),
            "--output",
            embedded_out.to_str().unwrap(),
            "-q",
        ],
    );
    let expected = rows_of(&local_parquet(&embedded_out));
    assert!(expected.len() > 10, "the example produces rows");

    let s3 = S3::connect(std::env::var("AWS_ENDPOINT_URL_S3").ok().as_deref()).unwrap();
    let bucket = unique("bucket");
    s3.block_on(s3.client().create_bucket().bucket(&bucket).send())
        .unwrap();
    let table = unique("table");
    let store = format!("dynamodb://{table}");

    let summary = transform(
        tmp.path(),
        &[
            "--source",
            events,
            "--store",
            &store,
            "--create-table",
            "--output",
            &format!("s3://{bucket}/out/"),
        ],
    );
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

    // `dtc blocks` reads the DynamoDB store like any other.
    let blocks = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_dtc"))
            .current_dir(tmp.path())
            .arg("blocks")
            .arg("--streaming")
            .arg(repo().join("dtc-specs/offer-ai/offer-ai-streaming.yml"))
            .args(["--store", &store])
            .args(args)
            .output()
            .unwrap()
    };
    let listed = blocks(&["--list", "--limit", "2"]);
    assert!(listed.status.success());
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert_eq!(listed.lines().count(), 2, "{listed}");
    let first = listed.lines().next().unwrap_or_default();
    let shown = blocks(&[first]);
    assert!(shown.status.success());
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("\"aggregate\":\"game_stats\""),
        "{}",
        String::from_utf8_lossy(&shown.stdout)
    );

    // The same rows again from the stored blocks, in one run and split over three workers.
    transform(
        tmp.path(),
        &[
            "--store",
            &store,
            "--output",
            &format!("s3://{bucket}/all/"),
            "-q",
        ],
    );
    let (_, files) = s3_parquet(&s3, &bucket, "all/", &tmp.path().join("s3-all"));
    assert_eq!(
        rows_of(&files),
        expected,
        "window run over the DynamoDB store"
    );

    // Each segment twice: a repeated worker replaces its own parts, never another's.
    for segment in ["0", "1", "2", "1", "0"] {
        transform(
            tmp.path(),
            &[
                "--store",
                &store,
                "--output",
                &format!("s3://{bucket}/seg/"),
                "--segment",
                segment,
                "--total-segments",
                "3",
                "-q",
            ],
        );
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
    transform(
        tmp.path(),
        &[
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
        ],
    );
    let s3_out = tmp.path().join("from-s3");
    let store = tmp.path().join("store");
    let summary = transform(
        tmp.path(),
        &[
            "--source",
            &format!("s3://{bucket}/raw/"),
            "--store",
            store.to_str().unwrap(),
            "--output",
            s3_out.to_str().unwrap(),
        ],
    );
    assert!(summary.contains("events read:      728"), "{summary}");
    assert_eq!(
        rows_of(&local_parquet(&s3_out)),
        rows_of(&local_parquet(&local_out))
    );
    // The object is an input partition: a re-run into the same store applies nothing twice.
    let again = transform(
        tmp.path(),
        &[
            "--source",
            &format!("s3://{bucket}/raw/events.jsonl.gz"),
            "--store",
            store.to_str().unwrap(),
            "--output",
            tmp.path().join("again").to_str().unwrap(),
        ],
    );
    assert!(again.contains("applied:          0"), "{again}");
}

/// Every record of a DynamoDB store, rendered, sorted.
fn dynamo_records(table: &str) -> Vec<String> {
    use dtc_store::BlockStore;
    let options = dtc_aws::DynamoOptions {
        endpoint_url: std::env::var("AWS_ENDPOINT_URL_DYNAMODB").ok(),
        ..dtc_aws::DynamoOptions::default()
    };
    let store = dtc_aws::DynamoStore::open(table, options).unwrap();
    let mut records = Vec::new();
    for identity in store.all_identities().unwrap() {
        records.extend(
            store
                .load_identity(&identity)
                .unwrap()
                .into_iter()
                .map(|r| format!("{r:?}")),
        );
    }
    records.sort();
    records
}

/// The S3 objects under `prefix` (names relative to it) and the open multipart uploads.
fn s3_objects(s3: &S3, bucket: &str, prefix: &str) -> (Vec<String>, usize) {
    let listed = s3
        .block_on(
            s3.client()
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .send(),
        )
        .unwrap();
    let mut names: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key()?.strip_prefix(prefix).map(str::to_string))
        .collect();
    names.sort();
    let uploads = s3
        .block_on(
            s3.client()
                .list_multipart_uploads()
                .bucket(bucket)
                .prefix(prefix)
                .send(),
        )
        .unwrap();
    (names, uploads.uploads().len())
}

/// A run on DynamoDB with Parquet output on S3 killed at points of the whole run (during an
/// upload, between the store's commit and the uploads' completion, ...), then run again, leaves
/// exactly the store, the objects and the rows of a clean run, and no open upload.
/// `DTC_AWS_CRASH_POINTS` adds that many points spread over the run (scripts/crash-soak.sh).
#[test]
fn crashes_on_dynamodb_and_s3_leave_one_clean_runs_result() {
    if !enabled() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let events = repo().join("examples/offer-ai/events.jsonl");
    let events = events.to_str().unwrap();
    let s3 = S3::connect(std::env::var("AWS_ENDPOINT_URL_S3").ok().as_deref()).unwrap();
    let bucket = unique("crash");
    s3.block_on(s3.client().create_bucket().bucket(&bucket).send())
        .unwrap();
    let run = |name: &str, failpoint: Option<&str>| {
        let table = format!("{bucket}-{name}");
        let mut args = vec![
            "--source".to_string(),
            events.to_string(),
            "--store".into(),
            format!("dynamodb://{table}"),
            "--create-table".into(),
            "--output".into(),
            format!("s3://{bucket}/{name}/"),
            "--dead-letter".into(),
            format!("{name}-dead.jsonl"),
            "--write-batch".into(),
            "50".into(),
            "-q".into(),
        ];
        match failpoint {
            Some("count") => args.push("--count-failpoints".into()),
            Some(point) => args.extend(["--failpoint".to_string(), point.to_string()]),
            None => {}
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        (table, transform_output(tmp.path(), &args))
    };
    let snapshot = |name: &str, table: &str| {
        let prefix = format!("{name}/");
        let (objects, uploads) = s3_objects(&s3, &bucket, &prefix);
        let (_, files) = s3_parquet(&s3, &bucket, &prefix, &tmp.path().join(name));
        (dynamo_records(table), objects, rows_of(&files), uploads)
    };
    let (clean_table, clean) = run("clean", None);
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    let expected = snapshot("clean", &clean_table);
    assert!(!expected.2.is_empty());

    let mut points: Vec<String> = [
        "runtime.read.record:300",
        "engine.store.written:1",
        "aws.s3.part.uploaded:1",
        "runtime.commit.written:1",
        "runtime.commit.durable:1",
        "aws.s3.publish.completed:1",
        "runtime.publish.output:1",
        "runtime.commit.finished:1",
    ]
    .map(String::from)
    .to_vec();
    let spread: u64 = std::env::var("DTC_AWS_CRASH_POINTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if spread > 0 {
        let (_, counted) = run("count", Some("count"));
        let hits: u64 = String::from_utf8_lossy(&counted.stderr)
            .lines()
            .find_map(|l| l.strip_prefix("failpoints hit: "))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        points.extend((0..spread).map(|i| (1 + i * hits.max(1) / spread).to_string()));
    }
    let mut failures = Vec::new();
    for (i, point) in points.iter().enumerate() {
        let name = format!("p{i}");
        let (table, crashed) = run(&name, Some(point));
        use std::os::unix::process::ExitStatusExt;
        if crashed.status.signal() != Some(9) {
            failures.push(format!("{point}: not killed"));
            continue;
        }
        let (_, rerun) = run(&name, None);
        if !rerun.status.success() {
            failures.push(format!(
                "{point}: {}",
                String::from_utf8_lossy(&rerun.stderr)
            ));
            continue;
        }
        let got = snapshot(&name, &table);
        let what = ["store records", "objects", "rows", "open uploads"];
        let differs: Vec<&str> = [
            got.0 != expected.0,
            got.1 != expected.1,
            got.2 != expected.2,
            got.3 != 0,
        ]
        .iter()
        .zip(what)
        .filter_map(|(d, w)| d.then_some(w))
        .collect();
        if !differs.is_empty() {
            failures.push(format!("{point}: {} differ", differs.join(", ")));
        }
    }
    println!(
        "DynamoDB + S3: {}/{} identical",
        points.len() - failures.len(),
        points.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A missing table or bucket, or an endpoint that does not answer, is one line naming the
/// resource and the fix; the SDK's report waits behind --verbose.
#[test]
fn service_errors_are_one_line_naming_the_resource_and_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let dtc = |store: &str, output: &str, endpoint: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dtc"));
        cmd.current_dir(tmp.path())
            .arg("transform")
            .arg("--streaming")
            .arg(repo().join("dtc-specs/offer-ai/offer-ai-streaming.yml"))
            .arg("--window")
            .arg(repo().join("dtc-specs/offer-ai/offer-ai-window.yml"))
            .arg("--source")
            .arg(repo().join("examples/offer-ai/events.jsonl"))
            .args(["--store", store, "--output", output])
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test");
        if let Some(endpoint) = endpoint {
            cmd.env("AWS_ENDPOINT_URL", endpoint)
                .env_remove("AWS_ENDPOINT_URL_DYNAMODB")
                .env_remove("AWS_ENDPOINT_URL_S3");
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let unreachable = dtc("dynamodb://t", "out", Some("http://127.0.0.1:9"));
    let first = unreachable.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: cannot reach DynamoDB for DynamoDB table `t`")
            && first.contains("AWS_ENDPOINT_URL_DYNAMODB"),
        "{unreachable}"
    );
    assert!(unreachable.lines().count() <= 3, "{unreachable}");
    if !enabled() {
        return;
    }
    let table = dtc("dynamodb://dtc-no-such-table", "out", None);
    assert!(
        table.starts_with(
            "error: DynamoDB table `dtc-no-such-table` does not exist: pass --create-table"
        ),
        "{table}"
    );
    let bucket = dtc(
        tmp.path().join("store").to_str().unwrap(),
        "s3://dtc-no-such-bucket/out/",
        None,
    );
    assert!(
        bucket.starts_with("error: S3 bucket `dtc-no-such-bucket` does not exist"),
        "{bucket}"
    );
    assert!(bucket.lines().count() <= 3, "{bucket}");
}
