//! Facts about the running kernel read from /proc and /sys (no BPF here).
pub mod caps;
pub mod cgroup_cpu;
pub mod clock;
pub mod cpus;
pub mod mounts;
