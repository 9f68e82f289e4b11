//! The errors that stop a run, each saying whose fault it is and whether running the same
//! command again can help (as Arroyo's do). Bad events are not errors: they are dead letters.

use dtc_engine::EngineError;
use dtc_io::IoError;
use dtc_store::StoreError;

pub use dtc_engine::error::Fault;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The command asks for something that cannot be done as asked.
    #[error("{0}")]
    Usage(String),
    /// A command that reads a store was pointed at a location that holds none.
    #[error("no store at {location}{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    MissingStore {
        location: String,
        suggestion: Option<String>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A bounded input whose data is damaged: nothing of the run was committed.
    #[error(
        "{error}; nothing of this run was committed (the file is left out with --skip-bad-files)"
    )]
    BadInput { error: IoError },
    /// A recorded commit could not be finished.
    #[error("finishing the commit of run {run_id} recorded in the store: {source}")]
    Recovery {
        run_id: String,
        source: Box<RunError>,
    },
    #[error("internal error (a bug in dtc): {0}")]
    Internal(String),
}

impl RunError {
    /// Who has to act.
    pub fn fault(&self) -> Fault {
        match self {
            RunError::Usage(_) | RunError::MissingStore { .. } | RunError::BadInput { .. } => {
                Fault::User
            }
            RunError::Store(e) => store_fault(e),
            RunError::Io(e) => io_blame(e).0,
            RunError::Engine(e) => e.fault(),
            RunError::Recovery { source, .. } => source.fault(),
            RunError::Internal(_) => Fault::Bug,
        }
    }

    /// Whether running the same command again, unchanged, may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            RunError::Usage(_)
            | RunError::MissingStore { .. }
            | RunError::BadInput { .. }
            | RunError::Internal(_) => false,
            RunError::Store(e) => e.retryable(),
            RunError::Io(e) => io_blame(e).1,
            RunError::Engine(e) => match e {
                EngineError::Store(e) => e.retryable(),
                EngineError::Spill { source, .. } => io_kind_blame(source.kind()).1,
                other => other.retryable(),
            },
            RunError::Recovery { source, .. } => source.retryable(),
        }
    }

    /// Whether the command line (rather than the run) is at fault: front ends exit with 2.
    pub fn is_usage(&self) -> bool {
        matches!(self, RunError::Usage(_) | RunError::MissingStore { .. })
    }

    /// A service client's whole report, for a verbose log; the message is one line.
    pub fn detail(&self) -> Option<&str> {
        let detail = match self {
            RunError::Io(IoError::Service { detail, .. })
            | RunError::BadInput {
                error: IoError::Service { detail, .. },
            }
            | RunError::Store(StoreError::Service { detail, .. }) => detail.as_str(),
            RunError::Recovery { source, .. } => return source.detail(),
            _ => return None,
        };
        Some(detail).filter(|d| !d.is_empty())
    }
}

fn store_fault(e: &StoreError) -> Fault {
    match e.fault() {
        dtc_store::Fault::Usage => Fault::User,
        dtc_store::Fault::CorruptData | dtc_store::Fault::Io | dtc_store::Fault::Service => {
            Fault::External
        }
    }
}

/// Whose fault a failed file operation is, and whether trying again can help.
fn io_kind_blame(kind: std::io::ErrorKind) -> (Fault, bool) {
    use std::io::ErrorKind::*;
    match kind {
        // A path that names nothing writable: the command line has to change.
        PermissionDenied | ReadOnlyFilesystem | NotADirectory | IsADirectory | NotFound
        | AlreadyExists | InvalidInput | InvalidFilename => (Fault::User, false),
        // The machine has to change first.
        StorageFull | QuotaExceeded | FileTooLarge => (Fault::External, false),
        _ => (Fault::External, true),
    }
}

/// [`RunError::fault`] and [`RunError::retryable`] of an [`IoError`].
fn io_blame(e: &IoError) -> (Fault, bool) {
    match e {
        IoError::Open { .. }
        | IoError::NotFound { .. }
        | IoError::Walk { .. }
        | IoError::NoInput
        | IoError::UnsupportedScheme { .. }
        | IoError::Config(_)
        | IoError::Location(_)
        | IoError::Corrupt { .. } => (Fault::User, false),
        IoError::Read { source, .. } => match io_kind_blame(source.kind()) {
            // A file that vanished or cannot be read is the input's fault.
            (Fault::User, _) => (Fault::User, false),
            other => other,
        },
        IoError::Write { source, .. } => io_kind_blame(source.kind()),
        IoError::Service { cause, .. } => {
            let fault = if cause.is_users() {
                Fault::User
            } else {
                Fault::External
            };
            (fault, cause.retryable())
        }
        IoError::Parquet { .. } | IoError::Arrow(_) | IoError::Json(_) => (Fault::Bug, false),
    }
}

/// The line a front end prints under an error message.
pub fn explain(fault: Fault, retryable: bool) -> &'static str {
    match (fault, retryable) {
        (Fault::User, _) => "cause: the input or the command line; fix it and run again",
        (Fault::External, true) => {
            "cause: the machine or an external service; running again may help"
        }
        (Fault::External, false) => {
            "cause: the machine or an external service; running again will not help until it is fixed"
        }
        (Fault::Bug, _) => "cause: a bug in dtc; please report it with this message",
    }
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;

    use super::*;

    fn write_error(kind: ErrorKind) -> RunError {
        RunError::Io(IoError::Write {
            target: "out".into(),
            source: std::io::Error::from(kind),
        })
    }

    /// One case per class of error, with the line the user reads.
    #[test]
    fn every_error_class_says_whose_fault_and_whether_a_retry_helps() {
        let cases: Vec<(RunError, &str)> = vec![
            (
                RunError::Usage("bad flag".into()),
                "cause: the input or the command line; fix it and run again",
            ),
            (
                RunError::MissingStore {
                    location: "dtc-dta".into(),
                    suggestion: Some("dtc-data".into()),
                },
                "cause: the input or the command line; fix it and run again",
            ),
            (
                RunError::BadInput {
                    error: IoError::Corrupt {
                        input: "a.gz".into(),
                        offset: 10,
                        detail: "corrupt deflate stream".into(),
                    },
                },
                "cause: the input or the command line; fix it and run again",
            ),
            (
                write_error(ErrorKind::PermissionDenied),
                "cause: the input or the command line; fix it and run again",
            ),
            (
                write_error(ErrorKind::StorageFull),
                "cause: the machine or an external service; running again will not help until it is fixed",
            ),
            (
                write_error(ErrorKind::TimedOut),
                "cause: the machine or an external service; running again may help",
            ),
            (
                RunError::Io(IoError::Service {
                    message: "S3 bucket `b` does not exist".into(),
                    detail: String::new(),
                    cause: dtc_io::ServiceCause::Missing,
                }),
                "cause: the input or the command line; fix it and run again",
            ),
            (
                RunError::Io(IoError::Service {
                    message: "cannot reach S3".into(),
                    detail: String::new(),
                    cause: dtc_io::ServiceCause::Unreachable,
                }),
                "cause: the machine or an external service; running again may help",
            ),
            (
                RunError::Store(StoreError::Service {
                    service: "dynamodb",
                    message: "throttled".into(),
                    retryable: true,
                    detail: String::new(),
                }),
                "cause: the machine or an external service; running again may help",
            ),
            (
                RunError::Store(StoreError::Locked {
                    path: "dtc-data/blocks.redb".into(),
                }),
                "cause: the input or the command line; fix it and run again",
            ),
            (
                RunError::Store(StoreError::corrupt("embedded store", "bad page")),
                "cause: the machine or an external service; running again will not help until it is fixed",
            ),
            (
                RunError::Engine(EngineError::SpillCorrupt {
                    path: "spill".into(),
                    detail: "x".into(),
                }),
                "cause: a bug in dtc; please report it with this message",
            ),
            (
                RunError::Internal("oops".into()),
                "cause: a bug in dtc; please report it with this message",
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(
                explain(error.fault(), error.retryable()),
                expected,
                "{error}"
            );
        }
    }

    #[test]
    fn a_missing_store_names_the_likely_one() {
        let e = RunError::MissingStore {
            location: "dtc-dta".into(),
            suggestion: Some("dtc-data".into()),
        };
        assert_eq!(
            e.to_string(),
            "no store at dtc-dta (did you mean `dtc-data`?)"
        );
        assert!(e.is_usage());
    }
}
