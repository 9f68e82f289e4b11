//! Loading the specs a run needs, reporting their diagnostics like `dtc validate` does.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use dtc_lang::render::render_text;
use dtc_plan::compile::Catalog;
use dtc_plan::plan::{StreamingPlan, WindowPlan};

use crate::cmd::validate::load_paths;

/// The compiled specs, or `None` after printing their diagnostics on stderr.
pub fn load_and_report(paths: &[PathBuf]) -> Option<Catalog> {
    let loaded = load_paths(paths);
    if loaded.diagnostics.is_empty() {
        return Some(loaded.catalog);
    }
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    eprint!(
        "{}",
        render_text(&loaded.sources, &loaded.diagnostics, color)
    );
    eprintln!(
        "error: the specs have {} error(s); nothing was run",
        loaded.diagnostics.len()
    );
    None
}

/// The only streaming plan of a catalog loaded from one streaming spec (plus window specs).
pub fn single_streaming(catalog: &Catalog) -> Option<Arc<StreamingPlan>> {
    match catalog.streaming.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// The only window plan of a catalog.
pub fn single_window(catalog: &Catalog) -> Option<Arc<WindowPlan>> {
    match catalog.window.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}
