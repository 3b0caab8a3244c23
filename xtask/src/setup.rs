//! `cargo xtask setup`: bring a fresh machine to a working state. Every step
//! checks first and skips what is present, so running it again is cheap.
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

/// The nightly the kernel crate is built with (must match profiler/build.rs).
pub const EBPF_TOOLCHAIN: &str = "nightly-2026-05-20";
const BPF_LINKER_VERSION: &str = "0.13.0";
/// bpf-linker must use the LLVM of the pinned nightly (LLVM 22 there).
const BPF_LINKER_LLVM_FEATURE: &str = "llvm-22";
/// Pinned: the JSON output the load parser reads is this version's.
const OHA_VERSION: &str = "1.16.0";

/// Debian packages the tests and the demo mesh use.
pub const DEBIAN_PACKAGES: &[&str] = &[
    "iproute2",
    "iptables",
    "nginx",
    "haproxy",
    "wrk",
    // h2load: HTTP/2 load with many streams per connection.
    "nghttp2-client",
    // The server and promtool (`promtool check rules`/`check metrics` in
    // the tests): Debian ships both in this package.
    "prometheus",
    // The DaemonSet's image: built and run locally (crun refuses this kind
    // of machine's hybrid cgroups; runc works).
    "podman",
    "runc",
    "openssl",
    "procps",
    "curl",
    "util-linux",
    // The kernel matrix (cargo xtask vmtest): Debian's kernels booted under
    // emulation with an initramfs of busybox and the static meshbox.
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    "xz-utils",
];

pub fn run() -> Result<()> {
    println!("setup: checking the build and test prerequisites");
    step("pinned nightly toolchain with rust-src", nightly)?;
    step("bpf-linker built against the nightly's LLVM", bpf_linker)?;
    step("Debian packages", debian_packages)?;
    step("oha load generator", oha)?;
    step("static (musl) target for the container image", musl_target)?;
    step("kubernetes-validate for the manifests", kubernetes_validate)?;
    println!("setup: done");
    Ok(())
}

fn step(name: &str, f: fn() -> Result<String>) -> Result<()> {
    match f() {
        Ok(what) => {
            println!("  [ok] {name}: {what}");
            Ok(())
        }
        Err(e) => {
            println!("  [FAILED] {name}");
            Err(e.context(format!("setup step '{name}' failed")))
        }
    }
}

fn quiet(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run_cmd(cmd: &mut Command, fix: &str) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}; to fix by hand: {fix}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status}); to fix by hand: {fix}");
    }
    Ok(())
}

fn sysroot() -> Result<PathBuf> {
    let out = Command::new("rustc")
        .args([&format!("+{EBPF_TOOLCHAIN}"), "--print", "sysroot"])
        .output()
        .context("running rustc")?;
    if !out.status.success() {
        bail!("{EBPF_TOOLCHAIN} is not installed");
    }
    Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()))
}

fn nightly() -> Result<String> {
    let has_src = |root: &Path| root.join("lib/rustlib/src/rust/library/core").is_dir();
    if let Ok(root) = sysroot()
        && has_src(&root)
    {
        return Ok(format!("{EBPF_TOOLCHAIN} present"));
    }
    let fix =
        format!("rustup toolchain install {EBPF_TOOLCHAIN} --profile minimal --component rust-src");
    println!("  installing {EBPF_TOOLCHAIN} with rust-src");
    run_cmd(
        Command::new("rustup").args([
            "toolchain",
            "install",
            EBPF_TOOLCHAIN,
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]),
        &fix,
    )?;
    if !has_src(&sysroot()?) {
        bail!("rust-src still missing after install; to fix by hand: {fix}");
    }
    Ok(format!("installed {EBPF_TOOLCHAIN}"))
}

fn bpf_linker_ok() -> bool {
    // Run through the pinned toolchain: rustup puts its libLLVM on the library path.
    quiet(Command::new("rustup").args(["run", EBPF_TOOLCHAIN, "bpf-linker", "--version"]))
}

fn bpf_linker() -> Result<String> {
    if bpf_linker_ok() {
        return Ok("present".into());
    }
    let root = sysroot()?;
    let lib = std::fs::read_dir(root.join("lib"))
        .context("reading the nightly's lib directory")?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so."))
        })
        .with_context(|| format!("no libLLVM.so.* in {}/lib", root.display()))?;
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let prefix = home.join("bpf-linker-llvm");
    std::fs::create_dir_all(prefix.join("lib"))?;
    let link = prefix.join("lib/libLLVM.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&lib, &link)
        .with_context(|| format!("linking {} to {}", link.display(), lib.display()))?;
    println!(
        "  building bpf-linker {BPF_LINKER_VERSION} against {} (about a minute)",
        lib.display()
    );
    let fix = format!(
        "LLVM_PREFIX={} cargo +{EBPF_TOOLCHAIN} install bpf-linker --version {BPF_LINKER_VERSION} \
         --no-default-features --features {BPF_LINKER_LLVM_FEATURE}",
        prefix.display()
    );
    run_cmd(
        Command::new("cargo")
            .args([
                &format!("+{EBPF_TOOLCHAIN}"),
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--no-default-features",
                "--features",
                BPF_LINKER_LLVM_FEATURE,
            ])
            .env("LLVM_PREFIX", &prefix),
        &fix,
    )?;
    if !bpf_linker_ok() {
        bail!("bpf-linker installed but does not run; to fix by hand: {fix}");
    }
    Ok(format!("built bpf-linker {BPF_LINKER_VERSION}"))
}

fn debian_packages() -> Result<String> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            let out = Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output();
            !out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(format!("all present ({})", DEBIAN_PACKAGES.join(" ")));
    }
    let fix = format!("apt-get update && apt-get install -y {}", missing.join(" "));
    if !is_root() {
        bail!(
            "missing {} and not root; run as root: {fix}",
            missing.join(" ")
        );
    }
    println!("  installing {}", missing.join(" "));
    run_cmd(Command::new("apt-get").arg("update").arg("-qq"), &fix)?;
    run_cmd(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        &fix,
    )?;
    Ok(format!("installed {}", missing.join(" ")))
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn oha() -> Result<String> {
    let installed = Command::new("oha")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match &installed {
        Some(v) if v.ends_with(OHA_VERSION) => return Ok(format!("{v} present")),
        Some(v) => println!("  {v} found; the load parser expects {OHA_VERSION}"),
        None => {}
    }
    println!("  building oha (a few minutes)");
    run_cmd(
        Command::new("cargo").args(["install", "oha", "--locked", "--version", OHA_VERSION]),
        &format!("cargo install oha --locked --version {OHA_VERSION}"),
    )?;
    Ok("installed".into())
}

fn musl_target() -> Result<String> {
    let target = super::image::MUSL;
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running rustup")?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == target)
    {
        return Ok(format!("{target} present"));
    }
    run_cmd(
        Command::new("rustup").args(["target", "add", target]),
        &format!("rustup target add {target}"),
    )?;
    Ok(format!("added {target}"))
}

/// Pinned: the schemas a manifest is checked against come with it.
const KUBERNETES_VALIDATE_VERSION: &str = "1.37.0";

/// Where kubernetes-validate lives: a venv of its own (Debian's Python
/// refuses system-wide pip installs).
pub fn tools_venv() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache/sidecar-profiler/venv")
}

fn kubernetes_validate() -> Result<String> {
    let venv = tools_venv();
    let bin = venv.join("bin/kubernetes-validate");
    let version_ok = || {
        Command::new(venv.join("bin/pip"))
            .args(["show", "kubernetes-validate"])
            .output()
            .is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .contains(&format!("Version: {KUBERNETES_VALIDATE_VERSION}"))
            })
    };
    if bin.exists() && version_ok() {
        return Ok(format!("{KUBERNETES_VALIDATE_VERSION} present"));
    }
    let fix = format!(
        "python3 -m venv {0} && {0}/bin/pip install kubernetes-validate=={KUBERNETES_VALIDATE_VERSION}",
        venv.display()
    );
    run_cmd(
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
        &fix,
    )?;
    run_cmd(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet"])
            .arg(format!(
                "kubernetes-validate=={KUBERNETES_VALIDATE_VERSION}"
            )),
        &fix,
    )?;
    if !version_ok() {
        bail!("kubernetes-validate did not install; to fix by hand: {fix}");
    }
    Ok(format!("installed {KUBERNETES_VALIDATE_VERSION}"))
}
