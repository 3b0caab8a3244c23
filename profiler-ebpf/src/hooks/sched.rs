//! The scheduler's stable tracepoints, the same on every kernel and hook
//! set: they split a forward's process time into running, runnable and
//! blocked. Offsets are those of events/sched/*/format.
use aya_ebpf::{EbpfContext, macros::tracepoint, programs::TracePointContext};
use profiler_common::sched::switched_out_runnable;

use crate::track::sched;

#[inline(always)]
fn field<T: Copy>(ctx: &TracePointContext, offset: usize) -> T {
    // SAFETY: offsets come from the format file and are aligned for T; the
    // verifier checks every context access.
    unsafe { (ctx.as_ptr() as *const u8).add(offset).cast::<T>().read() }
}

#[tracepoint(category = "sched", name = "sched_switch")]
pub fn tp_sched_switch(ctx: TracePointContext) -> u32 {
    // prev_pid, next_pid, and prev_state only for a followed thread.
    sched::on_switch(
        field::<i32>(&ctx, 24) as u32,
        field::<i32>(&ctx, 56) as u32,
        || switched_out_runnable(field::<i64>(&ctx, 32)),
    );
    0
}

#[tracepoint(category = "sched", name = "sched_wakeup")]
pub fn tp_sched_wakeup(ctx: TracePointContext) -> u32 {
    sched::on_wakeup(field::<i32>(&ctx, 24) as u32);
    0
}
