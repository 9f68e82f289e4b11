//! The commit protocol: a run's store records, input checkpoints, output parts and dead
//! letters become durable together, or not at all.
//!
//! 1. While a run works, its output parts and dead letters go to stages no reader looks at,
//!    and are sealed (durable) before the commit.
//! 2. The commit is one store write: the run's last records, its input checkpoints and a
//!    [`Manifest`] of what it must publish (parts, dead letters), made durable (`sync`).
//! 3. Then the run publishes: parts move under their final names, dead letters are appended.
//! 4. Then the manifest is removed.
//!
//! A crash before 2 leaves nothing visible (the next run removes the stages and, with the same
//! input, finds its identities by their writer mark). A crash after 2 leaves a manifest, and
//! the next run on the store finishes it first ([`recover`]): every step of a publish is
//! idempotent. docs/commit-protocol.md has the sequence and what a reader can rely on.

use std::io::{Read, Write};

use dtc_io::dead_letter::DeadLetterAppend;
use dtc_io::output::{OutputMode, Publication, publish_local};
use dtc_store::{BlockStore, Checkpoint, WriteBatch};
use serde::{Deserialize, Serialize};

use crate::error::RunError;
use crate::locations::Services;

/// Run-state names of pending manifests start with this.
pub const MANIFEST_PREFIX: &str = "commit/";

/// Manifest bytes: this format byte, then deflated JSON.
const MANIFEST_FORMAT: u8 = 1;

/// What a committed run still has to publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub run_id: String,
    /// The commit's input checkpoints, written in the same store write. Kept here too, so a
    /// store that cannot write them all in one transaction (DynamoDB, past 100 items) writes
    /// them after the manifest and a restart finds them.
    pub checkpoints: Vec<(String, i64)>,
    pub publications: Vec<Publication>,
    pub dead_letters: Option<DeadLetterAppend>,
}

impl Manifest {
    pub fn new(run_id: impl Into<String>) -> Manifest {
        Manifest {
            run_id: run_id.into(),
            checkpoints: Vec::new(),
            publications: Vec::new(),
            dead_letters: None,
        }
    }

    fn key(&self) -> String {
        format!("{MANIFEST_PREFIX}{}", self.run_id)
    }

    fn encode(&self) -> Result<Vec<u8>, RunError> {
        let json = serde_json::to_vec(self).map_err(dtc_io::IoError::from)?;
        let mut out = flate2::write::DeflateEncoder::new(
            vec![MANIFEST_FORMAT],
            flate2::Compression::default(),
        );
        out.write_all(&json)
            .and_then(|()| out.finish())
            .map_err(|e| RunError::Internal(format!("compressing a manifest: {e}")))
    }

    fn decode(name: &str, bytes: &[u8]) -> Result<Manifest, RunError> {
        let corrupt = |detail: String| {
            RunError::Store(dtc_store::StoreError::corrupt(
                format!("run state `{name}`"),
                detail,
            ))
        };
        let Some((&MANIFEST_FORMAT, deflated)) = bytes.split_first() else {
            return Err(corrupt("unknown manifest format".into()));
        };
        let mut json = Vec::new();
        flate2::read::DeflateDecoder::new(deflated)
            .read_to_end(&mut json)
            .map_err(|e| corrupt(e.to_string()))?;
        serde_json::from_slice(&json).map_err(|e| corrupt(e.to_string()))
    }
}

/// Commits `batch` together with `manifest`, then publishes what the manifest lists.
pub fn commit(
    store: &dyn BlockStore,
    mut batch: WriteBatch,
    mut manifest: Manifest,
    services: &mut Services,
) -> Result<(), RunError> {
    manifest.checkpoints = batch
        .checkpoints
        .iter()
        .map(|(partition, checkpoint)| (partition.clone(), checkpoint.offset))
        .collect();
    let nothing_to_finish = manifest.checkpoints.is_empty()
        && manifest.publications.is_empty()
        && manifest.dead_letters.is_none();
    if !nothing_to_finish {
        batch
            .run_state
            .push((manifest.key(), Some(manifest.encode()?)));
    }
    dtc_failpoint::hit("runtime.commit.before");
    store.write(batch)?;
    dtc_failpoint::hit("runtime.commit.written");
    store.sync()?;
    dtc_failpoint::hit("runtime.commit.durable");
    if nothing_to_finish {
        return Ok(());
    }
    finish(store, &manifest, services)
}

/// Publishes a committed manifest and removes it. Every step may be repeated.
fn finish(
    store: &dyn BlockStore,
    manifest: &Manifest,
    services: &mut Services,
) -> Result<(), RunError> {
    for publication in &manifest.publications {
        if dtc_aws::s3::is_s3_url(&publication.location) {
            dtc_aws::s3::publish(services.s3()?, publication)?;
        } else {
            publish_local(publication)?;
        }
        dtc_failpoint::hit("runtime.publish.output");
    }
    if let Some(letters) = &manifest.dead_letters {
        letters.publish()?;
        dtc_failpoint::hit("runtime.publish.dead_letters");
    }
    store.write(WriteBatch {
        // A no-op where they landed with the commit; where they did not, they land now.
        checkpoints: manifest
            .checkpoints
            .iter()
            .map(|(partition, offset)| (partition.clone(), Checkpoint { offset: *offset }))
            .collect(),
        run_state: vec![(manifest.key(), None)],
        ..WriteBatch::default()
    })?;
    dtc_failpoint::hit("runtime.commit.finished");
    Ok(())
}

/// Finishes every commit a crashed run left in `store`. Returns the run ids finished.
pub fn recover(store: &dyn BlockStore, services: &mut Services) -> Result<Vec<String>, RunError> {
    let mut finished = Vec::new();
    for (name, bytes) in store.run_state(MANIFEST_PREFIX)? {
        let manifest = Manifest::decode(&name, &bytes)?;
        finish(store, &manifest, services).map_err(|source| RunError::Recovery {
            run_id: manifest.run_id.clone(),
            source: Box::new(source),
        })?;
        finished.push(manifest.run_id);
    }
    Ok(finished)
}

/// How a publication of this run's parts is described in its manifest.
pub fn publication(
    location: String,
    run_id: &str,
    worker: u32,
    workers: u32,
    mode: OutputMode,
    summary: dtc_io::SinkSummary,
) -> Publication {
    Publication {
        location,
        run_id: run_id.to_string(),
        worker,
        workers,
        mode,
        parts: summary.parts,
        rows: summary.rows,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use dtc_io::dead_letter::{Position, StagedDeadLetters};
    use dtc_io::output::LocalStage;
    use dtc_io::sink::{Destination, part_name};
    use dtc_io::{RejectReason, Rejection};
    use dtc_store::MemoryStore;

    use super::*;

    fn staged(dir: &std::path::Path, run_id: &str) -> Manifest {
        let mut stage = LocalStage::create(&dir.join("out"), run_id, 0).unwrap();
        let mut part = stage.create(&part_name(run_id, 0, 0, "jsonl")).unwrap();
        writeln!(part, "row of {run_id}").unwrap();
        let sealed = part.seal().unwrap();
        let mut letters = StagedDeadLetters::create(&dir.join("dead.jsonl"), run_id).unwrap();
        letters
            .write(
                "in",
                Position::Line(1),
                &Rejection::new(RejectReason::InvalidJson, "x"),
                b"{",
            )
            .unwrap();
        let mut manifest = Manifest::new(run_id);
        manifest.publications.push(Publication {
            location: dir.join("out").display().to_string(),
            run_id: run_id.into(),
            worker: 0,
            workers: 1,
            mode: OutputMode::Overwrite,
            parts: vec![sealed],
            rows: 1,
        });
        manifest.dead_letters = letters.seal().unwrap().1;
        manifest
    }

    #[test]
    fn manifests_round_trip_compressed() {
        let dir = tempfile::tempdir().unwrap();
        let mut manifest = staged(dir.path(), "r1");
        manifest.checkpoints = (0..2000)
            .map(|i| {
                (
                    format!("file:/data/events/2026/12/06/part-{i:05}.jsonl.gz"),
                    i,
                )
            })
            .collect();
        let bytes = manifest.encode().unwrap();
        assert!(
            bytes.len() < dtc_store::MAX_RUN_STATE_BYTES / 4,
            "{}",
            bytes.len()
        );
        assert_eq!(Manifest::decode("x", &bytes).unwrap(), manifest);
        assert!(Manifest::decode("x", &bytes[..bytes.len() / 2]).is_err());
        assert!(Manifest::decode("x", b"").is_err());
    }

    #[test]
    fn a_commit_publishes_and_leaves_no_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::new();
        let batch = WriteBatch {
            checkpoints: vec![("file:/in".into(), Checkpoint { offset: 7 })],
            ..WriteBatch::default()
        };
        commit(
            &store,
            batch,
            staged(dir.path(), "r1"),
            &mut Services::default(),
        )
        .unwrap();
        assert!(store.run_state("").unwrap().is_empty());
        assert_eq!(
            store.checkpoint("file:/in").unwrap(),
            Some(Checkpoint { offset: 7 })
        );
        assert!(dir.path().join("out/part-r1-000-00000.jsonl").exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("dead.jsonl"))
                .unwrap()
                .lines()
                .count(),
            1
        );
    }

    #[test]
    fn a_commit_whose_publish_was_cut_off_is_finished_by_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::new();
        let mut manifest = staged(dir.path(), "r1");
        manifest.checkpoints = vec![("file:/in".into(), 9)];
        // The commit landed (the checkpoint only in the manifest, as a large DynamoDB batch
        // can leave it), then the process died before publishing.
        store
            .write(WriteBatch {
                run_state: vec![(manifest.key(), Some(manifest.encode().unwrap()))],
                ..WriteBatch::default()
            })
            .unwrap();
        assert!(!dir.path().join("out/part-r1-000-00000.jsonl").exists());
        let finished = recover(&store, &mut Services::default()).unwrap();
        assert_eq!(finished, vec!["r1".to_string()]);
        assert!(dir.path().join("out/part-r1-000-00000.jsonl").exists());
        assert_eq!(
            store.checkpoint("file:/in").unwrap(),
            Some(Checkpoint { offset: 9 })
        );
        assert!(store.run_state("").unwrap().is_empty());
        // Nothing left to do, and nothing done twice.
        assert!(
            recover(&store, &mut Services::default())
                .unwrap()
                .is_empty()
        );
        let letters = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
        assert_eq!(letters.lines().count(), 1);
    }
}
