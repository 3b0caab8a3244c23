//! `meshbox matrix`: this kernel's row of the kernel matrix (see
//! `crate::matrix`); exits 1 when a hook set the kernel allows fails.
use std::process::ExitCode;

use profiler::ebpf::HookSet;

use crate::matrix::{self, Status};

#[derive(clap::Args)]
pub struct Args {
    /// Only these hook sets (repeatable; default: every set).
    #[arg(long, value_enum)]
    hook_set: Vec<SetName>,
    /// text for people; json: the row on one line, for `cargo xtask vmtest`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum SetName {
    Tracepoints,
    Fentry,
    Kprobes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

pub fn run(a: Args) -> ExitCode {
    if let Err(msg) = super::require_root() {
        eprintln!("error: {msg}");
        return ExitCode::from(super::EXIT_USAGE);
    }
    let sets: Vec<HookSet> = a
        .hook_set
        .iter()
        .map(|s| match s {
            SetName::Tracepoints => HookSet::Tracepoints,
            SetName::Fentry => HookSet::Fentry,
            SetName::Kprobes => HookSet::Kprobes,
        })
        .collect();
    let me = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: locating this binary (meshbox): {e}");
            return ExitCode::FAILURE;
        }
    };
    let row = matrix::row(&sets, &me);
    match a.format {
        Format::Text => print!("{}", matrix::to_text(&row)),
        // The text rides along, so the matrix prints each row as it reads.
        Format::Json => match serde_json::to_value(&row).map(|mut v| {
            v["text"] = matrix::to_text(&row).into();
            v
        }) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("error: encoding the row: {e}");
                return ExitCode::FAILURE;
            }
        },
    }
    if row.cells.iter().any(|c| c.status == Status::Failed) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
