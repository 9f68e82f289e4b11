//! Subcommands, one module each.

pub mod blocks;
pub mod kafka;
pub mod records;
pub mod transform;
pub mod validate;
