//! Sidecar proxy latency profiler: library behind the `profiler` binary.
pub mod check;
pub mod ebpf;
pub mod kernel;
