//! Tiny programs: `profiler check` attaches one of these wherever a hook
//! set's program would go, to tell what the kernel allows apart from what
//! the verifier makes of the real program; `meshbox bench` measures
//! `probe_tracepoint`, `probe_clock` and the scheduler's probes as the cost
//! floors of this machine.
use aya_ebpf::{
    macros::{btf_tracepoint, fentry, fexit, kprobe, kretprobe, raw_tracepoint, tracepoint},
    programs::{
        BtfTracePointContext, FEntryContext, FExitContext, ProbeContext, RawTracePointContext,
        RetProbeContext, TracePointContext,
    },
};

use crate::track::sched::followed;

#[tracepoint]
pub fn probe_tracepoint(_ctx: TracePointContext) -> u32 {
    0
}

#[raw_tracepoint]
pub fn probe_raw_tracepoint(_ctx: RawTracePointContext) -> i32 {
    0
}

// The tracepoint is chosen when the program is loaded.
#[btf_tracepoint(function = "sched_switch")]
pub fn probe_btf_tracepoint(_ctx: BtfTracePointContext) -> i32 {
    0
}

#[kprobe]
pub fn probe_kprobe(_ctx: ProbeContext) -> u32 {
    0
}

#[kretprobe]
pub fn probe_kretprobe(_ctx: RetProbeContext) -> u32 {
    0
}

// The function is chosen when the program is loaded; the one named here
// only labels the section.
#[fentry(function = "tcp_sendmsg")]
pub fn probe_fentry(_ctx: FEntryContext) -> u32 {
    0
}

#[fexit(function = "tcp_sendmsg")]
pub fn probe_fexit(_ctx: FExitContext) -> u32 {
    0
}

/// An empty program for sched:sched_switch, beside the scheduler hook: the
/// floor a context switch's program costs (`meshbox bench`).
#[tracepoint]
pub fn probe_sched_switch(_ctx: TracePointContext) -> u32 {
    0
}

/// Reads the clock once, as every hook on a forward's path must.
#[tracepoint]
pub fn probe_clock(_ctx: TracePointContext) -> u32 {
    core::hint::black_box(crate::track::now_ns());
    0
}

/// The scheduler hook's test of whether a thread is followed, for the
/// incoming task only: the least a program on sched_switch pays to tell
/// the threads it follows from the rest (`meshbox bench`). The bench loads
/// it in an object of its own, whose thread filter no hook ever sets, so
/// it leaves after the bitmap's word, as a switch of unfollowed tasks does.
#[btf_tracepoint(function = "sched_switch")]
pub fn probe_btf_filter(ctx: BtfTracePointContext) -> i32 {
    let tid = super::sched::task_field::<i32>(&ctx, 2, super::sched::TASK_PID_OFFSET.load());
    core::hint::black_box(followed(tid as u32).is_some());
    0
}

/// As `probe_btf_filter`, on the classic sched_switch (next_pid at 56).
#[tracepoint]
pub fn probe_sched_filter(ctx: TracePointContext) -> u32 {
    core::hint::black_box(followed(super::sched::field::<i32>(&ctx, 56) as u32).is_some());
    0
}
