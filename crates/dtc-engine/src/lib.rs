//! Operators: the code that executes compiled plans over events and blocks.
//!
//! - [`streaming`]: one identity's state in, one event in, state out (contract section 3).
//!   Batch runs and live streams drive the same operator.
//! - [`sort`]: the batch path's per-identity event-time ordering, with spilling so memory stays
//!   bounded whatever the input size (contract section 7).
//! - [`window`]: anchors and windows over an identity's blocks to training rows, and the same
//!   code at a virtual anchor for live features (contract section 5).
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
