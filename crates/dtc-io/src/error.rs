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
}
