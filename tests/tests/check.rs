//! `profiler check` on this machine: it must find what the platform notes
//! record (tracepoints and tc usable, fentry refused, kprobes absent) and
//! leave no program, link or qdisc behind.
use std::process::Command;

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
    for tp in [
        "tracepoint sock:sock_recv_length",
        "tracepoint sock:sock_send_length",
        "raw tracepoint sk_data_ready",
        "tracepoint sock:inet_sock_set_state",
        "tracepoint sched:sched_switch",
        "tracepoint sched:sched_wakeup",
    ] {
        assert!(f(tp).ok, "{tp} should attach here: {}", report.to_text());
    }
    let fentry = f("fentry/fexit");
    assert!(
        !fentry.ok && fentry.detail.contains("Operation not permitted"),
        "{fentry:?}"
    );
    let kprobes = f("kprobes");
    assert!(
        !kprobes.ok && kprobes.detail.contains("kprobe PMU"),
        "{kprobes:?}"
    );
    assert!(f("tc clsact").ok, "{}", report.to_text());
    assert!(f("btf").ok);
    assert_eq!(report.hook_set, Some(HookSet::Tracepoints));
    assert!(report.usable());
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
    assert_eq!(v["hook_set"], "tracepoints");
    assert!(v["findings"].as_array().is_some_and(|a| a.len() >= 15));
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
