//! The probes behind `profiler check`. Each hook is really loaded and
//! attached, then unloaded; the tc probe runs in a scratch network namespace
//! that vanishes with its thread, so nothing is left behind.
use std::path::Path;

use aya::{
    Btf,
    programs::{SchedClassifier, TcAttachType, tc},
};

use super::report::{Finding, ProgramProbe, Report, SetProbe};
use crate::{
    ebpf::{self, Attach, Hook, HookSet, hookset, loader},
    kernel::{caps, cgroup_cpu, mounts},
};

fn finding(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Finding {
    Finding {
        name: name.into(),
        ok,
        detail: detail.into(),
    }
}

pub fn run() -> Report {
    let mut findings = Vec::new();
    findings.push(match mounts::ensure(mounts::TRACEFS, "tracefs") {
        Ok(false) => finding("tracefs", true, format!("mounted at {}", mounts::TRACEFS)),
        Ok(true) => finding(
            "tracefs",
            true,
            format!("was not mounted; mounted it at {}", mounts::TRACEFS),
        ),
        Err(e) => finding(
            "tracefs",
            false,
            format!("cannot mount at {}: {e}", mounts::TRACEFS),
        ),
    });
    let btf = Btf::from_sys_fs();
    findings.push(match &btf {
        Ok(_) => finding(
            "btf",
            true,
            format!(
                "/sys/kernel/btf/vmlinux parsed; {}; {}; {}; {}; {}; {}",
                match loader::task_pid_offset() {
                    Ok(off) => format!(
                        "task_struct keeps pid at byte {off} (for the BTF scheduler hooks)"
                    ),
                    Err(why) => format!("{why} (the classic scheduler hooks are used)"),
                },
                match loader::task_run_delay_offset() {
                    Ok(off) => format!(
                        "task_struct keeps its run-queue wait at byte {off} (for the \
                         scheduler hooks)"
                    ),
                    Err(why) => format!("{why} (no scheduler hooks: process time is not split)"),
                },
                match loader::tcp_wstamp_offset() {
                    Ok(off) => format!(
                        "tcp_sock keeps tcp_wstamp_ns at byte {off} (for kernel_out, and \
                         kernel_in from the app)"
                    ),
                    Err(why) => format!("{why} (no kernel_out, nor kernel_in from the app)"),
                },
                match loader::sk_protocol_offset() {
                    Ok(off) => format!(
                        "sock keeps sk_protocol at byte {off} (for the raw send and receive \
                         tracepoints)"
                    ),
                    Err(why) => format!("{why} (the classic send and receive tracepoints are used)"),
                },
                match loader::skc_net_offset() {
                    Ok(off) => format!(
                        "sock_common keeps skc_net at byte {off} (for the pod's loopback half \
                         of --pod-edge)"
                    ),
                    Err(why) => format!("{why} (no kernel_in or kernel_out over the pod's loopback)"),
                },
                match loader::sk_receive_queue_len_offset() {
                    Ok(off) => format!(
                        "sock keeps its receive queue's length at byte {off} (a read that \
                         drained a socket leaves no arrival standing)"
                    ),
                    Err(why) => format!(
                        "{why} (data the data-ready hook did not see is timed from the \
                         arrival before it)"
                    ),
                }
            ),
        ),
        Err(e) => finding(
            "btf",
            false,
            format!("{e} (fentry and the BTF scheduler hooks need kernel BTF)"),
        ),
    });
    findings.push(lockdown());
    findings.push(capabilities());
    findings.push(bpf_stats());
    findings.extend(cgroup_accounting());

    let probes = hooks(btf.as_ref().ok());
    let hook_set = probes.chosen;
    findings.extend(probes.findings);
    let attached: Vec<HookSet> = probes
        .sets
        .iter()
        .filter(|s| s.attached)
        .map(|s| s.set)
        .collect();
    let tc = tc_clsact(&attached, btf.as_ref().ok());
    let tc_ok = tc.ok;
    findings.push(tc);
    Report {
        findings,
        hook_sets: probes.sets,
        programs: probes.programs,
        hook_set,
        tc: tc_ok,
        verdict: Report::verdict_for(hook_set, tc_ok),
    }
}

fn lockdown() -> Finding {
    if let Err(e) = mounts::ensure(mounts::SECURITYFS, "securityfs") {
        return finding("lockdown", false, format!("securityfs not mountable: {e}"));
    }
    match std::fs::read_to_string(Path::new(mounts::SECURITYFS).join("lockdown")) {
        Ok(t) => match mounts::parse_lockdown(&t) {
            Some("none") => finding("lockdown", true, "none"),
            Some(m) => finding(
                "lockdown",
                m == "integrity",
                format!("{m} (integrity allows bpf_probe_read_kernel; confidentiality forbids it)"),
            ),
            None => finding("lockdown", false, format!("unreadable mode {t:?}")),
        },
        Err(_) => finding("lockdown", true, "no lockdown LSM"),
    }
}

fn capabilities() -> Finding {
    match caps::effective() {
        Ok(mask) => {
            let (held, missing) = caps::split(mask);
            let needed_missing = caps::missing_for_capture(mask);
            let mut detail = format!("held: {}", held.join(" "));
            if !missing.is_empty() {
                detail.push_str(&format!("; not held: {}", missing.join(" ")));
            }
            if !needed_missing.is_empty() {
                detail.push_str(&format!(
                    "; a capture needs {} (run as root or grant them)",
                    needed_missing.join(", ")
                ));
            }
            finding("capabilities", needed_missing.is_empty(), detail)
        }
        Err(e) => finding("capabilities", false, e.to_string()),
    }
}

fn bpf_stats() -> Finding {
    match std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled") {
        Ok(v) if v.trim() == "1" => finding(
            "kernel.bpf_stats_enabled",
            true,
            "1 (program run time is counted)",
        ),
        Ok(v) => finding(
            "kernel.bpf_stats_enabled",
            false,
            format!(
                "{} (off: fine; the benchmark turns it on while it measures)",
                v.trim()
            ),
        ),
        Err(e) => finding("kernel.bpf_stats_enabled", false, e.to_string()),
    }
}

fn cgroup_accounting() -> Vec<Finding> {
    match cgroup_cpu::detect() {
        Ok(acc) => vec![
            match (&acc.v1_cpu, &acc.v1_cpuacct) {
                (Some(cpu), Some(acct)) => finding(
                    "cgroup v1 cpu accounting",
                    true,
                    format!("cpu at {}, cpuacct at {}", cpu.display(), acct.display()),
                ),
                _ => finding(
                    "cgroup v1 cpu accounting",
                    false,
                    "no v1 cpu/cpuacct controller mounted",
                ),
            },
            match (&acc.v2_root, acc.v2_cpu) {
                (Some(root), true) => finding(
                    "cgroup v2 cpu accounting",
                    true,
                    format!("cpu controller at {}", root.display()),
                ),
                (Some(root), false) => finding(
                    "cgroup v2 cpu accounting",
                    false,
                    format!("v2 at {} without the cpu controller", root.display()),
                ),
                (None, _) => finding("cgroup v2 cpu accounting", false, "no cgroup2 mount"),
            },
        ],
        Err(e) => vec![finding("cgroup cpu accounting", false, e.to_string())],
    }
}

/// What probing the hooks found.
struct HookProbes {
    findings: Vec<Finding>,
    sets: Vec<SetProbe>,
    programs: Vec<ProgramProbe>,
    chosen: Option<HookSet>,
}

/// Every attachment tried once: the real program, or an empty one in its
/// place. Ok holds the instructions the verifier processed.
struct Attempts<'a> {
    ebpf: aya::Ebpf,
    btf: Option<&'a Btf>,
    done: Vec<(Hook, Result<Option<u32>, String>)>,
}

impl Attempts<'_> {
    fn try_hook(&mut self, hook: Hook) -> Result<Option<u32>, String> {
        if let Some((_, r)) = self.done.iter().find(|(h, _)| *h == hook) {
            return r.clone();
        }
        let r = loader::attach(&mut self.ebpf, &hook, self.btf)
            .map(|()| {
                self.ebpf
                    .program(hook.program)
                    .and_then(|p| p.info().ok())
                    .and_then(|i| i.verified_instruction_count())
            })
            .map_err(|e| loader::short_reason(&e));
        loader::unload(&mut self.ebpf, hook.program);
        self.done.push((hook, r.clone()));
        r
    }

    /// The first failure among `hooks` (None: all attached).
    fn first_error(&mut self, hooks: impl Iterator<Item = Hook>) -> Option<String> {
        hooks.map(|h| self.try_hook(h)).find_map(Result::err)
    }
}

fn not_a_tracepoint(h: &Hook) -> bool {
    !matches!(
        h.attach,
        Attach::Tracepoint { .. } | Attach::RawTracepoint { .. } | Attach::BtfTracepoint { .. }
    )
}

/// Try every hook of every set, and an empty program in each one's place,
/// plus the sched tracepoints; one line per tracepoint, one per kprobe and
/// fentry family.
fn hooks(btf: Option<&Btf>) -> HookProbes {
    let mut out = HookProbes {
        findings: Vec::new(),
        sets: Vec::new(),
        programs: Vec::new(),
        chosen: None,
    };
    let ebpf = match ebpf::open() {
        Ok(e) => e,
        Err(e) => {
            out.findings.push(finding(
                "bpf object",
                false,
                format!("{e} (needs CAP_BPF and CAP_PERFMON)"),
            ));
            return out;
        }
    };
    let mut tries = Attempts {
        ebpf,
        btf,
        done: Vec::new(),
    };
    for set in HookSet::PREFERENCE {
        let hooks = set.hooks().iter().copied();
        let refused = tries.first_error(hooks.clone().map(|h| h.trivial()));
        let error = tries.first_error(hooks);
        out.sets.push(SetProbe {
            set,
            kernel_allows: refused.is_none(),
            refused,
            attached: error.is_none(),
            error,
        });
    }
    // Each real hook once, in preference order (every set shares
    // inet_sock_set_state), then the scheduler hooks every set runs beside
    // it: what the verifier processed of each that attached, and a line
    // per tracepoint.
    let mut real: Vec<Hook> = Vec::new();
    for hook in HookSet::PREFERENCE
        .iter()
        .flat_map(|s| s.hooks())
        .chain(hookset::SCHED_PREFERENCE.into_iter().flatten())
    {
        if !real.contains(hook) {
            real.push(*hook);
        }
    }
    for hook in real {
        // Without the pid offset the BTF scheduler hooks attach but see no
        // thread: they are never used so, and not reported as working.
        let r = match (loader::task_pid_offset(), loader::task_run_delay_offset()) {
            (Err(why), _) if hookset::SCHED_BTF.contains(&hook) => Err(format!(
                "not used: where a task keeps its pid is unknown ({why})"
            )),
            (_, Err(why)) if hookset::is_sched(&hook) => Err(format!(
                "not used: where a task keeps its run-queue wait is unknown ({why})"
            )),
            _ => tries.try_hook(hook),
        };
        if let Ok(insns) = r {
            out.programs.push(ProgramProbe {
                program: hook.program.to_string(),
                hook: hook.describe(),
                verified_insns: insns,
            });
        }
        if !not_a_tracepoint(&hook) {
            let attached = if hookset::SCHED_BTF.contains(&hook) {
                "attached (splits process time into on-CPU, run-queue and blocked; preferred)"
            } else if hookset::is_sched(&hook) {
                "attached (splits process time; used where the BTF scheduler hooks are not)"
            } else {
                "attached"
            };
            out.findings.push(finding(
                hook.describe(),
                r.is_ok(),
                r.err().unwrap_or_else(|| attached.into()),
            ));
        }
    }
    for (label, set) in [
        ("kprobes", HookSet::Kprobes),
        ("fentry/fexit", HookSet::Fentry),
    ] {
        let own: Vec<Hook> = set
            .hooks()
            .iter()
            .copied()
            .filter(not_a_tracepoint)
            .collect();
        let refused = tries.first_error(own.iter().map(Hook::trivial));
        let error = tries.first_error(own.iter().copied());
        let names: Vec<String> = own.iter().map(Hook::describe).collect();
        let mut detail = match (&refused, &error) {
            (_, None) => format!("attached {}", names.join(", ")),
            (Some(why), Some(_)) => format!("the kernel refuses them: {why}"),
            (None, Some(why)) => format!(
                "the kernel allows these hooks, but the profiler's program was refused \
                 (a defect of the profiler; please report it): {why}"
            ),
        };
        if set == HookSet::Kprobes && !Path::new("/sys/bus/event_source/devices/kprobe").exists() {
            detail.push_str(" (no kprobe PMU in /sys/bus/event_source/devices: kernel built without CONFIG_KPROBES)");
        }
        out.findings.push(finding(label, error.is_none(), detail));
    }
    out.chosen = out.sets.iter().find(|s| s.attached).map(|s| s.set);
    out
}

/// Attach a classifier through a clsact qdisc on the loopback of a scratch
/// network namespace owned by one short-lived thread; then the pod edge's
/// classifiers as `--pod-edge` attaches them, and the programs of every
/// hook set in `sets` (those that attach here) as they load with its work
/// in them (the edge and loopback stamping that an object loaded without
/// `--pod-edge` leaves out).
fn tc_clsact(sets: &[HookSet], btf: Option<&Btf>) -> Finding {
    let outcome = std::thread::scope(|s| {
        s.spawn(|| -> Result<String, String> {
            // SAFETY: unshare affects only this thread, which exits right after.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(format!(
                    "unshare(CLONE_NEWNET): {} (needs CAP_SYS_ADMIN)",
                    std::io::Error::last_os_error()
                ));
            }
            tc::qdisc_add_clsact("lo").map_err(|e| format!("adding clsact qdisc: {e}"))?;
            let mut ebpf = loader::open_with(true, true).map_err(|e| e.to_string())?;
            let prog: &mut SchedClassifier = ebpf
                .program_mut("tc_pod_iface")
                .ok_or("tc_pod_iface missing from the object")?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| e.to_string())?;
            prog.load().map_err(|e| e.to_string())?;
            prog.attach_with_options(
                "lo",
                TcAttachType::Ingress,
                tc::TcAttachOptions::Netlink(tc::NlOptions::default()),
            )
            .map_err(|e| format!("attaching classifier: {e}"))?;
            // The pod edge's own classifiers, as `--pod-edge` attaches them.
            let mut edges = crate::edge::Edges::open(&mut ebpf, ebpf::PodEdge::default())
                .map_err(|e| e.to_string())?;
            edges
                .attach_named(&mut ebpf, "lo")
                .map_err(|e| e.to_string())?;
            let mode = match edges.mode() {
                Some(crate::edge::Mode::Netlink) => "cls_bpf filters",
                _ => "tcx links",
            };
            if sets.is_empty() {
                return Ok(format!("{mode} (no hook set attaches here)"));
            }
            for &set in sets {
                // A fresh object per set: sets share programs (the state
                // hook), and a program loads once per object.
                let mut ebpf = loader::open_with(true, true).map_err(|e| e.to_string())?;
                for hook in set.hooks() {
                    loader::attach(&mut ebpf, hook, btf).map_err(|e| {
                        format!(
                            "the pod edge's classifiers attach as {mode}, but with --pod-edge \
                             the {} hook set's program for {} is refused (a defect of the \
                             profiler; please report it): {e}",
                            set.name(),
                            hook.describe()
                        )
                    })?;
                }
            }
            let names: Vec<&str> = sets.iter().map(|s| s.name()).collect();
            Ok(format!(
                "{mode}, and the programs of {} load with its stamping",
                names.join(", ")
            ))
        })
        .join()
    });
    match outcome {
        Ok(Ok(edge)) => finding(
            "tc clsact",
            true,
            format!(
                "classifier attached via clsact, and the pod edge's (--pod-edge) as {edge} \
                 (in a scratch netns)"
            ),
        ),
        Ok(Err(e)) => finding("tc clsact", false, e),
        Err(_) => finding("tc clsact", false, "probe thread panicked"),
    }
}
