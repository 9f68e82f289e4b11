//! Throughput of projection pushdown on a typical game event (~220 bytes, 10 paths read).
//! Target: more than 1.5 M lines/s on one core.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dtc_io::Extractor;
use dtc_plan::plan::SourcePath;
use dtc_plan::value::Value;

const EVENT: &str = concat!(
    r#"{"user_id":"u-4f1c2a","event_time":"2018-03-07T22:35:31Z","#,
    r#""session_id":"s-981","country":"FR","platform":"ios","#,
    r#""game":{"won":true,"score":1520,"level":12,"mode":"ranked"},"#,
    r#""purchase":{"amount":4.99,"currency":"USD"},"ab":[1,2]}"#
);

fn paths() -> Vec<SourcePath> {
    [
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
    ]
    .iter()
    .map(|p| SourcePath(p.split('.').map(str::to_owned).collect()))
    .collect()
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
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
