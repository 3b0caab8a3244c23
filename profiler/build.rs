//! Compiles the kernel programs from source on every build (aya-build runs
//! cargo for the BPF target with the pinned nightly).
use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

/// The nightly the kernel crate is built with; `cargo xtask setup` installs it.
const EBPF_TOOLCHAIN: &str = "nightly-2026-05-20";

fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("profiler crate has no parent directory")?
        .join("profiler-ebpf");
    let root_dir = root
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", root.display()))?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("profiler");
    aya_build::build_ebpf(
        [Package {
            name: "profiler-ebpf",
            root_dir,
            ..Default::default()
        }],
        Toolchain::Custom(EBPF_TOOLCHAIN),
    )
    .with_context(|| {
        format!(
            "building the eBPF programs failed; `cargo xtask setup` installs the {EBPF_TOOLCHAIN} \
             toolchain with rust-src and bpf-linker (set AYA_BUILD_SKIP=1 for host-only checks)"
        )
    })?;
    // AYA_BUILD_SKIP=1 (host-only clippy/docs) builds no object: leave an empty
    // one so the crate compiles; loading it then fails with a clear message.
    if !out.exists() {
        std::fs::write(&out, [])?;
    }
    Ok(())
}
