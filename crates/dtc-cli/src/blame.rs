//! Whose fault a runtime error is, and whether running again can help, for every error type a
//! run can meet. The CLI prints this under the message, as Arroyo does.

use std::fmt::Display;

use dtc_engine::error::Fault;

pub trait Blame: Display {
    fn fault(&self) -> Fault;
    fn retryable(&self) -> bool;
}

impl Blame for dtc_engine::EngineError {
    fn fault(&self) -> Fault {
        dtc_engine::EngineError::fault(self)
    }

    fn retryable(&self) -> bool {
        dtc_engine::EngineError::retryable(self)
    }
}

impl Blame for dtc_store::StoreError {
    fn fault(&self) -> Fault {
        match dtc_store::StoreError::fault(self) {
            dtc_store::Fault::Usage => Fault::User,
            dtc_store::Fault::CorruptData | dtc_store::Fault::Io | dtc_store::Fault::Service => {
                Fault::External
            }
        }
    }

    fn retryable(&self) -> bool {
        dtc_store::StoreError::retryable(self)
    }
}

impl Blame for dtc_io::IoError {
    fn fault(&self) -> Fault {
        use dtc_io::IoError::*;
        match self {
            Open { .. }
            | NotFound { .. }
            | Walk { .. }
            | NoInput
            | UnsupportedScheme { .. }
            | Config(_) => Fault::User,
            Read { .. } | Write { .. } => Fault::External,
            Parquet { .. } | Arrow(_) | Json(_) => Fault::Bug,
        }
    }

    fn retryable(&self) -> bool {
        matches!(self.fault(), Fault::External)
    }
}

impl Blame for std::io::Error {
    fn fault(&self) -> Fault {
        Fault::External
    }

    fn retryable(&self) -> bool {
        true
    }
}

/// The line printed under an error message.
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
