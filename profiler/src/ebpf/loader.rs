//! The compiled object and attaching one hook.
use aya::{
    Btf, Ebpf, EbpfLoader,
    programs::{
        BtfTracePoint, FEntry, FExit, KProbe, Program, ProgramError, RawTracePoint, TracePoint,
    },
};

use std::sync::OnceLock;

use profiler_common::{edge, loopback, ring, sched, sock};

use super::hookset::{self, Attach, Hook};

#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    #[error(
        "this binary was built with AYA_BUILD_SKIP=1 and carries no eBPF object; rebuild without it"
    )]
    NoObject,
    #[error("loading the eBPF object failed: {}", explain(.0))]
    Load(#[from] aya::EbpfError),
    #[error("program {0} is missing from the eBPF object")]
    MissingProgram(&'static str),
    #[error("{hook}: {source}")]
    Program {
        hook: String,
        #[source]
        source: ProgramError,
    },
    #[error("reading kernel BTF from /sys/kernel/btf/vmlinux failed: {0}")]
    Btf(#[from] aya::BtfError),
    #[error("counting this machine's CPUs (to size the per-CPU rings) failed: {0}")]
    Cpus(#[source] std::io::Error),
}

/// An error with its causes, and what to do when the kernel said EPERM.
pub fn explain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut eperm = false;
    let mut cause = e.source();
    while let Some(c) = cause {
        // aya's messages often repeat their cause's text.
        let t = c.to_string();
        if !text.contains(&t) {
            text.push_str(&format!(": {t}"));
        }
        eperm |= c
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(libc::EPERM));
        cause = c.source();
    }
    if eperm {
        text.push_str(
            " (bpf() refused: without CAP_BPF, or under a seccomp profile that blocks bpf(), \
             as container runtimes' default profiles do; deploy/seccomp/profiler.json allows it)",
        );
    }
    text
}

/// The kernel programs, compiled from profiler-ebpf by build.rs.
pub fn object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/profiler"))
}

/// Where this kernel's `task_struct` keeps `pid`, read once from its BTF;
/// why not, where it cannot be read (then the BTF scheduler hooks, which
/// need it, are not used).
pub fn task_pid_offset() -> Result<u32, &'static str> {
    offsets().task_pid.as_ref().copied().map_err(String::as_str)
}

/// Where this kernel's `task_struct` keeps its run-queue wait
/// (`sched_info.run_delay`), or why not known (then no scheduler hooks).
pub fn task_run_delay_offset() -> Result<u32, &'static str> {
    offsets()
        .task_run_delay
        .as_ref()
        .copied()
        .map_err(String::as_str)
}

/// Where this kernel's `tcp_sock` keeps `tcp_wstamp_ns` (kernel_out
/// needs it), or why not known.
pub fn tcp_wstamp_offset() -> Result<u32, &'static str> {
    offsets()
        .tcp_wstamp_ns
        .as_ref()
        .copied()
        .map_err(String::as_str)
}

/// Where this kernel's `sock` keeps `sk_protocol` (the raw send and
/// receive tracepoints need it), or why not known.
pub fn sk_protocol_offset() -> Result<u32, &'static str> {
    offsets()
        .sk_protocol
        .as_ref()
        .copied()
        .map_err(String::as_str)
}

/// Where this kernel's `sock` keeps its receive queue's length (a read
/// that drained the socket leaves no arrival standing), or why not known.
pub fn sk_receive_queue_len_offset() -> Result<u32, &'static str> {
    offsets()
        .sk_receive_queue_len
        .as_ref()
        .copied()
        .map_err(String::as_str)
}

/// Where this kernel's `sock_common` keeps `skc_net` (the loopback half
/// of the pod edge needs it), or why not known.
pub fn skc_net_offset() -> Result<u32, &'static str> {
    offsets().skc_net.as_ref().copied().map_err(String::as_str)
}

fn offsets() -> &'static crate::kernel::btf::Offsets {
    static OFFSETS: OnceLock<crate::kernel::btf::Offsets> = OnceLock::new();
    OFFSETS.get_or_init(crate::kernel::btf::kernel_offsets)
}

/// The scheduler hooks a capture tries first here: the BTF tracepoints
/// where this kernel's BTF gives a task's pid, else the classic ones.
pub fn preferred_sched_hooks() -> &'static [Hook] {
    if task_pid_offset().is_ok() {
        &hookset::SCHED_BTF
    } else {
        &hookset::SCHED_CLASSIC
    }
}

/// Load the object (maps are created, the per-CPU rings sized for this
/// machine; programs are loaded one by one by [`attach`]).
pub fn open() -> Result<Ebpf, EbpfError> {
    open_with(false, true)
}

/// As [`open`]; `pod_edge`: the classifiers on the pod edges will run, so
/// their maps are sized in full and sockets are entered for them;
/// `sched_split`: the scheduler hooks may run, so reads and writes keep
/// their threads' accounts (without, they keep none: no cost).
pub fn open_with(pod_edge: bool, sched_split: bool) -> Result<Ebpf, EbpfError> {
    if object().is_empty() {
        return Err(EbpfError::NoObject);
    }
    let cpus = crate::kernel::cpus::possible_ids_end().map_err(EbpfError::Cpus)?;
    // 0 leaves the BTF scheduler hooks inert; they are then not attached.
    let pid_offset = task_pid_offset().unwrap_or(0);
    // 0 also keeps reads and writes from following threads.
    let run_delay_offset = if sched_split {
        task_run_delay_offset().unwrap_or(0)
    } else {
        0
    };
    let edge_on = u32::from(pod_edge);
    let wstamp_offset = tcp_wstamp_offset().unwrap_or(0);
    let net_offset = skc_net_offset().unwrap_or(0);
    let protocol_offset = sk_protocol_offset().unwrap_or(0);
    let rcvq_offset = sk_receive_queue_len_offset().unwrap_or(0);
    let (flows, stamps, spill, peers) = if pod_edge {
        (
            edge::EDGE_FLOWS_MAX,
            profiler_common::slots::SOCK_SLOTS_LEN,
            edge::SOCK_EDGE_SPILL_MAX,
            loopback::LOOP_PEERS_MAX,
        )
    } else {
        (1, 1, 1, 1)
    };
    Ok(EbpfLoader::new()
        .map_max_entries(ring::RING_CTL, cpus)
        .map_max_entries(ring::RING, cpus * ring::slots_per_cpu(cpus))
        .map_max_entries(edge::EDGE_FLOWS, flows)
        .map_max_entries(edge::SOCK_EDGE, stamps)
        .map_max_entries(edge::SOCK_EDGE_SPILL, spill)
        .map_max_entries(loopback::LOOP_PEERS, peers)
        .override_global(sched::TASK_PID_OFFSET, &pid_offset, true)
        .override_global(sched::TASK_RUN_DELAY_OFFSET, &run_delay_offset, true)
        .override_global(edge::EDGE_ON, &edge_on, true)
        .override_global(edge::TCP_WSTAMP_OFFSET, &wstamp_offset, true)
        .override_global(loopback::SKC_NET_OFFSET, &net_offset, true)
        .override_global(sock::SK_PROTOCOL_OFFSET, &protocol_offset, true)
        .override_global(sock::SK_RECEIVE_QUEUE_LEN_OFFSET, &rcvq_offset, true)
        .load(object())?)
}

/// The kernel's BTF for a hook that loads against it: the caller's, else
/// parsed here (several MB, so callers attaching many hooks pass theirs).
fn kernel_btf<'a>(
    given: Option<&'a Btf>,
    parsed: &'a mut Option<Btf>,
) -> Result<&'a Btf, EbpfError> {
    match given {
        Some(b) => Ok(b),
        None => Ok(parsed.insert(Btf::from_sys_fs()?)),
    }
}

/// Load `hook`'s program and attach it. The link lives as long as `ebpf`
/// (or until the program is unloaded); nothing is pinned, so a crash detaches too.
pub fn attach(ebpf: &mut Ebpf, hook: &Hook, btf: Option<&Btf>) -> Result<(), EbpfError> {
    let err = |source| EbpfError::Program {
        hook: hook.describe(),
        source,
    };
    let prog = ebpf
        .program_mut(hook.program)
        .ok_or(EbpfError::MissingProgram(hook.program))?;
    let mut parsed = None;
    match hook.attach {
        Attach::Tracepoint { category, name } => {
            let p: &mut TracePoint = prog.try_into().map_err(err)?;
            p.load().map_err(err)?;
            p.attach(category, name).map_err(err)?;
        }
        Attach::RawTracepoint { name } => {
            let p: &mut RawTracePoint = prog.try_into().map_err(err)?;
            p.load().map_err(err)?;
            p.attach(name).map_err(err)?;
        }
        Attach::BtfTracepoint { name } => {
            let btf = kernel_btf(btf, &mut parsed)?;
            let p: &mut BtfTracePoint = prog.try_into().map_err(err)?;
            p.load(name, btf).map_err(err)?;
            p.attach().map_err(err)?;
        }
        Attach::Kprobe { function } | Attach::Kretprobe { function } => {
            let p: &mut KProbe = prog.try_into().map_err(err)?;
            p.load().map_err(err)?;
            p.attach(function, 0).map_err(err)?;
        }
        Attach::Fentry { function } => {
            let btf = kernel_btf(btf, &mut parsed)?;
            let p: &mut FEntry = prog.try_into().map_err(err)?;
            p.load(function, btf).map_err(err)?;
            p.attach().map_err(err)?;
        }
        Attach::Fexit { function } => {
            let btf = kernel_btf(btf, &mut parsed)?;
            let p: &mut FExit = prog.try_into().map_err(err)?;
            p.load(function, btf).map_err(err)?;
            p.attach().map_err(err)?;
        }
    }
    Ok(())
}

/// Unload a program (detaching all its links), so a probe leaves nothing behind.
pub fn unload(ebpf: &mut Ebpf, program: &str) {
    let _ = match ebpf.program_mut(program) {
        Some(Program::TracePoint(p)) => p.unload(),
        Some(Program::RawTracePoint(p)) => p.unload(),
        Some(Program::BtfTracePoint(p)) => p.unload(),
        Some(Program::KProbe(p)) => p.unload(),
        Some(Program::FEntry(p)) => p.unload(),
        Some(Program::FExit(p)) => p.unload(),
        Some(Program::SchedClassifier(p)) => p.unload(),
        _ => Ok(()),
    };
}

/// A short reason for a failed attach, which is what an operator needs to
/// act on: the errno, and for a program the verifier refused, its verdict
/// and the source line it was checking (not the whole log).
pub fn short_reason(e: &EbpfError) -> String {
    if let EbpfError::Program {
        hook,
        source: ProgramError::LoadError {
            io_error,
            verifier_log,
        },
    } = e
    {
        // Whole, for whoever asks (RUST_LOG=debug): the reason below is one
        // line of it.
        log::debug!("{hook}: the verifier's log:\n{verifier_log}");
        return match super::verifier::reason(&verifier_log.to_string()) {
            Some(why) => format!("{hook}: the verifier refused it ({io_error}): {why}"),
            None => format!("{hook}: BPF_PROG_LOAD returned {io_error}"),
        };
    }
    // With the causes: a failed attach names only its syscall, and its
    // errno says why (ENOENT: this kernel has no such tracepoint).
    let mut s = explain(e);
    if let Some(i) = s.find(". Verifier output:") {
        s.truncate(i);
    }
    let mut s = s.lines().next().unwrap_or_default().to_string();
    if let EbpfError::Program { hook, .. } = e
        && hook.contains("tracepoint")
        && s.ends_with("(os error 2)")
    {
        s.push_str(" (this kernel has no such tracepoint)");
    }
    s
}

#[cfg(test)]
mod tests {
    use aya::sys::SyscallError;

    use super::*;

    fn failed(hook: &str, errno: i32) -> EbpfError {
        EbpfError::Program {
            hook: hook.into(),
            source: ProgramError::SyscallError(SyscallError {
                call: "bpf_raw_tracepoint_open",
                io_error: std::io::Error::from_raw_os_error(errno),
            }),
        }
    }

    #[test]
    fn a_failed_attach_says_its_errno_and_a_missing_tracepoint_says_so() {
        let missing = short_reason(&failed("raw tracepoint sock_recv_length", libc::ENOENT));
        assert!(
            missing
                .starts_with("raw tracepoint sock_recv_length: `bpf_raw_tracepoint_open` failed")
                && missing.ends_with("(os error 2) (this kernel has no such tracepoint)"),
            "{missing}"
        );
        let other = short_reason(&failed("kprobe tcp_sendmsg", libc::ENOENT));
        assert!(other.ends_with("(os error 2)"), "{other}");
        let busy = short_reason(&failed("raw tracepoint sk_data_ready", libc::EBUSY));
        assert!(busy.ends_with("(os error 16)"), "{busy}");
    }
}
