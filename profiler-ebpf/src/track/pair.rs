//! Where a forward is paired: a tracked thread's read, then its write to a
//! different socket (logic in profiler_common::pairing).
use aya_ebpf::{EbpfContext, helpers::bpf_probe_read_kernel};
use profiler_common::{
    maps::Counter,
    pairing::{Forward, ThreadState, WriteOutcome, arrival_for_read},
    sock::{AF_INET, ROLE_UNKNOWN, SockInfo, sock_common},
};

use super::arrival;
use crate::maps::{ARRIVALS, FORWARDS, SOCKS, THREADS, count};

/// A tracked thread's read of `ret` bytes from socket `sk` returned. The
/// hook has already checked the task (`super::tracked_task`), so untracked
/// processes never get here.
#[inline(always)]
pub fn on_read<C: EbpfContext>(ctx: &C, (_tgid, tid): (u32, u32), sk: u64, ret: i64) {
    if ret <= 0 {
        return;
    }
    let now = super::now_ns();
    let recorded = match ARRIVALS.get_ptr(&sk) {
        Some(p) => {
            arrival::mark(sk);
            // SAFETY: copied out at once.
            Some(unsafe { *p })
        }
        None => {
            // A socket of the proxy not seen before (opened before the
            // profiler started): from now on its arrivals are recorded.
            arrival::watch(&sk);
            None
        }
    };
    let (arrival, known) = arrival_for_read(recorded, now);
    if !known {
        count(Counter::NoArrival);
    }
    let state = match THREADS.get_ptr_mut(&tid) {
        Some(p) => p,
        None => {
            if THREADS.insert(&tid, &ThreadState::default(), 0).is_err() {
                count(Counter::MapFull);
                // Rare (LRU insert failing): worth a log line, not per event.
                aya_log_ebpf::warn!(ctx, "THREADS insert failed for tid {}", tid);
                return;
            }
            match THREADS.get_ptr_mut(&tid) {
                Some(p) => p,
                None => return,
            }
        }
    };
    // SAFETY: the entry belongs to this thread; only it touches it.
    unsafe { (*state).on_read(sk, ret as u64, arrival, now) };
}

/// A tracked thread's write of `ret` bytes to socket `sk` returned (clock stop).
#[inline(always)]
pub fn on_write((tgid, tid): (u32, u32), sk: u64, ret: i64) {
    if ret <= 0 {
        return;
    }
    let now = super::now_ns();
    // The destination's replies must be timed too (an upstream connected
    // before the profiler started is learnt here).
    if ARRIVALS.get_ptr(&sk).is_none() {
        arrival::watch(&sk);
    }
    let Some(state) = THREADS.get_ptr_mut(&tid) else {
        return;
    };
    // SAFETY: the entry belongs to this thread; only it touches it.
    let WriteOutcome::Forward(from) = (unsafe { (*state).on_write(sk) }) else {
        return;
    };
    let Some(mut entry) = FORWARDS.reserve::<Forward>(0) else {
        count(Counter::RingFull);
        return;
    };
    // Filled in place: a Forward is too large for the 512-byte BPF stack
    // once copied around.
    let out = entry.as_mut_ptr();
    // SAFETY: `out` points at reserved ring-buffer memory of the right size;
    // every field is written before submit.
    unsafe {
        (*out).tgid = tgid;
        (*out).tid = tid;
        (*out).src_sk = from.sk;
        (*out).dst_sk = sk;
        (*out).arrival_ns = from.arrival_ns;
        (*out).read_ns = from.read_ns;
        (*out).write_ns = now;
        (*out).bytes = from.bytes;
        fill_sock_info(&mut (*out).src, from.sk);
        fill_sock_info(&mut (*out).dst, sk);
    }
    entry.submit(0);
}

/// A socket's endpoints: learnt at connection time when the profiler saw it,
/// else read from the leading, never-moved fields of struct sock_common
/// (IPv4 only; IPv6 sockets opened before the profiler stay unknown).
#[inline(always)]
fn fill_sock_info(out: &mut SockInfo, sk: u64) {
    // SAFETY: copied out at once.
    if let Some(info) = unsafe { SOCKS.get(&sk) } {
        *out = *info;
        return;
    }
    *out = SockInfo::default();
    out.role = ROLE_UNKNOWN;
    let base = sk as *const u8;
    // SAFETY: bpf_probe_read_kernel tolerates any address.
    unsafe {
        let family: u16 =
            bpf_probe_read_kernel(base.add(sock_common::FAMILY) as *const u16).unwrap_or(0);
        if family != AF_INET {
            return;
        }
        out.family = family;
        let daddr: u32 =
            bpf_probe_read_kernel(base.add(sock_common::DADDR) as *const u32).unwrap_or(0);
        let saddr: u32 =
            bpf_probe_read_kernel(base.add(sock_common::RCV_SADDR) as *const u32).unwrap_or(0);
        out.peer_addr[..4].copy_from_slice(&daddr.to_ne_bytes());
        out.local_addr[..4].copy_from_slice(&saddr.to_ne_bytes());
        out.peer_port = u16::from_be(
            bpf_probe_read_kernel(base.add(sock_common::DPORT) as *const u16).unwrap_or(0),
        );
        out.local_port =
            bpf_probe_read_kernel(base.add(sock_common::NUM) as *const u16).unwrap_or(0);
    }
}
