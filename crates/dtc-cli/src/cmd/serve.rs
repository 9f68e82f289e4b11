//! `dtc serve`: the live feature API over a store (docs/serving.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use dtc_runtime::error::explain;
use dtc_runtime::locations::{StoreOptions, open_store};
use dtc_serve::{ServeError, ServeOptions, Server};
use dtc_store::OpenMode;

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
}

pub fn run(args: ServeArgs, verbose: bool) -> ExitCode {
    let Some(specs) = crate::specs::load_job(&args.streaming, &args.window) else {
        return ExitCode::from(1);
    };
    let specs = match specs {
        Ok(specs) => specs,
        Err(e) => return report_error(&e, verbose),
    };
    let store = match open_store(&args.store, OpenMode::MustExist, &StoreOptions::default()) {
        Ok(store) => Arc::<dyn dtc_store::BlockStore>::from(store),
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
    let options = ServeOptions {
        listen: args.listen,
        auth_token,
        served_log: args.log_served,
        body_limit: args.body_limit,
        request_timeout: Duration::from_millis(args.request_timeout_ms),
        max_concurrent_reads: args.max_concurrent_reads,
        max_batch: args.max_batch,
        drain_timeout: Duration::from_secs(args.drain_timeout),
        ..ServeOptions::default()
    };
    let described = store.describe();
    let served = runtime.block_on(async {
        let server = Server::bind(specs, store.clone(), options).await?;
        eprintln!(
            "dtc serve: listening on http://{} over {described}",
            server.local_addr()?
        );
        server.run(dtc_serve::shutdown_signal()).await
    });
    if let Some(usage) = store.usage() {
        eprintln!("dtc serve: {usage}");
    }
    match served {
        Ok(()) => {
            eprintln!("dtc serve: stopped");
            ExitCode::SUCCESS
        }
        Err(e) => serve_error(&e),
    }
}

fn serve_error(e: &ServeError) -> ExitCode {
    eprintln!("error: {e}");
    eprintln!("  {}", explain(e.fault(), e.retryable()));
    ExitCode::from(1)
}
