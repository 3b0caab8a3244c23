//! Facts about the running kernel read from /proc and /sys (no BPF here).
pub mod btf;
pub mod caps;
pub mod cgroup_cpu;
pub mod clock;
pub mod cpus;
pub mod mounts;

/// The kernel's release string (`uname -r`), for labels and reports; the
/// hook set is chosen by probing, never from this.
pub fn release() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string())
}
