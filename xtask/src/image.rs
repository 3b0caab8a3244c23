//! `cargo xtask image`: the DaemonSet's container image, built locally with
//! podman from deploy/Containerfile: the profiler as one static (musl)
//! binary in an image with nothing else in it.
use std::{path::PathBuf, process::Command};

use anyhow::{Context, Result, bail};

pub const MUSL: &str = "x86_64-unknown-linux-musl";
/// The image the DaemonSet names and the container test runs.
pub const IMAGE: &str = "localhost/sidecar-profiler:0.1.0";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

pub fn run() -> Result<()> {
    let root = root();
    println!("image: building the static profiler ({MUSL}, release)");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "-p", "profiler", "--bin", "profiler"])
        .args(["--target", MUSL])
        .current_dir(&root)
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!(
            "building the static profiler failed ({status}); `cargo xtask setup` adds the {MUSL} target"
        );
    }
    let ctx = root.join("target/image-context");
    let _ = std::fs::remove_dir_all(&ctx);
    std::fs::create_dir_all(&ctx).context("creating the image build context")?;
    let bin = root.join(format!("target/{MUSL}/release/profiler"));
    std::fs::copy(&bin, ctx.join("profiler"))
        .with_context(|| format!("copying {}", bin.display()))?;
    // Debug info stays in target/ (39 MB); the image carries 5 MB.
    let status = Command::new("strip")
        .arg(ctx.join("profiler"))
        .status()
        .context("running strip (binutils)")?;
    if !status.success() {
        bail!("strip failed ({status})");
    }
    let id = || {
        Command::new("podman")
            .args(["image", "inspect", "--format", "{{.Id}}", IMAGE])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let previous = id();
    println!("image: podman build -t {IMAGE}");
    let status = Command::new("podman")
        .args(["--runtime", "runc", "build", "--quiet", "-t", IMAGE, "-f"])
        .arg(root.join("deploy/Containerfile"))
        .arg(&ctx)
        .status()
        .context("running podman (cargo xtask setup installs it)")?;
    if !status.success() {
        bail!("podman build failed ({status})");
    }
    let _ = std::fs::remove_dir_all(&ctx);
    // The image this one replaced (ours, now untagged) is removed, so that
    // rebuilding does not pile up layers.
    if let Some(old) = previous.filter(|old| Some(old) != id().as_ref()) {
        let _ = Command::new("podman").args(["rmi", &old]).output();
    }
    println!("image: {IMAGE} built");
    Ok(())
}
