//! Resolver and type checker: syntax trees → compiled plans.
//!
//! Names are bound to [`crate::plan::Slot`]s (contract 4.2), calls to [`crate::plan::Builtin`]
//! and [`crate::plan::Method`] (4.3, 4.6), and a static type is inferred for every expression so
//! that mismatches certain to fail at run time are reported at load time (4.5).

mod expr;
mod hint;
mod names;
mod streaming;
mod types;
mod window;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use dtc_lang::diagnostic::Diagnostic;
use dtc_lang::syntax::{Spec, SpecKind};

use crate::plan::{StreamingPlan, WindowPlan};

/// Every spec that compiled without errors, by kind.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub streaming: Vec<Arc<StreamingPlan>>,
    pub window: Vec<Arc<WindowPlan>>,
}

/// Compiles all specs together, so window specs are checked against their streaming spec
/// (`SourceBTS`, by name). Returns every diagnostic found, in one pass; a spec with errors is
/// left out of the catalog.
pub fn compile(specs: &[Spec]) -> (Catalog, Vec<Diagnostic>) {
    let mut catalog = Catalog::default();
    let mut diags = Vec::new();
    let mut streams: Vec<window::StreamEntry> = Vec::new();
    for spec in specs.iter().filter(|s| s.kind.value == SpecKind::Streaming) {
        let aggs = streaming::agg_infos(spec);
        let plan = streaming::compile(spec, &aggs, &mut diags).map(Arc::new);
        if let Some(plan) = &plan {
            catalog.streaming.push(Arc::clone(plan));
        }
        // A duplicate spec name is the loader's error; windows bind to the first one.
        if !streams.iter().any(|s| s.name == spec.name.value) {
            streams.push(window::StreamEntry {
                name: spec.name.value.clone(),
                aggs,
                plan,
            });
        }
    }
    for spec in specs.iter().filter(|s| s.kind.value == SpecKind::Window) {
        if let Some(plan) = window::compile(spec, &streams, &mut diags) {
            catalog.window.push(Arc::new(plan));
        }
    }
    (catalog, diags)
}
