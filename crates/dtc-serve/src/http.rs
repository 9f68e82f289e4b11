//! The endpoints (docs/serving.md), and what every request goes through: authentication, the
//! request timeout, the body limit, metrics. Every failure is `{"error": {"code", "message"}}`
//! with a 4xx status when the request is at fault.

use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use dtc_io::format::{JsonStyle, record_json, write_str};
use dtc_plan::plan::{StreamAggregateKind, StreamingPlan};
use dtc_plan::value::{Value, from_json};
use dtc_runtime::specs::JobSpecs;
use dtc_store::{BlockStore, RecordKind, StoredRecord};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::error::{ApiError, ServeError};
use crate::features::{LiveQuery, Served, WindowService, parse_at, render_time};
use crate::metrics::Metrics;
use crate::served_log::{LogSender, ServedLog};
use crate::{ReadinessCheck, ServeOptions};

/// Blocks per block aggregate `/v1/blocks` returns unless `limit` says otherwise.
const DEFAULT_BLOCK_LIMIT: usize = 100;
const MAX_BLOCK_LIMIT: usize = 10_000;

/// What the handlers share.
struct Shared {
    windows: Vec<Arc<WindowService>>,
    streaming: Arc<StreamingPlan>,
    store: Arc<dyn BlockStore>,
    /// The spec hash as a JSON string.
    spec: String,
    reads: Arc<Semaphore>,
    metrics: Metrics,
    log: Option<LogSender>,
    auth: Option<Vec<u8>>,
    draining: AtomicBool,
    readiness: Vec<Arc<dyn ReadinessCheck>>,
    request_timeout: Duration,
    max_batch: usize,
    max_identity_bytes: usize,
}

/// The server's routes and state, ready to run on a listener.
pub struct App {
    shared: Arc<Shared>,
    router: Router,
    log: Option<ServedLog>,
    drain_timeout: Duration,
}

impl App {
    pub fn new(
        job: JobSpecs,
        store: Arc<dyn BlockStore>,
        options: ServeOptions,
    ) -> Result<App, ServeError> {
        let mut windows: Vec<Arc<WindowService>> = Vec::new();
        for plan in job.windows {
            if windows.iter().any(|w| w.name() == plan.name) {
                return Err(ServeError::DuplicateWindow(plan.name.clone()));
            }
            windows.push(Arc::new(WindowService::new(plan)));
        }
        let metrics = Metrics::new();
        let log = match &options.served_log {
            Some(path) => Some(ServedLog::open(path, metrics.clone())?),
            None => None,
        };
        let mut spec = String::new();
        write_str(&job.hash, JsonStyle::Compact, &mut spec);
        let shared = Arc::new(Shared {
            windows,
            streaming: job.streaming,
            store,
            spec,
            reads: Arc::new(Semaphore::new(options.max_concurrent_reads.max(1))),
            metrics,
            log: log.as_ref().map(ServedLog::sender),
            auth: options.auth_token.map(String::into_bytes),
            draining: AtomicBool::new(false),
            readiness: options.readiness,
            request_timeout: options.request_timeout,
            max_batch: options.max_batch,
            max_identity_bytes: options.max_identity_bytes,
        });
        let router = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics_text))
            .route("/v1/features/{window}/{identity}", get(features_one))
            .route("/v1/features/{window}", post(features_batch))
            .route("/v1/blocks/{identity}", get(blocks))
            .fallback(unknown_route)
            .method_not_allowed_fallback(wrong_method)
            .with_state(shared.clone())
            .layer(DefaultBodyLimit::max(options.body_limit))
            .layer(middleware::from_fn_with_state(shared.clone(), guard));
        Ok(App {
            shared,
            router,
            log,
            drain_timeout: options.drain_timeout,
        })
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    pub async fn run(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let App {
            shared,
            router,
            log,
            drain_timeout,
        } = self;
        let metrics = shared.metrics.clone();
        let upkeep = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                metrics.upkeep();
            }
        });
        let (began, begun) = tokio::sync::oneshot::channel::<()>();
        let draining = shared.clone();
        let graceful = async move {
            shutdown.await;
            draining.draining.store(true, Ordering::SeqCst);
            let _ = began.send(());
        };
        let serve = axum::serve(listener, router)
            .with_graceful_shutdown(graceful)
            .into_future();
        let deadline = async move {
            match begun.await {
                Ok(()) => tokio::time::sleep(drain_timeout).await,
                Err(_) => std::future::pending::<()>().await,
            }
        };
        let result = tokio::select! {
            served = serve => served.map_err(ServeError::Server),
            () = deadline => Ok(()),
        };
        upkeep.abort();
        if let Some(log) = log {
            log.close().await;
        }
        result
    }
}

fn json(status: StatusCode, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let mut response = json(self.status, self.body());
        if unauthorized {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The metrics label of a request.
fn endpoint_of(method: &Method, path: &str) -> &'static str {
    match path {
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        _ if path.starts_with("/v1/features/") && method == Method::POST => "features_batch",
        _ if path.starts_with("/v1/features/") => "features",
        _ if path.starts_with("/v1/blocks/") => "blocks",
        _ => "other",
    }
}

/// Authentication, the request timeout and the request metrics, around every request.
async fn guard(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let endpoint = endpoint_of(request.method(), request.uri().path());
    let response = if endpoint != "healthz" && !shared.authorized(request.headers()) {
        ApiError::unauthorized().into_response()
    } else {
        match tokio::time::timeout(shared.request_timeout, next.run(request)).await {
            Ok(response) => response,
            Err(_) => ApiError::timeout().into_response(),
        }
    };
    shared
        .metrics
        .request(endpoint, response.status().as_u16(), started.elapsed());
    response
}

impl Shared {
    /// Whether the request carries the token, compared in constant time (only a length
    /// mismatch returns early, which tells an attacker nothing about the token's bytes).
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.auth else {
            return true;
        };
        let Some(given) = headers.get(AUTHORIZATION).map(HeaderValue::as_bytes) else {
            return false;
        };
        let Some((scheme, credentials)) = given.split_at_checked(7) else {
            return false;
        };
        scheme.eq_ignore_ascii_case(b"bearer ") && bool::from(credentials.ct_eq(token))
    }

    fn window(&self, name: &str) -> Result<&Arc<WindowService>, ApiError> {
        self.windows
            .iter()
            .find(|w| w.name() == name)
            .ok_or_else(|| {
                let known: Vec<String> = self
                    .windows
                    .iter()
                    .map(|w| format!("`{}`", w.name()))
                    .collect();
                ApiError::not_found(
                    "unknown_window",
                    format!(
                        "no window spec named `{}` is served; served: {}",
                        name.chars().take(200).collect::<String>(),
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
            })
    }

    fn identity(&self, identity: &str) -> Result<Arc<str>, ApiError> {
        if identity.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_identity",
                "the identity is empty",
            ));
        }
        if identity.len() > self.max_identity_bytes {
            return Err(ApiError::bad_request(
                "invalid_identity",
                format!(
                    "the identity is {} bytes long; identities are at most {} bytes",
                    identity.len(),
                    self.max_identity_bytes
                ),
            ));
        }
        Ok(Arc::from(identity))
    }

    /// Reads `identity`'s records on the blocking pool (at most `max_concurrent_reads` at
    /// once) and hands them to `then`, there too: the engine's work stays off the async
    /// workers.
    async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        identity: Arc<str>,
        then: impl FnOnce(&Arc<str>, Vec<StoredRecord>) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = self
            .reads
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::internal("the store read limiter was closed"))?;
        let shared = self.clone();
        let work = move || {
            let _permit = permit;
            let started = Instant::now();
            let records = shared.store.load_identity(&identity);
            shared
                .metrics
                .store_read(started.elapsed(), records.is_ok());
            records
                .map(|records| then(&identity, records))
                .map_err(|e| ApiError::store(&e))
        };
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| ApiError::internal(format!("a store read failed: {e}")))?
    }

    /// Reads one identity and computes one row per query; `None` when the store holds no
    /// record of it.
    async fn fetch(
        self: &Arc<Self>,
        window: &Arc<WindowService>,
        identity: Arc<str>,
        queries: Vec<LiveQuery>,
    ) -> Result<Option<Vec<Served>>, ApiError> {
        let service = window.clone();
        let now = Utc::now();
        let served = self
            .read(identity, move |identity, records| {
                if records.is_empty() {
                    return None;
                }
                Some(
                    queries
                        .iter()
                        .map(|q| service.serve(identity, &records, q, now))
                        .collect::<Vec<_>>(),
                )
            })
            .await?;
        match &served {
            None => self.metrics.not_found(window.name()),
            Some(rows) => {
                self.metrics.served(window.name(), rows.len() as u64);
                for row in rows {
                    for (field, count) in &row.errors {
                        self.metrics.evaluation_errors(window.name(), field, *count);
                    }
                }
            }
        }
        Ok(served)
    }

    /// `"identity":…,"window":…,"at":…,"features":{…},"as_of":…,"spec":…`, the members of a
    /// served row and of its log line.
    fn row_members(&self, identity: &str, window: &str, served: &Served, out: &mut String) {
        out.push_str("\"identity\":");
        write_str(identity, JsonStyle::Compact, out);
        out.push_str(",\"window\":");
        write_str(window, JsonStyle::Compact, out);
        push_times(served, out);
        out.push_str(",\"spec\":");
        out.push_str(&self.spec);
    }

    async fn log(&self, identity: &str, window: &str, served: &Served) {
        if let Some(log) = &self.log {
            let mut line = String::with_capacity(served.features.len() + 160);
            line.push_str("{\"served_at\":\"");
            line.push_str(&render_time(&Utc::now()));
            line.push_str("\",");
            self.row_members(identity, window, served, &mut line);
            line.push('}');
            log.send(line).await;
        }
    }
}

/// `,"at":…,"features":{…},"as_of":…`
fn push_times(served: &Served, out: &mut String) {
    out.push_str(",\"at\":\"");
    out.push_str(&render_time(&served.at));
    out.push_str("\",\"features\":");
    out.push_str(&served.features);
    out.push_str(",\"as_of\":");
    match &served.as_of {
        Some(t) => {
            out.push('"');
            out.push_str(&render_time(t));
            out.push('"');
        }
        None => out.push_str("null"),
    }
}

async fn healthz() -> Response {
    json(StatusCode::OK, "{\"status\":\"ok\"}".into())
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.draining.load(Ordering::SeqCst) {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            "{\"status\":\"draining\",\"reasons\":[\"the server is shutting down\"]}".into(),
        );
    }
    let mut reasons = Vec::new();
    for check in &shared.readiness {
        if let Err(why) = check.ready() {
            reasons.push(format!("{}: {why}", check.name()));
        }
    }
    if reasons.is_empty() {
        return json(StatusCode::OK, "{\"status\":\"ready\"}".into());
    }
    let mut body = String::from("{\"status\":\"not_ready\",\"reasons\":[");
    for (i, reason) in reasons.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        write_str(reason, JsonStyle::Compact, &mut body);
    }
    body.push_str("]}");
    json(StatusCode::SERVICE_UNAVAILABLE, body)
}

async fn metrics_text(State(shared): State<Arc<Shared>>) -> Response {
    let mut response = Response::new(Body::from(shared.metrics.render()));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

async fn unknown_route() -> ApiError {
    ApiError::not_found(
        "unknown_route",
        "no such endpoint: see GET /v1/features/{window}/{identity}, POST /v1/features/{window}, \
         GET /v1/blocks/{identity}, /healthz, /readyz, /metrics",
    )
}

async fn wrong_method() -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        message: "this endpoint does not take this method (features: GET one identity, POST a \
                  batch)"
            .into(),
    }
}

/// Percent-decoding keeps a `%` not followed by two hex digits as it is; such a path is
/// refused instead, so that an identity holding `%` must be sent as `%25` and means one thing.
fn check_escapes(uri: &Uri) -> Result<(), ApiError> {
    let path = uri.path().as_bytes();
    let malformed = path.iter().enumerate().any(|(i, b)| {
        *b == b'%'
            && !path
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if malformed {
        return Err(ApiError::bad_request(
            "invalid_identity",
            "the path has a `%` that is not a percent-encoded byte: write `%` as %25",
        ));
    }
    Ok(())
}

fn path_error(rejection: PathRejection) -> ApiError {
    ApiError::bad_request(
        "invalid_identity",
        format!(
            "the path must be percent-encoded UTF-8 (an identity of other bytes cannot be \
             stored): {rejection}"
        ),
    )
}

fn query_error(rejection: QueryRejection) -> ApiError {
    ApiError::bad_request("bad_query", format!("the query string: {rejection}"))
}

/// `GET /v1/features/{window}/{identity}[?at=…&<dimension>=…&context.<field>=…]`
async fn features_one(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    check_escapes(&uri)?;
    let Path((window, identity)) = path.map_err(path_error)?;
    let Query(pairs) = query.map_err(query_error)?;
    let service = shared.window(&window)?;
    let identity = shared.identity(&identity)?;
    let mut at = None;
    let mut block = Vec::new();
    let mut context = Vec::new();
    for (key, value) in pairs {
        if key == "at" {
            if at.is_some() {
                return Err(ApiError::bad_request("bad_at", "`at` is given twice"));
            }
            at = Some(parse_at(&value)?);
        } else if let Some(field) = key.strip_prefix("context.") {
            context.push((field.to_string(), Value::str(&value)));
        } else if service.dimension_names().any(|d| d == key) {
            block.push((key, Value::str(&value)));
        } else {
            let dims: Vec<String> = service
                .dimension_names()
                .map(|d| format!("`{d}`"))
                .collect();
            return Err(ApiError::bad_request(
                "bad_query",
                format!(
                    "unknown query parameter `{}`: this window takes `at`, `context.<field>`{}",
                    key.chars().take(100).collect::<String>(),
                    if dims.is_empty() {
                        String::new()
                    } else {
                        format!(" and the anchor block's dimensions {}", dims.join(", "))
                    }
                ),
            ));
        }
    }
    let block = (!block.is_empty()).then_some(block);
    let query = service.query(at, block, context)?;
    let served = shared.fetch(service, identity.clone(), vec![query]).await?;
    let Some(served) = served.and_then(|rows| rows.into_iter().next()) else {
        return Err(ApiError::not_found(
            "not_found",
            "the store holds no record of this identity",
        ));
    };
    let mut body = String::with_capacity(served.features.len() + 200);
    body.push('{');
    shared.row_members(&identity, service.name(), &served, &mut body);
    body.push('}');
    shared.log(&identity, service.name(), &served).await;
    Ok(json(StatusCode::OK, body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    identities: Vec<BatchEntry>,
    #[serde(default)]
    at: Option<String>,
    #[serde(default)]
    block: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    context: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum BatchEntry {
    Identity(String),
    Detailed(DetailedEntry),
}

/// One identity with its own anchor: the same identity may come several times, e.g. with
/// each candidate offer as `context`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DetailedEntry {
    identity: String,
    #[serde(default)]
    at: Option<String>,
    #[serde(default)]
    block: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    context: Option<serde_json::Map<String, serde_json::Value>>,
}

fn pairs(map: &serde_json::Map<String, serde_json::Value>) -> Vec<(String, Value)> {
    map.iter().map(|(k, v)| (k.clone(), from_json(v))).collect()
}

/// One batch result before it is written.
enum Outcome {
    Ok(Served),
    NotFound,
    Failed(ApiError),
}

/// `POST /v1/features/{window}` with `{"identities": [...], "at", "block", "context"}`.
async fn features_batch(
    State(shared): State<Arc<Shared>>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Path(window) = path.map_err(path_error)?;
    let service = shared.window(&window)?.clone();
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                code: "body_too_large",
                message: format!("the request body is over the server's limit: {rejection}"),
            }
        } else {
            ApiError::bad_request("bad_body", format!("the request body: {rejection}"))
        }
    })?;
    let request: BatchRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "bad_json",
            format!(
                "the body must be {{\"identities\": [\"id\" or {{\"identity\", \"at\", \
                 \"block\", \"context\"}}, ...], \"at\", \"block\", \"context\"}}: {e}"
            ),
        )
    })?;
    if request.identities.len() > shared.max_batch {
        return Err(ApiError::bad_request(
            "too_many_identities",
            format!(
                "{} identities in one request; at most {}",
                request.identities.len(),
                shared.max_batch
            ),
        ));
    }
    let at = request.at.as_deref().map(parse_at).transpose()?;
    let block = request.block.as_ref().map(pairs);
    let context = request.context.as_ref().map(pairs).unwrap_or_default();

    // Per entry: its identity as given, and its identity and query once checked.
    let mut given = Vec::with_capacity(request.identities.len());
    let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(request.identities.len());
    // Entries of one identity share one store read.
    let mut groups: HashMap<Arc<str>, Vec<(usize, LiveQuery)>> = HashMap::new();
    for (i, entry) in request.identities.into_iter().enumerate() {
        let (identity, checked) = match entry {
            BatchEntry::Identity(identity) => {
                let checked = service.query(at, block.clone(), context.clone());
                (identity, checked)
            }
            BatchEntry::Detailed(entry) => {
                let checked = entry
                    .at
                    .as_deref()
                    .map(parse_at)
                    .transpose()
                    .and_then(|own_at| {
                        service.query(
                            own_at.or(at),
                            entry.block.as_ref().map(pairs).or_else(|| block.clone()),
                            entry
                                .context
                                .as_ref()
                                .map(pairs)
                                .unwrap_or_else(|| context.clone()),
                        )
                    });
                (entry.identity, checked)
            }
        };
        let checked = shared.identity(&identity).and_then(|id| Ok((id, checked?)));
        match checked {
            Ok((id, query)) => {
                groups.entry(id).or_default().push((i, query));
                outcomes.push(None);
            }
            Err(e) => outcomes.push(Some(Outcome::Failed(e))),
        }
        given.push(identity);
    }

    let reads = groups.len();
    let mut tasks = tokio::task::JoinSet::new();
    for (identity, entries) in groups {
        let shared = shared.clone();
        let service = service.clone();
        tasks.spawn(async move {
            let (indices, queries): (Vec<usize>, Vec<LiveQuery>) = entries.into_iter().unzip();
            let fetched = shared.fetch(&service, identity, queries).await;
            (indices, fetched)
        });
    }
    let mut store_failures = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (indices, fetched) =
            joined.map_err(|e| ApiError::internal(format!("a batch read failed: {e}")))?;
        match fetched {
            Ok(Some(rows)) => {
                for (i, row) in indices.into_iter().zip(rows) {
                    outcomes[i] = Some(Outcome::Ok(row));
                }
            }
            Ok(None) => {
                for i in indices {
                    outcomes[i] = Some(Outcome::NotFound);
                }
            }
            Err(e) => {
                store_failures.push(e.clone());
                for i in indices {
                    outcomes[i] = Some(Outcome::Failed(e.clone()));
                }
            }
        }
    }
    // A batch none of whose reads succeeded is the store's failure, not a partial success.
    if reads > 0
        && store_failures.len() == reads
        && let Some(e) = store_failures.into_iter().next()
    {
        return Err(e);
    }

    let mut body = String::with_capacity(64 + outcomes.len() * 160);
    body.push_str("{\"window\":");
    write_str(service.name(), JsonStyle::Compact, &mut body);
    body.push_str(",\"spec\":");
    body.push_str(&shared.spec);
    body.push_str(",\"results\":[");
    for (i, (identity, outcome)) in given.iter().zip(&outcomes).enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str("{\"identity\":");
        write_str(identity, JsonStyle::Compact, &mut body);
        match outcome {
            Some(Outcome::Ok(served)) => {
                body.push_str(",\"status\":\"ok\"");
                push_times(served, &mut body);
                shared.log(identity, service.name(), served).await;
            }
            Some(Outcome::NotFound) => {
                body.push_str(
                    ",\"status\":\"not_found\",\"features\":null,\"as_of\":null,\"error\":\
                     {\"code\":\"not_found\",\"message\":\"the store holds no record of this \
                     identity\"}",
                );
            }
            Some(Outcome::Failed(e)) => {
                body.push_str(",\"status\":\"error\",\"features\":null,\"as_of\":null,\"error\":");
                body.push_str(&e.json_object());
            }
            None => {
                body.push_str(",\"status\":\"error\",\"features\":null,\"as_of\":null,\"error\":");
                body.push_str(&ApiError::internal("no result was computed").json_object());
            }
        }
        body.push('}');
    }
    body.push_str("]}");
    Ok(json(StatusCode::OK, body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlocksQuery {
    #[serde(default)]
    aggregate: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /v1/blocks/{identity}[?aggregate=A&limit=N]`: the identity's records as stored.
async fn blocks(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<BlocksQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    check_escapes(&uri)?;
    let Path(identity) = path.map_err(path_error)?;
    let Query(query) = query.map_err(query_error)?;
    let identity = shared.identity(&identity)?;
    let limit = query.limit.unwrap_or(DEFAULT_BLOCK_LIMIT);
    if limit > MAX_BLOCK_LIMIT {
        return Err(ApiError::bad_request(
            "bad_query",
            format!("`limit` is at most {MAX_BLOCK_LIMIT}"),
        ));
    }
    let aggregates = &shared.streaming.aggregates;
    let only = match &query.aggregate {
        None => None,
        Some(name) => match aggregates
            .iter()
            .position(|a| a.name == *name && a.kind != StreamAggregateKind::Variable)
        {
            Some(i) => Some(i),
            None => {
                let stored = aggregates
                    .iter()
                    .filter(|a| a.kind != StreamAggregateKind::Variable)
                    .map(|a| a.name.as_str());
                let hint = dtc_lang::suggest::closest(name, stored.clone())
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                return Err(ApiError::bad_request(
                    "bad_query",
                    format!(
                        "`{}` is not a stored aggregate of `{}`{hint}; its aggregates: {}",
                        name.chars().take(100).collect::<String>(),
                        shared.streaming.name,
                        stored
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        },
    };
    let streaming = shared.streaming.clone();
    let spec = shared.spec.clone();
    let body = shared
        .read(identity, move |identity, records| {
            render_records(&streaming, identity, records, only, limit, &spec)
        })
        .await?;
    body.map(|body| json(StatusCode::OK, body)).ok_or_else(|| {
        ApiError::not_found("not_found", "the store holds no record of this identity")
    })
}

/// `{"identity", "spec", "records": [...]}`: aggregates in spec order, identity records
/// first, then each block aggregate's latest `limit` blocks in start order; `None` when the
/// store holds no record of the identity.
fn render_records(
    plan: &StreamingPlan,
    identity: &str,
    mut records: Vec<StoredRecord>,
    only: Option<usize>,
    limit: usize,
    spec: &str,
) -> Option<String> {
    if records.is_empty() {
        return None;
    }
    let position = |r: &StoredRecord| {
        plan.aggregates
            .iter()
            .position(|a| *a.name == *r.key.aggregate)
    };
    records.sort_by_key(|r| (position(r), r.start_time, r.order));
    let mut body = String::with_capacity(256 * records.len().min(limit * 4) + 64);
    body.push_str("{\"identity\":");
    write_str(identity, JsonStyle::Compact, &mut body);
    body.push_str(",\"spec\":");
    body.push_str(spec);
    body.push_str(",\"records\":[");
    let mut first = true;
    for (agg, def) in plan.aggregates.iter().enumerate() {
        if only.is_some_and(|o| o != agg) {
            continue;
        }
        let of_agg: Vec<&StoredRecord> = records
            .iter()
            .filter(|r| position(r) == Some(agg) && r.columns.len() == def.layout.columns.len())
            .collect();
        let kept = match of_agg.first().map(|r| r.kind) {
            Some(RecordKind::Block) => &of_agg[of_agg.len().saturating_sub(limit)..],
            _ => &of_agg[..],
        };
        for r in kept {
            if !first {
                body.push(',');
            }
            first = false;
            body.push_str(&record_json(
                identity,
                &def.name,
                &r.key.dims,
                &def.layout,
                &r.columns,
            ));
        }
    }
    body.push_str("]}");
    Some(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_labelled_by_path_and_method() {
        assert_eq!(endpoint_of(&Method::GET, "/v1/features/w/u1"), "features");
        assert_eq!(
            endpoint_of(&Method::POST, "/v1/features/w"),
            "features_batch"
        );
        assert_eq!(endpoint_of(&Method::GET, "/v1/blocks/u1"), "blocks");
        assert_eq!(endpoint_of(&Method::GET, "/healthz"), "healthz");
        assert_eq!(endpoint_of(&Method::GET, "/nothing"), "other");
    }

    #[test]
    fn a_percent_sign_must_start_an_escape() {
        for ok in ["/v1/blocks/a%25b", "/v1/blocks/%C3%BC", "/v1/blocks/plain"] {
            assert!(check_escapes(&Uri::from_static(ok)).is_ok(), "{ok}");
        }
        for bad in ["/v1/blocks/a%ZZ", "/v1/blocks/a%2", "/v1/blocks/a%"] {
            assert!(check_escapes(&Uri::from_static(bad)).is_err(), "{bad}");
        }
    }
}
