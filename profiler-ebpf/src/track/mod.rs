//! What every hook set feeds: arrivals, reads, writes and socket state.
pub mod arrival;
pub mod pair;
pub mod state;

use aya_ebpf::helpers::bpf_get_current_pid_tgid;

use crate::maps::TRACKED;

/// (tgid, tid) of the current task when it belongs to a tracked proxy. An
/// untracked process leaves after this one lookup.
#[inline(always)]
pub fn tracked_task() -> Option<(u32, u32)> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    // SAFETY: the value is only tested for presence.
    unsafe { TRACKED.get(&tgid) }?;
    Some((tgid, pid_tgid as u32))
}

/// CLOCK_MONOTONIC in ns, the clock every timestamp of a forward is read from.
#[inline(always)]
pub fn now_ns() -> u64 {
    // SAFETY: a plain helper call with no arguments.
    unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() }
}
