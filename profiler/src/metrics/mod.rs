//! Where a metric is exported: the families `profiler run` serves, built
//! from an owned copy of the engine's figures ([`Exposition`]) and encoded
//! as Prometheus text or OpenMetrics. README lists the contract.
mod encode;
mod exposition;
mod families;
mod hop_family;
pub mod labels;

pub use encode::{Format, OPENMETRICS, render};
pub use exposition::{Exposition, Health, HopSeries, MapFill};

#[cfg(test)]
mod tests;
