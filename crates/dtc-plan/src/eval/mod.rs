//! Evaluation of compiled expressions (contract sections 4.3–4.5 and 9).

use crate::plan::Slot;
use crate::value::Value;

/// What an expression can read: the engine implements this for a streaming event, a window
/// anchor, or a live feature query.
pub trait Scope {
    fn load(&self, slot: Slot) -> Value;
}
