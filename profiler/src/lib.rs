//! Sidecar proxy latency profiler: library behind the `profiler` binary.
pub mod check;
pub mod classify;
pub mod cli;
pub mod collect;
pub mod cpu;
pub mod daemon;
pub mod discovery;
pub mod ebpf;
pub mod edge;
pub mod engine;
pub mod histogram;
pub mod kernel;
pub mod metrics;
pub mod report;
pub mod signals;
pub mod snapshot;
