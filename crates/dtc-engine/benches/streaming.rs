//! Throughput of the streaming engine on generated offer-ai events (the spec in
//! dtc-specs/offer-ai/blurr): `apply` is the operator alone over events already admitted and
//! sorted; `batch` is admission, sorting and the operator with an in-memory store, as a
//! `dtc transform --streaming` run does after JSON extraction.
//! Target (docs/performance.md): more than 1 M events/s on one core.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use dtc_engine::batch::{BatchConfig, StreamingBatch};
use dtc_engine::event::{Admission, Admitter, Event};
use dtc_engine::streaming::StreamingOperator;
use dtc_lang::load::{SourceMap, load_spec};
use dtc_plan::compile::compile;
use dtc_plan::plan::StreamingPlan;
use dtc_plan::value::Value;
use dtc_store::{BlockStore, MemoryStore};

const EVENTS: usize = 100_000;
const USERS: u64 = 400;

fn plan() -> Arc<StreamingPlan> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../dtc-specs/offer-ai/blurr/offer-ai-streaming-bts.yml");
    let text = std::fs::read_to_string(&path).expect("the offer-ai spec is in the repository");
    let mut sources = SourceMap::new();
    let id = sources.add(path.display().to_string(), text.clone());
    let (spec, diagnostics) = load_spec(id, &text);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let (catalog, diagnostics) = compile(&spec.into_iter().collect::<Vec<_>>());
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    catalog.streaming[0].clone()
}

/// Deterministic offer-ai-like events, projected on the plan's source paths: users
/// interleaved, sessions of app_launched, games, offers and purchases, ISO times as strings.
fn events(plan: &StreamingPlan) -> Vec<Vec<Value>> {
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let kinds = ["game_start", "game_end", "offer_shown", "purchase"];
    (0..EVENTS)
        .map(|i| {
            let user = next(USERS);
            let seconds = i as u64 * 20 + next(20);
            let kind = if seconds % 3600 < 40 {
                "app_launched"
            } else {
                kinds[next(4) as usize]
            };
            let time = chrono::DateTime::from_timestamp(1_514_764_800 + seconds as i64, 0)
                .unwrap_or_default()
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string();
            plan.source_paths
                .iter()
                .map(|p| match p.0.join(".").as_str() {
                    "customer_identifier" => Value::str(&format!("U{user:08X}")),
                    "event_time" => Value::str(&time),
                    "event_id" => Value::str(kind),
                    "session_id" => Value::str(&format!("S{}", seconds / 3600)),
                    "country" => Value::str("US"),
                    "signin_method" => Value::str(if user % 2 == 0 { "fb" } else { "guest" }),
                    "won" => Value::Bool(next(2) == 0),
                    "purchase_source" => Value::str(if next(2) == 0 { "offer" } else { "store" }),
                    "txn_amount" => Value::str("1.99"),
                    "offer_type" => Value::str("bundle"),
                    "offer_purchased" => Value::Bool(next(4) == 0),
                    "offer_price" => Value::Float(4.99),
                    _ => Value::Null,
                })
                .collect()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let plan = plan();
    let raw = events(&plan);
    let mut admitter = Admitter::new(plan.clone());
    let mut admitted: Vec<(Arc<str>, Event)> = raw
        .iter()
        .filter_map(|values| match admitter.admit(values.clone(), None) {
            Admission::Accepted { identity, event } => Some((Arc::from(identity.as_str()), event)),
            _ => None,
        })
        .collect();
    assert_eq!(admitted.len(), EVENTS, "every generated event is admitted");
    // Stable: equal times stay in input order.
    admitted.sort_by(|(a, x), (b, y)| (a, x.time).cmp(&(b, y.time)));

    let mut group = c.benchmark_group("streaming");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);
    group.bench_function("apply", |b| {
        b.iter(|| {
            let mut operator = StreamingOperator::new(plan.clone());
            let mut runs = admitted.chunk_by(|(a, _), (b, _)| a == b);
            let mut blocks = 0;
            for run in &mut runs {
                let mut state = operator.new_state(run[0].0.clone());
                for (_, event) in run {
                    operator.apply(&mut state, event);
                }
                blocks += state.records(1).len();
            }
            black_box(blocks)
        })
    });
    group.bench_function("batch", |b| {
        b.iter_batched(
            || raw.clone(),
            |raw| {
                let dir = tempfile::tempdir().expect("temp dir");
                let config = BatchConfig {
                    spill_dir: dir.path().to_path_buf(),
                    ..BatchConfig::default()
                };
                let mut batch = StreamingBatch::new(plan.clone(), config).expect("batch");
                for mut values in raw {
                    batch.push(&mut values, None).expect("push");
                }
                let store = MemoryStore::new();
                let finished = batch.finish(&store, |_, _| Ok(())).expect("finish");
                store.write(finished.final_batch).expect("final write");
                black_box(finished.summary.records_written)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
