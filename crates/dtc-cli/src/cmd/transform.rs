//! `dtc transform`: streaming runs (events → blocks), window runs (blocks → rows), or both.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use dtc_engine::batch::{BatchConfig, Pushed, StreamingBatch, view_of_state, window_over_store};
use dtc_engine::error::Fault;
use dtc_engine::sort::IdentityOrder;
use dtc_engine::streaming::StreamingOperator;
use dtc_engine::window::WindowOperator;
use dtc_io::sink::{
    BlurrTextSink, Destination, JsonLinesSink, LocalDir, ParquetOptions, ParquetSink, RowSchema,
    new_run_id,
};
use dtc_io::{DeadLetterWriter, Extractor, InputSpec, LineReader, RowSink};
use dtc_plan::plan::{StreamingPlan, WindowPlan};
use dtc_plan::record::Row;
use dtc_plan::value::Value;
use dtc_store::BlockStore;

use crate::blame::{self, Blame};
use crate::cmd::records;
use crate::specs;

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

#[derive(Debug, Args)]
pub struct TransformArgs {
    /// The streaming DTC.
    #[arg(long, visible_alias = "streaming-bts", value_name = "SPEC")]
    pub streaming: PathBuf,
    /// The window DTC: with --source, rows are computed in the same run; without, from the
    /// blocks already in the store.
    #[arg(long, visible_alias = "window-bts", value_name = "SPEC")]
    pub window: Option<PathBuf>,
    /// Raw events: JSON-lines files (.gz too), directories, `-` for stdin; comma-separated
    /// lists are accepted.
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
    /// Rejected events, one JSON line each (default: dead-letters.jsonl beside the store).
    #[arg(long, value_name = "PATH")]
    pub dead_letter: Option<PathBuf>,
    /// Memory for sorting events before spilling sorted runs to disk.
    #[arg(long, default_value_t = 128, value_name = "MiB")]
    pub sort_memory_mb: usize,
    /// Records per store write; each write is atomic and marks the run's progress.
    #[arg(long, default_value_t = 2_000, value_name = "N")]
    pub write_batch: usize,
    /// Directory for spill files (default: the system temp directory).
    #[arg(long, value_name = "DIR")]
    pub spill_dir: Option<PathBuf>,
    /// No progress, no summary, no preview.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: TransformArgs) -> ExitCode {
    match transform(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Specs) => ExitCode::from(1),
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Run {
            message,
            fault,
            retryable,
        }) => {
            eprintln!("error: {message}");
            eprintln!("  {}", blame::explain(fault, retryable));
            ExitCode::from(1)
        }
    }
}

enum Failure {
    /// Diagnostics were already printed.
    Specs,
    Usage(String),
    Run {
        message: String,
        fault: Fault,
        retryable: bool,
    },
}

fn run_err(e: impl Blame) -> Failure {
    Failure::Run {
        message: e.to_string(),
        fault: e.fault(),
        retryable: e.retryable(),
    }
}

fn transform(args: &TransformArgs) -> Result<(), Failure> {
    let mut paths = vec![args.streaming.clone()];
    paths.extend(args.window.clone());
    let catalog = specs::load_and_report(&paths).ok_or(Failure::Specs)?;
    let streaming = specs::single_streaming(&catalog).ok_or_else(|| {
        Failure::Usage(format!(
            "{} is not a streaming DTC",
            args.streaming.display()
        ))
    })?;
    let window = match &args.window {
        Some(path) => Some(
            specs::single_window(&catalog)
                .ok_or_else(|| Failure::Usage(format!("{} is not a window DTC", path.display())))?,
        ),
        None => None,
    };
    if let Some(w) = &window
        && w.streaming.name != streaming.name
    {
        return Err(Failure::Usage(format!(
            "window DTC `{}` reads streaming DTC `{}`, not `{}`",
            w.name, w.streaming.name, streaming.name
        )));
    }
    let segment = match (args.segment, args.total_segments) {
        (Some(index), Some(total)) => {
            Some(dtc_store::Segment::new(index, total).ok_or_else(|| {
                Failure::Usage(format!(
                    "--segment {index} is not below --total-segments {total}"
                ))
            })?)
        }
        _ => None,
    };
    let store_options = dtc_aws::DynamoOptions {
        create_table: args.create_table,
        retention_days: args.retention_days.or_else(|| {
            streaming
                .stores
                .iter()
                .find_map(|s| s.retention_days)
                .and_then(|d| u32::try_from(d).ok())
        }),
        ..dtc_aws::DynamoOptions::default()
    };
    let store = dtc_aws::open_store(&args.store, store_options).map_err(run_err)?;
    if window.is_none() && args.format == Some(OutputFormat::Parquet) {
        return Err(Failure::Usage(
            "--format parquet writes window rows: give --window too, or print the stored \
             records with --format jsonl or --format blurr"
                .into(),
        ));
    }
    let format = args.format.unwrap_or(if window.is_some() {
        OutputFormat::Parquet
    } else {
        OutputFormat::Jsonl
    });
    let sources: Vec<String> = args
        .source
        .iter()
        .flat_map(|s| s.split(',').map(str::to_string))
        .filter(|s| !s.is_empty())
        .collect();
    match (sources.is_empty(), window) {
        (true, None) => Err(Failure::Usage(
            "nothing to do: give --source to run the streaming DTC, or --window to compute rows from stored blocks".into(),
        )),
        (true, Some(window)) => match segment {
            Some(segment) => {
                let view = dtc_store::SegmentedStore::new(store.as_ref(), segment);
                window_only(args, &view, window, format)
            }
            None => window_only(args, store.as_ref(), window, format),
        },
        (false, _) if segment.is_some() => Err(Failure::Usage(
            "--segment splits window runs over a store (--window without --source); split a \
             streaming backfill by its input files instead"
                .into(),
        )),
        (false, window) => streaming_run(args, &sources, store.as_ref(), streaming, window, format),
    }
}

/// The sink for a window's rows; `run_id` names its files (a resumed run reuses the crashed
/// run's id, so its files replace the crashed run's instead of duplicating rows).
fn make_sink(
    args: &TransformArgs,
    window: &WindowPlan,
    format: OutputFormat,
    run_id: &str,
) -> Result<(Box<dyn RowSink>, Option<PathBuf>), Failure> {
    let schema = RowSchema::from_plan(window);
    let dir = args
        .output
        .clone()
        .unwrap_or_else(|| Path::new("dtc-out").join(&window.name));
    // Workers of a segmented run write side by side: the segment keeps their part names apart.
    let worker = args.segment.unwrap_or(0);
    let destination = || -> Result<Box<dyn Destination>, Failure> {
        match dir.to_str().filter(|d| dtc_aws::s3::is_s3_url(d)) {
            Some(url) => {
                let s3 = dtc_aws::s3::S3::connect(None).map_err(run_err)?;
                Ok(Box::new(s3.destination(url).map_err(run_err)?))
            }
            None => Ok(Box::new(LocalDir::new(&dir))),
        }
    };
    Ok(match format {
        OutputFormat::Parquet => {
            let options = ParquetOptions::new(run_id, worker);
            let sink = ParquetSink::new(&schema, Some(&window.name), destination()?, options)
                .map_err(run_err)?;
            (Box::new(sink), Some(dir))
        }
        OutputFormat::Jsonl if args.output.is_some() => {
            let mut destination = destination()?;
            let sink = JsonLinesSink::to_destination(&schema, destination.as_mut(), run_id, worker)
                .map_err(run_err)?;
            (Box::new(sink), Some(dir))
        }
        OutputFormat::Jsonl => (
            Box::new(JsonLinesSink::to_writer(
                &schema,
                Box::new(std::io::stdout()),
            )),
            None,
        ),
        OutputFormat::Blurr => (
            Box::new(BlurrTextSink::new(&schema, Box::new(std::io::stdout()))),
            None,
        ),
    })
}

fn window_only(
    args: &TransformArgs,
    store: &dyn BlockStore,
    window: Arc<WindowPlan>,
    format: OutputFormat,
) -> Result<(), Failure> {
    let started = Instant::now();
    let (mut sink, dir) = make_sink(args, &window, format, &new_run_id())?;
    let mut operator = WindowOperator::new(window.clone());
    let mut preview = Preview::new(!args.quiet && dir.is_some());
    let identities = window_over_store(&mut operator, store, |identity, rows| {
        preview.add(rows);
        sink.write_identity(identity, rows)
            .map_err(|e| dtc_engine::EngineError::Sink(e.to_string()))
    })
    .map_err(run_err)?;
    let written = sink.finish().map_err(run_err)?;
    if !args.quiet {
        eprintln!(
            "window run `{}` over {}: {identities} identities, {} rows in {:.2?}",
            window.name,
            store.describe(),
            written.rows,
            started.elapsed()
        );
        report_window(&operator, &window);
        if let Some(usage) = store.usage() {
            eprintln!("  {usage}");
        }
        preview.print(&window, dir.as_deref().map(|d| (d, format)));
    }
    Ok(())
}

fn streaming_run(
    args: &TransformArgs,
    sources: &[String],
    store: &dyn BlockStore,
    streaming: Arc<StreamingPlan>,
    window: Option<Arc<WindowPlan>>,
    format: OutputFormat,
) -> Result<(), Failure> {
    let started = Instant::now();
    let inputs = open_inputs(sources)?;
    let dead_letter_path = args
        .dead_letter
        .clone()
        .unwrap_or_else(|| default_dead_letter_path(&args.store));
    let mut dead_letters = open_dead_letters(&dead_letter_path)?;
    let config = BatchConfig {
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
    };
    let mut batch = StreamingBatch::new(streaming.clone(), config).map_err(run_err)?;
    let extractor = Extractor::new(&streaming.source_paths, streaming.needs_whole_source);
    let mut values = Vec::with_capacity(extractor.output_len());
    let takes_raw = batch.takes_raw();
    let mut raw = Vec::with_capacity(extractor.output_len());
    let mut progress = Progress::new(!args.quiet && std::io::stderr().is_terminal());
    let (mut lines, mut filtered) = (0u64, 0u64);
    // Blurr's text output reported bad records on stderr; keep that for `--format blurr`.
    let echo_rejects = args.format == Some(OutputFormat::Blurr);
    let mut already_applied = 0u64;
    // Identifies this run's input exactly, so a re-run after a crash can resume (see
    // `StreamingBatch::resumable`); stdin cannot be re-read, so such runs do not resume.
    let mut fingerprint = Some(Fnv::new());
    for input in inputs {
        let mut reader = LineReader::open(input).map_err(run_err)?;
        let name = reader.name().clone();
        // A file is an input partition: its lines up to the stored checkpoint were applied by
        // an earlier run into this store, and must not be applied twice.
        let partition = partition_of(&name);
        match (&partition, fingerprint.as_mut()) {
            (Some(p), Some(f)) => {
                f.write(p.as_bytes());
                let size = std::fs::metadata(&*name).map_or(0, |m| m.len());
                f.write(&size.to_le_bytes());
            }
            _ => fingerprint = None,
        }
        let done = match &partition {
            Some(p) => store
                .checkpoint(p)
                .map_err(run_err)?
                .map_or(0, |c| c.offset.max(0) as u64),
            None => 0,
        };
        if let Some(f) = fingerprint.as_mut() {
            f.write(&done.to_le_bytes());
        }
        let mut last_line = done;
        while let Some(line) = reader.next_line().map_err(run_err)? {
            if line.number <= done {
                already_applied += 1;
                continue;
            }
            last_line = line.number;
            lines += 1;
            progress.tick(lines);
            // Most lines take the fast road: their scalars are encoded for the sort where they
            // lie in the line, without building values (see `StreamingBatch::push_raw`).
            let pushed =
                if takes_raw && !line.truncated && extractor.extract_raw(line.bytes, &mut raw) {
                    batch.push_raw(line.bytes, &raw, &mut values)
                } else {
                    let extracted = if line.truncated {
                        Err(dtc_io::Rejection::new(
                            dtc_io::RejectReason::LineTooLong,
                            "the line is longer than the maximum line length",
                        ))
                    } else {
                        extractor.extract(line.bytes, &mut values)
                    };
                    match extracted {
                        Ok(()) => {
                            let whole = if streaming.needs_whole_source {
                                values.pop()
                            } else {
                                None
                            };
                            batch.push(&mut values, whole)
                        }
                        Err(dtc_io::Rejection { reason, detail }) => {
                            Ok(Pushed::Rejected { reason, detail })
                        }
                    }
                };
            match pushed.map_err(run_err)? {
                Pushed::Accepted => {}
                Pushed::Filtered => filtered += 1,
                Pushed::Rejected { reason, detail } => {
                    let rejection = dtc_io::Rejection { reason, detail };
                    reject(
                        &mut dead_letters,
                        echo_rejects,
                        &name,
                        line.number,
                        &rejection,
                        line.bytes,
                    )?;
                }
            }
        }
        if let Some(p) = partition
            && last_line > done
        {
            batch.set_checkpoint(p, last_line as i64);
        }
    }
    progress.done();
    let read_elapsed = started.elapsed();
    let run_id = match fingerprint {
        Some(f) => {
            let id = format!("{:016x}", f.finish());
            batch.resumable(format!("run:{id}"));
            id
        }
        None => new_run_id(),
    };

    let (mut sink, out_dir) = match &window {
        Some(w) => {
            let (sink, dir) = make_sink(args, w, format, &run_id)?;
            (Some(sink), dir)
        }
        None => (None, None),
    };
    let mut window_op = window.clone().map(WindowOperator::new);
    let mut preview = Preview::new(!args.quiet && out_dir.is_some());
    let mut rows: Vec<Row> = Vec::new();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let print_records = window.is_none() && args.format.is_some();
    let (operator, summary) = batch
        .finish(store, |operator: &StreamingOperator, state| {
            if let (Some(op), Some(sink)) = (window_op.as_mut(), sink.as_mut()) {
                rows.clear();
                let view = view_of_state(op.plan(), state);
                op.rows(&view, &mut rows);
                preview.add(&rows);
                sink.write_identity(&state.identity, &rows)
                    .map_err(|e| dtc_engine::EngineError::Sink(e.to_string()))?;
            }
            if print_records {
                records::print_state(
                    &mut out,
                    operator.plan(),
                    state,
                    format == OutputFormat::Blurr,
                )
                .map_err(|e| dtc_engine::EngineError::Sink(e.to_string()))?;
            }
            Ok(())
        })
        .map_err(run_err)?;
    out.flush().map_err(run_err)?;
    drop(out);
    let sink_summary = match sink {
        Some(sink) => Some(sink.finish().map_err(run_err)?),
        None => None,
    };
    let rejected = dead_letters.finish().map_err(run_err)?;
    if args.quiet {
        return Ok(());
    }
    let elapsed = started.elapsed();
    eprintln!(
        "streaming run `{}` into {}",
        streaming.name,
        store.describe()
    );
    eprintln!("  events read:      {lines}");
    if already_applied > 0 {
        eprintln!("  skipped, applied by an earlier run into this store: {already_applied}");
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
    eprintln!("  applied:          {}", summary.events_applied);
    eprintln!("  filtered by When: {filtered}");
    eprintln!("  rejected:         {}", rejected.total());
    for (reason, n) in rejected.nonzero() {
        eprintln!("    {reason}: {n}");
    }
    if rejected.total() > 0 {
        eprintln!("    (see {})", dead_letter_path.display());
    }
    eprintln!("  identities:       {}", summary.identities);
    if summary.resumed_identities > 0 {
        eprintln!(
            "  resumed: {} identities were written by an interrupted run with this input",
            summary.resumed_identities
        );
    }
    eprintln!("  records written:  {}", summary.records_written);
    if let Some(usage) = store.usage() {
        eprintln!("  {usage}");
    }
    if summary.spilled_runs > 0 {
        eprintln!("  sorted runs spilled: {}", summary.spilled_runs);
    }
    report_errors(operator.errors(), &streaming.field_names);
    if let (Some(w), Some(op)) = (&window, &window_op) {
        if let Some(s) = &sink_summary {
            eprintln!("window `{}`: {} rows", w.name, s.rows);
        }
        report_window(op, w);
    }
    eprintln!(
        "elapsed: {:.2?} (reading {:.2?}), {:.0} events/s",
        elapsed,
        read_elapsed,
        lines as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    if let Some(w) = &window {
        preview.print(w, out_dir.as_deref().map(|d| (d, format)));
    }
    Ok(())
}

/// The inputs of `sources` in order: S3 locations listed through dtc-aws, the rest through
/// `InputSpec` (files, directories, stdin).
fn open_inputs(sources: &[String]) -> Result<Vec<Box<dyn dtc_io::Input>>, Failure> {
    let mut inputs = Vec::new();
    let mut s3 = None;
    for source in sources {
        if dtc_aws::s3::is_s3_url(source) {
            if s3.is_none() {
                s3 = Some(dtc_aws::s3::S3::connect(None).map_err(run_err)?);
            }
            if let Some(s3) = &s3 {
                inputs.extend(s3.inputs(source).map_err(run_err)?);
            }
        } else {
            let spec = InputSpec::parse(std::slice::from_ref(source))
                .map_err(|e| Failure::Usage(e.to_string()))?;
            inputs.extend(spec.inputs().map_err(|e| Failure::Usage(e.to_string()))?);
        }
    }
    Ok(inputs)
}

/// Sends a rejected line to the dead-letter output (and, if `echo`, names it on stderr).
fn reject(
    dead_letters: &mut DeadLetterWriter<std::io::BufWriter<std::fs::File>>,
    echo: bool,
    input: &str,
    line: u64,
    rejection: &dtc_io::Rejection,
    raw: &[u8],
) -> Result<(), Failure> {
    if echo {
        eprintln!(
            "rejected {input}:{line}: {}: {}",
            rejection.reason, rejection.detail
        );
    }
    dead_letters
        .write(input, line, rejection, raw)
        .map_err(run_err)
}

/// The checkpoint key of an input: a file's absolute path, an S3 object's URL; stdin has none.
fn partition_of(input_name: &str) -> Option<String> {
    if input_name == "-" || input_name == "<stdin>" {
        return None;
    }
    if dtc_aws::s3::is_s3_url(input_name) {
        return Some(input_name.to_string());
    }
    let path = std::fs::canonicalize(input_name).ok()?;
    Some(format!("file:{}", path.display()))
}

fn open_dead_letters(
    path: &Path,
) -> Result<DeadLetterWriter<std::io::BufWriter<std::fs::File>>, Failure> {
    let context = |e: std::io::Error| Failure::Run {
        message: format!("cannot write dead letters to {}: {e}", path.display()),
        fault: e.fault(),
        retryable: e.retryable(),
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(context)?;
    }
    let file = std::fs::File::create(path).map_err(context)?;
    Ok(DeadLetterWriter::new(
        std::io::BufWriter::new(file),
        path.display().to_string(),
    ))
}

fn default_dead_letter_path(store: &str) -> PathBuf {
    let dir = store.strip_prefix("file:").unwrap_or(store);
    if store.starts_with("memory:") || store.contains("://") {
        PathBuf::from("dtc-dead-letters.jsonl")
    } else {
        Path::new(dir).join("dead-letters.jsonl")
    }
}

fn report_errors(errors: &dtc_engine::stats::FieldErrors, names: &[String]) {
    let total = errors.total();
    eprintln!("  evaluation errors: {total}");
    for (name, count, first) in errors.nonzero(names) {
        eprintln!("    {name}: {count} (first: {first})");
    }
}

fn report_window(op: &WindowOperator, plan: &WindowPlan) {
    if op.dropped_anchors > 0 {
        eprintln!(
            "  anchors without a row (empty or short window, Blurr semantics): {}",
            op.dropped_anchors
        );
    }
    if op.over_max > 0 {
        eprintln!("  anchors over Max per day: {}", op.over_max);
    }
    report_errors(&op.errors, &plan.field_names);
}

/// The first few training rows, shown after a run so the user sees what was produced.
struct Preview {
    enabled: bool,
    rows: Vec<Row>,
}

const PREVIEW_ROWS: usize = 8;

impl Preview {
    fn new(enabled: bool) -> Self {
        Preview {
            enabled,
            rows: Vec::new(),
        }
    }

    fn add(&mut self, rows: &[Row]) {
        if self.enabled && self.rows.len() < PREVIEW_ROWS {
            let room = PREVIEW_ROWS - self.rows.len();
            self.rows.extend(rows.iter().take(room).cloned());
        }
    }

    /// `dir`: where the rows went, in which format.
    fn print(&self, plan: &WindowPlan, dir: Option<(&Path, OutputFormat)>) {
        if !self.enabled {
            return;
        }
        let mut header = vec!["identity".to_string(), "anchor_time".to_string()];
        header.extend(plan.field_names.iter().cloned());
        let mut table: Vec<Vec<String>> = vec![header];
        for row in &self.rows {
            let mut line = vec![
                row.identity.to_string(),
                row.anchor_time.format("%Y-%m-%d %H:%M:%S").to_string(),
            ];
            line.extend(row.values.iter().map(cell));
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
        if self.rows.is_empty() {
            println!("no training rows in this run (the summary above says why)");
            return;
        }
        println!("first {} training rows:", self.rows.len());
        for r in &table {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(v, w)| format!("{v:<w$}"))
                .collect();
            println!("  {}", cells.join("  ").trim_end());
        }
        if let Some((dir, format)) = dir {
            let kind = match format {
                OutputFormat::Parquet => "Parquet",
                OutputFormat::Jsonl | OutputFormat::Blurr => "JSON lines",
            };
            println!("\n{kind} output: {}", dir.display());
        }
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Float(f) => format!("{f:.2}"),
        other => dtc_io::format::to_json_string(other, dtc_io::format::JsonStyle::Compact)
            .trim_matches('"')
            .to_string(),
    }
}

/// A one-line progress display on a terminal, redrawn at most every 200 ms.
struct Progress {
    enabled: bool,
    started: Instant,
    last: Instant,
}

impl Progress {
    fn new(enabled: bool) -> Self {
        let now = Instant::now();
        Progress {
            enabled,
            started: now,
            last: now,
        }
    }

    fn tick(&mut self, lines: u64) {
        if !self.enabled || !lines.is_multiple_of(4096) {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.last) < Duration::from_millis(200) {
            return;
        }
        self.last = now;
        let rate = lines as f64 / now.duration_since(self.started).as_secs_f64().max(1e-9);
        eprint!("\r  read {lines} events ({rate:.0}/s)   ");
    }

    fn done(&self) {
        if self.enabled {
            eprint!("\r\x1b[2K");
        }
    }
}

/// FNV-1a: a fingerprint that stays the same across builds and platforms (std's hasher does
/// not promise that), so a resumed run finds the crashed run's checkpoint.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
