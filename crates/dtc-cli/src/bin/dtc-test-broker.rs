//! `dtc-test-broker [--partitions N] [TOPIC...]`: librdkafka's mock cluster in a process of its
//! own, for tests that kill a consumer while the broker keeps running, the example and the
//! bench. Prints `bootstrap HOST:PORT` on stdout once the topics exist, then runs until killed.

use std::io::Write;

fn main() -> std::process::ExitCode {
    let mut partitions = 4;
    let mut topics = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--partitions" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => partitions = n,
                None => {
                    eprintln!("dtc-test-broker: --partitions needs a number");
                    return std::process::ExitCode::from(2);
                }
            },
            _ => topics.push(arg),
        }
    }
    let broker = match dtc_kafka::broker::TestBroker::start(1) {
        Ok(broker) => broker,
        Err(e) => {
            eprintln!("dtc-test-broker: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    for topic in &topics {
        if let Err(e) = broker.create_topic(topic, partitions) {
            eprintln!("dtc-test-broker: {e}");
            return std::process::ExitCode::from(1);
        }
    }
    let mut out = std::io::stdout();
    if writeln!(out, "bootstrap {}", broker.bootstrap_servers())
        .and_then(|()| out.flush())
        .is_err()
    {
        return std::process::ExitCode::from(1);
    }
    loop {
        std::thread::park();
    }
}
