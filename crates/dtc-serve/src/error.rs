//! Errors: [`ServeError`] stops the server (or keeps it from starting); [`ApiError`] answers
//! one request, as `{"error": {"code", "message"}}` with a status that says whose fault it is.

use axum::http::StatusCode;
use dtc_engine::error::Fault;
use dtc_store::StoreError;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("the auth token file {path}: {why}")]
    AuthToken { path: String, why: String },
    #[error("the served-feature log {path}: {source}")]
    ServedLog {
        path: String,
        source: std::io::Error,
    },
    #[error("two window specs are named `{0}`: the API addresses windows by name")]
    DuplicateWindow(String),
    #[error("the HTTP server failed: {0}")]
    Server(std::io::Error),
}

impl ServeError {
    /// Who has to act.
    pub fn fault(&self) -> Fault {
        match self {
            ServeError::AuthToken { .. } | ServeError::DuplicateWindow(_) => Fault::User,
            ServeError::Bind { source, .. } | ServeError::ServedLog { source, .. } => {
                match source.kind() {
                    std::io::ErrorKind::AddrInUse
                    | std::io::ErrorKind::AddrNotAvailable
                    | std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::InvalidInput => Fault::User,
                    _ => Fault::External,
                }
            }
            ServeError::Server(_) => Fault::External,
        }
    }

    /// Whether starting the server again, unchanged, may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            ServeError::Bind { source, .. } => source.kind() == std::io::ErrorKind::AddrInUse,
            ServeError::Server(_) => true,
            _ => false,
        }
    }
}

/// One request's failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, for programs: `bad_request`, `invalid_identity`, `not_found`, ...
    pub code: &'static str,
    /// For people.
    pub message: String,
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized() -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "this endpoint needs `Authorization: Bearer <token>` with the server's token"
                .into(),
        }
    }

    pub fn timeout() -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "timeout",
            message: "the request took longer than the server's request timeout; retry".into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: format!("internal error (a bug in dtc): {}", message.into()),
        }
    }

    /// A failed store read: 503 when retrying may help (the store is down or throttling, as
    /// Chronon answers when its KV store is), 500 otherwise.
    pub fn store(e: &StoreError) -> ApiError {
        let (status, code) = if e.retryable() {
            (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
        } else {
            (StatusCode::INTERNAL_SERVER_ERROR, "store_error")
        };
        ApiError {
            status,
            code,
            message: format!("reading the block store: {e}"),
        }
    }

    /// `{"code", "message"}`, the inside of the error object.
    pub fn json_object(&self) -> String {
        let mut out = String::with_capacity(64 + self.message.len());
        out.push_str("{\"code\":");
        dtc_io::format::write_str(self.code, dtc_io::format::JsonStyle::Compact, &mut out);
        out.push_str(",\"message\":");
        dtc_io::format::write_str(&self.message, dtc_io::format::JsonStyle::Compact, &mut out);
        out.push('}');
        out
    }

    /// The response body: `{"error": {"code", "message"}}`.
    pub fn body(&self) -> String {
        format!("{{\"error\":{}}}", self.json_object())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_json_with_a_code_and_a_message() {
        let e = ApiError::bad_request("bad_at", "`at` is \"x\"");
        let body: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(body["error"]["code"], "bad_at");
        assert_eq!(body["error"]["message"], "`at` is \"x\"");
    }

    #[test]
    fn store_errors_are_503_when_a_retry_may_help() {
        let down = StoreError::Service {
            service: "dynamodb",
            message: "throttled".into(),
            retryable: true,
            detail: String::new(),
        };
        assert_eq!(
            ApiError::store(&down).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let corrupt = StoreError::corrupt("embedded store", "bad page");
        assert_eq!(
            ApiError::store(&corrupt).status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
