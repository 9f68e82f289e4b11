//! `dtc transform`: streaming runs (events → blocks), window runs (blocks → rows), or both.
//! Flags in, a `dtc_runtime` run, the report rendered.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use dtc_engine::sort::IdentityOrder;
use dtc_io::Rejection;
use dtc_io::dead_letter::{Position, RejectCounts};
use dtc_io::extract::UnseenPath;
use dtc_io::output::OutputMode;
use dtc_io::sink::{BlurrTextSink, JsonLinesSink, RowSchema};
use dtc_plan::plan::WindowPlan;
use dtc_runtime::RunError;
use dtc_runtime::batch::{BatchOptions, BatchRun, preview_cell, run_batch};
use dtc_runtime::locations::{OutputLocation, Services, StoreOptions, default_dead_letters};
use dtc_runtime::report::{BatchReport, FieldErrorReport, Observer, WindowReport};
use dtc_runtime::specs::JobSpecs;
use dtc_runtime::window::{RowFiles, RowFormat, RowsOut, WindowRun, run_window};
use dtc_store::OpenMode;

use crate::cmd::records;
use crate::report_error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Parquet files in the output directory (window runs).
    Parquet,
    /// JSON lines: rows (window runs) or stored records (streaming-only runs) on stdout, or in
    /// the output directory with `--output`.
    Jsonl,
    /// Blurr's text output on stdout.
    Blurr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// This run's parts replace the earlier runs' parts in the output (one copy of the rows).
    Overwrite,
    /// This run's parts are added to those already in the output.
    Append,
}

#[derive(Debug, Args)]
pub struct TransformArgs {
    /// The streaming DTC.
    #[arg(long, visible_alias = "streaming-bts", value_name = "SPEC")]
    pub streaming: PathBuf,
    /// The window DTC: with --source, rows are computed in the same run; without, from the
    /// blocks already in the store.
    #[arg(long, visible_alias = "window-bts", value_name = "SPEC")]
    pub window: Option<PathBuf>,
    /// Raw events: JSON-lines files (.gz too), directories, `-` for stdin, s3://bucket/prefix;
    /// comma-separated lists are accepted. Or kafka://HOST:PORT[,HOST:PORT]/TOPIC[,TOPIC] with
    /// --group: a continuous run until SIGINT/SIGTERM (or --stop-at-end).
    #[arg(long, value_name = "PATH", num_args = 1..)]
    pub source: Vec<String>,
    /// Block store: a directory or file:PATH (embedded store), memory:, or dynamodb://TABLE.
    #[arg(
        long,
        env = "DTC_STORE",
        default_value = "./dtc-data",
        value_name = "URI"
    )]
    pub store: String,
    /// Create the DynamoDB table of --store if it does not exist (on-demand billing).
    #[arg(long)]
    pub create_table: bool,
    /// Blocks in DynamoDB expire this many days after they end (default: the spec's store
    /// `Retention`).
    #[arg(long, value_name = "DAYS")]
    pub retention_days: Option<u32>,
    /// With --total-segments: this worker's share of a window run over the store (0-based).
    #[arg(long, value_name = "I", requires = "total_segments")]
    pub segment: Option<u32>,
    /// Workers splitting a window run over the store by identity.
    #[arg(long, value_name = "N", requires = "segment")]
    pub total_segments: Option<u32>,
    /// Where window rows go: a directory or s3://bucket/prefix/ (default
    /// ./dtc-out/<window name>/).
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: Option<OutputFormat>,
    /// How this run's rows join the output's: a window run over the store replaces the
    /// earlier runs' rows by default, a run with --source adds its rows.
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Rejected events, one JSON line each, appended (default: dead-letters.jsonl beside the
    /// store).
    #[arg(long, value_name = "PATH")]
    pub dead_letter: Option<PathBuf>,
    /// Leave out input files whose data is damaged (a corrupt or truncated .gz), list them in
    /// the summary and the dead letters, and go on; without it such a file stops the run before
    /// anything is committed.
    #[arg(long)]
    pub skip_bad_files: bool,
    /// Memory for sorting events before spilling sorted runs to disk.
    #[arg(long, default_value_t = 128, value_name = "MiB")]
    pub sort_memory_mb: usize,
    /// Records per store write.
    #[arg(long, default_value_t = 2_000, value_name = "N")]
    pub write_batch: usize,
    /// Directory for spill files (default: the system temp directory).
    #[arg(long, value_name = "DIR")]
    pub spill_dir: Option<PathBuf>,
    /// No progress, no summary, no preview.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub kafka: crate::cmd::kafka::KafkaArgs,
}

pub fn run(args: TransformArgs, verbose: bool) -> ExitCode {
    match transform(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Specs) => ExitCode::from(1),
        Err(Failure::Run(e)) => report_error(&e, verbose),
    }
}

enum Failure {
    /// Diagnostics were already printed.
    Specs,
    Run(RunError),
}

impl From<RunError> for Failure {
    fn from(e: RunError) -> Self {
        Failure::Run(e)
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure::Run(RunError::Usage(message.into()))
}

fn transform(args: &TransformArgs) -> Result<(), Failure> {
    let windows: Vec<PathBuf> = args.window.iter().cloned().collect();
    let specs = crate::specs::load_job(&args.streaming, &windows).ok_or(Failure::Specs)??;
    let sources: Vec<String> = args
        .source
        .iter()
        .flat_map(|s| s.split(',').map(str::to_string))
        .filter(|s| !s.is_empty())
        .collect();
    let window = specs.windows.first().cloned();
    if window.is_none() && args.format == Some(OutputFormat::Parquet) {
        return Err(usage(
            "--format parquet writes window rows: give --window too, or print the stored \
             records with --format jsonl or --format blurr",
        ));
    }
    if sources.is_empty() && window.is_none() {
        return Err(usage(
            "nothing to do: give --source to run the streaming DTC, or --window to compute rows from stored blocks",
        ));
    }
    let segment = match (args.segment, args.total_segments) {
        (Some(index), Some(total)) => {
            Some(dtc_store::Segment::new(index, total).ok_or_else(|| {
                usage(format!(
                    "--segment {index} is not below --total-segments {total}"
                ))
            })?)
        }
        _ => None,
    };
    if !sources.is_empty() && segment.is_some() {
        return Err(usage(
            "--segment splits window runs over a store (--window without --source); split a \
             streaming backfill by its input files instead",
        ));
    }
    let store_options = StoreOptions {
        create_table: args.create_table,
        retention_days: args
            .retention_days
            .or_else(|| spec_retention(&specs.streaming)),
    };
    // A window run over the store only reads it: a mistyped path must not read as empty.
    let mode = if sources.is_empty() {
        OpenMode::MustExist
    } else {
        OpenMode::CreateIfMissing
    };
    if sources.iter().any(|s| dtc_kafka::KafkaUri::is_kafka(s)) {
        let ([source], None) = (sources.as_slice(), &window) else {
            return Err(usage(
                "a kafka:// source is read alone and without --window: compute rows from the \
                 store with a window run (--window and --store, no --source)",
            ));
        };
        let dead_letters = args
            .dead_letter
            .clone()
            .unwrap_or_else(|| default_dead_letters(&args.store));
        let report = crate::cmd::kafka::transform(
            specs.streaming.clone(),
            source,
            &args.store,
            &store_options,
            dead_letters,
            &args.kafka,
            args.quiet,
        )?;
        if !args.quiet {
            crate::cmd::kafka::print_summary(&report);
        }
        return Ok(());
    }
    let store = dtc_runtime::locations::open_store(&args.store, mode, &store_options)?;
    let mut services = Services::default();
    match (sources.is_empty(), window) {
        (true, Some(window)) => {
            let view;
            let store: &dyn dtc_store::BlockStore = match segment {
                Some(segment) => {
                    view = dtc_store::SegmentedStore::new(store.as_ref(), segment);
                    &view
                }
                None => store.as_ref(),
            };
            window_only(args, store, window, segment, &mut services)
        }
        (_, window) => streaming_run(args, sources, store.as_ref(), &specs, window, &mut services),
    }
}

/// The retention in days the streaming spec's store declares, if any.
pub fn spec_retention(streaming: &dtc_plan::plan::StreamingPlan) -> Option<u32> {
    streaming
        .stores
        .iter()
        .find_map(|s| s.retention_days)
        .and_then(|d| u32::try_from(d).ok())
}

fn format_of(args: &TransformArgs, window: bool) -> OutputFormat {
    args.format.unwrap_or(if window {
        OutputFormat::Parquet
    } else {
        OutputFormat::Jsonl
    })
}

/// Where `window`'s rows go for this command line.
fn rows_out(
    args: &TransformArgs,
    window: &WindowPlan,
    default_mode: OutputMode,
    segment: Option<dtc_store::Segment>,
) -> RowsOut {
    let format = format_of(args, true);
    let stdout = || -> Box<dyn std::io::Write + Send> { Box::new(std::io::stdout()) };
    let schema = RowSchema::from_plan(window);
    match (format, &args.output) {
        (OutputFormat::Blurr, _) => {
            RowsOut::Stream(Box::new(BlurrTextSink::new(&schema, stdout())))
        }
        (OutputFormat::Jsonl, None) => {
            RowsOut::Stream(Box::new(JsonLinesSink::to_writer(&schema, stdout())))
        }
        (format, output) => {
            let location = output
                .as_ref()
                .map(|o| OutputLocation::parse(&o.display().to_string()))
                .unwrap_or_else(|| OutputLocation::Local(Path::new("dtc-out").join(&window.name)));
            RowsOut::Output(RowFiles {
                location,
                format: if format == OutputFormat::Parquet {
                    RowFormat::Parquet
                } else {
                    RowFormat::JsonLines
                },
                mode: match args.mode {
                    Some(Mode::Overwrite) => OutputMode::Overwrite,
                    Some(Mode::Append) => OutputMode::Append,
                    None => default_mode,
                },
                worker: segment.map_or(0, |s| s.index()),
                workers: segment.map_or(1, |s| s.total()),
            })
        }
    }
}

fn window_only(
    args: &TransformArgs,
    store: &dyn dtc_store::BlockStore,
    window: Arc<WindowPlan>,
    segment: Option<dtc_store::Segment>,
    services: &mut Services,
) -> Result<(), Failure> {
    let rows = rows_out(args, &window, OutputMode::Overwrite, segment);
    let report = run_window(
        WindowRun {
            window: window.clone(),
            store,
            rows,
        },
        services,
    )?;
    if args.quiet {
        return Ok(());
    }
    let w = &report.window;
    eprintln!(
        "window run `{}` over {}: {} identities, {} rows in {:.2?}",
        w.name, report.store, w.identities, w.rows, report.elapsed
    );
    print_recovered(&report.recovered);
    report_window(w);
    if let Some(usage) = &report.store_usage {
        eprintln!("  {usage}");
    }
    print_preview(&window, w, format_of(args, true));
    Ok(())
}

/// Progress on a terminal, and Blurr's echo of rejected lines.
struct CliObserver {
    progress: Option<Progress>,
    echo_rejects: bool,
}

impl Observer for CliObserver {
    fn read_progress(&mut self, records: u64) {
        if let Some(progress) = self.progress.as_mut() {
            progress.tick(records);
        }
    }

    fn read_done(&mut self) {
        if let Some(progress) = &self.progress {
            progress.done();
        }
    }

    fn rejected(&mut self, input: &str, position: Position, rejection: &Rejection) {
        // Blurr's text output reported bad records on stderr; kept for `--format blurr`.
        if self.echo_rejects {
            let at = match position {
                Position::Line(n) => n.to_string(),
                Position::Offset(o) => o.to_string(),
                Position::Byte(b) => format!("byte {b}"),
            };
            eprintln!(
                "rejected {input}:{at}: {}: {}",
                rejection.reason, rejection.detail
            );
        }
    }
}

fn streaming_run(
    args: &TransformArgs,
    sources: Vec<String>,
    store: &dyn dtc_store::BlockStore,
    specs: &JobSpecs,
    window: Option<Arc<WindowPlan>>,
    services: &mut Services,
) -> Result<(), Failure> {
    let format = format_of(args, window.is_some());
    let rows = match &window {
        Some(w) => rows_out(args, w, OutputMode::Append, None),
        None => RowsOut::None,
    };
    let dead_letters = args
        .dead_letter
        .clone()
        .unwrap_or_else(|| default_dead_letters(&args.store));
    let options = BatchOptions {
        sort_budget_bytes: args.sort_memory_mb.max(1) << 20,
        spill_dir: args.spill_dir.clone().unwrap_or_else(std::env::temp_dir),
        write_batch_records: args.write_batch.max(1),
        // Blurr printed identities in the order they first appeared; everything else follows
        // the store's key order, as a run over stored blocks does.
        identity_order: if args.format == Some(OutputFormat::Blurr) {
            IdentityOrder::FirstAppearance
        } else {
            IdentityOrder::Name
        },
        skip_bad_files: args.skip_bad_files,
    };
    let mut observer = CliObserver {
        progress: (!args.quiet && std::io::stderr().is_terminal()).then(Progress::new),
        echo_rejects: args.format == Some(OutputFormat::Blurr),
    };
    let print_records = window.is_none() && args.format.is_some();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut print = |plan: &dtc_plan::plan::StreamingPlan,
                     state: &dtc_engine::streaming::IdentityState| {
        records::print_state(&mut out, plan, state, format == OutputFormat::Blurr)
    };
    let report = run_batch(
        BatchRun {
            streaming: specs.streaming.clone(),
            window: window.clone(),
            store,
            sources,
            dead_letters,
            rows,
            options,
        },
        services,
        &mut observer,
        if print_records {
            Some(&mut print)
        } else {
            None
        },
    )?;
    out.flush().map_err(|source| {
        RunError::Io(dtc_io::IoError::Write {
            target: "stdout".into(),
            source,
        })
    })?;
    drop(out);
    if !args.quiet {
        print_summary(args, &report);
        if let (Some(w), Some(window_report)) = (&window, &report.window) {
            print_preview(w, window_report, format);
        }
    }
    Ok(())
}

pub(crate) fn print_recovered(recovered: &[String]) {
    for run in recovered {
        eprintln!("  finished the commit of interrupted run {run} first");
    }
}

fn print_summary(args: &TransformArgs, report: &BatchReport) {
    eprintln!("streaming run `{}` into {}", report.streaming, report.store);
    print_recovered(&report.recovered);
    eprintln!("  events read:      {}", report.events_read);
    if report.byte_order_marks > 0 {
        eprintln!("  byte-order marks skipped: {}", report.byte_order_marks);
    }
    if report.already_applied > 0 {
        eprintln!(
            "  skipped, applied by an earlier run into this store: {}",
            report.already_applied
        );
        if let Some(w) = &args.window {
            eprintln!(
                "  note: rows are computed only for identities with new events; to rebuild all rows \
                 from the stored blocks run: dtc transform --streaming {} --window {} --store {}",
                args.streaming.display(),
                w.display(),
                args.store
            );
        }
    }
    eprintln!("  applied:          {}", report.applied);
    eprintln!("  filtered by When: {}", report.filtered);
    print_rejected(&report.rejected, &report.dead_letters);
    if !report.bad_files.is_empty() {
        eprintln!("  files left out (damaged): {}", report.bad_files.len());
        for bad in &report.bad_files {
            eprintln!("    {}", bad.error);
        }
    }
    eprintln!("  identities:       {}", report.identities);
    if report.resumed_identities > 0 {
        eprintln!(
            "  resumed: {} identities were written by an interrupted run with this input",
            report.resumed_identities
        );
    }
    eprintln!("  records written:  {}", report.records_written);
    if let Some(usage) = &report.store_usage {
        eprintln!("  {usage}");
    }
    if report.spilled_runs > 0 {
        eprintln!("  sorted runs spilled: {}", report.spilled_runs);
    }
    print_errors(&report.errors);
    print_unseen_paths(&report.unseen_source_paths);
    if let Some(w) = &report.window {
        eprintln!("window `{}`: {} rows", w.name, w.rows);
        report_window(w);
    }
    eprintln!(
        "elapsed: {:.2?} (reading {:.2?}), {:.0} events/s",
        report.elapsed,
        report.read_elapsed,
        report.events_read as f64 / report.elapsed.as_secs_f64().max(1e-9)
    );
}

pub(crate) fn print_rejected(rejected: &RejectCounts, dead_letters: &Path) {
    eprintln!("  rejected:         {}", rejected.total());
    for (reason, n) in rejected.nonzero() {
        eprintln!("    {reason}: {n}");
    }
    if rejected.total() > 0 {
        eprintln!("    (see {})", dead_letters.display());
    }
}

pub(crate) fn print_errors(errors: &[FieldErrorReport]) {
    let total: u64 = errors.iter().map(|e| e.count).sum();
    eprintln!("  evaluation errors: {total}");
    for e in errors {
        eprintln!("    {}: {} (first: {})", e.field, e.count, e.first);
    }
}

fn print_unseen_paths(paths: &[UnseenPath]) {
    if paths.is_empty() {
        return;
    }
    eprintln!(
        "  source paths the spec reads that no event had: {}",
        paths.len()
    );
    for path in paths {
        match &path.suggestion {
            Some(suggestion) => eprintln!("    {} (did you mean {suggestion}?)", path.name),
            None => eprintln!("    {}", path.name),
        }
    }
}

fn report_window(w: &WindowReport) {
    if w.anchors_without_row > 0 {
        eprintln!(
            "  anchors without a row (empty or short window, Blurr semantics): {}",
            w.anchors_without_row
        );
    }
    if w.anchors_over_max > 0 {
        eprintln!("  anchors over Max per day: {}", w.anchors_over_max);
    }
    print_errors(&w.errors);
}

/// The first training rows, shown after a run so the user sees what was produced.
fn print_preview(plan: &WindowPlan, report: &WindowReport, format: OutputFormat) {
    let Some(output) = &report.output else {
        return;
    };
    let mut header = vec!["identity".to_string(), "anchor_time".to_string()];
    header.extend(plan.field_names.iter().cloned());
    let mut table: Vec<Vec<String>> = vec![header];
    for row in &report.preview {
        let mut line = vec![
            row.identity.to_string(),
            row.anchor_time.format("%Y-%m-%d %H:%M:%S").to_string(),
        ];
        line.extend(row.values.iter().map(preview_cell));
        table.push(line);
    }
    let widths: Vec<usize> = (0..table[0].len())
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    println!();
    if report.preview.is_empty() {
        println!("no training rows in this run (the summary above says why)");
        return;
    }
    println!("first {} training rows:", report.preview.len());
    for r in &table {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        println!("  {}", cells.join("  ").trim_end());
    }
    let kind = match format {
        OutputFormat::Parquet => "Parquet",
        OutputFormat::Jsonl | OutputFormat::Blurr => "JSON lines",
    };
    println!("\n{kind} output: {output}");
}

/// A one-line progress display on a terminal, redrawn at most every 200 ms.
struct Progress {
    started: Instant,
    last: Instant,
}

impl Progress {
    fn new() -> Self {
        let now = Instant::now();
        Progress {
            started: now,
            last: now,
        }
    }

    fn tick(&mut self, records: u64) {
        let now = Instant::now();
        if now.duration_since(self.last) < Duration::from_millis(200) {
            return;
        }
        self.last = now;
        let rate = records as f64 / now.duration_since(self.started).as_secs_f64().max(1e-9);
        eprint!("\r  read {records} events ({rate:.0}/s)   ");
    }

    fn done(&self) {
        eprint!("\r\x1b[2K");
    }
}
