//! `dtc`: the command line of the DTC engine. Each subcommand lives in its own module under
//! [`cmd`]; this file only parses arguments and dispatches.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod blame;
mod cmd;
mod specs;

/// Data Transform Configs: turn game events into ML features.
#[derive(Debug, Parser)]
#[command(name = "dtc", version, about, long_about = None)]
struct Cli {
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
    Transform(cmd::transform::TransformArgs),
    /// Print an identity's stored records as JSON lines, for debugging.
    Blocks(cmd::blocks::BlocksArgs),
    /// Print the JSON Schema of the spec format, for editors' YAML plugins (completion, hover).
    ///
    /// Point a spec at a saved copy with a first line
    /// `# yaml-language-server: $schema=<path to the schema file>`.
    Schema,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate(args) => cmd::validate::run(&args),
        Command::Transform(args) => cmd::transform::run(args),
        Command::Blocks(args) => cmd::blocks::run(args),
        Command::Schema => cmd::schema::run(),
    }
}
