//! Moving data in and out of the engine, and nothing else.
//!
//! - [`source`]: the record-level seam (partition, offset, payload) that files and logs share.
//! - [`input`]: where raw event lines come from (files, directories, `.gz`, stdin; a remote
//!   object store plugs in through [`input::Input`]), read line by line with bounded memory.
//! - [`extract`]: projection pushdown: only the JSON paths a plan reads become [`Value`]s;
//!   everything else in an event is skipped without building a tree.
//! - [`reject`] and [`dead_letter`]: why an event was not applied, and the dead-letter output
//!   that keeps every such event with its reason.
//! - [`sink`]: where rows and records go: Parquet, JSON lines, and Blurr's text format.
//! - [`output`]: a run's parts staged while it works and published at its commit.
//! - [`format`]: the value encodings shared by the sinks (ISO datetimes, Python float repr).
//!
//! [`Value`]: dtc_plan::value::Value

pub mod dead_letter;
pub mod error;
pub mod extract;
pub mod format;
pub mod input;
pub mod output;
pub mod reject;
pub mod sink;
pub mod source;

pub use dead_letter::DeadLetterWriter;
pub use error::{IoError, ServiceCause};
pub use extract::{Extractor, RawValue};
pub use input::{Input, InputSpec, LineReader};
pub use reject::{RejectReason, Rejection};
pub use sink::{RowSink, SinkSummary};
