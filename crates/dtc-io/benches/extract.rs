//! Throughput of projection pushdown on a typical game event (~220 bytes, 10 paths read).
//! Target: more than 1.5 M lines/s on one core.
//!
//! `real_events` replays lines shaped like the end-to-end job's input: flat objects, short keys
//! and short string values, most members not requested; `real_events_with_presence` also
//! records which paths the lines held (`PathPresence`), as a run reporting unseen paths does.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dtc_io::Extractor;
use dtc_io::extract::PathPresence;
use dtc_plan::plan::SourcePath;
use dtc_plan::value::Value;

const EVENT: &str = concat!(
    r#"{"user_id":"u-4f1c2a","event_time":"2018-03-07T22:35:31Z","#,
    r#""session_id":"s-981","country":"FR","platform":"ios","#,
    r#""game":{"won":true,"score":1520,"level":12,"mode":"ranked"},"#,
    r#""purchase":{"amount":4.99,"currency":"USD"},"ab":[1,2]}"#
);

const APP_LAUNCHED: &str = concat!(
    r#"{ "country": "FR", "language": "FR", "signin_method": "guest", "#,
    r#""package_name": "my_app", "package_version": "1.0", "os": "iOS", "#,
    r#""os_version": "5.0.8", "device_type": "phone", "device_make": "Apple", "#,
    r#""device_model": "iPhone X", "device_id": "0A549630", "event_id": "app_launched", "#,
    r#""event_time": "2018-01-01T00:00:59", "customer_identifier": "UB5712480", "#,
    r#""session_id": "V6C3D" }"#
);

const GAME_END: &str = concat!(
    r#"{ "event_id": "game_end", "event_time": "2018-01-01T00:04:12", "#,
    r#""customer_identifier": "UB5712480", "session_id": "V6C3D", "won": true, "#,
    r#""game_id": "G1893", "score": 1520, "level": 7 }"#
);

fn to_paths(paths: &[&str]) -> Vec<SourcePath> {
    paths
        .iter()
        .map(|p| SourcePath(p.split('.').map(str::to_owned).collect()))
        .collect()
}

fn paths() -> Vec<SourcePath> {
    to_paths(&[
        "user_id",
        "event_time",
        "session_id",
        "country",
        "game.won",
        "game.score",
        "game.level",
        "purchase.amount",
        "purchase.currency",
        "missing",
    ])
}

fn real_paths() -> Vec<SourcePath> {
    to_paths(&[
        "customer_identifier",
        "event_time",
        "event_id",
        "session_id",
        "country",
        "signin_method",
        "won",
        "purchase_source",
        "txn_amount",
        "offer_type",
        "offer_purchased",
        "offer_price",
    ])
}

fn bench(c: &mut Criterion) {
    let extractor = Extractor::new(&paths(), false);
    let mut out: Vec<Value> = Vec::new();
    let mut group = c.benchmark_group("extract");
    group.throughput(Throughput::Elements(1));
    group.bench_function("event_220b_10_paths", |b| {
        b.iter(|| {
            let result = extractor.extract(black_box(EVENT.as_bytes()), &mut out);
            black_box((result.is_ok(), out.len()))
        })
    });
    let extractor = Extractor::new(&real_paths(), false);
    // Per element: one app_launched line and one game_end line.
    group.bench_function("real_events_12_paths", |b| {
        b.iter(|| {
            let a = extractor.extract(black_box(APP_LAUNCHED.as_bytes()), &mut out);
            let g = extractor.extract(black_box(GAME_END.as_bytes()), &mut out);
            black_box((a.is_ok(), g.is_ok(), out.len()))
        })
    });
    let mut presence = PathPresence::new(real_paths().len());
    group.bench_function("real_events_with_presence", |b| {
        b.iter(|| {
            let a = extractor.extract(black_box(APP_LAUNCHED.as_bytes()), &mut out);
            presence.record(&out);
            let g = extractor.extract(black_box(GAME_END.as_bytes()), &mut out);
            presence.record(&out);
            black_box((a.is_ok(), g.is_ok(), out.len()))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
