//! Tiny programs: `profiler check` attaches `probe_tracepoint` to each
//! tracepoint it probes; `meshbox bench` measures both as the cost floors
//! of this machine.
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};

#[tracepoint]
pub fn probe_tracepoint(_ctx: TracePointContext) -> u32 {
    0
}

/// Reads the clock once, as every hook on a forward's path must.
#[tracepoint]
pub fn probe_clock(_ctx: TracePointContext) -> u32 {
    core::hint::black_box(crate::track::now_ns());
    0
}
