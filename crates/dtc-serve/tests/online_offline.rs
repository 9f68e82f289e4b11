//! Online == offline, through the HTTP API: for every anchor of a window run, the features
//! served at `at = anchor start` equal the training row's feature columns (labels excluded;
//! the anchor's own fields too, unless the request names the anchor block, when they must
//! be equal as well). Over generated histories (with many equal timestamps) and over the
//! offer-ai example on the embedded store and on DynamoDB Local.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use common::*;
use dtc_plan::record::Row;
use dtc_plan::value::Value;
use dtc_runtime::locations::{StoreOptions, open_store};
use dtc_runtime::specs::JobSpecs;
use dtc_serve::ServeOptions;
use dtc_store::{BlockStore, MemoryStore, OpenMode, RecordKind};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value as Json, json};

/// One generated event: user, half-hour slot, session, kind, amount choice.
type Event = (usize, u32, u8, u8, u8);

const USERS: &[&str] = &["u0", "u1", "p/q r+ü"];

fn events_jsonl(events: &[Event]) -> String {
    // 2024-01-01T00:00:00Z
    let base = DateTime::from_timestamp(1_704_067_200, 0).unwrap();
    let mut out = String::new();
    for &(user, slot, session, kind, amount) in events {
        let time = base + TimeDelta::minutes(30 * i64::from(slot));
        let mut event = json!({
            "user": USERS[user],
            "time": time.to_rfc3339(),
            "session": format!("s{session}"),
        });
        let fields = match kind {
            0 | 1 => json!({"event": "game"}),
            2 => json!({"event": "purchase", "amount": format!("{}.5", amount)}),
            3 => json!({
                "event": "offer",
                "offer": if amount % 2 == 0 { "gems" } else { "coins" },
                "price": if amount % 2 == 0 { 0.99 } else { 4.99 },
            }),
            _ => json!({"event": "login", "country": if amount % 2 == 0 { "DE" } else { "BR" }}),
        };
        for (k, v) in fields.as_object().unwrap() {
            event[k] = v.clone();
        }
        out.push_str(&event.to_string());
        out.push('\n');
    }
    out
}

fn histories() -> impl Strategy<Value = Vec<Event>> {
    // Few slots over five days and few sessions: many blocks start at the same instant, and
    // sessions come back later (a resumed block spans both periods).
    let event = (0..USERS.len(), 0u32..240, 0u8..7, 0u8..5, 0u8..4);
    prop::collection::vec(event, 1..80)
}

/// Checks every training row of `rows` against the API: at its anchor time, and anchored on
/// its block by name (`block`: the anchor's dimension name and value per row), one GET each
/// and one batch per identity.
async fn check_rows(
    base: &str,
    job: &JobSpecs,
    rows: &[Row],
    features: &[&str],
    anchor_features: &[&str],
    block: impl Fn(&Row) -> (String, String),
) {
    let client = reqwest::Client::new();
    let window = &job.windows[0].name;
    let expected_names: BTreeSet<&str> = features.iter().copied().collect();
    for row in rows {
        let training = row_json(job, row);
        let url = format!(
            "{base}/v1/features/{window}/{}?at={}",
            enc(&row.identity),
            at(&row.anchor_time)
        );
        let (status, body) = get(&client, &url).await;
        assert_eq!(status, 200, "{url}: {body}");
        let served = body["features"].as_object().unwrap();
        let names: BTreeSet<&str> = served.keys().map(String::as_str).collect();
        assert_eq!(names, expected_names, "the served columns");
        for name in features.iter().filter(|f| !anchor_features.contains(f)) {
            assert_eq!(
                served[*name], training[*name],
                "{name} of {} at {}: served {body}, trained {training:?}",
                row.identity, row.anchor_time
            );
        }
        assert_eq!(
            body["at"],
            Json::from(dtc_io::format::iso_datetime(&row.anchor_time))
        );

        // Named by its block, the row is the training row, anchor fields included.
        let (dimension, value) = block(row);
        let named = format!(
            "{base}/v1/features/{window}/{}?{dimension}={}&at=2000-01-01T00:00:00Z",
            enc(&row.identity),
            enc(&value)
        );
        let (status, body) = get(&client, &named).await;
        assert_eq!(status, 200, "{named}: {body}");
        for name in features {
            assert_eq!(
                body["features"][*name], training[*name],
                "{name} of {} anchored on {value}: served {body}, trained {training:?}",
                row.identity
            );
        }
        assert_eq!(
            body["at"],
            Json::from(dtc_io::format::iso_datetime(&row.anchor_time)),
            "a stored block's start is the anchor's, whatever `at` says"
        );
    }

    // The batch endpoint, one request per identity with every anchor of it.
    let mut identities: Vec<&str> = rows.iter().map(|r| &*r.identity).collect();
    identities.dedup();
    for identity in identities {
        let mine: Vec<&Row> = rows.iter().filter(|r| &*r.identity == identity).collect();
        let entries: Vec<Json> = mine
            .iter()
            .map(|r| {
                let (dimension, value) = block(r);
                json!({"identity": identity, "block": {dimension: value}})
            })
            .collect();
        let url = format!("{base}/v1/features/{window}");
        let (status, body) = post(&client, &url, json!({"identities": entries}).to_string()).await;
        assert_eq!(status, 200, "{body}");
        let results = body["results"].as_array().unwrap();
        assert_eq!(results.len(), mine.len());
        for (result, row) in results.iter().zip(&mine) {
            assert_eq!(result["status"], "ok", "{result}");
            let training = row_json(job, row);
            for name in features {
                assert_eq!(
                    result["features"][*name], training[*name],
                    "{name}: {result}"
                );
            }
        }
    }
}

/// The anchor block of a row of the `offers` window: its session, which the row carries.
fn games_block(row: &Row) -> (String, String) {
    let session = match &row.values[FEATURE_SESSION] {
        Value::Str(s) => s.to_string(),
        other => panic!("here.session is {other:?}"),
    };
    ("session_id".into(), session)
}

/// `here.session`'s index in the `offers` window's rows.
const FEATURE_SESSION: usize = 9;

#[test]
fn served_features_equal_training_rows_over_generated_histories() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // A fixed seed: the check below that some anchors tie must not depend on luck.
    let config = Config {
        cases: 32,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = proptest::test_runner::TestRng::deterministic_rng(config.rng_algorithm);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let anchors_checked = std::cell::Cell::new(0);
    let equal_starts = std::cell::Cell::new(0);
    let result = runner.run(&histories(), |events| {
        let dir = tempfile::tempdir().unwrap();
        let job = games_job(dir.path());
        assert_eq!(job.windows[0].field_names[FEATURE_SESSION], "here.session");
        let events_file = dir.path().join("events.jsonl");
        std::fs::write(&events_file, events_jsonl(&events)).unwrap();
        let store = Arc::new(MemoryStore::new());
        let rows = load_events(&job, store.as_ref(), &events_file, dir.path());
        anchors_checked.set(anchors_checked.get() + rows.len());
        equal_starts.set(
            equal_starts.get()
                + rows
                    .windows(2)
                    .filter(|w| {
                        w[0].identity == w[1].identity && w[0].anchor_time == w[1].anchor_time
                    })
                    .count(),
        );
        runtime.block_on(async {
            let server = start(job.clone(), store, ServeOptions::default()).await;
            check_rows(
                &server.base,
                &job,
                &rows,
                FEATURES,
                ANCHOR_FEATURES,
                games_block,
            )
            .await;
            server.stop().await.unwrap();
        });
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (anchors, ties) = (anchors_checked.get(), equal_starts.get());
    assert!(anchors > 50, "only {anchors} anchors");
    assert!(ties > 0, "no two anchors started together");
}

/// The offer-ai window's features: every column but the label.
const OFFER_AI_FEATURES: &[&str] = &[
    "last_session.games_played",
    "last_session.win_ratio",
    "offer.offer_price",
    "offer.offer_purchased",
    "offer.offer_type",
    "prev_week.purchase_amount",
    "user.country",
    "user.facebook_connected",
];

/// The features read from the anchor block (the offer shown): null at a bare time, the
/// training row's when the request names the block.
const OFFER_AI_ANCHOR_FEATURES: &[&str] = &[
    "offer.offer_price",
    "offer.offer_purchased",
    "offer.offer_type",
];

/// The session of the anchor block of an offer-ai row: the block starting at the anchor time
/// that showed an offer (the anchor condition).
fn offer_ai_blocks(store: &dyn BlockStore, rows: &[Row]) -> Vec<(String, String)> {
    rows.iter()
        .map(|row| {
            let records = store.load_identity(&row.identity).unwrap();
            // The anchor condition: an offer was shown (`offer_type`, column 7 of the layout);
            // of blocks starting together, the first created, as training orders them.
            let anchor = records
                .iter()
                .filter(|r| r.kind == RecordKind::Block && r.start_time == Some(row.anchor_time))
                .filter(|r| matches!(r.columns.get(7), Some(Value::Str(s)) if !s.is_empty()))
                .min_by_key(|r| r.order)
                .unwrap_or_else(|| panic!("no anchor block at {}", row.anchor_time));
            let session = match anchor.key.dims.first() {
                Some(Value::Str(s)) => s.to_string(),
                other => panic!("session dims {other:?}"),
            };
            ("session_id".into(), session)
        })
        .collect()
}

async fn offer_ai_online_equals_offline(store: Arc<dyn BlockStore>, rows: Vec<Row>) {
    let job = offer_ai_job();
    assert!(rows.len() > 20, "{} rows", rows.len());
    let blocks = tokio::task::block_in_place(|| offer_ai_blocks(store.as_ref(), &rows));
    let server = start(job.clone(), store, ServeOptions::default()).await;
    let block = |row: &Row| {
        let i = rows
            .iter()
            .position(|r| r.identity == row.identity && r.anchor_time == row.anchor_time)
            .unwrap();
        blocks[i].clone()
    };
    check_rows(
        &server.base,
        &job,
        &rows,
        OFFER_AI_FEATURES,
        OFFER_AI_ANCHOR_FEATURES,
        block,
    )
    .await;
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offer_ai_served_features_equal_training_rows_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let job = offer_ai_job();
    let path = dir.path().join("store");
    let store = open_store(
        path.to_str().unwrap(),
        OpenMode::CreateIfMissing,
        &StoreOptions::default(),
    )
    .unwrap();
    let events = repo().join("examples/offer-ai/events.jsonl");
    let rows =
        tokio::task::block_in_place(|| load_events(&job, store.as_ref(), &events, dir.path()));
    offer_ai_online_equals_offline(Arc::from(store), rows).await;
}

#[test]
fn offer_ai_served_features_equal_training_rows_on_dynamodb_local() {
    if !dynamodb_enabled() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let job = offer_ai_job();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let table = format!("dtc-serve-test-{}-{nanos}", std::process::id());
    let store: Arc<dyn BlockStore> = Arc::from(
        open_store(
            &format!("dynamodb://{table}"),
            OpenMode::CreateIfMissing,
            &StoreOptions {
                create_table: true,
                ..StoreOptions::default()
            },
        )
        .unwrap(),
    );
    let events = repo().join("examples/offer-ai/events.jsonl");
    let rows = load_events(&job, store.as_ref(), &events, dir.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // One fetch is one Query.
        let server = start(job.clone(), store.clone(), ServeOptions::default()).await;
        let client = reqwest::Client::new();
        let before = queries(store.as_ref());
        let url = format!(
            "{}/v1/features/offer_ai_window/{}",
            server.base, rows[0].identity
        );
        let (status, _) = get(&client, &url).await;
        assert_eq!(status, 200);
        assert_eq!(
            queries(store.as_ref()) - before,
            1,
            "store requests per fetch"
        );
        server.stop().await.unwrap();

        offer_ai_online_equals_offline(store, rows).await;
    });
}

/// The walk-through of docs/serving.md: an offer shown in the middle of a session is scored
/// with the session before as `last_session`, as in training, when the request names the
/// current session; `at` alone would count the current session itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_shown_mid_session_is_scored_with_the_previous_session() {
    let dir = tempfile::tempdir().unwrap();
    let job = offer_ai_job();
    let store = Arc::new(MemoryStore::new());
    let events = repo().join("examples/offer-ai/events.jsonl");
    let rows =
        tokio::task::block_in_place(|| load_events(&job, store.as_ref(), &events, dir.path()));
    let blocks = offer_ai_blocks(store.as_ref(), &rows);
    let server = start(job.clone(), store.clone(), ServeOptions::default()).await;
    let client = reqwest::Client::new();
    let mut checked = 0;
    for (row, (_, session)) in rows.iter().zip(&blocks) {
        let training = row_json(&job, row);
        if training["last_session.games_played"].is_null() {
            continue;
        }
        let records = store.load_identity(&row.identity).unwrap();
        let current = records
            .iter()
            .find(|r| r.key.dims.first() == Some(&Value::str(session)))
            .unwrap();
        let (Some(Value::DateTime(start)), Some(Value::DateTime(end))) =
            (current.columns.get(1), current.columns.get(2))
        else {
            panic!("no times")
        };
        if end == start {
            continue;
        }
        let mid: DateTime<Utc> = *start + (*end - *start) / 2;
        let base = format!(
            "{}/v1/features/offer_ai_window/{}?at={}",
            server.base,
            enc(&row.identity),
            at(&mid)
        );
        let (_, named) = get(&client, &format!("{base}&session_id={}", enc(session))).await;
        assert_eq!(
            named["features"]["last_session.games_played"], training["last_session.games_played"],
            "{named}"
        );
        let (_, bare) = get(&client, &base).await;
        let games = match current.columns.get(3) {
            Some(Value::Int(g)) => *g,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            bare["features"]["last_session.games_played"],
            json!(games),
            "`at` alone, mid-session: the current session is the last one before `at`"
        );
        checked += 1;
    }
    assert!(checked > 10, "{checked}");

    // A session not stored yet starts at `at`: the latest stored session is `last_session`.
    let identity = &rows[0].identity;
    let latest = store
        .load_identity(identity)
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == RecordKind::Block)
        .max_by_key(|r| (r.start_time, r.order))
        .unwrap();
    let url = format!(
        "{}/v1/features/offer_ai_window/{}?session_id=brand-new",
        server.base,
        enc(identity)
    );
    let (status, body) = get(&client, &url).await;
    assert_eq!(status, 200, "{body}");
    let games = match latest.columns.get(3) {
        Some(Value::Int(g)) => *g,
        other => panic!("{other:?}"),
    };
    assert_eq!(body["features"]["last_session.games_played"], json!(games));
    server.stop().await.unwrap();
}
