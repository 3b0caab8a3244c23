//! Helpers shared by the privileged integration tests (root, BPF, namespaces).
pub mod capture;
pub mod container;
pub mod contend;
pub mod daemon;
pub mod deploy;
pub mod edge;
pub mod hold;
/// The HTTP client the tests and the bench share.
pub use meshbox::http;
pub mod mesh;
pub mod priority;
pub mod slots;
pub mod steal;

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
    built_bin("profiler")
}

/// The `meshbox` binary of this build: the processes of the mesh's pods,
/// and `meshbox demo`.
pub fn meshbox_bin() -> std::path::PathBuf {
    built_bin("meshbox")
}

fn built_bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("test binary lives in target/<profile>/deps")
        .join(name);
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p {name}` (cargo xtask test does)",
        bin.display()
    );
    bin
}

/// Idle CPUs poll instead of halting while held (a PM QoS request of 0 µs
/// through /dev/cpu_dma_latency, which the kernel drops when the file
/// closes, also if the test dies). On a VM a halted vCPU gives its core to
/// the host's other tenants and resumes with cold caches, which adds
/// milliseconds to a lightly loaded proxy's queue time: real latency on
/// such a machine, but not what a pairing or contention test compares.
pub struct NoDeepIdle {
    // Held open: closing it drops the request.
    _request: std::fs::File,
}

impl NoDeepIdle {
    pub fn hold() -> NoDeepIdle {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/cpu_dma_latency")
            .expect("open /dev/cpu_dma_latency (needs root)");
        f.write_all(&0i32.to_ne_bytes())
            .expect("write a 0 µs latency request");
        NoDeepIdle { _request: f }
    }
}
