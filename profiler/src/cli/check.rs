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
    if let Err(code) = super::print_report(a.format, &report, |r| r.to_text()) {
        return code;
    }
    if report.usable() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_USAGE)
    }
}
