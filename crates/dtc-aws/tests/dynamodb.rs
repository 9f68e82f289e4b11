//! The DynamoDB store against a real DynamoDB Local (started by scripts/local-services.sh).
//! Skipped, with a notice, unless DTC_TEST_DYNAMODB=1 (under CI=true the missing server fails).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta};
use dtc_aws::{DynamoOptions, DynamoStore, FaultInjection, RetryPolicy};
use dtc_plan::value::Value;
use dtc_store::{
    BlockStore, Checkpoint, RecordKey, RecordKind, Segment, StoreError, StoredRecord, TimeRange,
    WriteBatch,
};

fn enabled() -> Option<String> {
    if !dtc_aws::test_support::services_up(&["DTC_TEST_DYNAMODB"], "DynamoDB Local") {
        return None;
    }
    std::env::var("AWS_ENDPOINT_URL_DYNAMODB").ok()
}

/// A table name no other test or run uses.
fn fresh_table(what: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "dtc-test-{what}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn options(endpoint: &str) -> DynamoOptions {
    DynamoOptions {
        create_table: true,
        endpoint_url: Some(endpoint.to_string()),
        ..DynamoOptions::default()
    }
}

fn open(endpoint: &str, what: &str) -> DynamoStore {
    DynamoStore::open(&fresh_table(what), options(endpoint)).unwrap()
}

fn block(identity: &str, dim: &str, start: i64, version: u64) -> StoredRecord {
    let start = DateTime::from_timestamp(start, 0).unwrap();
    StoredRecord {
        key: RecordKey::new(identity, "session", vec![Value::str(dim)]),
        kind: RecordKind::Block,
        start_time: Some(start),
        columns: vec![
            Value::str(identity),
            Value::DateTime(start),
            Value::DateTime(start + TimeDelta::seconds(60)),
            Value::Int(version as i64),
        ],
        version,
        order: 1,
        writer: 0,
    }
}

fn puts(records: Vec<StoredRecord>) -> WriteBatch {
    WriteBatch {
        puts: records,
        ..WriteBatch::default()
    }
}

#[test]
fn conformance_suite_on_dynamodb_local() {
    let Some(endpoint) = enabled() else { return };
    dtc_store::conformance::run_all(|| Box::new(open(&endpoint, "conformance")));
}

#[test]
fn missing_table_says_to_create_it() {
    let Some(endpoint) = enabled() else { return };
    let options = DynamoOptions {
        create_table: false,
        ..options(&endpoint)
    };
    let err = DynamoStore::open(&fresh_table("missing"), options)
        .err()
        .expect("a missing table is an error");
    assert!(matches!(err, StoreError::Setup(_)), "{err:?}");
    assert!(err.to_string().contains("--create-table"), "{err}");
    assert!(!err.retryable());
}

#[test]
fn large_batches_write_each_identity_in_one_transaction() {
    let Some(endpoint) = enabled() else { return };
    let store = open(&endpoint, "bulk");
    // 40 identities of 6 or 7 blocks: 260 records, whole identities packed 100 items at most.
    let first: Vec<StoredRecord> = (0..260)
        .map(|i| block(&format!("u{}", i % 40), &format!("s{i}"), i, 1))
        .collect();
    let mut batch = puts(first.clone());
    batch
        .checkpoints
        .push(("file:a".into(), Checkpoint { offset: 260 }));
    batch
        .run_state
        .push(("commit/r1".into(), Some(b"manifest".to_vec())));
    store.write(batch).unwrap();
    let [transactions, ..] = store.counts().requests();
    assert_eq!(
        transactions, 5,
        "3 transactions of whole identities (14 + 15 + 11 of them), then the run state, then \
         the checkpoint"
    );
    assert_eq!(
        store.checkpoint("file:a").unwrap(),
        Some(Checkpoint { offset: 260 })
    );
    assert_eq!(
        store.run_state("commit/").unwrap(),
        vec![("commit/r1".to_string(), b"manifest".to_vec())]
    );
    // Rewrites (version 2) are conditional.
    let second: Vec<StoredRecord> = first
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.version = 2;
            r
        })
        .collect();
    store.write(puts(second.clone())).unwrap();
    let got = store.get(&second[7].key).unwrap().unwrap();
    assert_eq!(got.version, 2);
    // A stale writer (version 2 again, not above the stored one) is refused.
    let err = store.write(puts(second[..120].to_vec())).unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(err.to_string().contains("another writer"), "{err}");
    let small = store.write(puts(vec![second[3].clone()])).unwrap_err();
    assert!(matches!(small, StoreError::Conflict(_)), "{small:?}");
    let total: usize = (0..40)
        .map(|i| store.load_identity(&format!("u{i}")).unwrap().len())
        .sum();
    assert_eq!(total, 260, "run state and checkpoints are not records");
}

#[test]
fn throttling_is_retried_without_loss() {
    let Some(endpoint) = enabled() else { return };
    let faults = Arc::new(FaultInjection::default());
    let options = DynamoOptions {
        faults: Some(faults.clone()),
        retry: RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
        },
        ..options(&endpoint)
    };
    let store = DynamoStore::open(&fresh_table("retry"), options).unwrap();
    let records: Vec<StoredRecord> = (0..300)
        .map(|i| block(&format!("u{}", i % 30), &format!("s{i}"), i, 1))
        .collect();
    faults.throttle_next(3);
    let mut batch = puts(records.clone());
    batch
        .checkpoints
        .push(("p".into(), Checkpoint { offset: 300 }));
    store.write(batch).unwrap();
    let retries = store.counts().retries.load(Ordering::Relaxed);
    assert!(retries >= 3, "3 throttled requests retried, got {retries}");
    for record in &records {
        let got = store.get(&record.key).unwrap();
        assert_eq!(got.as_ref().map(|r| &r.columns), Some(&record.columns));
    }
    assert_eq!(
        store.checkpoint("p").unwrap(),
        Some(Checkpoint { offset: 300 })
    );

    // Transactions (small batches) are retried too.
    faults.throttle_next(2);
    let mut again = block("u1", "s-small", 5, 1);
    store.write(puts(vec![again.clone()])).unwrap();
    again.version = 2;
    store.write(puts(vec![again.clone()])).unwrap();
    assert_eq!(store.get(&again.key).unwrap().unwrap().version, 2);

    // When the throttling outlasts the attempts, the write fails loudly and the checkpoint
    // stays where it was.
    faults.throttle_next(100);
    let mut batch = puts(vec![block("u1", "s-lost", 7, 1)]);
    batch
        .checkpoints
        .push(("p".into(), Checkpoint { offset: 999 }));
    let err = store.write(batch).unwrap_err();
    assert!(err.retryable(), "{err}");
    assert!(err.to_string().contains("attempts"), "{err}");
    faults.throttle_next(0);
    assert_eq!(
        store.checkpoint("p").unwrap(),
        Some(Checkpoint { offset: 300 })
    );
}

#[test]
fn oversized_items_name_the_record() {
    let Some(endpoint) = enabled() else { return };
    let store = open(&endpoint, "big");
    let mut record = block("u-big", "s-big", 1, 1);
    record.columns.push(Value::str(&"x".repeat(500 * 1024)));
    let err = store.write(puts(vec![record])).unwrap_err();
    assert!(matches!(err, StoreError::InvalidWrite(_)), "{err:?}");
    let message = err.to_string();
    for part in ["u-big", "session", "s-big", "400 KB"] {
        assert!(message.contains(part), "{message} names {part}");
    }
}

#[test]
fn retention_sets_expiry_from_the_block_end() {
    let Some(endpoint) = enabled() else { return };
    let options = DynamoOptions {
        retention_days: Some(30),
        ..options(&endpoint)
    };
    let table = fresh_table("ttl");
    let store = DynamoStore::open(&table, options.clone()).unwrap();
    store
        .write(puts(vec![block("u1", "s1", 1_000, 1)]))
        .unwrap();
    let expires = raw_attribute(
        &endpoint,
        &table,
        &block("u1", "s1", 1_000, 1).key,
        "expires_at",
    );
    assert_eq!(expires, Some((1_000 + 60 + 30 * 86_400).to_string()));
    // Opening again finds TTL enabled on the right attribute.
    DynamoStore::open(&table, options).unwrap();
}

/// A client of the test's own, to read and write items as DynamoDB has them, and the runtime
/// to drive it.
fn raw_client(endpoint: &str) -> (tokio::runtime::Runtime, aws_sdk_dynamodb::Client) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = runtime.block_on(async {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let config = aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(endpoint)
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    });
    (runtime, client)
}

/// An attribute of a stored item as DynamoDB has it.
fn raw_attribute(endpoint: &str, table: &str, key: &RecordKey, name: &str) -> Option<String> {
    use aws_sdk_dynamodb::primitives::Blob;
    use aws_sdk_dynamodb::types::AttributeValue;
    let (runtime, client) = raw_client(endpoint);
    runtime.block_on(async {
        let encoded = dtc_store::encoding::encode_key(key).unwrap();
        let skip = dtc_store::encoding::identity_prefix(&key.identity).len();
        let out = client
            .get_item()
            .table_name(table)
            .key("pk", AttributeValue::S(key.identity.to_string()))
            .key("sk", AttributeValue::B(Blob::new(&encoded.bytes[skip..])))
            .send()
            .await
            .unwrap();
        match out.item?.get(name)? {
            AttributeValue::N(n) => Some(n.clone()),
            other => Some(format!("{other:?}")),
        }
    })
}

/// Items written before records kept their creation ordinal have a `record` of format 1,
/// whose header has no ordinal: they read with ordinal 0.
#[test]
fn items_written_before_the_creation_ordinal_read_with_ordinal_0() {
    use aws_sdk_dynamodb::primitives::Blob;
    use aws_sdk_dynamodb::types::AttributeValue;
    let Some(endpoint) = enabled() else { return };
    let table = fresh_table("format1");
    let store = DynamoStore::open(&table, options(&endpoint)).unwrap();
    let old = StoredRecord {
        order: 0,
        writer: 0,
        ..block("u1", "s1", 1_000, 3)
    };
    let start = old.start_time.unwrap();
    // Format 1: format, kind (block), version, start seconds and nanoseconds, the columns.
    let mut record = vec![1, 1];
    record.extend_from_slice(&old.version.to_le_bytes());
    record.extend_from_slice(&start.timestamp().to_le_bytes());
    record.extend_from_slice(&start.timestamp_subsec_nanos().to_le_bytes());
    dtc_plan::codec::encode_values(&old.columns, &mut record).unwrap();
    let key = dtc_store::encoding::encode_key(&old.key).unwrap();
    let skip = dtc_store::encoding::identity_prefix("u1").len();
    let (runtime, client) = raw_client(&endpoint);
    runtime
        .block_on(
            client
                .put_item()
                .table_name(&table)
                .item("pk", AttributeValue::S("u1".into()))
                .item("sk", AttributeValue::B(Blob::new(&key.bytes[skip..])))
                .item(
                    "lsi_start",
                    AttributeValue::B(Blob::new(&key.index_key(start)[skip..])),
                )
                .item("record", AttributeValue::B(Blob::new(record)))
                .item("version", AttributeValue::N("3".into()))
                .send(),
        )
        .unwrap();
    let new = StoredRecord {
        order: 2,
        writer: 0,
        ..block("u1", "s2", 1_000, 1)
    };
    store.write(puts(vec![new.clone()])).unwrap();
    assert_eq!(store.get(&old.key).unwrap(), Some(old.clone()));
    assert_eq!(
        store.blocks("u1", "session", TimeRange::ALL).unwrap(),
        vec![old.clone(), new.clone()]
    );
    assert_eq!(store.load_identity("u1").unwrap(), vec![old, new]);
}

#[test]
fn segments_partition_identities_and_blocks_use_one_query() {
    let Some(endpoint) = enabled() else { return };
    let store = open(&endpoint, "segments");
    let records: Vec<StoredRecord> = (0..120)
        .map(|i| block(&format!("user-{}", i % 60), &format!("s{i}"), i, 1))
        .collect();
    store.write(puts(records)).unwrap();
    store
        .write(WriteBatch {
            checkpoints: vec![("file:x".into(), Checkpoint { offset: 1 })],
            ..WriteBatch::default()
        })
        .unwrap();
    let mut seen = Vec::new();
    for index in 0..4 {
        let segment = Segment::new(index, 4).unwrap();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .identities_in_segment(segment, after.as_deref(), 7)
                .unwrap();
            assert!(page.identities.len() <= 7);
            seen.extend(page.identities.iter().map(|i| i.to_string()));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    seen.sort();
    let mut want: Vec<String> = (0..60).map(|i| format!("user-{i}")).collect();
    want.sort();
    assert_eq!(
        seen, want,
        "every identity in exactly one segment, checkpoints not listed"
    );

    let before = store.counts().requests();
    let blocks = store
        .blocks(
            "user-3",
            "session",
            TimeRange::new(None, Some(DateTime::from_timestamp(100, 0).unwrap())),
        )
        .unwrap();
    assert_eq!(blocks.len(), 2);
    let after = store.counts().requests();
    assert_eq!(after[2] - before[2], 1, "one Query");
    assert_eq!(after[3], before[3], "no Scan");
}
