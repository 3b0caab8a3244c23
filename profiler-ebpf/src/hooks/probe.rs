//! Tiny program `profiler check` attaches to each tracepoint it probes.
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};

#[tracepoint]
pub fn probe_tracepoint(_ctx: TracePointContext) -> u32 {
    0
}
