//! The compiled plan and its evaluator.
//!
//! [`compile`] resolves the syntax trees of `dtc-lang` into [`plan`] types: every name becomes a
//! [`plan::Slot`], every function a [`plan::Builtin`], and expression types are checked.
//! [`eval`] executes compiled expressions over the [`value::Value`] model.

pub mod codec;
pub mod compile;
pub mod eval;
pub mod hint;
pub mod plan;
pub mod record;
mod text;
pub mod value;
