//! Subcommands, one module each.

pub mod validate;
