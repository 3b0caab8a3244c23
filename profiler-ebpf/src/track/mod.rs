//! What every hook set feeds: arrivals, reads, writes and socket state.
pub mod arrival;
pub mod edge;
pub mod emit;
pub mod io;
pub mod loopback;
pub mod sched;
pub mod sockinfo;
pub mod state;

use aya_ebpf::helpers::bpf_get_current_pid_tgid;
use profiler_common::maps::filter::{self, TgidVerdict};

use crate::maps::{TRACKED, TRACKED_FILTER};

/// (tgid, tid) of the current task when it belongs to a tracked proxy. An
/// untracked process leaves after one array load (inlined by the JIT); the
/// hash map is consulted only where two tracked tgids share a slot.
#[inline(always)]
pub fn tracked_task() -> Option<(u32, u32)> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let slot = TRACKED_FILTER.get_ptr(filter::tgid_slot(tgid))?;
    // SAFETY: an array slot, read once.
    match filter::passes_tgid(unsafe { *slot }, tgid) {
        TgidVerdict::Yes => {}
        TgidVerdict::No => return None,
        TgidVerdict::AskMap => {
            // SAFETY: the value is only tested for presence.
            unsafe { TRACKED.get(&tgid) }?;
        }
    }
    Some((tgid, pid_tgid as u32))
}

/// CLOCK_MONOTONIC in ns, the clock every timestamp of a forward is read from.
#[inline(always)]
pub fn now_ns() -> u64 {
    // SAFETY: a plain helper call with no arguments.
    unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() }
}
