//! Loading spec files and compiling them into plans, with every diagnostic of every file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dtc_lang::diagnostic::{Code, Diagnostic};
use dtc_lang::load::{SourceMap, load_spec};
use dtc_lang::render::sort_diagnostics;
use dtc_lang::span::{FileId, Span};
use dtc_plan::compile::{Catalog, compile_with_dirs};
use dtc_plan::plan::{StreamingPlan, WindowPlan};

use crate::error::RunError;

/// Every spec file found under some paths, loaded and compiled together.
pub struct LoadedSpecs {
    pub sources: SourceMap,
    /// Load and compile diagnostics, sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
    /// A file or directory could not be read (E0100 is among the diagnostics).
    pub unreadable: bool,
    /// The specs that compiled without errors.
    pub catalog: Catalog,
    /// A hash of the spec files' bytes, in path order: ties what a run or a server computed
    /// to the exact specs that computed it.
    pub hash: String,
}

/// Loads every spec file under `paths` (directories recursively, files in sorted order) and
/// compiles all of them together, so window specs are checked against their streaming spec.
pub fn load_paths(paths: &[PathBuf]) -> LoadedSpecs {
    let mut sources = SourceMap::new();
    let mut diagnostics = Vec::new();
    let mut unreadable = false;
    let mut files = Vec::new();
    for path in paths {
        match spec_files(path) {
            Ok(found) if found.is_empty() => {
                unreadable = true;
                unreadable_file(
                    &mut sources,
                    &mut diagnostics,
                    display(path),
                    "no `*.yml` or `*.yaml` files in this directory".into(),
                );
            }
            Ok(found) => files.extend(found),
            Err(why) => {
                unreadable = true;
                unreadable_file(&mut sources, &mut diagnostics, display(path), why);
            }
        }
    }
    let mut loaded = Vec::new();
    let mut hash = Fnv::new();
    for file in files {
        let shown = display(&file);
        match std::fs::read(&file).map(String::from_utf8) {
            Ok(Ok(text)) => {
                hash.write(text.as_bytes());
                let id = sources.add(shown, text);
                let text = sources.get(id).map(|f| f.text()).unwrap_or_default();
                let (spec, diags) = load_spec(id, text);
                diagnostics.extend(diags);
                loaded.extend(spec);
            }
            Ok(Err(_)) => {
                unreadable = true;
                unreadable_file(
                    &mut sources,
                    &mut diagnostics,
                    shown,
                    "the file is not UTF-8 text".into(),
                );
            }
            Err(e) => {
                unreadable = true;
                unreadable_file(&mut sources, &mut diagnostics, shown, e.to_string());
            }
        }
    }
    let dir_of = |file: FileId| {
        sources
            .get(file)
            .and_then(|f| Path::new(f.path()).parent().map(Path::to_path_buf))
    };
    let (catalog, compile_diags) = compile_with_dirs(&loaded, &|a, b| dir_of(a) == dir_of(b));
    diagnostics.extend(compile_diags);
    sort_diagnostics(&mut diagnostics);
    LoadedSpecs {
        sources,
        diagnostics,
        unreadable,
        catalog,
        hash: format!("{:016x}", hash.finish()),
    }
}

/// Records a path that could not be read as an empty file with an E0100, so the report can
/// name it like any other file.
fn unreadable_file(
    sources: &mut SourceMap,
    diagnostics: &mut Vec<Diagnostic>,
    shown: String,
    why: String,
) {
    let message = format!("cannot read `{shown}`: {why}");
    let id = sources.add(shown, String::new());
    diagnostics.push(Diagnostic::new(Code::E0100, id, Span::new(0, 0), message));
}

/// The spec files a command-line path stands for, sorted.
fn spec_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
        let entry = entry.map_err(|e| e.to_string())?;
        // Test files (`*.test.yml`) live beside the specs they test.
        let is_spec = entry
            .path()
            .extension()
            .is_some_and(|ext| ext == "yml" || ext == "yaml")
            && !crate::spectest::is_test_file(entry.path());
        if entry.file_type().is_file() && is_spec {
            files.push(entry.into_path());
        }
    }
    files.sort();
    Ok(files)
}

/// A path as the user would write it: `spec.yml`, not `./spec.yml`.
pub fn display(path: &Path) -> String {
    let shown = path.strip_prefix(".").unwrap_or(path);
    if shown.as_os_str().is_empty() {
        path.display().to_string()
    } else {
        shown.display().to_string()
    }
}

/// The plans of one job: a streaming spec and the window specs that read it.
#[derive(Clone)]
pub struct JobSpecs {
    pub streaming: Arc<StreamingPlan>,
    pub windows: Vec<Arc<WindowPlan>>,
    /// See [`LoadedSpecs::hash`].
    pub hash: String,
}

/// Why a job's specs could not be had.
pub enum SpecFailure {
    /// The specs have diagnostics, to be rendered with their sources.
    Diagnostics(Box<LoadedSpecs>),
    /// They loaded, but are not what the command needs.
    Run(RunError),
}

/// Loads one streaming spec and the window specs that read it.
pub fn load_job(streaming: &Path, windows: &[PathBuf]) -> Result<JobSpecs, SpecFailure> {
    let mut paths = vec![streaming.to_path_buf()];
    paths.extend(windows.iter().cloned());
    let loaded = load_paths(&paths);
    if !loaded.diagnostics.is_empty() {
        return Err(SpecFailure::Diagnostics(Box::new(loaded)));
    }
    let usage = |message: String| SpecFailure::Run(RunError::Usage(message));
    let plan = match loaded.catalog.streaming.as_slice() {
        [one] => one.clone(),
        _ => {
            return Err(usage(format!(
                "{} is not a streaming DTC",
                streaming.display()
            )));
        }
    };
    if loaded.catalog.window.len() != windows.len() {
        let path = windows
            .first()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        return Err(usage(format!("{path} is not a window DTC")));
    }
    for window in &loaded.catalog.window {
        if window.streaming.name != plan.name {
            return Err(usage(format!(
                "window DTC `{}` reads streaming DTC `{}`, not `{}`",
                window.name, window.streaming.name, plan.name
            )));
        }
    }
    Ok(JobSpecs {
        streaming: plan,
        windows: loaded.catalog.window.clone(),
        hash: loaded.hash,
    })
}

/// FNV-1a: a hash that stays the same across builds and platforms (std's hasher does not
/// promise that), for fingerprints that outlive a process.
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub(crate) fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_dot_is_dropped_from_shown_paths() {
        assert_eq!(display(Path::new("./a/spec.yml")), "a/spec.yml");
        assert_eq!(display(Path::new(".")), ".");
        assert_eq!(display(Path::new("../x.yml")), "../x.yml");
    }

    #[test]
    fn missing_paths_are_unreadable() {
        let loaded = load_paths(&[PathBuf::from("/nonexistent/dtc/spec.yml")]);
        assert!(loaded.unreadable);
        assert_eq!(
            loaded.diagnostics.first().map(|d| d.code),
            Some(Code::E0100)
        );
    }

    #[test]
    fn the_spec_hash_follows_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("s.yml");
        std::fs::write(&spec, "Type: Streaming\n").unwrap();
        let a = load_paths(std::slice::from_ref(&spec)).hash;
        assert_eq!(a, load_paths(std::slice::from_ref(&spec)).hash);
        std::fs::write(&spec, "Type: Streaming \n").unwrap();
        assert_ne!(a, load_paths(&[spec]).hash);
    }
}
