//! `cargo xtask test` (every test, the kernel matrix last) and `cargo xtask demo`.
use std::process::Command;

use anyhow::{Context, Result, bail};

fn cargo(args: &[&str]) -> Result<()> {
    println!("test: cargo {}", args.join(" "));
    let status = Command::new(env!("CARGO"))
        .args(args)
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

pub fn run() -> Result<()> {
    if !super::setup::is_root() {
        bail!(
            "the privileged tests need root (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_ADMIN \
             for eBPF, network namespaces, iptables and cgroups); run `sudo -E cargo xtask test`"
        );
    }
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--exclude",
        "profiler-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    // Rootless tier: pure logic, on the host.
    cargo(&[
        "test",
        "--workspace",
        "--exclude",
        "profiler-ebpf",
        "--exclude",
        "profiler-tests",
    ])?;
    // Privileged tier: one at a time, since the tests share the kernel's hooks
    // and build network namespaces.
    // The profiler, and the mesh's pod processes (meshbox).
    cargo(&["build", "-p", "profiler", "-p", "meshbox", "--bins"])?;
    // The container test runs the DaemonSet's image.
    super::image::run()?;
    cargo(&["test", "-p", "profiler-tests", "--", "--test-threads=1"])?;
    // The kernel matrix: Debian's 6.1 and 6.12 under qemu, and this host.
    super::vmtest::run()
}

pub fn demo(args: &[String]) -> Result<()> {
    let mut full = vec!["run", "--release", "-p", "meshbox", "--", "demo"];
    full.extend(args.iter().map(String::as_str));
    cargo(&full)
}
