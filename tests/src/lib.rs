//! Helpers shared by the privileged integration tests (root, BPF, namespaces).
pub mod mesh;

/// Fail, naming what is missing, when not root: these tests never skip.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_ADMIN); \
         run it through `cargo xtask test` as root"
    );
}

/// The `profiler` binary of this build (`cargo xtask test` builds it first).
pub fn profiler_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>/profiler
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("test binary lives in target/<profile>/deps")
        .join("profiler");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p profiler` (cargo xtask test does)",
        bin.display()
    );
    bin
}
