//! Tiny programs: `profiler check` attaches one of these wherever a hook
//! set's program would go, to tell what the kernel allows apart from what
//! the verifier makes of the real program; `meshbox bench` measures
//! `probe_tracepoint` and `probe_clock` as the cost floors of this machine.
use aya_ebpf::{
    macros::{btf_tracepoint, fentry, fexit, kprobe, kretprobe, raw_tracepoint, tracepoint},
    programs::{
        BtfTracePointContext, FEntryContext, FExitContext, ProbeContext, RawTracePointContext,
        RetProbeContext, TracePointContext,
    },
};

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
