//! `dtc`: the command line of the DTC engine. Each subcommand lives in its own module under
//! [`cmd`]; this file only parses arguments, dispatches, and renders the errors that end a run.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dtc_runtime::RunError;

mod cmd;
mod specs;

/// Data Transform Configs: turn game events into ML features.
#[derive(Debug, Parser)]
#[command(name = "dtc", version, about, long_about = None)]
struct Cli {
    /// On an error, also print the full report of the service that failed (S3, DynamoDB).
    #[arg(long, short, global = true)]
    verbose: bool,
    /// Test builds only: kill the process at this failpoint (`N`: the N-th of any, `NAME:N`).
    #[arg(long, hide = true, global = true, value_name = "POINT")]
    failpoint: Option<dtc_failpoint::Target>,
    /// Test builds only: print how many failpoints were hit, on exit.
    #[arg(long, hide = true, global = true)]
    count_failpoints: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check spec files without running them; report every error with file, line and column.
    ///
    /// Exit code 0 if all specs are valid, 1 if any has an error, 2 if a file could not be read.
    Validate(cmd::validate::ValidateArgs),
    /// Run a streaming DTC over raw events into the block store, and/or a window DTC over
    /// blocks into training rows.
    ///
    /// With --source, events are sessionized into blocks (and, with --window, rows are computed
    /// in the same pass). With --window and no --source, rows are computed from stored blocks.
    Transform(Box<cmd::transform::TransformArgs>),
    /// Print an identity's stored records as JSON lines, or list the store's identities.
    Blocks(cmd::blocks::BlocksArgs),
    /// Serve window features over HTTP: an identity's features now, equal to its training rows.
    Serve(Box<cmd::serve::ServeArgs>),
    /// Print the JSON Schema of the spec format, for editors' YAML plugins (completion, hover).
    ///
    /// Point a spec at a saved copy with a first line
    /// `# yaml-language-server: $schema=<path to the schema file>`.
    Schema,
    /// Run spec unit tests (`*.test.yml`): events in, expected records, rows, rejects and live
    /// features out.
    ///
    /// Exit code 0 if all tests passed, 1 if any failed, 2 if a test file or spec is unreadable
    /// or invalid.
    Test(cmd::test::TestArgs),
    /// Produce raw events (files, s3://) to a Kafka topic, keyed by the streaming DTC's
    /// Identity, so that a group of `dtc transform --source kafka://…` consumers can share them.
    Produce(cmd::kafka::ProduceArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(target) = cli.failpoint.clone()
        && let Err(why) = dtc_failpoint::arm(target)
    {
        eprintln!("error: --failpoint: {why}");
        return ExitCode::from(2);
    }
    let code = match cli.command {
        Command::Validate(args) => cmd::validate::run(&args),
        Command::Transform(args) => cmd::transform::run(*args, cli.verbose),
        Command::Blocks(args) => cmd::blocks::run(args, cli.verbose),
        Command::Serve(args) => cmd::serve::run(*args, cli.verbose),
        Command::Schema => cmd::schema::run(),
        Command::Test(args) => cmd::test::run(&args),
        Command::Produce(args) => cmd::kafka::produce(args, cli.verbose),
    };
    if cli.count_failpoints {
        eprintln!("failpoints hit: {}", dtc_failpoint::hits());
    }
    code
}

/// Prints an error that ended a command: the message, whose fault it is and whether running
/// again can help, and with `--verbose` the failed service's whole report. Exit code 2 for a
/// command line that cannot work, 1 otherwise.
pub fn report_error(e: &RunError, verbose: bool) -> ExitCode {
    eprintln!("error: {e}");
    eprintln!(
        "  {}",
        dtc_runtime::error::explain(e.fault(), e.retryable())
    );
    match e.detail() {
        Some(detail) if verbose => eprintln!("  details: {detail}"),
        Some(_) => eprintln!("  (--verbose shows the service's full report)"),
        None => {}
    }
    if e.is_usage() {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}
