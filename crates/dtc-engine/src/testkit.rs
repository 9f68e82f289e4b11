//! Plans for the unit tests, compiled from spec text by the real loader and compiler.

use dtc_lang::load::load_spec;
use dtc_lang::span::FileId;
use dtc_plan::compile::{Catalog, compile};

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
