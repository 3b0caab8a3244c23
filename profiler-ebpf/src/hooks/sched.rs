//! The scheduler's hooks, the same on every hook set: they split a
//! forward's process time into running, runnable and blocked. BTF
//! tracepoints where the kernel's BTF says where `task_struct` keeps its
//! pid, the classic ones (offsets of events/sched/*/format) elsewhere.
use aya_ebpf::{
    EbpfContext, Global,
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use profiler_common::sched::{switched_out_runnable, switched_out_runnable_raw};

use crate::track::sched;

/// Where `task_struct` keeps `pid` on this kernel, from its BTF, set by the
/// loader (profiler_common::sched::TASK_PID_OFFSET names it). A read-only
/// global is a constant to the verifier, which checks the load against the
/// kernel's own type. 0: unknown, and these hooks are never attached.
#[unsafe(no_mangle)]
static TASK_PID_OFFSET: Global<u32> = Global::new(0);

/// The pid (thread id) of the task the BTF tracepoint passed as argument
/// `n`: a plain load, no helper call (a context switch of any task on the
/// node pays for this).
#[inline(always)]
fn pid_of(ctx: &BtfTracePointContext, n: usize, offset: u32) -> u32 {
    let task: *const u8 = ctx.arg(n);
    // SAFETY: the verifier knows the argument as a task_struct pointer and
    // checks the offset against its type; a faulting load reads 0.
    unsafe { task.add(offset as usize).cast::<i32>().read() as u32 }
}

/// sched_switch(preempt, prev, next, prev_state) (prev_state since Linux
/// 5.18: elsewhere the kernel refuses a program reading an argument the
/// tracepoint lacks, and the classic hooks are used). No record is filled
/// before the program runs, and the kernel does not skip it while another
/// program runs on the CPU.
#[btf_tracepoint(function = "sched_switch")]
pub fn tpb_sched_switch(ctx: BtfTracePointContext) -> i32 {
    let offset = TASK_PID_OFFSET.load();
    sched::on_switch(pid_of(&ctx, 1, offset), pid_of(&ctx, 2, offset), || {
        switched_out_runnable_raw(ctx.arg::<u64>(0) & 0xff != 0, ctx.arg::<u64>(3))
    });
    0
}

/// sched_wakeup(p). Not a classic tracepoint, above all, because a
/// wake-up often comes from an interrupt: a classic tracepoint's program is
/// skipped when the interrupt came while any program ran on that CPU, and a
/// lost wake-up starts the thread's account over (`sched_resync`).
#[btf_tracepoint(function = "sched_wakeup")]
pub fn tpb_sched_wakeup(ctx: BtfTracePointContext) -> i32 {
    sched::on_wakeup(pid_of(&ctx, 0, TASK_PID_OFFSET.load()));
    0
}

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
