//! Subcommands, one module each.

pub mod blocks;
pub mod records;
pub mod test;
pub mod transform;
pub mod validate;
