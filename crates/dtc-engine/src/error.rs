//! Runtime errors of a run. Bad events are not errors (they go to the dead-letter output);
//! these stop a run, and say whose fault it is and whether retrying can help.

use std::path::PathBuf;

/// Who has to act on an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The input or the command line.
    User,
    /// The machine or a service (disk full, store unavailable).
    External,
    /// dtc itself.
    Bug,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("block store: {0}")]
    Store(#[from] dtc_store::StoreError),
    #[error("spill file {path}: {source}")]
    Spill {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("spill file {path} is corrupt: {detail}")]
    SpillCorrupt { path: PathBuf, detail: String },
    #[error("output: {0}")]
    Sink(String),
    #[error("could not start the thread that writes to the block store: {0}")]
    WriterThread(std::io::Error),
    #[error("internal error (a bug in dtc): {0}")]
    Internal(&'static str),
}

impl EngineError {
    pub fn fault(&self) -> Fault {
        match self {
            EngineError::Store(e) => match e.fault() {
                dtc_store::Fault::Usage => Fault::User,
                dtc_store::Fault::CorruptData
                | dtc_store::Fault::Io
                | dtc_store::Fault::Service => Fault::External,
            },
            EngineError::Spill { .. } | EngineError::Sink(_) | EngineError::WriterThread(_) => {
                Fault::External
            }
            EngineError::SpillCorrupt { .. } | EngineError::Internal(_) => Fault::Bug,
        }
    }

    /// True when running the same command again may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            EngineError::Store(e) => e.retryable(),
            EngineError::Spill { .. } | EngineError::Sink(_) | EngineError::WriterThread(_) => true,
            EngineError::SpillCorrupt { .. } | EngineError::Internal(_) => false,
        }
    }
}
