//! Where a sidecar's CPU and memory are sampled and summed over a capture:
//! /proc parsing (`proc.rs`), small kernel files read in one call
//! (`read.rs`), the container's cgroup v1 or v2 accounting
//! and limit (`cgroup.rs`), a sample (`sample.rs`), the sum over a window
//! (`window.rs`), and the series of intervals between samples that ties
//! hop latency to CPU signals (`intervals.rs`).
pub mod cgroup;
pub mod intervals;
pub mod proc;
pub mod read;
pub mod sample;
pub mod window;

pub use sample::{Sample, Sampler};
pub use window::{CpuReport, Window};
