//! `dtc blocks`: an identity's stored records, for debugging.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::cmd::records::record_json;
use crate::specs;

#[derive(Debug, Args)]
pub struct BlocksArgs {
    /// The streaming DTC whose records to show.
    #[arg(long, visible_alias = "streaming-bts", value_name = "SPEC")]
    pub streaming: PathBuf,
    /// Block store: a directory or file:PATH (embedded store), or memory:.
    #[arg(
        long,
        env = "DTC_STORE",
        default_value = "./dtc-data",
        value_name = "URI"
    )]
    pub store: String,
    /// The identity to show.
    pub identity: String,
}

pub fn run(args: BlocksArgs) -> ExitCode {
    let Some(catalog) = specs::load_and_report(std::slice::from_ref(&args.streaming)) else {
        return ExitCode::from(1);
    };
    let Some(plan) = specs::single_streaming(&catalog) else {
        eprintln!("error: {} is not a streaming DTC", args.streaming.display());
        return ExitCode::from(2);
    };
    let result =
        dtc_store::open_store(&args.store).and_then(|store| store.load_identity(&args.identity));
    let mut records = match result {
        Ok(records) => records,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    if records.is_empty() {
        eprintln!(
            "no records for identity `{}` in {}",
            args.identity, args.store
        );
        return ExitCode::from(1);
    }
    let position = |name: &str| plan.aggregates.iter().position(|a| a.name == name);
    records.sort_by_key(|r| (position(&r.key.aggregate), r.start_time));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for r in &records {
        let Some(agg) = position(&r.key.aggregate).map(|i| &plan.aggregates[i]) else {
            continue;
        };
        let line = record_json(
            &args.identity,
            &agg.name,
            &r.key.dims,
            &agg.layout,
            &r.columns,
        );
        if writeln!(out, "{line}").is_err() {
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}
