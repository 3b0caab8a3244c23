//! `profiler check`: what this kernel lets the profiler do, found by loading
//! and attaching tiny programs rather than by reading version strings.
mod probe;
mod report;

pub use probe::run;
pub use report::{Finding, ProgramProbe, Report, SetProbe};
