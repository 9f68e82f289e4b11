//! `dtc blocks`: an identity's stored records, or the identities of a store, for debugging.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use dtc_runtime::RunError;
use dtc_runtime::locations::{StoreOptions, open_store};
use dtc_store::OpenMode;

use crate::report_error;
use dtc_io::format::record_json;

#[derive(Debug, Args)]
pub struct BlocksArgs {
    /// The streaming DTC whose records to show.
    #[arg(long, visible_alias = "streaming-bts", value_name = "SPEC")]
    pub streaming: PathBuf,
    /// Block store: a directory or file:PATH (embedded store), memory:, or dynamodb://TABLE.
    #[arg(
        long,
        env = "DTC_STORE",
        default_value = "./dtc-data",
        value_name = "URI"
    )]
    pub store: String,
    /// List the store's identities (one per line) instead of showing one.
    #[arg(long, conflicts_with = "identity")]
    pub list: bool,
    /// With --list: at most this many identities.
    #[arg(long, value_name = "N", requires = "list")]
    pub limit: Option<usize>,
    /// The identity to show.
    #[arg(required_unless_present = "list")]
    pub identity: Option<String>,
}

pub fn run(args: BlocksArgs, verbose: bool) -> ExitCode {
    let Some(specs) = crate::specs::load_job(&args.streaming, &[]) else {
        return ExitCode::from(1);
    };
    let result = specs.and_then(|specs| {
        let store = open_store(&args.store, OpenMode::MustExist, &StoreOptions::default())?;
        if args.list {
            list(store.as_ref(), args.limit)
        } else {
            show(
                store.as_ref(),
                &specs.streaming,
                args.identity.as_deref().unwrap_or(""),
            )
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => report_error(&e, verbose),
    }
}

fn stdout_error(source: std::io::Error) -> RunError {
    RunError::Io(dtc_io::IoError::Write {
        target: "stdout".into(),
        source,
    })
}

fn list(store: &dyn dtc_store::BlockStore, limit: Option<usize>) -> Result<ExitCode, RunError> {
    let limit = limit.unwrap_or(usize::MAX);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut shown = 0;
    let mut after: Option<String> = None;
    while shown < limit {
        let page = store.identities(after.as_deref(), (limit - shown).min(1000))?;
        for identity in page.identities.iter().take(limit - shown) {
            writeln!(out, "{identity}").map_err(stdout_error)?;
            shown += 1;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    if shown == 0 {
        eprintln!("{} holds no identities", store.describe());
    }
    Ok(ExitCode::SUCCESS)
}

fn show(
    store: &dyn dtc_store::BlockStore,
    plan: &dtc_plan::plan::StreamingPlan,
    identity: &str,
) -> Result<ExitCode, RunError> {
    let mut records = store.load_identity(identity)?;
    if records.is_empty() {
        eprintln!(
            "no records for identity `{identity}` in {} (dtc blocks --list shows the identities it holds)",
            store.describe()
        );
        return Ok(ExitCode::from(1));
    }
    let position = |name: &str| plan.aggregates.iter().position(|a| a.name == name);
    records.sort_by_key(|r| (position(&r.key.aggregate), r.start_time));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for r in &records {
        let Some(agg) = position(&r.key.aggregate).map(|i| &plan.aggregates[i]) else {
            continue;
        };
        let line = record_json(identity, &agg.name, &r.key.dims, &agg.layout, &r.columns);
        writeln!(out, "{line}").map_err(stdout_error)?;
    }
    Ok(ExitCode::SUCCESS)
}
