//! S3 inputs and destination against a real moto server (started by scripts/local-services.sh).
//! Skipped, with a notice, unless DTC_TEST_S3=1 (under CI=true the missing server fails).

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_s3::primitives::ByteStream;
use dtc_aws::s3::{S3, S3Destination, publish};
use dtc_io::LineReader;
use dtc_io::output::{CommitFile, OutputMode, Publication};
use dtc_io::sink::{Destination, SealedPart, part_name};

fn connect() -> Option<S3> {
    if !dtc_aws::test_support::services_up(&["DTC_TEST_S3"], "the S3 server") {
        return None;
    }
    let endpoint = std::env::var("AWS_ENDPOINT_URL_S3").ok();
    Some(S3::connect(endpoint.as_deref()).unwrap())
}

fn fresh_bucket(s3: &S3) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let bucket = format!(
        "dtc-test-{}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    );
    s3.block_on(s3.client().create_bucket().bucket(&bucket).send())
        .unwrap();
    bucket
}

fn put(s3: &S3, bucket: &str, key: &str, body: Vec<u8>) {
    s3.block_on(
        s3.client()
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send(),
    )
    .unwrap();
}

fn get(s3: &S3, bucket: &str, key: &str) -> Option<Vec<u8>> {
    s3.block_on(async {
        let out = s3
            .client()
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .ok()?;
        Some(out.body.collect().await.ok()?.into_bytes().to_vec())
    })
}

fn keys(s3: &S3, bucket: &str) -> Vec<String> {
    let out = s3
        .block_on(s3.client().list_objects_v2().bucket(bucket).send())
        .unwrap();
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

fn lines_of(input: Box<dyn dtc_io::Input>) -> Vec<String> {
    let mut reader = LineReader::open(input).unwrap();
    let mut lines = Vec::new();
    while let Some(line) = reader.next_line().unwrap() {
        lines.push(String::from_utf8(line.bytes.to_vec()).unwrap());
    }
    lines
}

#[test]
fn gzipped_and_plain_objects_stream_as_inputs_in_key_order() {
    let Some(s3) = connect() else { return };
    let bucket = fresh_bucket(&s3);
    let plain: String = (0..1000).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Large enough to arrive in several body chunks.
    let big: String = (0..60_000).map(|i| format!("{{\"g\":{i}}}\n")).collect();
    gz.write_all(big.as_bytes()).unwrap();
    put(&s3, &bucket, "events/b.jsonl.gz", gz.finish().unwrap());
    put(&s3, &bucket, "events/a.jsonl", plain.into_bytes());
    put(&s3, &bucket, "events/.hidden", b"{}\n".to_vec());
    put(&s3, &bucket, "events/sub/", Vec::new());
    put(&s3, &bucket, "events-other/x.jsonl", b"{}\n".to_vec());

    let inputs = s3.inputs(&format!("s3://{bucket}/events")).unwrap();
    let names: Vec<String> = inputs.iter().map(|i| i.name().to_string()).collect();
    assert_eq!(
        names,
        vec![
            format!("s3://{bucket}/events/a.jsonl"),
            format!("s3://{bucket}/events/b.jsonl.gz"),
        ]
    );
    let mut inputs = inputs.into_iter();
    let a = lines_of(inputs.next().unwrap());
    assert_eq!(a.len(), 1000);
    assert_eq!(a[999], "{\"n\":999}");
    let b = lines_of(inputs.next().unwrap());
    assert_eq!(b.len(), 60_000);
    assert_eq!(b[59_999], "{\"g\":59999}");

    let one = s3.inputs(&format!("s3://{bucket}/events/a.jsonl")).unwrap();
    assert_eq!(one.len(), 1, "an exact key is that object only");
    let missing = s3.inputs(&format!("s3://{bucket}/nothing/")).err().unwrap();
    assert!(
        matches!(missing, dtc_io::IoError::NotFound { .. }),
        "{missing}"
    );
}

fn uploads(s3: &S3, bucket: &str) -> Vec<String> {
    let out = s3
        .block_on(s3.client().list_multipart_uploads().bucket(bucket).send())
        .unwrap();
    out.uploads()
        .iter()
        .filter_map(|u| u.key().map(str::to_string))
        .collect()
}

fn publication(
    bucket: &str,
    run_id: &str,
    parts: Vec<SealedPart>,
    mode: OutputMode,
) -> Publication {
    Publication {
        location: format!("s3://{bucket}/out/"),
        run_id: run_id.into(),
        worker: 0,
        workers: 1,
        mode,
        parts,
        rows: 0,
    }
}

#[test]
fn parts_appear_only_when_published_small_and_multipart() {
    let Some(s3) = connect() else { return };
    let bucket = fresh_bucket(&s3);
    let s3 = s3.with_part_size(5 * 1024 * 1024);
    let mut dest = s3.destination(&format!("s3://{bucket}/out")).unwrap();

    let mut small = dest.create(&part_name("r1", 0, 0, "txt")).unwrap();
    small.write_all(b"hello").unwrap();
    let small = small.seal().unwrap();
    assert!(keys(&s3, &bucket).is_empty(), "a sealed part is invisible");

    let data: Vec<u8> = (0..11 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let mut big = dest.create(&part_name("r1", 0, 1, "bin")).unwrap();
    for chunk in data.chunks(1 << 20) {
        big.write_all(chunk).unwrap();
    }
    let big = big.seal().unwrap();
    assert_eq!(big.bytes, data.len() as u64);
    assert!(keys(&s3, &bucket).is_empty(), "not visible while uploading");
    assert_eq!(uploads(&s3, &bucket).len(), 2);

    let first = publication(&bucket, "r1", vec![small, big], OutputMode::Overwrite);
    publish(&s3, &first).unwrap();
    assert_eq!(
        get(&s3, &bucket, "out/part-r1-000-00000.txt").unwrap(),
        b"hello"
    );
    assert_eq!(
        get(&s3, &bucket, "out/part-r1-000-00001.bin").unwrap(),
        data
    );
    assert!(uploads(&s3, &bucket).is_empty());
    let commit: CommitFile =
        serde_json::from_slice(&get(&s3, &bucket, "out/_dtc-commit-000.json").unwrap()).unwrap();
    assert_eq!(commit.parts.len(), 2);
    // Publishing again (a restart after a crash mid-publish) changes nothing.
    publish(&s3, &first).unwrap();
    assert_eq!(keys(&s3, &bucket).len(), 3);

    let mut abandoned = dest.create(&part_name("r2", 0, 0, "bin")).unwrap();
    abandoned.write_all(&data[..6 * 1024 * 1024]).unwrap();
    drop(abandoned);
    assert!(uploads(&s3, &bucket).is_empty(), "abandoned upload aborted");
    assert_eq!(keys(&s3, &bucket).len(), 3);
}

#[test]
fn a_second_run_replaces_the_first_and_stale_uploads_are_aborted() {
    let Some(s3) = connect() else { return };
    let bucket = fresh_bucket(&s3);
    let mut dest = s3.destination(&format!("s3://{bucket}/out/")).unwrap();
    let stage = |dest: &mut S3Destination, run: &str| -> SealedPart {
        let mut part = dest.create(&part_name(run, 0, 0, "txt")).unwrap();
        part.write_all(run.as_bytes()).unwrap();
        part.seal().unwrap()
    };
    let one = stage(&mut dest, "one");
    publish(
        &s3,
        &publication(&bucket, "one", vec![one], OutputMode::Overwrite),
    )
    .unwrap();
    // A run that died after sealing, before its commit: its upload is left open.
    let crashed = stage(&mut dest, "crashed");
    let two = stage(&mut dest, "two");
    let keep = serde_json::from_str::<serde_json::Value>(&two.staged).unwrap();
    let keep = keep["upload_id"].as_str().unwrap().to_string();
    assert_eq!(
        s3.abort_stale_uploads(&format!("s3://{bucket}/out/"), 0, &[keep.as_str()])
            .unwrap(),
        1
    );
    assert!(!crashed.staged.is_empty());
    assert_eq!(
        uploads(&s3, &bucket),
        vec!["out/part-two-000-00000.txt".to_string()]
    );
    publish(
        &s3,
        &publication(&bucket, "two", vec![two], OutputMode::Overwrite),
    )
    .unwrap();
    assert_eq!(
        keys(&s3, &bucket),
        vec![
            "out/_dtc-commit-000.json".to_string(),
            "out/part-two-000-00000.txt".into()
        ]
    );
}

#[test]
fn a_missing_bucket_is_one_line_naming_it() {
    let Some(s3) = connect() else { return };
    let err = s3
        .check_bucket("s3://dtc-no-such-bucket-here/out/")
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("S3 bucket `dtc-no-such-bucket-here` does not exist"),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");
    assert!(matches!(
        err,
        dtc_io::IoError::Service {
            cause: dtc_io::ServiceCause::Missing,
            ..
        }
    ));
}
