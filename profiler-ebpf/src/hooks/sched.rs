//! The scheduler's hook, the same beside every hook set: it follows the
//! proxy's threads on and off their CPUs, which splits a forward's process
//! time into running, runnable and blocked (track::sched). A BTF
//! tracepoint where the kernel's BTF says where `task_struct` keeps its
//! pid, the classic one (offsets of events/sched/sched_switch/format)
//! elsewhere. No wake-up is hooked: a thread's own run-queue wait tells
//! the runnable part of its time off CPU.
use aya_ebpf::{
    EbpfContext, Global,
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};

use profiler_common::sched::{switched_out_runnable, switched_out_runnable_raw};

use crate::track::sched::{self, TASK_RUN_DELAY_OFFSET};

/// Where `task_struct` keeps `pid` on this kernel, from its BTF, set by the
/// loader (profiler_common::sched::TASK_PID_OFFSET names it). A read-only
/// global is a constant to the verifier, which checks the load against the
/// kernel's own type. 0: unknown, and the BTF hook is never attached.
#[unsafe(no_mangle)]
pub(super) static TASK_PID_OFFSET: Global<u32> = Global::new(0);

/// The `T` at byte `offset` of the task the BTF tracepoint passed as
/// argument `n`: a plain load, no helper call (a context switch of any task
/// on the node pays for the pids).
#[inline(always)]
pub(super) fn task_field<T: Copy>(ctx: &BtfTracePointContext, n: usize, offset: u32) -> T {
    let task: *const u8 = ctx.arg(n);
    // SAFETY: the verifier knows the argument as a task_struct pointer and
    // checks the offset against its type; a faulting load reads 0.
    unsafe { task.add(offset as usize).cast::<T>().read() }
}

/// sched_switch(preempt, prev, next, prev_state) (prev_state since Linux
/// 5.18: elsewhere the kernel refuses a program reading an argument the
/// tracepoint lacks, and the classic hook is used). No record is filled
/// before the program runs, and the kernel does not skip it while another
/// program runs on the CPU.
#[btf_tracepoint(function = "sched_switch")]
pub fn tpb_sched_switch(ctx: BtfTracePointContext) -> i32 {
    let offset = TASK_PID_OFFSET.load();
    sched::on_switch(
        task_field::<i32>(&ctx, 1, offset) as u32,
        task_field::<i32>(&ctx, 2, offset) as u32,
        || switched_out_runnable_raw(ctx.arg::<u64>(0) & 0xff != 0, ctx.arg::<u64>(3)),
        || task_field::<u64>(&ctx, 1, TASK_RUN_DELAY_OFFSET.load()),
    );
    0
}

#[inline(always)]
pub(super) fn field<T: Copy>(ctx: &TracePointContext, offset: usize) -> T {
    // SAFETY: offsets come from the format file and are aligned for T; the
    // verifier checks every context access.
    unsafe { (ctx.as_ptr() as *const u8).add(offset).cast::<T>().read() }
}

#[tracepoint(category = "sched", name = "sched_switch")]
pub fn tp_sched_switch(ctx: TracePointContext) -> u32 {
    // prev_pid, next_pid, and prev_state only for a followed thread; prev
    // is still the current task here.
    sched::on_switch(
        field::<i32>(&ctx, 24) as u32,
        field::<i32>(&ctx, 56) as u32,
        || switched_out_runnable(field::<i64>(&ctx, 32)),
        sched::current_run_delay,
    );
    0
}
