//! Resolver and type checker: syntax trees → compiled plans.
//!
//! Names are bound to [`crate::plan::Slot`]s (docs/language.md section 6), calls to
//! [`crate::plan::Builtin`] and [`crate::plan::Method`] (sections 7 and 8), and a static type is
//! inferred for every expression so that mismatches certain to fail at run time are reported at
//! load time (section 9).

mod expr;
mod names;
mod schedule;
mod streaming;
mod types;
mod window;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use dtc_lang::diagnostic::{Code, Diagnostic};
use dtc_lang::span::FileId;
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
    compile_with_dirs(specs, &|_, _| true)
}

/// Like [`compile`], for specs from several directories: `same_dir(a, b)` says whether two
/// files are in one directory. A window spec binds to the streaming spec of its `SourceBTS`
/// name in its own directory when several are loaded; two streaming specs of one directory
/// may not share a name (E0312).
pub fn compile_with_dirs(
    specs: &[Spec],
    same_dir: &dyn Fn(FileId, FileId) -> bool,
) -> (Catalog, Vec<Diagnostic>) {
    let mut catalog = Catalog::default();
    let mut diags = Vec::new();
    let mut streams: Vec<window::StreamEntry> = Vec::new();
    for spec in specs.iter().filter(|s| s.kind.value == SpecKind::Streaming) {
        if streams
            .iter()
            .any(|s| s.name == spec.name.value && same_dir(s.file, spec.file))
        {
            diags.push(
                Diagnostic::new(
                    Code::E0312,
                    spec.file,
                    spec.name.span,
                    format!(
                        "another streaming spec in this directory is also named `{}`",
                        spec.name.value
                    ),
                )
                .with_label("duplicate streaming spec name")
                .with_hint("window specs find their streaming spec by name: rename one"),
            );
            continue;
        }
        let aggs = streaming::agg_infos(spec);
        let plan = streaming::compile(spec, &aggs, &mut diags).map(Arc::new);
        if let Some(plan) = &plan {
            catalog.streaming.push(Arc::clone(plan));
        }
        streams.push(window::StreamEntry {
            name: spec.name.value.clone(),
            file: spec.file,
            aggs,
            plan,
        });
    }
    for spec in specs.iter().filter(|s| s.kind.value == SpecKind::Window) {
        if let Some(plan) = window::compile(spec, &streams, same_dir, &mut diags) {
            catalog.window.push(Arc::new(plan));
        }
    }
    (catalog, diags)
}
