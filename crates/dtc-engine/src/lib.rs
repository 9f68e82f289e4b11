//! Operators: the code that executes compiled plans over events and blocks.
//!
//! - [`streaming`]: one identity's state in, one event in, state out (docs/language.md section 4).
//!   Batch runs and live streams drive the same operator.
//! - [`sort`]: the batch path's per-identity event-time ordering, with spilling so memory stays
//!   bounded whatever the input size (docs/language.md section 13).
//! - [`window`]: anchors and windows over an identity's blocks to training rows, and the same
//!   code at a virtual anchor for live features (docs/language.md section 11).
//! - [`batch`]: a batch run that ties them to a block store.
//!
//! The engine knows the [`dtc_store::BlockStore`] seam, never a backend.

pub mod batch;
pub mod error;
pub mod event;
pub mod sort;
pub mod stats;
pub mod streaming;
pub mod window;

#[cfg(test)]
mod testkit;

pub use error::EngineError;
