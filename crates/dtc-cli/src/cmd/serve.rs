//! `dtc serve`: the live feature API over a store (docs/serving.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use dtc_runtime::RunError;
use dtc_runtime::error::explain;
use dtc_runtime::locations::{StoreOptions, default_dead_letters, open_store};
use dtc_runtime::specs::JobSpecs;
use dtc_serve::ingest::{Ingest, IngestOptions};
use dtc_serve::{ServeError, ServeOptions, Server};
use dtc_store::{BlockStore, OpenMode};

use crate::cmd::kafka::{KafkaArgs, LiveObserver};
use crate::report_error;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The streaming DTC whose blocks the store holds.
    #[arg(long, visible_alias = "streaming-bts", value_name = "SPEC")]
    pub streaming: PathBuf,
    /// A window DTC to serve, at /v1/features/<its Name>/...; repeat for several.
    #[arg(
        long,
        visible_alias = "window-bts",
        value_name = "SPEC",
        required = true
    )]
    pub window: Vec<PathBuf>,
    /// Block store: a directory or file:PATH (embedded store), memory:, or dynamodb://TABLE.
    #[arg(
        long,
        env = "DTC_STORE",
        default_value = "./dtc-data",
        value_name = "URI"
    )]
    pub store: String,
    /// Address to listen on. Loopback by default: exposing the API is a deliberate choice.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Require `Authorization: Bearer <token>` (the file's one line) on every endpoint but
    /// /healthz.
    #[arg(long, value_name = "PATH")]
    pub auth_token_file: Option<PathBuf>,
    /// Append one JSON line per served row (identity, at, features, spec hash) to this file.
    #[arg(long, value_name = "PATH")]
    pub log_served: Option<PathBuf>,
    /// Threads answering HTTP (default: the cores this process may run on).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Store reads in flight at once; more wait.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub max_concurrent_reads: usize,
    /// Threads that read the store (default: --max-concurrent-reads for DynamoDB, whose reads
    /// wait on the network; as many as --threads for local stores, whose reads are CPU work
    /// that more threads would only interleave).
    #[arg(long, value_name = "N")]
    pub read_threads: Option<usize>,
    /// Identities in one batch request.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub max_batch: usize,
    /// The largest request body, in bytes.
    #[arg(long, default_value_t = 1024 * 1024, value_name = "BYTES")]
    pub body_limit: usize,
    /// A request taking longer gets 503 `timeout`, in milliseconds.
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    pub request_timeout_ms: u64,
    /// On SIGTERM, how long requests in flight may take to finish, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub drain_timeout: u64,
    /// Also keep the store current from Kafka, in this process:
    /// kafka://HOST:PORT[,HOST:PORT]/TOPIC[,TOPIC] with --group (the continuous run of
    /// `dtc transform --source kafka://…`, on the store the server reads).
    #[arg(long, value_name = "URI")]
    pub source: Option<String>,
    /// The ingest's rejected events, one JSON line each, appended (default:
    /// dead-letters.jsonl beside the store).
    #[arg(long, value_name = "PATH", requires = "source")]
    pub dead_letter: Option<PathBuf>,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

pub fn run(args: ServeArgs, verbose: bool) -> ExitCode {
    let Some(specs) = crate::specs::load_job(&args.streaming, &args.window) else {
        return ExitCode::from(1);
    };
    let specs = match specs {
        Ok(specs) => specs,
        Err(e) => return report_error(&e, verbose),
    };
    if args.source.is_none() && args.kafka.group.is_some() {
        let e = RunError::Usage("--group joins a consumer group for --source kafka://…".into());
        return report_error(&e, verbose);
    }
    // Serving alone never creates a store; an ingest writes one, as `dtc transform` does.
    let (mode, store_options) = match &args.source {
        Some(_) => (
            OpenMode::CreateIfMissing,
            StoreOptions {
                retention_days: crate::cmd::transform::spec_retention(&specs.streaming),
                ..StoreOptions::default()
            },
        ),
        None => (OpenMode::MustExist, StoreOptions::default()),
    };
    let store = match open_store(&args.store, mode, &store_options) {
        Ok(store) => Arc::<dyn BlockStore>::from(store),
        Err(e) => return report_error(&e, verbose),
    };
    let auth_token = match &args.auth_token_file {
        Some(path) => match dtc_serve::read_auth_token(path) {
            Ok(token) => Some(token),
            Err(e) => return serve_error(&e),
        },
        None => None,
    };
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let read_threads = args
        .read_threads
        .unwrap_or(if args.store.starts_with("dynamodb://") {
            args.max_concurrent_reads
        } else {
            threads
        });
    // A read waiting for a busy read thread is queued: a thread takes the next queued read
    // without sleeping, so under load a read costs no thread wake-up (on one core, waking a
    // thread per request cost more than the read itself: 2x the requests per second with one
    // read thread than with eight, docs/performance.md). The served-feature log's close uses
    // this pool too: one more thread.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .max_blocking_threads(read_threads.max(1) + 1)
        .thread_name("dtc-serve")
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => return serve_error(&ServeError::Server(e)),
    };
    let mut options = ServeOptions {
        listen: args.listen,
        auth_token,
        served_log: args.log_served.clone(),
        body_limit: args.body_limit,
        request_timeout: Duration::from_millis(args.request_timeout_ms),
        max_concurrent_reads: args.max_concurrent_reads,
        max_batch: args.max_batch,
        drain_timeout: Duration::from_secs(args.drain_timeout),
        ..ServeOptions::default()
    };
    let ingest = match &args.source {
        Some(source) => match start_ingest(&args, source, &specs, &store) {
            Ok(ingest) => {
                options.readiness.push(ingest.readiness());
                Some(ingest)
            }
            Err(Failure::Run(e)) => return report_error(&e, verbose),
            Err(Failure::Serve(e)) => return serve_error(&e),
        },
        None => None,
    };
    let described = store.describe();
    let served = runtime.block_on(async {
        let server = Server::bind(specs, store.clone(), options).await?;
        if let Some(ingest) = &ingest {
            ingest.export_metrics(server.metrics());
        }
        eprintln!(
            "dtc serve: listening on http://{} over {described}{}",
            server.local_addr()?,
            match &args.source {
                Some(source) => format!(", ingesting {source}"),
                None => String::new(),
            }
        );
        let failed = ingest.as_ref().map(Ingest::failed);
        // A failed ingest stops the server: data that no longer moves must not look live.
        // The store keeps what the run committed; a restart resumes from there.
        let shutdown = async move {
            match failed {
                Some(failed) => tokio::select! {
                    () = dtc_serve::shutdown_signal() => {}
                    why = failed => {
                        eprintln!("error: the continuous run failed, shutting down: {why}");
                    }
                },
                None => dtc_serve::shutdown_signal().await,
            }
        };
        server.run(shutdown).await
    });
    // The server has drained; the run finishes the record in hand and commits.
    let ingested = ingest.map(Ingest::join);
    if let Some(usage) = store.usage() {
        eprintln!("dtc serve: {usage}");
    }
    match (served, ingested) {
        (Err(e), _) => serve_error(&e),
        (Ok(()), Some(Err(e))) => report_error(&e, verbose),
        (Ok(()), ingested) => {
            if let Some(Ok(report)) = ingested {
                crate::cmd::kafka::print_summary(&report);
            }
            eprintln!("dtc serve: stopped");
            ExitCode::SUCCESS
        }
    }
}

enum Failure {
    Run(RunError),
    Serve(ServeError),
}

/// Connects the consumer and starts the continuous run on `store`, on a thread of its own.
fn start_ingest(
    args: &ServeArgs,
    source: &str,
    specs: &JobSpecs,
    store: &Arc<dyn BlockStore>,
) -> Result<Ingest, Failure> {
    if !dtc_kafka::KafkaUri::is_kafka(source) {
        return Err(Failure::Run(RunError::Usage(format!(
            "dtc serve ingests kafka:// sources only, not `{source}`: load files into the store \
             with `dtc transform --source`"
        ))));
    }
    let consumer = args.kafka.connect(source).map_err(Failure::Run)?;
    let live = args.kafka.live_options().map_err(Failure::Run)?;
    let dead_letters = args
        .dead_letter
        .clone()
        .unwrap_or_else(|| default_dead_letters(&args.store));
    Ingest::start(
        specs.streaming.clone(),
        store.clone(),
        Box::new(consumer),
        IngestOptions::new(live, dead_letters),
        Box::new(LiveObserver { quiet: false }),
    )
    .map_err(Failure::Serve)
}

fn serve_error(e: &ServeError) -> ExitCode {
    eprintln!("error: {e}");
    eprintln!("  {}", explain(e.fault(), e.retryable()));
    ExitCode::from(1)
}
