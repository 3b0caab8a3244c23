//! How often the kernel skipped an attached program instead of running it
//! (`recursion_misses` of bpf_prog_info, Linux 5.12+). A classic
//! tracepoint's or a kprobe's program is skipped when it fires while any
//! program runs on that CPU (an interrupt that came during one); a raw or
//! BTF tracepoint's only while the same program runs there. Each skip is
//! an event the profiler never saw, so it is counted and exported. aya 0.14
//! reads bpf_prog_info but keeps this field private: the same call here.
use std::{io, os::fd::AsRawFd, os::fd::BorrowedFd};

use aya_obj::generated::{bpf_attr, bpf_cmd, bpf_prog_info};

/// A program's invocations (counted while kernel BPF stats are on) and
/// the runs the kernel skipped (always counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunCounts {
    pub runs: u64,
    pub skipped: u64,
}

/// The counts of the program behind `fd`.
pub fn run_counts(fd: BorrowedFd<'_>) -> io::Result<RunCounts> {
    // SAFETY: plain C structs, valid when zeroed.
    let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // The `info` member of the union: the one this command reads.
    attr.info.bpf_fd = fd.as_raw_fd() as u32;
    attr.info.info_len = size_of::<bpf_prog_info>() as u32;
    attr.info.info = &mut info as *mut bpf_prog_info as u64;
    // SAFETY: the kernel writes at most info_len bytes into `info` (older
    // kernels fewer, leaving the newer fields zero).
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            bpf_cmd::BPF_OBJ_GET_INFO_BY_FD as libc::c_int,
            &mut attr as *mut bpf_attr,
            size_of::<bpf_attr>() as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(RunCounts {
        runs: info.run_cnt,
        skipped: info.recursion_misses,
    })
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;
    use crate::ebpf::{self, Attach, Hook};

    /// The counts come from the right fields: the runs read here equal
    /// aya's own reading of the same program, which has run.
    #[test]
    fn runs_match_ayas_reading_of_the_same_program() {
        let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime)
            .expect("enabling BPF run-time stats (needs root: CAP_SYS_ADMIN)");
        let mut e = ebpf::open().expect("the eBPF object (needs root: CAP_BPF)");
        let hook = Hook {
            program: "probe_tracepoint",
            attach: Attach::Tracepoint {
                category: "sock",
                name: "sock_send_length",
            },
        };
        ebpf::loader::attach(&mut e, &hook, None).expect("attach");
        // Sends on loopback run it.
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        for _ in 0..50 {
            tx.send_to(b"x", rx.local_addr().expect("addr"))
                .expect("send");
        }
        let p = e.program(hook.program).expect("loaded");
        // Any process's send runs it too: ours is read between two of aya's.
        let before = p.info().expect("info").run_count();
        let ours = run_counts(p.fd().expect("fd").as_fd()).expect("bpf_prog_info");
        let after = p.info().expect("info").run_count();
        assert!(before >= 50, "{before}");
        assert!(
            (before..=after).contains(&ours.runs),
            "{before} {ours:?} {after}"
        );
        // Nothing else ran an eBPF program on these CPUs inside this one.
        assert_eq!(ours.skipped, 0);
    }
}
