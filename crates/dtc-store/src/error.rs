//! The one error type of the store crate.

use std::path::PathBuf;

/// Whose fault a [`StoreError`] is, so callers can pick an exit code or a message prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Stored bytes could not be read back: a damaged file or a bug in an older writer.
    CorruptData,
    /// The local file system failed or refused.
    Io,
    /// A remote backend service (DynamoDB) failed or throttled.
    Service,
    /// The caller asked for something the store cannot do (bad URI, invalid record, a store
    /// that is in use).
    Usage,
}

/// An error of a [`crate::BlockStore`] operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("corrupt data in {store}: {detail}")]
    Corrupt { store: String, detail: String },
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the store at {} is locked: is another dtc run using this store?", path.display())]
    Locked { path: PathBuf },
    #[error("{message}")]
    Service {
        service: &'static str,
        /// One line.
        message: String,
        retryable: bool,
        /// The service client's whole report, for a verbose log (may be empty).
        detail: String,
    },
    /// The backend is not set up for this run (e.g. a DynamoDB table that does not exist).
    #[error("{0}")]
    Setup(String),
    /// Another writer changed a record since it was read (a newer stored version).
    #[error("write conflict: {0}")]
    Conflict(String),
    /// A fenced write (see `WriteBatch::expect_checkpoints`) found these partitions' checkpoints
    /// moved by another writer: nothing was written.
    #[error("fenced: the checkpoints of {} were moved by another consumer; this one no longer owns them", partitions.join(", "))]
    Fenced { partitions: Vec<String> },
    #[error("invalid write: {0}")]
    InvalidWrite(String),
    /// A command that only reads a store was pointed at a location that holds none.
    #[error("no store at {location}")]
    Missing { location: String },
    #[error("unsupported store `{uri}`: use `memory:`, `file:PATH` or a directory path")]
    UnsupportedUri { uri: String },
}

impl StoreError {
    /// Whose fault the error is.
    pub fn fault(&self) -> Fault {
        match self {
            StoreError::Corrupt { .. } => Fault::CorruptData,
            StoreError::Io { .. } => Fault::Io,
            StoreError::Service { .. } => Fault::Service,
            StoreError::Locked { .. }
            | StoreError::InvalidWrite(_)
            | StoreError::Setup(_)
            | StoreError::Conflict(_)
            | StoreError::Fenced { .. }
            | StoreError::Missing { .. }
            | StoreError::UnsupportedUri { .. } => Fault::Usage,
        }
    }

    /// Whether repeating the same operation later may succeed (throttling, timeouts). Corrupt
    /// data, invalid writes and a store held by another run do not heal by retrying.
    pub fn retryable(&self) -> bool {
        match self {
            StoreError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
            ),
            StoreError::Service { retryable, .. } => *retryable,
            StoreError::Corrupt { .. }
            | StoreError::Locked { .. }
            | StoreError::InvalidWrite(_)
            | StoreError::Setup(_)
            | StoreError::Conflict(_)
            | StoreError::Fenced { .. }
            | StoreError::Missing { .. }
            | StoreError::UnsupportedUri { .. } => false,
        }
    }

    /// A [`StoreError::Corrupt`] for `store`.
    pub fn corrupt(store: impl Into<String>, detail: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            store: store.into(),
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_and_retry_classification() {
        let timeout = StoreError::Io {
            path: PathBuf::from("x"),
            source: std::io::Error::from(std::io::ErrorKind::TimedOut),
        };
        assert!(timeout.retryable());
        assert_eq!(timeout.fault(), Fault::Io);
        let denied = StoreError::Io {
            path: PathBuf::from("x"),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert!(!denied.retryable());
        let throttled = StoreError::Service {
            service: "dynamodb",
            message: "throttled".into(),
            retryable: true,
            detail: String::new(),
        };
        assert!(throttled.retryable());
        assert_eq!(throttled.fault(), Fault::Service);
        let corrupt = StoreError::corrupt("memory store", "bad bytes");
        assert!(!corrupt.retryable());
        assert_eq!(corrupt.fault(), Fault::CorruptData);
        let locked = StoreError::Locked {
            path: PathBuf::from("d"),
        };
        assert!(locked.to_string().contains("another dtc run"));
    }
}
