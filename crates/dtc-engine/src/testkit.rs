//! Plans for the unit tests, compiled from spec text by the real loader and compiler.

use std::sync::Arc;

use dtc_lang::load::load_spec;
use dtc_lang::span::FileId;
use dtc_plan::compile::{Catalog, compile};
use dtc_plan::plan::StreamingPlan;

use crate::EngineError;

/// Loads and compiles `texts` (one spec each) together; panics on any diagnostic.
pub(crate) fn catalog(texts: &[&str]) -> Catalog {
    let mut specs = Vec::new();
    for (text, file) in texts.iter().zip(0u32..) {
        let (spec, diags) = load_spec(FileId(file), text);
        assert!(diags.is_empty(), "spec {file}: {diags:#?}");
        specs.extend(spec);
    }
    let (catalog, diags) = compile(&specs);
    assert!(diags.is_empty(), "{diags:#?}");
    catalog
}

/// The plan of one streaming spec's text; panics if it does not compile.
pub(crate) fn streaming_plan(text: &str) -> Arc<StreamingPlan> {
    match catalog(&[text]).streaming.first() {
        Some(plan) => plan.clone(),
        None => panic!("the streaming spec did not compile"),
    }
}

/// A temporary directory for a batch run's spill files.
pub(crate) fn spill_dir() -> Result<tempfile::TempDir, EngineError> {
    tempfile::tempdir().map_err(|source| EngineError::Spill {
        path: std::env::temp_dir(),
        source,
    })
}
