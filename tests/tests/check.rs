//! `profiler check` on this machine: what it says of each hook set must be
//! what the kernel matrix finds when it forces that set here and measures
//! (tracepoints and tc usable, fentry refused, kprobes absent, on the kind
//! of machine the platform notes describe); and it leaves no program, link
//! or qdisc behind.
use std::process::Command;

use meshbox::matrix::{self, Status};
use profiler::ebpf::HookSet;
use profiler_tests::require_root;

fn bpf_prog_count() -> usize {
    // BPF programs, maps and links this process still holds open.
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().starts_with("anon_inode:bpf"))
        .count()
}

#[test]
fn check_probes_this_kernel() {
    require_root();
    let before = bpf_prog_count();
    let report = profiler::check::run();
    let f = |n: &str| {
        report
            .finding(n)
            .unwrap_or_else(|| panic!("no finding {n}: {}", report.to_text()))
            .clone()
    };
    // This kernel's BTF says where sock keeps sk_protocol: send and
    // receive go on raw tracepoints, not the classic ones.
    for tp in [
        "raw tracepoint sock_recv_length",
        "raw tracepoint sock_send_length",
        "raw tracepoint sk_data_ready",
        "tracepoint sock:inet_sock_set_state",
        "tracepoint sched:sched_switch",
        "btf tracepoint sched_switch",
    ] {
        assert!(f(tp).ok, "{tp} should attach here: {}", report.to_text());
    }
    for classic in [
        "tracepoint sock:sock_recv_length",
        "tracepoint sock:sock_send_length",
    ] {
        assert!(
            report.finding(classic).is_none(),
            "{classic} probed although the raw ones are used: {}",
            report.to_text()
        );
    }
    assert!(f("tc clsact").ok, "{}", report.to_text());
    assert!(f("btf").ok);
    assert!(report.usable());
    // Every program that attached says how much the verifier worked on it.
    assert!(
        !report.programs.is_empty() && report.programs.iter().all(|p| p.verified_insns > Some(0)),
        "{:?}",
        report.programs
    );
    assert_eq!(bpf_prog_count(), before, "check left bpf objects open");
    // No clsact qdisc leaked onto the host's interfaces.
    let qdiscs = Command::new("tc")
        .args(["qdisc", "show"])
        .output()
        .expect("run tc");
    assert!(
        !String::from_utf8_lossy(&qdiscs.stdout).contains("clsact"),
        "a clsact qdisc was left on a host interface"
    );
}

/// What check says of each set against the matrix's row for this host:
/// a set it says the kernel refuses is refused, one it says attaches is
/// measured right when forced, and its choice is the first of those.
#[test]
fn check_agrees_with_the_matrix_on_this_host() {
    require_root();
    let report = profiler::check::run();
    let row = matrix::row(&[], &profiler_tests::meshbox_bin());
    eprint!("{}", matrix::to_text(&row));
    for probe in &report.hook_sets {
        let cell = row
            .cells
            .iter()
            .find(|c| c.hook_set == probe.set)
            .unwrap_or_else(|| panic!("no matrix cell for {:?}", probe.set));
        let name = probe.set.name();
        assert_eq!(
            probe.kernel_allows,
            cell.status != Status::Refused,
            "{name}: check {probe:?}, matrix {cell:?}"
        );
        if probe.kernel_allows {
            assert_eq!(
                cell.status,
                Status::Ok,
                "{name}: the kernel allows it, but forced it measured wrong: {:?}",
                cell.reason
            );
            assert!(
                probe.attached,
                "{name}: allowed but not attached: {probe:?}"
            );
        } else {
            // The kernel's own reason, not just that it failed.
            let why = probe.refused.as_deref().unwrap_or_default();
            assert!(!why.is_empty() && !probe.attached, "{probe:?}");
        }
        // The family lines of the text say the same.
        let line = match probe.set {
            HookSet::Tracepoints => None,
            HookSet::Fentry => report.finding("fentry/fexit"),
            HookSet::Kprobes => report.finding("kprobes"),
        };
        if let Some(l) = line {
            assert_eq!(l.ok, probe.attached, "{name}: {l:?}");
            assert!(
                probe.kernel_allows || l.detail.contains("the kernel refuses"),
                "{name}: {l:?}"
            );
        }
    }
    let first_ok = row
        .cells
        .iter()
        .find(|c| c.status == Status::Ok)
        .map(|c| c.hook_set);
    assert!(first_ok.is_some(), "no hook set works on this host");
    assert_eq!(report.hook_set, first_ok);
    assert_eq!(row.auto, first_ok);
}

#[test]
fn check_cli_prints_json_and_exit_code() {
    require_root();
    let out = Command::new(profiler_tests::profiler_bin())
        .args(["check", "--format", "json"])
        .output()
        .expect("run profiler check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    // The same choice as the library's probe, and every set accounted for.
    let chosen = profiler::check::run().hook_set.expect("a usable hook set");
    assert_eq!(v["hook_set"], chosen.name());
    assert!(v["findings"].as_array().is_some_and(|a| a.len() >= 15));
    assert_eq!(v["hook_sets"].as_array().map(Vec::len), Some(3), "{v}");
}

#[test]
fn output_to_a_reader_that_went_away_is_not_a_panic() {
    require_root();
    // `profiler check | head -c 1`: the reader is gone before the report
    // is written (the probes take a while).
    let mut child = Command::new(profiler_tests::profiler_bin())
        .args(["check", "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run profiler check");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait for profiler check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.status.success(), "{:?}: {err}", out.status);
}

/// `--hook-set` forces one set: one the kernel refuses is an error (exit 2)
/// naming the set and the kernel's reason; one it allows attaches (and the
/// capture then stops at its next check: no such process).
#[test]
fn forcing_a_hook_set_attaches_it_or_names_the_kernels_reason() {
    require_root();
    let report = profiler::check::run();
    for probe in &report.hook_sets {
        let name = probe.set.name();
        let out = Command::new(profiler_tests::profiler_bin())
            .args(["snapshot", "--duration", "1s", "--pid", "4000000000"])
            .args(["--hook-set", name])
            .output()
            .expect("run profiler snapshot");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        if probe.attached {
            assert!(err.contains("no sidecar matched"), "{name}: {err}");
        } else {
            let why = probe.error.as_deref().expect("a reason");
            assert!(
                err.contains(&format!("hook set `{name}` does not attach")) && err.contains(why),
                "{name}: {err} (check said: {why})"
            );
        }
    }
}
