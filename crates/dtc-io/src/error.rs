//! The crate's error type.

use std::path::PathBuf;

/// Failures of inputs, dead-letter output and sinks. Bad event data is not an error here: it
/// is a [`crate::Rejection`].
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("input {path} does not exist")]
    NotFound { path: PathBuf },
    #[error("cannot list directory {path}: {source}")]
    Walk {
        path: PathBuf,
        source: walkdir::Error,
    },
    #[error("empty input list")]
    NoInput,
    #[error("{location}: remote inputs ({scheme}://) are not supported yet")]
    UnsupportedScheme { location: String, scheme: String },
    #[error("reading {input}: {source}")]
    Read {
        input: String,
        source: std::io::Error,
    },
    /// A compressed input whose data is damaged or cut short: nothing read from it can be
    /// trusted.
    #[error("{input} is corrupt or truncated at compressed byte {offset}: {detail}")]
    Corrupt {
        input: String,
        offset: u64,
        detail: String,
    },
    #[error("writing {target}: {source}")]
    Write {
        target: String,
        source: std::io::Error,
    },
    #[error("parquet output {target}: {source}")]
    Parquet {
        target: String,
        source: parquet::errors::ParquetError,
    },
    #[error("building a record batch: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("serializing JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid sink option: {0}")]
    Config(String),
    /// A location that names nothing this build can read or write (`s3:/x`, `s3://`).
    #[error("{0}")]
    Location(String),
    /// A service (S3) refused or could not be reached: `message` is one line naming the
    /// resource and the fix; `detail` the service client's whole report, for a verbose log.
    #[error("{message}")]
    Service {
        message: String,
        detail: String,
        cause: ServiceCause,
    },
}

/// Why a service request failed, as far as it tells whose move it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceCause {
    /// The named resource (bucket, object, table) does not exist.
    Missing,
    /// The service refused the credentials, or there are none.
    Credentials,
    /// The configuration is incomplete (no region).
    Setup,
    /// The endpoint could not be reached, or timed out.
    Unreachable,
    /// The service asked to slow down, or failed on its side.
    Throttled,
    /// Anything else the service refused.
    Refused,
}

impl ServiceCause {
    /// Whether the user has to change something (the command line, the configuration).
    pub fn is_users(self) -> bool {
        matches!(
            self,
            ServiceCause::Missing | ServiceCause::Credentials | ServiceCause::Setup
        )
    }

    /// Whether repeating the request later may succeed.
    pub fn retryable(self) -> bool {
        matches!(self, ServiceCause::Unreachable | ServiceCause::Throttled)
    }
}
