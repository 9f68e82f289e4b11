//! The run library: everything between a command line and the engine, so that the CLI, a
//! long-running consumer and a feature server run the same code.
//!
//! - [`specs`]: loading spec files and compiling them into plans, with their diagnostics.
//! - [`locations`]: what a URI names: block stores (`./dtc-data`, `file:`, `memory:`,
//!   `dynamodb://`), sources (files, directories, `-`, `s3://`) and outputs (a directory,
//!   `s3://`).
//! - [`commit`]: the commit protocol: a run's records, input checkpoints and the manifest of
//!   its outputs and dead letters become durable in one store write; the outputs are published
//!   after it, and a restart finishes any publish a crash interrupted (docs/commit-protocol.md).
//! - [`batch`]: a streaming run over bounded sources (events → blocks, and rows in the same
//!   pass), and [`window`]: rows from the blocks of a store.
//! - [`live`]: a continuous run over an unbounded source (Kafka), exact in event time, fresh,
//!   and committed exactly once with its offsets.
//! - [`report`]: what a run did, as data for the front end to render.
//! - [`spectest`]: spec unit tests (`dtc test`): test files bound to their specs, run, and
//!   their unmet expectations as data.
//!
//! The library prints nothing and reads no environment variables: front ends do.

pub mod batch;
pub mod commit;
pub mod error;
pub mod live;
pub mod locations;
pub mod report;
pub mod specs;
pub mod spectest;
pub mod window;

pub use error::{Fault, RunError};
