//! The live feature API (`dtc serve`): an identity's window features now, computed by the
//! code that computes training rows, over HTTP.
//!
//! - [`features`]: what a request's anchor is, which columns are features, the row.
//! - [`http`]: the endpoints (docs/serving.md), authentication, limits and timeouts.
//! - [`metrics`]: the server's Prometheus registry (`/metrics`).
//! - [`served_log`]: the served-feature log.
//! - [`ingest`]: a continuous run beside the server, on the same store (`--source kafka://`).
//!
//! The store is the synchronous [`BlockStore`]: every read runs on Tokio's blocking pool,
//! at most [`ServeOptions::max_concurrent_reads`] at once, one `load_identity` (one DynamoDB
//! Query) per identity per request, so the async workers only move bytes.
//!
//! The library prints nothing and reads no environment variables: the front end does.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dtc_runtime::specs::JobSpecs;
use dtc_store::BlockStore;

pub mod error;
pub mod features;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod served_log;

pub use error::{ApiError, ServeError};
pub use metrics::Metrics;

/// How the server runs; [`ServeOptions::default`] holds the CLI's defaults.
#[derive(Clone)]
pub struct ServeOptions {
    /// Where to listen; loopback unless the operator exposes it on purpose.
    pub listen: SocketAddr,
    /// Every endpoint but `/healthz` requires `Authorization: Bearer <token>`.
    pub auth_token: Option<String>,
    /// Append a JSON line per served row to this file.
    pub served_log: Option<PathBuf>,
    /// The largest request body (batch requests), in bytes.
    pub body_limit: usize,
    /// A request still running after this gets a 503 `timeout`.
    pub request_timeout: Duration,
    /// Store reads in flight at once; more wait for one to finish.
    pub max_concurrent_reads: usize,
    /// Identities in one batch request.
    pub max_batch: usize,
    /// The longest identity, in bytes of UTF-8.
    pub max_identity_bytes: usize,
    /// On shutdown, how long in-flight requests may take to finish.
    pub drain_timeout: Duration,
    /// What else `/readyz` waits for (see [`ReadinessCheck`]).
    pub readiness: Vec<Arc<dyn ReadinessCheck>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            auth_token: None,
            served_log: None,
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(10),
            max_concurrent_reads: 64,
            max_batch: 1000,
            // DynamoDB's partition keys hold at most 2048 bytes; half leaves room for escaping.
            max_identity_bytes: 1024,
            drain_timeout: Duration::from_secs(30),
            readiness: Vec::new(),
        }
    }
}

/// Something `/readyz` waits for besides the open store: the in-process ingest's
/// ([`ingest::Ingest::readiness`]) fails until the run has caught up with its partitions, and
/// `/readyz` answers 503 with the check's reason until then.
pub trait ReadinessCheck: Send + Sync {
    /// Shown in `/readyz`'s answer.
    fn name(&self) -> &str;
    /// `Err(reason)` while not ready.
    fn ready(&self) -> Result<(), String>;
}

/// A server bound to its address, not yet answering.
pub struct Server {
    listener: tokio::net::TcpListener,
    app: http::App,
}

impl Server {
    /// Binds `options.listen` and prepares the endpoints for `job`'s window specs over
    /// `store` (opened by the caller: serving never creates a store).
    pub async fn bind(
        job: JobSpecs,
        store: Arc<dyn BlockStore>,
        options: ServeOptions,
    ) -> Result<Server, ServeError> {
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: options.listen.to_string(),
                source,
            })?;
        let app = http::App::new(job, store, options)?;
        Ok(Server { listener, app })
    }

    /// The address bound (the port chosen, when `listen` asked for port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ServeError> {
        self.listener.local_addr().map_err(ServeError::Server)
    }

    pub fn metrics(&self) -> &Metrics {
        self.app.metrics()
    }

    /// Answers requests until `shutdown` completes, then stops accepting connections, lets
    /// the requests in flight finish (up to the drain timeout; `/readyz` answers 503 in the
    /// meantime), and closes the served-feature log.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        self.app.run(self.listener, shutdown).await
    }
}

/// Completes on SIGTERM or Ctrl-C (SIGINT): what a front end passes to [`Server::run`].
pub async fn shutdown_signal() {
    let interrupt = async {
        // Without a handler for Ctrl-C, only SIGTERM stops the server gracefully.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = interrupt => {}
                }
            }
            Err(_) => interrupt.await,
        }
    }
    #[cfg(not(unix))]
    interrupt.await;
}

/// The token in `path`: its content without the trailing newline. Empty is an error (every
/// request would match an empty token, which is no protection).
pub fn read_auth_token(path: &Path) -> Result<String, ServeError> {
    let error = |why: String| ServeError::AuthToken {
        path: path.display().to_string(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let token = text.trim_end_matches(['\n', '\r']);
    if token.trim().is_empty() {
        return Err(error("the file is empty".into()));
    }
    if token.contains(['\n', '\r']) {
        return Err(error("the token must be one line".into()));
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_holds_one_non_empty_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret\n").unwrap();
        assert_eq!(read_auth_token(&file).unwrap(), "s3cret");
        for bad in ["", "\n", "  \n", "a\nb\n"] {
            std::fs::write(&file, bad).unwrap();
            assert!(read_auth_token(&file).is_err(), "{bad:?}");
        }
        assert!(read_auth_token(&dir.path().join("missing")).is_err());
    }
}
