//! Sidecar proxy latency profiler: library behind the `profiler` binary.
pub mod check;
pub mod cli;
pub mod ebpf;
pub mod kernel;
pub mod signals;
pub mod testbed;
