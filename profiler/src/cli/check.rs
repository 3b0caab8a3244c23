//! `profiler check`.
use std::process::ExitCode;

use super::Format;

#[derive(clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

pub fn run(a: Args) -> ExitCode {
    let report = crate::check::run();
    match a.format {
        Format::Table => print!("{}", report.to_text()),
        Format::Json => match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: encoding the report: {e}");
                return ExitCode::FAILURE;
            }
        },
    }
    if report.usable() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_USAGE)
    }
}
