//! Rendering diagnostics as rustc-style text or as JSON for CI.
