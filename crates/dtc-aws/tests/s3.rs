//! S3 inputs and destination against a real moto server (started by scripts/local-services.sh).
//! Skipped, with a notice, unless DTC_TEST_S3=1.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_s3::primitives::ByteStream;
use dtc_aws::s3::S3;
use dtc_io::LineReader;

fn connect() -> Option<S3> {
    if std::env::var("DTC_TEST_S3").as_deref() != Ok("1") {
        eprintln!("skipped: DTC_TEST_S3 is not 1 (run scripts/test.sh to start the S3 server)");
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

#[test]
fn parts_appear_only_when_committed_small_and_multipart() {
    let Some(s3) = connect() else { return };
    let bucket = fresh_bucket(&s3);
    let s3 = s3.with_part_size(5 * 1024 * 1024);
    let mut dest = s3.destination(&format!("s3://{bucket}/out")).unwrap();
    use dtc_io::sink::Destination;

    let mut small = dest.create("part-small.txt").unwrap();
    small.write_all(b"hello").unwrap();
    assert!(keys(&s3, &bucket).is_empty());
    let location = small.commit().unwrap();
    assert_eq!(location, format!("s3://{bucket}/out/part-small.txt"));
    assert_eq!(get(&s3, &bucket, "out/part-small.txt").unwrap(), b"hello");

    let data: Vec<u8> = (0..11 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let mut big = dest.create("part-big.bin").unwrap();
    for chunk in data.chunks(1 << 20) {
        big.write_all(chunk).unwrap();
    }
    assert_eq!(keys(&s3, &bucket).len(), 1, "not visible while uploading");
    big.commit().unwrap();
    assert_eq!(get(&s3, &bucket, "out/part-big.bin").unwrap(), data);

    let mut abandoned = dest.create("part-abandoned.bin").unwrap();
    abandoned.write_all(&data[..6 * 1024 * 1024]).unwrap();
    drop(abandoned);
    let uploads = s3
        .block_on(s3.client().list_multipart_uploads().bucket(&bucket).send())
        .unwrap();
    assert!(uploads.uploads().is_empty(), "abandoned upload aborted");
    assert_eq!(keys(&s3, &bucket).len(), 2);
}
