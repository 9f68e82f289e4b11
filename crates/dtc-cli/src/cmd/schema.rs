//! `dtc schema`: the JSON Schema of the spec format, for editors' YAML plugins.

use std::io::Write;
use std::process::ExitCode;

pub fn run() -> ExitCode {
    let schema = dtc_lang::load::json_schema();
    let text = match serde_json::to_string_pretty(&schema) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: cannot write the schema: {e}");
            return ExitCode::from(2);
        }
    };
    match writeln!(std::io::stdout().lock(), "{text}") {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the schema: {e}");
            ExitCode::from(2)
        }
    }
}
