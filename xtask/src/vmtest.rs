//! `cargo xtask vmtest`: the kernel matrix. Boots Debian's 6.1 and 6.12
//! cloud kernels under qemu (software emulation: KVM hangs on this kind of
//! machine) with an initramfs holding busybox and the static meshbox, runs
//! `meshbox matrix` in each and on this host, and prints kernel x hook set.
//! Fails when a hook set a kernel allows does not work there, when
//! `profiler check`'s choice is not one that works, or when a kernel that
//! must allow a set (kprobes and trampolines on Debian's kernels) refuses it.
use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::image::MUSL;

/// A kernel to boot: the Debian package that names it, and the hook sets
/// it must allow (Debian builds these with kprobes, BTF and trampolines).
struct Guest {
    meta: &'static str,
    must_allow: &'static [&'static str],
}

const GUESTS: [Guest; 2] = [
    // Debian 12's own kernel: no sock_send_length/sock_recv_length/
    // sk_data_ready tracepoints (added in 6.2).
    Guest {
        meta: "linux-image-cloud-amd64",
        must_allow: &["fentry", "kprobes"],
    },
    Guest {
        meta: "linux-image-6.12-cloud-amd64",
        must_allow: &["tracepoints", "fentry", "kprobes"],
    },
];

/// Modules the tc probe needs (clsact qdisc, bpf classifier); the rest of
/// what the profiler uses is built in.
const MODULES: [&str; 2] = ["net/sched/sch_ingress.ko", "net/sched/cls_bpf.ko"];

/// One VM's whole run, boot to power-off; generous for software emulation
/// (a run takes about 30 s on this kind of machine).
const VM_TIMEOUT: Duration = Duration::from_secs(900);

/// The guest prints the matrix's progress every few seconds (a run takes
/// about 30 s) and its watchdog reports after 180 s; this long without a
/// line means it is stuck where even the watchdog cannot print.
const VM_SILENCE: Duration = Duration::from_secs(240);

/// Console lines quoted when a VM fails.
const CONSOLE_TAIL: usize = 60;
/// ... or, when its kernel reported a stuck CPU, from that report on.
const CONSOLE_LOCKUP: usize = 200;

/// What of a failed VM's console to quote: from the kernel's first report
/// of a stuck CPU (with every CPU's stack after it), else the last lines.
fn quote(console: &str) -> String {
    let lines: Vec<&str> = console.lines().collect();
    let stuck = lines
        .iter()
        .position(|l| l.contains("soft lockup") || l.contains("rcu: INFO"));
    let part = match stuck {
        Some(i) => &lines[i..(i + CONSOLE_LOCKUP).min(lines.len())],
        None => &lines[lines.len().saturating_sub(CONSOLE_TAIL)..],
    };
    part.join("\n")
}

/// The guest kernel's command line: warnings and stacks reach the console
/// (loglevel 5), and a CPU stuck in the kernel panics with every CPU's
/// stack (softlockup_panic), which ends the VM at once (panic=-1 reboots,
/// qemu's -no-reboot exits).
const CMDLINE: &str =
    "console=ttyS0 panic=-1 quiet loglevel=5 softlockup_panic=1 softlockup_all_cpu_backtrace=1";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cache() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache/sidecar-profiler/kernels")
}

fn sh(script: &str, what: &str) -> Result<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .with_context(|| format!("{what}: starting sh"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A kernel image and its modules, unpacked from Debian's package.
struct KernelFiles {
    package: String,
    vmlinuz: PathBuf,
    modules: Vec<PathBuf>,
}

/// The versioned package `meta` depends on now; the last one fetched when
/// apt cannot say (offline).
fn resolve(meta: &str) -> Result<String> {
    let remembered = cache().join(format!("{meta}.package"));
    let fresh = sh(&format!("apt-cache depends {meta}"), "apt-cache depends").ok();
    let name = fresh.as_deref().and_then(|t| {
        t.lines()
            .filter_map(|l| l.trim().strip_prefix("Depends: "))
            .find(|p| p.starts_with("linux-image-"))
            .map(str::to_string)
    });
    match name {
        Some(n) => {
            std::fs::create_dir_all(cache())?;
            std::fs::write(&remembered, &n)?;
            Ok(n)
        }
        None => std::fs::read_to_string(&remembered)
            .map(|s| s.trim().to_string())
            .with_context(|| {
                format!(
                    "apt-cache knows no kernel package behind {meta} and none was fetched before; \
                     run `apt-get update`"
                )
            }),
    }
}

/// Fetch (once; cached) and unpack the kernel behind `meta`.
fn kernel(meta: &str) -> Result<KernelFiles> {
    let package = resolve(meta)?;
    let dir = cache().join(&package);
    let vmlinuz = dir.join("vmlinuz");
    let modules: Vec<PathBuf> = MODULES
        .iter()
        .map(|m| dir.join(Path::new(m).file_name().expect("a file name")))
        .collect();
    if vmlinuz.exists() && modules.iter().all(|m| m.exists()) {
        return Ok(KernelFiles {
            package,
            vmlinuz,
            modules,
        });
    }
    println!("vmtest: fetching {package}");
    let tmp = cache().join(format!("{package}.unpack"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let t = tmp.display();
    sh(
        &format!("cd {t} && apt-get download -q {package} 2>&1 && dpkg -x {package}_*.deb x"),
        &format!("downloading and unpacking {package}"),
    )?;
    std::fs::create_dir_all(&dir)?;
    sh(
        &format!("cp {t}/x/boot/vmlinuz-* {}", vmlinuz.display()),
        "copying the kernel image",
    )?;
    for (m, to) in MODULES.iter().zip(&modules) {
        // Debian compresses modules from 6.12 on.
        sh(
            &format!(
                "f=$(ls {t}/x/lib/modules/*/kernel/{m}*) && case $f in *.xz) xz -dc $f;; *) cat $f;; esac > {}",
                to.display()
            ),
            &format!("extracting {m}"),
        )?;
    }
    std::fs::remove_dir_all(&tmp)?;
    Ok(KernelFiles {
        package,
        vmlinuz,
        modules,
    })
}

/// The guest's init. The matrix's progress (stderr) goes to the console as
/// it comes; a watchdog that outlives a stuck matrix prints where every
/// thread of ours is waiting and powers off, so a hang ends as a failure
/// that says where it stood. A kernel lockup panics instead (the kernel's
/// `softlockup_panic`), with every CPU's stack on the console.
const INIT: &str = r#"#!/bin/sh
export PATH=/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tracefs nodev /sys/kernel/tracing
mount -t debugfs nodev /sys/kernel/debug
mkdir -p /tmp
ip link set lo up
for m in /lib/modules/*.ko; do insmod "$m"; done
echo "MATRIX-START"
(
  sleep 180
  echo "MATRIX-WATCHDOG: the matrix still runs after 180 s; where its threads wait:"
  ps
  for p in /proc/[0-9]*; do
    case "$(cat $p/comm 2>/dev/null)" in
      meshbox|delay-proxy|haproxy)
        for t in $p/task/*; do echo "== $t $(cat $t/comm) $(cat $t/wchan)"; cat $t/stack; done;;
    esac
  done
  poweroff -f
) &
meshbox matrix --format json > /tmp/row
echo "MATRIX-EXIT $?"
echo "MATRIX-ROW $(cat /tmp/row)"
poweroff -f
"#;

/// Debian's haproxy (cargo xtask setup installs it).
const HAPROXY: &str = "/usr/sbin/haproxy";

/// `bin` and every library `ldd` lists for it, at the same paths under `tree`.
fn copy_with_libraries(bin: &Path, tree: &Path) -> Result<()> {
    let listed = sh(
        &format!("ldd {}", bin.display()),
        &format!("listing {}'s libraries (ldd)", bin.display()),
    )?;
    let libs = listed.lines().filter_map(|l| {
        // "libssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x...)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x...)"; the vDSO has no file.
        let path = l.split("=>").last()?.split_whitespace().next()?;
        path.starts_with('/').then(|| PathBuf::from(path))
    });
    for file in std::iter::once(bin.to_path_buf()).chain(libs) {
        let to = tree.join(file.strip_prefix("/").expect("absolute"));
        std::fs::create_dir_all(to.parent().expect("a parent"))?;
        std::fs::copy(&file, &to).with_context(|| {
            format!(
                "copying {} into the initramfs (cargo xtask setup installs haproxy)",
                file.display()
            )
        })?;
    }
    Ok(())
}

/// busybox, the static meshbox, haproxy, the modules and the init script,
/// as a gzipped cpio archive.
fn initramfs(k: &KernelFiles, meshbox: &Path, work: &Path) -> Result<PathBuf> {
    let tree = work.join("root");
    let _ = std::fs::remove_dir_all(&tree);
    for d in ["bin", "proc", "sys", "dev", "tmp", "lib/modules"] {
        std::fs::create_dir_all(tree.join(d))?;
    }
    std::fs::copy("/bin/busybox", tree.join("bin/busybox"))
        .context("copying /bin/busybox (cargo xtask setup installs busybox-static)")?;
    for applet in [
        "sh", "mount", "mkdir", "ip", "cat", "insmod", "poweroff", "sleep", "ps",
    ] {
        std::os::unix::fs::symlink("busybox", tree.join("bin").join(applet))?;
    }
    std::fs::copy(meshbox, tree.join("bin/meshbox"))?;
    // haproxy, the real proxy of the matrix, with the libraries it links.
    copy_with_libraries(Path::new(HAPROXY), &tree)?;
    sh(
        &format!("strip {}", tree.join("bin/meshbox").display()),
        "stripping meshbox",
    )?;
    for m in &k.modules {
        std::fs::copy(
            m,
            tree.join("lib/modules").join(m.file_name().expect("named")),
        )?;
    }
    let init = tree.join("init");
    std::fs::write(&init, INIT)?;
    sh(&format!("chmod 755 {}", init.display()), "chmod init")?;
    let out = work.join("initramfs.gz");
    sh(
        &format!(
            "cd {} && find . | cpio -o -H newc --quiet | gzip -1 > {}",
            tree.display(),
            out.display()
        ),
        "packing the initramfs (cpio, gzip)",
    )?;
    std::fs::remove_dir_all(&tree)?;
    Ok(out)
}

/// Boot `k` with `initrd`; the console goes to `log`. Returns the row the
/// guest printed.
fn boot(k: &KernelFiles, initrd: &Path, log: &Path) -> Result<Value> {
    let t0 = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        // One host thread runs both vCPUs in turn. With a thread per vCPU
        // (qemu 7.2), a vCPU could keep running a stale translation of
        // kernel code another vCPU had just patched: detaching a scheduler
        // tracepoint restores __schedule's call site by text_poke_bp, CPU 0
        // kept trapping on the int3 that memory no longer held (the kprobe
        // int3 handler retries it) with interrupts off, and CPU 1 waited for
        // it in on_each_cpu forever (about one matrix in 15; a soft lockup
        // with both stacks on the console).
        .args([
            "-accel",
            "tcg,thread=single",
            "-cpu",
            "max",
            "-m",
            "1536",
            "-smp",
            "2",
        ])
        .args(["-nographic", "-no-reboot", "-nic", "none", "-kernel"])
        .arg(&k.vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", CMDLINE])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // qemu's own complaints go to the terminal, as they come.
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting qemu-system-x86_64 (cargo xtask setup installs qemu-system-x86)")?;
    // The console is read on its own thread, which notes when the guest
    // last printed; this one watches the clocks and ends only the VM it
    // started, through its handle.
    let out = child.stdout.take().context("qemu's stdout")?;
    let last_line = Arc::new(Mutex::new(Instant::now()));
    let reader = {
        let last_line = Arc::clone(&last_line);
        std::thread::spawn(move || {
            let mut console = String::new();
            for line in BufReader::new(out).lines() {
                let line = line.unwrap_or_default();
                console.push_str(line.trim_end_matches('\r'));
                console.push('\n');
                *last_line.lock().expect("not poisoned") = Instant::now();
            }
            console
        })
    };
    let mut stopped = None;
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for qemu")? {
            break status;
        }
        let silent = last_line.lock().expect("not poisoned").elapsed();
        if t0.elapsed() > VM_TIMEOUT {
            stopped = Some(format!("did not finish within {} s", VM_TIMEOUT.as_secs()));
        } else if silent > VM_SILENCE {
            stopped = Some(format!(
                "printed nothing for {} s (its kernel or its emulator is stuck)",
                silent.as_secs()
            ));
        }
        if stopped.is_some() {
            let _ = child.kill();
            break child.wait().context("waiting for qemu")?;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let console = reader.join().unwrap_or_default();
    std::fs::write(log, &console)?;
    let tail = || quote(&console);
    if let Some(why) = stopped {
        bail!(
            "{}: the VM {why}; console in {}, quoted:\n{}",
            k.package,
            log.display(),
            tail()
        );
    }
    let row = console
        .lines()
        .find_map(|l| l.split_once("MATRIX-ROW ").map(|(_, r)| r.trim()))
        .filter(|r| !r.is_empty());
    let Some(row) = row else {
        bail!(
            "{}: no matrix row on the console (qemu {status}); console in {}, quoted:\n{}",
            k.package,
            log.display(),
            tail()
        );
    };
    println!(
        "vmtest: {} booted and measured in {:.0} s",
        k.package,
        t0.elapsed().as_secs_f64()
    );
    serde_json::from_str(row).with_context(|| format!("{}: parsing its row", k.package))
}

fn host_row(meshbox: &Path) -> Result<Value> {
    let out = Command::new(meshbox)
        .args(["matrix", "--format", "json"])
        .stderr(Stdio::inherit())
        .output()
        .context("running meshbox matrix on this host")?;
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "meshbox matrix on this host printed no row ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn cell<'a>(row: &'a Value, set: &str) -> Option<&'a Value> {
    row["cells"]
        .as_array()?
        .iter()
        .find(|c| c["hook_set"] == set)
}

const SETS: [&str; 3] = ["tracepoints", "fentry", "kprobes"];

/// The matrix for a person, and everything wrong with it.
fn report(rows: &[(String, Value, &'static [&'static str])]) -> Vec<String> {
    let mut problems = Vec::new();
    println!("\nkernel matrix (hook set forced in turn; ok = attached and measured right)\n");
    println!(
        "{:<34} {:<12} {:<12} {:<12} {:<14} tc",
        "kernel", SETS[0], SETS[1], SETS[2], "check chooses"
    );
    for (label, row, must) in rows {
        let mut line = format!("{label:<34}");
        for set in SETS {
            let status = cell(row, set).map_or("-", |c| c["status"].as_str().unwrap_or("?"));
            line.push_str(&format!(" {status:<12}"));
            if status == "failed" {
                problems.push(format!(
                    "{label}: {set} is allowed but failed: {}",
                    cell(row, set).map_or("", |c| c["reason"].as_str().unwrap_or(""))
                ));
            }
            if must.contains(&set) && status == "refused" {
                problems.push(format!(
                    "{label}: {set} was refused, but this kernel allows it: {}",
                    cell(row, set).map_or("", |c| c["reason"].as_str().unwrap_or(""))
                ));
            }
        }
        let auto = row["auto"].as_str().unwrap_or("nothing");
        let tc = if row["tc"].as_bool() == Some(true) {
            "ok"
        } else {
            "no"
        };
        println!("{line} {auto:<14} {tc}");
        // Every kernel here has clsact (the VMs carry sch_ingress and
        // cls_bpf): `--pod-edge` must work on each.
        if tc == "no" {
            problems.push(format!(
                "{label}: the pod edge (--pod-edge) does not work: {}",
                row["tc_detail"]
                    .as_str()
                    .unwrap_or("(no detail in this row)")
            ));
        }
        if cell(row, auto).map(|c| &c["status"]) != Some(&Value::from("ok")) {
            problems.push(format!(
                "{label}: profiler check chooses {auto}, which does not work there"
            ));
        }
    }
    println!(
        "\nper kernel (process µs: ours in [the fixture's read-to-write-call, read-to-write-return]; forwards: ours/the fixture's or the requests')"
    );
    for (_, row, _) in rows {
        print!(
            "{}",
            row["text"].as_str().unwrap_or("(no text in this row)\n")
        );
    }
    println!("\ninstructions the verifier processed, per program and kernel");
    let mut programs: Vec<&str> = Vec::new();
    for (_, row, _) in rows {
        for p in row["programs"].as_array().into_iter().flatten() {
            if let Some(name) = p["program"].as_str()
                && !programs.contains(&name)
            {
                programs.push(name);
            }
        }
    }
    print!("{:<24}", "program");
    for (label, _, _) in rows {
        print!(" {:>30}", label);
    }
    println!();
    for name in programs {
        print!("{name:<24}");
        for (_, row, _) in rows {
            let n = row["programs"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["program"] == name))
                .map_or("-".to_string(), |p| p["verified_insns"].to_string());
            print!(" {n:>30}");
        }
        println!();
    }
    problems
}

pub fn run() -> Result<()> {
    let root = root();
    println!("vmtest: building the static meshbox ({MUSL}, release)");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "-p", "meshbox", "--target", MUSL])
        .current_dir(&root)
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("building the static meshbox failed ({status})");
    }
    let meshbox = root.join(format!("target/{MUSL}/release/meshbox"));
    let mut rows: Vec<(String, Value, &'static [&'static str])> = Vec::new();
    let mut problems = Vec::new();
    for g in &GUESTS {
        let k = kernel(g.meta)?;
        let work = root.join("target/vmtest").join(&k.package);
        std::fs::create_dir_all(&work)?;
        let initrd = initramfs(&k, &meshbox, &work)?;
        println!("vmtest: booting {} under qemu (tcg)", k.package);
        match boot(&k, &initrd, &work.join("console.log")) {
            Ok(row) => {
                let label = row["kernel"].as_str().unwrap_or(&k.package).to_string();
                rows.push((label, row, g.must_allow));
            }
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    println!("vmtest: this host");
    match host_row(&meshbox) {
        Ok(row) => {
            let label = format!("{} (host)", row["kernel"].as_str().unwrap_or("?"));
            rows.push((label, row, &[]));
        }
        Err(e) => problems.push(format!("{e:#}")),
    }
    problems.extend(report(&rows));
    if !problems.is_empty() {
        bail!("the kernel matrix failed:\n  {}", problems.join("\n  "));
    }
    println!("\nvmtest: every hook set each kernel allows works there");
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn row(auto: &str, cells: &[(&str, &str)]) -> Value {
        json!({
            "kernel": "6.1.0",
            "auto": auto,
            "tc": true,
            "text": "",
            "programs": [],
            "cells": cells.iter().map(|(set, status)| json!({
                "hook_set": set, "status": status, "reason": "why", "runs": []
            })).collect::<Vec<_>>(),
        })
    }

    #[test]
    fn a_stuck_cpu_is_quoted_from_its_report_and_otherwise_the_tail() {
        let mut console: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
        assert_eq!(quote(&console.join("\n")).lines().count(), CONSOLE_TAIL);
        assert!(quote(&console.join("\n")).ends_with("line 99"));
        console.insert(
            10,
            "[ 50.4] rcu: INFO: rcu_preempt self-detected stall on CPU".into(),
        );
        let q = quote(&console.join("\n"));
        assert!(q.starts_with("[ 50.4] rcu: INFO"), "{q}");
        assert!(q.ends_with("line 99"), "{q}");
    }

    #[test]
    fn a_working_row_passes() {
        let r = row(
            "fentry",
            &[
                ("tracepoints", "refused"),
                ("fentry", "ok"),
                ("kprobes", "ok"),
            ],
        );
        assert!(report(&[("6.1".into(), r, &["fentry", "kprobes"])]).is_empty());
    }

    #[test]
    fn failures_refusals_of_what_must_work_and_a_bad_choice_fail() {
        let failed = row("fentry", &[("fentry", "ok"), ("kprobes", "failed")]);
        let p = report(&[("6.1".into(), failed, &[])]);
        assert!(
            p.len() == 1 && p[0].contains("kprobes is allowed but failed"),
            "{p:?}"
        );
        let refused = row("kprobes", &[("fentry", "refused"), ("kprobes", "ok")]);
        let p = report(&[("6.1".into(), refused, &["fentry"])]);
        assert!(p.len() == 1 && p[0].contains("fentry was refused"), "{p:?}");
        let bad_choice = row("fentry", &[("fentry", "refused"), ("kprobes", "ok")]);
        let p = report(&[("6.1".into(), bad_choice, &[])]);
        assert!(p.len() == 1 && p[0].contains("chooses fentry"), "{p:?}");
        let mut no_edge = row("fentry", &[("fentry", "ok")]);
        no_edge["tc"] = json!(false);
        no_edge["tc_detail"] = json!("the verifier refused it");
        let p = report(&[("6.1".into(), no_edge, &[])]);
        assert!(
            p.len() == 1 && p[0].contains("pod edge") && p[0].contains("refused it"),
            "{p:?}"
        );
    }
}
