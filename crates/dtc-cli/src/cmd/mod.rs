//! Subcommands, one module each.

pub mod blocks;
pub mod kafka;
pub mod records;
pub mod schema;
pub mod serve;
pub mod test;
pub mod transform;
pub mod validate;
