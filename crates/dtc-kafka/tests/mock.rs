//! The source and the producer against librdkafka's mock cluster, in process.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dtc_io::source::{Polled, RecordSource};
use dtc_kafka::KafkaUri;
use dtc_kafka::broker::TestBroker;
use dtc_kafka::producer::Producer;
use dtc_kafka::source::{ConsumerOptions, KafkaSource};

fn options(broker: &TestBroker, group: &str) -> ConsumerOptions {
    let uri = KafkaUri::parse(&format!("kafka://{}/events", broker.bootstrap_servers())).unwrap();
    let mut options = ConsumerOptions::new(uri, group);
    options.stop_at_end = true;
    options.options = vec![("session.timeout.ms".into(), "6000".into())];
    options
}

/// Drains `source`, starting each partition at `starts` (by name); returns partition → offsets.
fn drain(
    source: &mut KafkaSource,
    starts: &BTreeMap<String, i64>,
) -> BTreeMap<String, Vec<(i64, String)>> {
    let mut seen: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "no end after 60 s: {seen:?}");
        let p = source.poll().unwrap();
        match p {
            Polled::Partition(id) => {
                let name = source.partition(id).unwrap().name.clone();
                let start = starts.get(&name).copied().unwrap_or(0);
                source.start_at(id, start).unwrap();
            }
            Polled::Record(r) => {
                let record = (r.offset, String::from_utf8_lossy(r.payload).into_owned());
                let id = r.partition;
                let name = source.partition(id).unwrap().name.clone();
                seen.entry(name).or_default().push(record);
            }
            Polled::End => return seen,
            _ => {}
        }
    }
}

#[test]
fn records_are_read_from_the_stores_offsets_to_the_end_and_keys_keep_their_partition() {
    let broker = TestBroker::start(1).unwrap();
    broker.create_topic("events", 3).unwrap();
    let mut producer = Producer::connect(broker.bootstrap_servers(), "events", &[]).unwrap();
    for i in 0..300 {
        let key = format!("u{}", i % 10);
        producer
            .send(key.as_bytes(), format!("{key}:{i}").as_bytes())
            .unwrap();
    }
    producer.send(b"u0", b"").unwrap();
    assert_eq!(producer.flush(Duration::from_secs(30)).unwrap(), 301);

    let mut source = KafkaSource::connect(options(&broker, "g1")).unwrap();
    let all = drain(&mut source, &BTreeMap::new());
    let total: usize = all.values().map(Vec::len).sum();
    assert_eq!(total, 301);
    for records in all.values() {
        // Offsets in order, from 0, without gaps; a key in one partition only.
        assert!(records.iter().enumerate().all(|(i, (o, _))| *o == i as i64));
    }
    let mut partition_of = BTreeMap::new();
    for (partition, records) in &all {
        for (_, value) in records {
            if let Some((key, _)) = value.split_once(':') {
                let first = partition_of
                    .entry(key.to_string())
                    .or_insert(partition.clone());
                assert_eq!(first, partition, "{key} on two partitions");
            }
        }
    }
    assert!(
        all.values().flatten().any(|(_, v)| v.is_empty()),
        "the empty value"
    );
    drop(source);

    // Another consumer of another group, starting where a store says.
    let starts: BTreeMap<String, i64> = all
        .iter()
        .map(|(name, records)| (name.clone(), records.len() as i64 - 5))
        .collect();
    let mut source = KafkaSource::connect(options(&broker, "g2")).unwrap();
    let rest = drain(&mut source, &starts);
    for (name, records) in &rest {
        assert_eq!(records.len(), 5, "{name}");
        assert_eq!(records[0].0, starts[name]);
    }
}
