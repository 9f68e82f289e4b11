//! Behaviour every [`BlockStore`] backend must have, written once and run for each backend.
//!
//! A backend's tests call [`run_all`] with a function that makes a fresh, empty store; each case
//! gets its own store. Other crates reach this module through the `conformance` feature.
//! Failures panic, as test assertions do.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use dtc_plan::codec;
use dtc_plan::value::Value;

use crate::{
    BlockStore, Checkpoint, RecordKey, RecordKind, StoreError, StoredRecord, TimeRange, WriteBatch,
};

/// One named check, run on a fresh store.
type Case = (&'static str, fn(&dyn BlockStore));

/// Runs every case, each on a store made by `make`.
pub fn run_all(make: impl Fn() -> Box<dyn BlockStore>) {
    let cases: [Case; 18] = [
        ("values_round_trip", values_round_trip),
        ("get_missing_is_none", get_missing_is_none),
        ("overwrite_replaces", overwrite_replaces),
        (
            "delete_removes_record_and_index",
            delete_removes_record_and_index,
        ),
        ("blocks_in_start_order", blocks_in_start_order),
        ("time_range_bounds", time_range_bounds),
        (
            "start_time_change_moves_index",
            start_time_change_moves_index,
        ),
        ("identities_paged_and_sorted", identities_paged_and_sorted),
        ("checkpoints_with_records", checkpoints_with_records),
        (
            "invalid_batch_changes_nothing",
            invalid_batch_changes_nothing,
        ),
        ("common_prefixes_are_isolated", common_prefixes_are_isolated),
        ("keys_of_every_kind", keys_of_every_kind),
        ("delete_then_put_in_one_batch", delete_then_put_in_one_batch),
        (
            "holds_no_identity_is_false_once_a_record_is_in",
            holds_no_identity_is_false_once_a_record_is_in,
        ),
        ("creation_ordinals_round_trip", creation_ordinals_round_trip),
        ("writers_round_trip", writers_round_trip),
        ("fenced_writes_change_nothing", fenced_writes_change_nothing),
        (
            "run_state_is_written_with_the_batch",
            run_state_is_written_with_the_batch,
        ),
    ];
    for (name, case) in cases {
        let store = make();
        eprintln!("conformance: {name} on {}", store.describe());
        case(store.as_ref());
    }
}

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).expect("test time in range")
}

fn identity_record(identity: &str, aggregate: &str, columns: Vec<Value>) -> StoredRecord {
    StoredRecord {
        key: RecordKey::new(identity, aggregate, vec![]),
        kind: RecordKind::Identity,
        start_time: None,
        columns,
        version: 1,
        order: 1,
        writer: 0,
    }
}

fn block(identity: &str, aggregate: &str, dim: Value, start: DateTime<Utc>) -> StoredRecord {
    StoredRecord {
        key: RecordKey::new(identity, aggregate, vec![dim]),
        kind: RecordKind::Block,
        start_time: Some(start),
        columns: vec![
            Value::str(identity),
            Value::DateTime(start),
            Value::DateTime(start + TimeDelta::seconds(5)),
        ],
        version: 1,
        order: 1,
        writer: 0,
    }
}

fn put(store: &dyn BlockStore, records: Vec<StoredRecord>) {
    store
        .write(WriteBatch {
            puts: records,
            ..WriteBatch::default()
        })
        .expect("write succeeds");
}

/// Exact equality: same variants, float bits and container order (Python equality on `Value`
/// would call `1 == 1.0 == True`).
fn assert_same_record(got: &StoredRecord, want: &StoredRecord) {
    let bytes = |values: &[Value]| {
        let mut out = Vec::new();
        codec::encode_values(values, &mut out).expect("encodable");
        out
    };
    assert_eq!(got.key.identity, want.key.identity);
    assert_eq!(got.key.aggregate, want.key.aggregate);
    assert_eq!(
        bytes(&got.key.dims),
        bytes(&want.key.dims),
        "dims of {want:?}"
    );
    assert_eq!(got.kind, want.kind);
    assert_eq!(got.start_time, want.start_time);
    assert_eq!(got.version, want.version);
    assert_eq!(got.order, want.order, "creation ordinal of {want:?}");
    assert_eq!(
        bytes(&got.columns),
        bytes(&want.columns),
        "columns of {want:?}"
    );
}

fn start_times(records: &[StoredRecord]) -> Vec<DateTime<Utc>> {
    records.iter().filter_map(|r| r.start_time).collect()
}

fn values_round_trip(store: &dyn BlockStore) {
    let map = |pairs: Vec<(Value, Value)>| Value::Map(Arc::new(pairs.into_iter().collect()));
    let columns = vec![
        Value::Int(0),
        Value::Float(0.0),
        Value::Float(-0.0),
        Value::Float(f64::NAN),
        Value::Bool(false),
        Value::str(""),
        Value::Null,
        Value::list(vec![]),
        Value::Set(Default::default()),
        map(vec![]),
        map(vec![(
            Value::str("outer"),
            map(vec![(Value::Int(1), Value::list(vec![Value::str("ü🌍")]))]),
        )]),
        Value::Tuple(Arc::new(vec![Value::Bool(true), Value::Int(-7)])),
        Value::DateTime(DateTime::from_timestamp(1_700_000_000, 123_456_789).expect("in range")),
        Value::TimeDelta(TimeDelta::microseconds(-1_500)),
    ];
    let record = identity_record("u1", "profile", columns);
    let session = block("u1", "session", Value::str("s1"), t(100));
    put(store, vec![record.clone(), session.clone()]);
    let got = store.get(&record.key).expect("get").expect("stored");
    assert_same_record(&got, &record);
    let got = store.get(&session.key).expect("get").expect("stored");
    assert_same_record(&got, &session);
    let all = store.load_identity("u1").expect("load");
    assert_eq!(all.len(), 2);
    // Key order: aggregate `profile` before `session`.
    assert_same_record(&all[0], &record);
    assert_same_record(&all[1], &session);
}

fn get_missing_is_none(store: &dyn BlockStore) {
    let session = block("u1", "session", Value::str("s1"), t(100));
    put(store, vec![session]);
    for key in [
        RecordKey::new("u1", "session", vec![Value::str("s2")]),
        RecordKey::new("u1", "session", vec![]),
        RecordKey::new("u1", "other", vec![Value::str("s1")]),
        RecordKey::new("u2", "session", vec![Value::str("s1")]),
        // `Int(1)` and `Str("1")` are different keys.
        RecordKey::new("u1", "session", vec![Value::Int(1)]),
    ] {
        assert!(store.get(&key).expect("get").is_none(), "{key:?}");
    }
    assert!(store.load_identity("nobody").expect("load").is_empty());
    assert_eq!(store.checkpoint("p0").expect("checkpoint"), None);
}

fn overwrite_replaces(store: &dyn BlockStore) {
    let mut record = identity_record("u1", "stats", vec![Value::Int(1)]);
    put(store, vec![record.clone()]);
    record.columns = vec![Value::Int(2), Value::str("more")];
    record.version = 2;
    put(store, vec![record.clone()]);
    let got = store.get(&record.key).expect("get").expect("stored");
    assert_same_record(&got, &record);
    assert_eq!(store.load_identity("u1").expect("load").len(), 1);
}

fn delete_removes_record_and_index(store: &dyn BlockStore) {
    let b = block("u1", "session", Value::str("s1"), t(100));
    let keep = block("u1", "session", Value::str("s2"), t(200));
    put(store, vec![b.clone(), keep.clone()]);
    store
        .write(WriteBatch {
            deletes: vec![
                b.key.clone(),
                RecordKey::new("u1", "session", vec![Value::str("never stored")]),
            ],
            ..WriteBatch::default()
        })
        .expect("delete");
    assert!(store.get(&b.key).expect("get").is_none());
    let blocks = store
        .blocks("u1", "session", TimeRange::ALL)
        .expect("blocks");
    assert_eq!(blocks.len(), 1);
    assert_same_record(&blocks[0], &keep);
}

fn blocks_in_start_order(store: &dyn BlockStore) {
    let records = vec![
        block("u1", "session", Value::str("c"), t(300)),
        block("u1", "session", Value::str("b"), t(100)),
        block("u1", "session", Value::str("a"), t(100)),
        block("u1", "session", Value::str("d"), t(-50)),
        block("u1", "session", Value::str("e"), t(200)),
        block("u1", "other", Value::str("x"), t(150)),
        identity_record("u1", "session2", vec![]),
    ];
    put(store, records);
    let blocks = store
        .blocks("u1", "session", TimeRange::ALL)
        .expect("blocks");
    let dims: Vec<_> = blocks.iter().map(|b| b.key.dims[0].clone()).collect();
    assert_eq!(
        dims,
        ["d", "a", "b", "e", "c"].map(Value::str).to_vec(),
        "start-time order, ties by dims"
    );
    assert_eq!(
        start_times(&blocks),
        vec![t(-50), t(100), t(100), t(200), t(300)]
    );
    assert!(
        store
            .blocks("u1", "missing", TimeRange::ALL)
            .expect("blocks")
            .is_empty()
    );
}

fn time_range_bounds(store: &dyn BlockStore) {
    let records: Vec<_> = (0..5)
        .map(|i| block("u1", "session", Value::Int(i), t(i * 100)))
        .collect();
    put(store, records);
    let range = |start: Option<i64>, end: Option<i64>| {
        let blocks = store
            .blocks("u1", "session", TimeRange::new(start.map(t), end.map(t)))
            .expect("blocks");
        start_times(&blocks)
    };
    assert_eq!(
        range(Some(100), Some(300)),
        vec![t(100), t(200)],
        "[start, end)"
    );
    assert_eq!(range(Some(101), Some(301)), vec![t(200), t(300)]);
    assert_eq!(range(None, Some(100)), vec![t(0)]);
    assert_eq!(range(Some(400), None), vec![t(400)]);
    assert!(range(Some(300), Some(300)).is_empty());
    assert!(
        range(Some(300), Some(100)).is_empty(),
        "reversed range is empty"
    );
    assert_eq!(range(None, None).len(), 5);
    // Sub-second starts sort and bound exactly.
    let fine = DateTime::from_timestamp(100, 500).expect("in range");
    put(store, vec![block("u1", "session", Value::Int(9), fine)]);
    let blocks = store
        .blocks("u1", "session", TimeRange::new(Some(fine), Some(t(101))))
        .expect("blocks");
    assert_eq!(start_times(&blocks), vec![fine]);
}

fn start_time_change_moves_index(store: &dyn BlockStore) {
    // An activity block keeps its key (a stable id) when a late event moves its start.
    let mut activity = block("u1", "activity", Value::Int(500), t(500));
    let later = block("u1", "activity", Value::Int(300), t(300));
    put(store, vec![activity.clone(), later]);
    activity.start_time = Some(t(100));
    activity.columns[1] = Value::DateTime(t(100));
    activity.version = 2;
    put(store, vec![activity.clone()]);
    let blocks = store
        .blocks("u1", "activity", TimeRange::ALL)
        .expect("blocks");
    assert_eq!(
        start_times(&blocks),
        vec![t(100), t(300)],
        "no stale entry at 500"
    );
    assert_same_record(&blocks[0], &activity);
    let old = store
        .blocks("u1", "activity", TimeRange::new(Some(t(400)), None))
        .expect("blocks");
    assert!(old.is_empty());
}

fn identities_paged_and_sorted(store: &dyn BlockStore) {
    let ids = ["u2", "u10", "u1", "a\0b", "a", "é", "u1\0"];
    for id in ids {
        put(
            store,
            vec![
                identity_record(id, "profile", vec![Value::Int(1)]),
                block(id, "session", Value::str("s"), t(1)),
            ],
        );
    }
    let mut expected: Vec<Arc<str>> = ids.iter().map(|i| Arc::from(*i)).collect();
    expected.sort();
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store.identities(after.as_deref(), 2).expect("identities");
        assert!(page.identities.len() <= 2);
        paged.extend(page.identities);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut sorted = paged.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "every identity exactly once");
    assert_eq!(store.all_identities().expect("all").len(), expected.len());
}

/// A backend may always answer "unknown" (`false`), but never "empty" once it holds a record:
/// a batch run would then apply events over blocks it did not load.
fn holds_no_identity_is_false_once_a_record_is_in(store: &dyn BlockStore) {
    put(
        store,
        vec![identity_record("u1", "profile", vec![Value::Int(1)])],
    );
    assert!(!store.holds_no_identity().expect("holds_no_identity"));
}

/// For backends that answer [`BlockStore::holds_no_identity`] locally (memory, embedded): not
/// part of [`run_all`], called by those backends' tests with a new store.
pub fn a_new_store_knows_it_holds_no_identity(store: &dyn BlockStore) {
    assert!(store.holds_no_identity().expect("holds_no_identity"));
}

/// For backends that list identities in order (memory, embedded; not a DynamoDB scan): not part
/// of [`run_all`], called by those backends' tests.
pub fn identities_are_sorted(store: &dyn BlockStore) {
    let ids = ["u2", "u10", "u1", "a\0b", "a", "é", "u1\0"];
    for id in ids {
        put(
            store,
            vec![identity_record(id, "profile", vec![Value::Int(1)])],
        );
    }
    let mut expected: Vec<Arc<str>> = ids.iter().map(|i| Arc::from(*i)).collect();
    expected.sort();
    let first = store.identities(None, 4).expect("identities");
    let next = first.next.as_deref().expect("a second page");
    let second = store.identities(Some(next), 4).expect("identities");
    assert_eq!(second.next, None);
    let paged: Vec<_> = first
        .identities
        .into_iter()
        .chain(second.identities)
        .collect();
    assert_eq!(paged, expected);
}

/// A write that expects a partition's checkpoint where another writer moved it (a consumer
/// that lost its partition) is refused whole; one whose expectations hold is applied.
fn fenced_writes_change_nothing(store: &dyn BlockStore) {
    let first = block("u1", "session", Value::str("s1"), t(100));
    let batch = |record: StoredRecord, expect: Vec<(String, Option<i64>)>, to: i64| WriteBatch {
        puts: vec![record],
        checkpoints: vec![
            ("kafka:e/0".into(), Checkpoint { offset: to }),
            ("kafka:e/1".into(), Checkpoint { offset: to }),
        ],
        expect_checkpoints: expect,
        ..WriteBatch::default()
    };
    let none = vec![("kafka:e/0".into(), None), ("kafka:e/1".into(), None)];
    store
        .write(batch(first.clone(), none.clone(), 10))
        .expect("first owner");
    // A zombie that still believes the partitions are new.
    let mut stale = block("u2", "session", Value::str("s9"), t(200));
    stale.version = 1;
    match store.write(batch(stale.clone(), none, 99)) {
        Err(StoreError::Fenced { partitions }) => {
            assert!(
                partitions.contains(&"kafka:e/0".to_string()),
                "{partitions:?}"
            )
        }
        other => panic!("expected a fenced write, got {other:?}"),
    }
    assert_eq!(store.get(&stale.key).expect("get"), None);
    assert_eq!(
        store.checkpoint("kafka:e/0").expect("checkpoint"),
        Some(Checkpoint { offset: 10 })
    );
    // The owner's next write expects where it left them.
    let at = vec![
        ("kafka:e/0".into(), Some(10)),
        ("kafka:e/1".into(), Some(10)),
    ];
    store.write(batch(stale.clone(), at, 20)).expect("owner");
    assert!(store.get(&stale.key).expect("get").is_some());
    assert_eq!(
        store.checkpoint("kafka:e/1").expect("checkpoint"),
        Some(Checkpoint { offset: 20 })
    );
}

fn checkpoints_with_records(store: &dyn BlockStore) {
    let b = block("u1", "session", Value::str("s1"), t(100));
    store
        .write(WriteBatch {
            puts: vec![b.clone()],
            deletes: vec![],
            checkpoints: vec![
                ("events-0".into(), Checkpoint { offset: 10 }),
                ("events-1".into(), Checkpoint { offset: 0 }),
            ],
            run_state: Vec::new(),
            expect_checkpoints: Vec::new(),
        })
        .expect("write");
    assert!(store.get(&b.key).expect("get").is_some());
    assert_eq!(
        store.checkpoint("events-0").expect("checkpoint"),
        Some(Checkpoint { offset: 10 })
    );
    assert_eq!(
        store.checkpoint("events-1").expect("checkpoint"),
        Some(Checkpoint { offset: 0 })
    );
    assert_eq!(store.checkpoint("events-2").expect("checkpoint"), None);
    store
        .write(WriteBatch {
            checkpoints: vec![("events-0".into(), Checkpoint { offset: 25 })],
            ..WriteBatch::default()
        })
        .expect("write");
    assert_eq!(
        store.checkpoint("events-0").expect("checkpoint"),
        Some(Checkpoint { offset: 25 })
    );
}

fn invalid_batch_changes_nothing(store: &dyn BlockStore) {
    let existing = block("u1", "session", Value::str("s0"), t(50));
    put(store, vec![existing.clone()]);
    let good = block("u1", "session", Value::str("s1"), t(100));
    let mut bad = block("u1", "session", Value::str("s2"), t(200));
    bad.start_time = None;
    let err = store
        .write(WriteBatch {
            puts: vec![good.clone(), bad],
            deletes: vec![existing.key.clone()],
            checkpoints: vec![("events-0".into(), Checkpoint { offset: 99 })],
            run_state: Vec::new(),
            expect_checkpoints: Vec::new(),
        })
        .expect_err("a block without start time is rejected");
    assert!(matches!(err, StoreError::InvalidWrite(_)), "{err:?}");
    assert!(!err.retryable());
    assert!(store.get(&good.key).expect("get").is_none());
    assert!(store.get(&existing.key).expect("get").is_some());
    assert_eq!(store.checkpoint("events-0").expect("checkpoint"), None);

    let mut identity_with_start = identity_record("u1", "profile", vec![]);
    identity_with_start.start_time = Some(t(1));
    let err = store
        .write(WriteBatch {
            puts: vec![identity_with_start],
            ..WriteBatch::default()
        })
        .expect_err("an identity record with a start time is rejected");
    assert!(matches!(err, StoreError::InvalidWrite(_)), "{err:?}");

    // A value nested too deep to encode is the caller's error, and also changes nothing.
    let mut deep = Value::Null;
    for _ in 0..=codec::MAX_DEPTH {
        deep = Value::list(vec![deep]);
    }
    let err = store
        .write(WriteBatch {
            puts: vec![good.clone(), identity_record("u1", "deep", vec![deep])],
            ..WriteBatch::default()
        })
        .expect_err("too deep to encode");
    assert!(matches!(err, StoreError::InvalidWrite(_)), "{err:?}");
    assert!(store.get(&good.key).expect("get").is_none());
}

fn common_prefixes_are_isolated(store: &dyn BlockStore) {
    put(
        store,
        vec![
            block("u1", "session", Value::str("a"), t(100)),
            block("u10", "session", Value::str("a"), t(50)),
            block("u1", "session2", Value::str("a"), t(10)),
            identity_record("u10", "profile", vec![Value::Int(10)]),
            identity_record("u", "profile", vec![Value::Int(0)]),
        ],
    );
    let u1 = store.load_identity("u1").expect("load");
    assert_eq!(u1.len(), 2);
    assert!(u1.iter().all(|r| &*r.key.identity == "u1"));
    let blocks = store
        .blocks("u1", "session", TimeRange::ALL)
        .expect("blocks");
    assert_eq!(start_times(&blocks), vec![t(100)]);
    assert_eq!(store.load_identity("u10").expect("load").len(), 2);
    assert_eq!(store.load_identity("u").expect("load").len(), 1);
}

fn keys_of_every_kind(store: &dyn BlockStore) {
    let dims = vec![
        Value::Null,
        Value::Bool(false),
        Value::Int(-1),
        Value::Int(0),
        Value::Float(2.5),
        Value::str(""),
        Value::str("with\0nul"),
        Value::DateTime(t(86_400)),
        Value::TimeDelta(TimeDelta::seconds(-3)),
    ];
    let record = StoredRecord {
        key: RecordKey::new("id\0x", "agg\0", dims),
        kind: RecordKind::Identity,
        start_time: None,
        columns: vec![Value::Int(1)],
        version: 7,
        order: 3,
        writer: 0,
    };
    put(store, vec![record.clone()]);
    let got = store.get(&record.key).expect("get").expect("stored");
    assert_same_record(&got, &record);
    let loaded = store.load_identity("id\0x").expect("load");
    assert_eq!(loaded.len(), 1);
    assert_same_record(&loaded[0], &record);
    assert!(store.load_identity("id").expect("load").is_empty());
}

fn delete_then_put_in_one_batch(store: &dyn BlockStore) {
    let mut b = block("u1", "session", Value::str("s1"), t(100));
    put(store, vec![b.clone()]);
    b.start_time = Some(t(50));
    b.version = 2;
    store
        .write(WriteBatch {
            puts: vec![b.clone()],
            deletes: vec![b.key.clone()],
            checkpoints: vec![],
            run_state: Vec::new(),
            expect_checkpoints: Vec::new(),
        })
        .expect("write");
    let blocks = store
        .blocks("u1", "session", TimeRange::ALL)
        .expect("blocks");
    assert_eq!(blocks.len(), 1, "deletes apply before puts");
    assert_same_record(&blocks[0], &b);
}

/// Blocks starting at the same instant are ordered by their creation ordinal, which only
/// works if every read path returns it as written, large values included; a rewrite keeps the
/// new value.
fn creation_ordinals_round_trip(store: &dyn BlockStore) {
    let ordinals = [0, 1, 127, 128, 1 << 40, u64::MAX];
    let mut records: Vec<StoredRecord> = ordinals
        .iter()
        .enumerate()
        .map(|(i, &order)| StoredRecord {
            order,
            ..block("u1", "session", Value::Int(i as i64), t(100))
        })
        .collect();
    records.push(StoredRecord {
        order: u64::MAX - 1,
        writer: 0,
        ..identity_record("u1", "profile", vec![Value::Int(1)])
    });
    put(store, records.clone());
    for record in &records {
        let got = store.get(&record.key).expect("get").expect("stored");
        assert_same_record(&got, record);
    }
    let blocks = store
        .blocks("u1", "session", TimeRange::ALL)
        .expect("blocks");
    let got: Vec<u64> = blocks.iter().map(|b| b.order).collect();
    assert_eq!(got, ordinals, "blocks() returns each block's ordinal");
    let loaded = store.load_identity("u1").expect("load");
    assert_eq!(loaded.len(), records.len());
    // Key order: `profile` before `session`, whose dims are the ordinals' indices.
    assert_same_record(&loaded[0], &records[ordinals.len()]);
    for (got, want) in loaded[1..].iter().zip(&records) {
        assert_same_record(got, want);
    }
    let mut rewritten = records[0].clone();
    rewritten.order = 42;
    rewritten.version = 2;
    put(store, vec![rewritten.clone()]);
    let got = store.get(&rewritten.key).expect("get").expect("stored");
    assert_same_record(&got, &rewritten);
}

/// A record's writer comes back as written, and 0 (no writer) stays 0.
fn writers_round_trip(store: &dyn BlockStore) {
    let mut records = Vec::new();
    for (i, writer) in [0u64, 1, 0xDEAD_BEEF_0000_0001, u64::MAX]
        .into_iter()
        .enumerate()
    {
        let mut b = block("u1", "session", Value::Int(i as i64), t(100 + i as i64));
        b.writer = writer;
        records.push(b);
    }
    let mut identity = identity_record("u1", "user", vec![Value::str("x")]);
    identity.writer = 42;
    records.push(identity);
    put(store, records.clone());
    for record in &records {
        let got = store.get(&record.key).expect("get").expect("stored");
        assert_eq!(got.writer, record.writer, "{:?}", record.key);
    }
    let loaded = store.load_identity("u1").expect("load");
    assert_eq!(loaded.len(), records.len());
    let mut writers: Vec<u64> = loaded.iter().map(|r| r.writer).collect();
    writers.sort_unstable();
    assert_eq!(writers, vec![0, 1, 42, 0xDEAD_BEEF_0000_0001, u64::MAX]);
}

/// Run state lands with the records of its batch (or, in a rejected batch, not at all), is
/// listed by name prefix in name order, and is removed by a `None`.
fn run_state_is_written_with_the_batch(store: &dyn BlockStore) {
    assert!(store.run_state("").expect("list").is_empty());
    let b = block("u1", "session", Value::str("s1"), t(100));
    store
        .write(WriteBatch {
            puts: vec![b.clone()],
            run_state: vec![
                ("publish/b".into(), Some(b"second".to_vec())),
                ("publish/a".into(), Some(vec![0, 255, 1])),
                ("other".into(), Some(Vec::new())),
            ],
            ..WriteBatch::default()
        })
        .expect("write");
    assert!(store.get(&b.key).expect("get").is_some());
    assert_eq!(
        store.run_state("publish/").expect("list"),
        vec![
            ("publish/a".to_string(), vec![0, 255, 1]),
            ("publish/b".to_string(), b"second".to_vec()),
        ]
    );
    assert_eq!(
        store.run_state("other").expect("list"),
        vec![("other".to_string(), Vec::new())]
    );
    assert_eq!(store.run_state("").expect("list").len(), 3);

    // A rejected batch leaves run state as it was.
    let bad = StoredRecord {
        start_time: None,
        ..block("u2", "session", Value::str("s"), t(1))
    };
    store
        .write(WriteBatch {
            puts: vec![bad],
            run_state: vec![("publish/a".into(), None)],
            ..WriteBatch::default()
        })
        .expect_err("a block without a start time is rejected");
    assert_eq!(store.run_state("publish/").expect("list").len(), 2);

    // Too large a value is refused before anything is written.
    let err = store
        .write(WriteBatch {
            run_state: vec![(
                "publish/huge".into(),
                Some(vec![7; crate::MAX_RUN_STATE_BYTES + 1]),
            )],
            ..WriteBatch::default()
        })
        .expect_err("an oversized run-state value is refused");
    assert!(matches!(err, StoreError::InvalidWrite(_)), "{err:?}");

    store
        .write(WriteBatch {
            run_state: vec![("publish/a".into(), None), ("never-written".into(), None)],
            ..WriteBatch::default()
        })
        .expect("remove");
    assert_eq!(
        store.run_state("publish/").expect("list"),
        vec![("publish/b".to_string(), b"second".to_vec())]
    );
}
