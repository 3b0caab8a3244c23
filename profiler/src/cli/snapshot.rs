//! `profiler snapshot --duration 10s [selectors] [--format table|json]`.
use std::{process::ExitCode, time::Duration};

use super::Format;
use crate::snapshot::{self, Options};

#[derive(clap::Args)]
pub struct Args {
    /// How long to capture (e.g. 10s, 500ms, 2m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    #[command(flatten)]
    select: super::select::SelectArgs,
    /// Output format: a table for people, JSON for tools (see README for the contract).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// "10s", "250ms", "2m", "1.5s"; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (try 10s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {s:?} (use ms, s, m or h)"
            ));
        }
    };
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(format!("{s:?}: the duration must be positive"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?}: the duration is too long"))
}

pub fn run(a: Args) -> ExitCode {
    crate::signals::install();
    let opts = Options {
        duration: a.duration,
        selectors: a.select.selectors(),
        excluded_ports: a.select.exclude_ports.clone(),
        progress: a.format == Format::Table,
        hooks: a.select.hooks(),
    };
    match snapshot::run(&opts) {
        Ok(snap) => match super::print_report(a.format, &snap, |s| s.to_table()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(code) => code,
        },
        Err(e) => super::exit::Failure::from(e).exit(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5y").is_err_and(|e| e.contains("unknown unit")));
        // Out of range is an error, not a panic.
        assert!(parse_duration("99999999999999999999s").is_err_and(|e| e.contains("too long")));
    }
}
