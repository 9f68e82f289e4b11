//! Where a run's rows go, and a window run over the blocks already in a store.

use std::sync::Arc;
use std::time::Instant;

use dtc_engine::EngineError;
use dtc_engine::batch::window_over_store;
use dtc_engine::window::WindowOperator;
use dtc_io::output::{LocalStage, OutputMode, Publication, remove_stale_local_stages};
use dtc_io::sink::{Destination, JsonLinesSink, ParquetOptions, ParquetSink, RowSchema};
use dtc_io::{IoError, RowSink, SinkSummary};
use dtc_plan::plan::WindowPlan;
use dtc_store::{BlockStore, WriteBatch};

use crate::commit::{self, Manifest};
use crate::error::RunError;
use crate::locations::{OutputLocation, Services};
use crate::report::{WindowReport, WindowRunReport};

/// The file format of published rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowFormat {
    Parquet,
    JsonLines,
}

/// Where a run's rows go.
pub enum RowsOut {
    /// Nowhere: the run computes no rows.
    None,
    /// Files at a location, published at the run's commit.
    Output(RowFiles),
    /// A stream (stdout), written as rows come: not part of the commit.
    Stream(Box<dyn RowSink>),
}

/// Row files at an output location.
pub struct RowFiles {
    pub location: OutputLocation,
    pub format: RowFormat,
    pub mode: OutputMode,
    /// This run's share of the location when workers split a run (`--segment`).
    pub worker: u32,
    pub workers: u32,
}

/// An output checked and cleared of what crashed runs left, ready to stage a run's parts.
pub(crate) enum PreparedRows {
    Output(RowFiles),
    Stream(Option<Box<dyn RowSink>>),
}

impl RowsOut {
    /// Before any work: checks that the output can be written (a bad `--output` fails the run
    /// before it reads anything) and removes the stages crashed runs left there (their commits,
    /// if any, were finished by [`commit::recover`] first).
    pub(crate) fn prepare(self, services: &mut Services) -> Result<Option<PreparedRows>, RunError> {
        Ok(match self {
            RowsOut::None => None,
            RowsOut::Stream(sink) => Some(PreparedRows::Stream(Some(sink))),
            RowsOut::Output(files) => {
                match &files.location {
                    OutputLocation::Local(dir) => {
                        std::fs::create_dir_all(dir).map_err(|source| IoError::Write {
                            target: dir.display().to_string(),
                            source,
                        })?;
                        remove_stale_local_stages(dir, files.worker, &[])?;
                    }
                    OutputLocation::S3(url) => {
                        let s3 = services.s3()?;
                        s3.check_bucket(url)?;
                        s3.abort_stale_uploads(url, files.worker, &[])?;
                    }
                }
                Some(PreparedRows::Output(files))
            }
        })
    }
}

impl PreparedRows {
    /// The sink of `window`'s rows for run `run_id`.
    pub(crate) fn stage(
        &mut self,
        window: &WindowPlan,
        run_id: &str,
        services: &mut Services,
    ) -> Result<StagedRows, RunError> {
        let schema = RowSchema::from_plan(window);
        match self {
            PreparedRows::Stream(sink) => Ok(StagedRows {
                sink: sink
                    .take()
                    .ok_or_else(|| RunError::Internal("the row stream was taken twice".into()))?,
                publication: None,
            }),
            PreparedRows::Output(RowFiles {
                location,
                format,
                mode,
                worker,
                workers,
            }) => {
                let destination: Box<dyn Destination> = match location {
                    OutputLocation::Local(dir) => {
                        Box::new(LocalStage::create(dir, run_id, *worker)?)
                    }
                    OutputLocation::S3(url) => Box::new(services.s3()?.destination(url)?),
                };
                let sink: Box<dyn RowSink> = match format {
                    RowFormat::Parquet => Box::new(ParquetSink::new(
                        &schema,
                        Some(&window.name),
                        destination,
                        ParquetOptions::new(run_id, *worker),
                    )?),
                    RowFormat::JsonLines => Box::new(JsonLinesSink::to_destination(
                        &schema,
                        destination,
                        run_id,
                        *worker,
                    )),
                };
                Ok(StagedRows {
                    sink,
                    publication: Some(Publication {
                        location: location.display(),
                        run_id: run_id.to_string(),
                        worker: *worker,
                        workers: *workers,
                        mode: *mode,
                        parts: Vec::new(),
                        rows: 0,
                    }),
                })
            }
        }
    }
}

/// A run's row sink, and the publication its parts will make.
pub struct StagedRows {
    pub(crate) sink: Box<dyn RowSink>,
    pub(crate) publication: Option<Publication>,
}

impl StagedRows {
    /// Seals the parts: the publication to record with the commit, if the rows go to files
    /// and publishing changes something (a run that appends no part changes nothing).
    pub(crate) fn seal(self) -> Result<(Option<Publication>, SinkSummary), RunError> {
        let summary = self.sink.finish()?;
        let publication = self
            .publication
            .map(|p| Publication {
                parts: summary.parts.clone(),
                rows: summary.rows,
                ..p
            })
            .filter(|p| p.mode == OutputMode::Overwrite || !p.parts.is_empty());
        Ok((publication, summary))
    }
}

/// A window run over the blocks already in a store.
pub struct WindowRun<'a> {
    pub window: Arc<WindowPlan>,
    /// The store, or a segment of it.
    pub store: &'a dyn BlockStore,
    pub rows: RowsOut,
}

/// Computes the rows of every identity in the store and commits them: the run's parts replace
/// or join the output's (see [`OutputMode`]) all at once, at the end.
pub fn run_window(
    run: WindowRun<'_>,
    services: &mut Services,
) -> Result<WindowRunReport, RunError> {
    let started = Instant::now();
    let WindowRun {
        window,
        store,
        rows,
    } = run;
    let recovered = commit::recover(store, services)?;
    let run_id = dtc_io::sink::new_run_id();
    let mut staged = match rows.prepare(services)? {
        Some(mut prepared) => Some(prepared.stage(&window, &run_id, services)?),
        None => None,
    };
    let mut operator = WindowOperator::new(window.clone());
    let mut report = WindowReport::new(&window.name);
    let mut sink_error: Option<IoError> = None;
    let identities = window_over_store(&mut operator, store, |identity, rows| {
        report.preview(rows);
        if let Some(staged) = staged.as_mut()
            && let Err(e) = staged.sink.write_identity(identity, rows)
        {
            let message = e.to_string();
            sink_error = Some(e);
            return Err(EngineError::Sink(message));
        }
        Ok(())
    });
    let identities = match (identities, sink_error) {
        (Err(_), Some(e)) => return Err(e.into()),
        (result, _) => result?,
    };
    report.identities = identities;
    report.finish(&operator);
    let mut manifest = Manifest::new(&run_id);
    if let Some(staged) = staged {
        let (publication, summary) = staged.seal()?;
        report.rows = summary.rows;
        report.nulled_values = summary.nulled_values;
        report.output = publication.as_ref().map(|p| p.location.clone());
        manifest.publications.extend(publication);
    }
    commit::commit(store, WriteBatch::default(), manifest, services)?;
    Ok(WindowRunReport {
        store: store.describe(),
        store_usage: store.usage(),
        recovered,
        window: report,
        elapsed: started.elapsed(),
    })
}
