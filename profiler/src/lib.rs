//! Sidecar proxy latency profiler: library behind the `profiler` binary.
pub mod bench;
pub mod check;
pub mod classify;
pub mod cli;
pub mod collect;
pub mod discovery;
pub mod ebpf;
pub mod histogram;
pub mod kernel;
pub mod report;
pub mod signals;
pub mod snapshot;
pub mod testbed;
