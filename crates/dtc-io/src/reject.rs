//! Why an event was not applied.

use std::fmt;

/// The reason an input line was rejected. The names ([`RejectReason::as_str`]) are stable:
/// they appear in run summaries, metrics and dead-letter lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// The line is not valid JSON.
    InvalidJson,
    /// Valid JSON, but not an object.
    NotAnObject,
    /// The line's bytes are not UTF-8.
    InvalidUtf8,
    /// The line exceeds the reader's maximum line length.
    LineTooLong,
    /// The `Identity` expression failed or gave null.
    MissingIdentity,
    /// The `Identity` expression gave an empty string.
    EmptyIdentity,
    /// The `Identity` expression gave something that cannot serve as an identity.
    BadIdentity,
    /// The `Time` expression gave null or failed.
    MissingTime,
    /// The `Time` expression gave something that is not a datetime.
    BadTime,
    /// The event is later than the allowed lateness of a live stream.
    TooLate,
    /// A log record without a value (a Kafka tombstone), or with an empty one.
    NullValue,
    /// The whole input file is damaged (a corrupt or truncated compressed file) and was left
    /// out of the run (`--skip-bad-files`).
    CorruptFile,
}

impl RejectReason {
    /// Every reason, in a stable order (summaries list them in this order).
    pub const ALL: [RejectReason; 12] = [
        RejectReason::InvalidJson,
        RejectReason::NotAnObject,
        RejectReason::InvalidUtf8,
        RejectReason::LineTooLong,
        RejectReason::MissingIdentity,
        RejectReason::EmptyIdentity,
        RejectReason::BadIdentity,
        RejectReason::MissingTime,
        RejectReason::BadTime,
        RejectReason::TooLate,
        RejectReason::NullValue,
        RejectReason::CorruptFile,
    ];

    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::NotAnObject => "not_an_object",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::LineTooLong => "line_too_long",
            RejectReason::MissingIdentity => "missing_identity",
            RejectReason::EmptyIdentity => "empty_identity",
            RejectReason::BadIdentity => "bad_identity",
            RejectReason::MissingTime => "missing_time",
            RejectReason::BadTime => "bad_time",
            RejectReason::TooLate => "too_late",
            RejectReason::NullValue => "null_value",
            RejectReason::CorruptFile => "corrupt_file",
        }
    }

    /// Position in [`RejectReason::ALL`], for counters kept in arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected line's reason with a human-readable detail (e.g. serde's message and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: RejectReason,
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Rejection {
        Rejection {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            f.write_str(self.reason.as_str())
        } else {
            write!(f, "{}: {}", self.reason, self.detail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_indexes_match_all() {
        for (i, r) in RejectReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let names: Vec<&str> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            names,
            [
                "invalid_json",
                "not_an_object",
                "invalid_utf8",
                "line_too_long",
                "missing_identity",
                "empty_identity",
                "bad_identity",
                "missing_time",
                "bad_time",
                "too_late",
                "null_value",
                "corrupt_file"
            ]
        );
        assert_eq!(
            Rejection::new(RejectReason::BadTime, "not a datetime").to_string(),
            "bad_time: not a datetime"
        );
    }
}
