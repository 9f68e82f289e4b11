//! Publishing a run's output parts: all of them at its commit, or none.
//!
//! While a run works, its sinks write parts to a stage no reader looks at (locally a hidden
//! directory `.dtc-stage-<worker>-<run id>/` inside the output directory; on S3 multipart
//! uploads not yet completed) and seal them. At its commit the run records a [`Publication`]
//! (the parts, the mode, the location) in the store together with its input checkpoints, then
//! publishes: the parts move under their final names, the parts they replace go, and a commit
//! file `_dtc-commit-<worker>.json` lists the worker's parts now in the location. Publishing is
//! idempotent, so a run restarted after a crash at any point of it finishes the recorded
//! publication (roll forward) and ends with exactly the parts of one run.
//!
//! This module has the local half; `dtc-aws` publishes to S3 from the same [`Publication`].

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::IoError;
use crate::sink::{Destination, PartWriter, SealedPart, part_worker};

/// How a run's parts join what an output location already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputMode {
    /// The run's parts replace the parts of earlier runs (of the same worker, when workers
    /// split the output): one copy of the rows however often the run is repeated.
    Overwrite,
    /// The run's parts are added to those already there.
    Append,
}

impl OutputMode {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputMode::Overwrite => "overwrite",
            OutputMode::Append => "append",
        }
    }
}

/// A run's sealed parts at one output location: what a run records with its commit and then
/// publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publication {
    /// A local directory, or an object store location (`s3://bucket/prefix/`).
    pub location: String,
    pub run_id: String,
    /// This run's share of the location, when several workers write it side by side.
    pub worker: u32,
    /// How many workers share the location (1: this run's parts are the whole output).
    pub workers: u32,
    pub mode: OutputMode,
    pub parts: Vec<SealedPart>,
    pub rows: u64,
}

/// The file each publish leaves in the location: which parts the worker's last run left
/// there. Readers that may run while a run publishes read the parts these files list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitFile {
    pub run_id: String,
    pub worker: u32,
    pub mode: OutputMode,
    /// The worker's parts in the location after the publish, sorted.
    pub parts: Vec<String>,
    /// Rows of this run's parts.
    pub rows: u64,
}

/// The commit file's name for `worker`.
pub fn commit_file_name(worker: u32) -> String {
    format!("_dtc-commit-{worker:03}.json")
}

/// Whether a name in an output location belongs to a part this publication replaces (in
/// overwrite mode): any worker's part when the run is the whole output, else its worker's.
pub fn replaced_by(publication: &Publication, name: &str) -> bool {
    publication.mode == OutputMode::Overwrite
        && !publication.parts.iter().any(|p| p.name == name)
        && part_worker(name).is_some_and(|w| publication.workers <= 1 || w == publication.worker)
}

/// Whether a commit file is replaced by this publication's (an earlier run of the whole
/// output leaves its workers' commit files behind otherwise).
fn commit_file_replaced(publication: &Publication, name: &str) -> bool {
    publication.mode == OutputMode::Overwrite
        && publication.workers <= 1
        && name.starts_with("_dtc-commit-")
        && name != commit_file_name(publication.worker)
}

/// What publishing leaves to do once the parts are in place, given the names the location
/// holds: the files to remove, and the commit file to write.
pub fn cleanup<'a>(
    publication: &Publication,
    names: impl IntoIterator<Item = &'a str>,
) -> (Vec<String>, CommitFile) {
    let mut remove = Vec::new();
    let mut parts = Vec::new();
    for name in names {
        if replaced_by(publication, name) || commit_file_replaced(publication, name) {
            remove.push(name.to_string());
        } else if part_worker(name) == Some(publication.worker) {
            parts.push(name.to_string());
        }
    }
    parts.sort();
    let commit = CommitFile {
        run_id: publication.run_id.clone(),
        worker: publication.worker,
        mode: publication.mode,
        parts,
        rows: publication.rows,
    };
    (remove, commit)
}

const STAGE_PREFIX: &str = ".dtc-stage-";

fn stage_name(worker: u32, run_id: &str) -> String {
    format!("{STAGE_PREFIX}{worker:03}-{run_id}")
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> IoError + '_ {
    move |source| IoError::Write {
        target: path.display().to_string(),
        source,
    }
}

/// The stage of a run's parts in a local output directory: a hidden directory inside it, so
/// that publishing is a rename within one file system.
#[derive(Debug)]
pub struct LocalStage {
    dir: PathBuf,
    stage: PathBuf,
}

impl LocalStage {
    /// The stage of `run_id` in `dir` (a stage left by a crashed attempt of the same run is
    /// removed). The stage directory itself is made with the first part, so a run without
    /// parts leaves nothing.
    pub fn create(dir: &Path, run_id: &str, worker: u32) -> Result<LocalStage, IoError> {
        let stage = dir.join(stage_name(worker, run_id));
        if stage.exists() {
            std::fs::remove_dir_all(&stage).map_err(io_error(&stage))?;
        }
        Ok(LocalStage {
            dir: dir.to_path_buf(),
            stage,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Destination for LocalStage {
    fn create(&mut self, name: &str) -> Result<Box<dyn PartWriter>, IoError> {
        std::fs::create_dir_all(&self.stage).map_err(io_error(&self.stage))?;
        let path = self.stage.join(name);
        let file = File::create(&path).map_err(|source| IoError::Open {
            path: path.clone(),
            source,
        })?;
        Ok(Box::new(LocalPart {
            file: BufWriter::with_capacity(256 * 1024, file),
            name: name.to_string(),
            path,
            bytes: 0,
        }))
    }
}

struct LocalPart {
    file: BufWriter<File>,
    name: String,
    path: PathBuf,
    bytes: u64,
}

impl Write for LocalPart {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.bytes += n as u64;
        dtc_failpoint::hit("io.local.part.write");
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl PartWriter for LocalPart {
    fn seal(self: Box<Self>) -> Result<SealedPart, IoError> {
        let LocalPart {
            file,
            name,
            path,
            bytes,
        } = *self;
        let file = file
            .into_inner()
            .map_err(|e| io_error(&path)(e.into_error()))?;
        // Durable before the commit that will publish it: after a crash the commit's record
        // must find the whole part.
        file.sync_all().map_err(io_error(&path))?;
        Ok(SealedPart {
            name,
            bytes,
            staged: String::new(),
        })
    }
}

/// Publishes `publication` into its local directory; safe to repeat after a crash at any
/// point of an earlier attempt.
pub fn publish_local(publication: &Publication) -> Result<(), IoError> {
    let dir = Path::new(&publication.location);
    let stage = dir.join(stage_name(publication.worker, &publication.run_id));
    for part in &publication.parts {
        let staged = stage.join(&part.name);
        let published = dir.join(&part.name);
        if staged.exists() {
            std::fs::rename(&staged, &published).map_err(io_error(&published))?;
            dtc_failpoint::hit("io.local.publish.renamed");
        } else if !published.exists() {
            return Err(IoError::Write {
                target: published.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "part {} of run {} is neither staged in {} nor published: the output \
                         directory was changed by something else than dtc",
                        part.name,
                        publication.run_id,
                        stage.display()
                    ),
                ),
            });
        }
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        names.push(
            entry
                .map_err(io_error(dir))?
                .file_name()
                .to_string_lossy()
                .into_owned(),
        );
    }
    let (remove, commit) = cleanup(publication, names.iter().map(String::as_str));
    for name in remove {
        let path = dir.join(&name);
        match std::fs::remove_file(&path) {
            Ok(()) => dtc_failpoint::hit("io.local.publish.removed"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&path)(e)),
        }
    }
    write_atomically(
        &dir.join(commit_file_name(publication.worker)),
        &serde_json::to_vec_pretty(&commit)?,
    )?;
    sync_dir(dir)?;
    if stage.exists() {
        std::fs::remove_dir_all(&stage).map_err(io_error(&stage))?;
    }
    dtc_failpoint::hit("io.local.publish.done");
    Ok(())
}

/// Removes the stages of `worker` in `dir` that are not `keep` (the run ids of publications
/// still to finish): what runs that crashed before their commit left. Returns how many.
pub fn remove_stale_local_stages(dir: &Path, worker: u32, keep: &[&str]) -> Result<usize, IoError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_error(dir)(e)),
    };
    let mine = format!("{STAGE_PREFIX}{worker:03}-");
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(run_id) = name.strip_prefix(&mine) else {
            continue;
        };
        if keep.contains(&run_id) || !entry.path().is_dir() {
            continue;
        }
        std::fs::remove_dir_all(entry.path()).map_err(io_error(&entry.path()))?;
        removed += 1;
    }
    Ok(removed)
}

/// Writes a small file under its final name in one rename, durable.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.tmp"));
    let mut file = File::create(&temp).map_err(io_error(&temp))?;
    file.write_all(bytes).map_err(io_error(&temp))?;
    file.sync_all().map_err(io_error(&temp))?;
    std::fs::rename(&temp, path).map_err(io_error(path))
}

/// Publishes sealed parts of a whole-output run in overwrite mode, for the sinks' tests.
#[cfg(test)]
pub(crate) fn publish_parts(dir: &Path, run_id: &str, worker: u32, parts: &[SealedPart]) {
    publish_local(&Publication {
        location: dir.display().to_string(),
        run_id: run_id.to_string(),
        worker,
        workers: 1,
        mode: OutputMode::Overwrite,
        parts: parts.to_vec(),
        rows: 0,
    })
    .expect("publish");
}

/// Makes the renames and removals in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<(), IoError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::{part_name, visible_files};

    fn stage_parts(dir: &Path, run_id: &str, worker: u32, n: u32) -> Vec<SealedPart> {
        let mut stage = LocalStage::create(dir, run_id, worker).unwrap();
        (0..n)
            .map(|seq| {
                let mut part = stage
                    .create(&part_name(run_id, worker, seq, "jsonl"))
                    .unwrap();
                writeln!(part, "{run_id} {seq}").unwrap();
                part.seal().unwrap()
            })
            .collect()
    }

    fn publication(
        dir: &Path,
        run_id: &str,
        worker: u32,
        workers: u32,
        mode: OutputMode,
    ) -> Publication {
        Publication {
            location: dir.display().to_string(),
            run_id: run_id.into(),
            worker,
            workers,
            mode,
            parts: stage_parts(dir, run_id, worker, 2),
            rows: 2,
        }
    }

    fn parts_in(dir: &Path) -> Vec<String> {
        visible_files(dir)
            .unwrap()
            .into_iter()
            .filter(|n| n.starts_with("part-"))
            .collect()
    }

    #[test]
    fn staged_parts_are_invisible_until_published() {
        let dir = tempfile::tempdir().unwrap();
        let p = publication(dir.path(), "r1", 0, 1, OutputMode::Overwrite);
        assert_eq!(p.parts[0].bytes, 5);
        assert!(visible_files(dir.path()).unwrap().is_empty());
        publish_local(&p).unwrap();
        assert_eq!(
            visible_files(dir.path()).unwrap(),
            vec![
                "_dtc-commit-000.json".to_string(),
                "part-r1-000-00000.jsonl".into(),
                "part-r1-000-00001.jsonl".into()
            ]
        );
        let all: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(all.len(), 3, "the stage is gone");
        let commit: CommitFile = serde_json::from_slice(
            &std::fs::read(dir.path().join("_dtc-commit-000.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(commit.parts, parts_in(dir.path()));
        assert_eq!(commit.run_id, "r1");
    }

    #[test]
    fn overwrite_replaces_earlier_runs_and_append_adds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        publish_local(&publication(dir.path(), "r1", 0, 1, OutputMode::Overwrite)).unwrap();
        publish_local(&publication(dir.path(), "r2", 0, 1, OutputMode::Overwrite)).unwrap();
        assert_eq!(
            parts_in(dir.path()),
            vec!["part-r2-000-00000.jsonl", "part-r2-000-00001.jsonl"]
        );
        publish_local(&publication(dir.path(), "r3", 0, 1, OutputMode::Append)).unwrap();
        assert_eq!(parts_in(dir.path()).len(), 4);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
            "mine",
            "files that are not parts are left alone"
        );
    }

    #[test]
    fn workers_replace_only_their_own_parts_and_a_whole_run_replaces_all() {
        let dir = tempfile::tempdir().unwrap();
        for worker in 0..3 {
            publish_local(&publication(
                dir.path(),
                "a",
                worker,
                3,
                OutputMode::Overwrite,
            ))
            .unwrap();
        }
        publish_local(&publication(dir.path(), "b", 1, 3, OutputMode::Overwrite)).unwrap();
        let parts = parts_in(dir.path());
        assert_eq!(parts.len(), 6);
        assert!(parts.contains(&"part-b-001-00000.jsonl".to_string()));
        assert!(!parts.contains(&"part-a-001-00000.jsonl".to_string()));
        publish_local(&publication(dir.path(), "c", 0, 1, OutputMode::Overwrite)).unwrap();
        assert_eq!(
            visible_files(dir.path()).unwrap(),
            vec![
                "_dtc-commit-000.json".to_string(),
                "part-c-000-00000.jsonl".into(),
                "part-c-000-00001.jsonl".into()
            ]
        );
    }

    #[test]
    fn publishing_again_after_an_interrupted_publish_finishes_it() {
        let dir = tempfile::tempdir().unwrap();
        publish_local(&publication(dir.path(), "r1", 0, 1, OutputMode::Overwrite)).unwrap();
        let p = publication(dir.path(), "r2", 0, 1, OutputMode::Overwrite);
        // Interrupted after the first rename: one new part out, the old ones still there.
        let stage = dir.path().join(stage_name(0, "r2"));
        std::fs::rename(
            stage.join(&p.parts[0].name),
            dir.path().join(&p.parts[0].name),
        )
        .unwrap();
        publish_local(&p).unwrap();
        assert_eq!(
            parts_in(dir.path()),
            vec!["part-r2-000-00000.jsonl", "part-r2-000-00001.jsonl"]
        );
        // And once more, when it had finished.
        publish_local(&p).unwrap();
        assert_eq!(parts_in(dir.path()).len(), 2);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("part-r2-000-00001.jsonl")).unwrap(),
            "r2 1\n"
        );
    }

    #[test]
    fn a_part_that_vanished_is_an_error_not_a_silent_loss() {
        let dir = tempfile::tempdir().unwrap();
        let p = publication(dir.path(), "r1", 0, 1, OutputMode::Overwrite);
        std::fs::remove_file(dir.path().join(stage_name(0, "r1")).join(&p.parts[1].name)).unwrap();
        let err = publish_local(&p).unwrap_err();
        assert!(err.to_string().contains("neither staged"), "{err}");
    }

    #[test]
    fn stale_stages_of_the_worker_are_removed_and_kept_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        stage_parts(dir.path(), "old", 0, 1);
        stage_parts(dir.path(), "pending", 0, 1);
        stage_parts(dir.path(), "other-worker", 1, 1);
        assert_eq!(
            remove_stale_local_stages(dir.path(), 0, &["pending"]).unwrap(),
            1
        );
        assert!(!dir.path().join(stage_name(0, "old")).exists());
        assert!(dir.path().join(stage_name(0, "pending")).exists());
        assert!(dir.path().join(stage_name(1, "other-worker")).exists());
        assert_eq!(
            remove_stale_local_stages(&dir.path().join("missing"), 0, &[]).unwrap(),
            0
        );
    }
}
