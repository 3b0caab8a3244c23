//! Where a proxy thread's scheduler account is kept: started at its first
//! read or write, moved by the switch hook, read into every read and write
//! it reports (profiler_common::sched). A switch of threads that are not
//! followed leaves after one array load each.
use aya_ebpf::{
    Global,
    helpers::{bpf_probe_read_kernel, generated::bpf_get_current_task},
};
use profiler_common::{
    events::{KIND_RUNNABLE_WAIT, RunnableWait},
    maps::Counter,
    sched::ThreadSched,
};

use super::emit::emit;
use crate::maps::{THREAD_FILTER, THREAD_SCHED, count};

/// Where `task_struct` keeps `sched_info.run_delay` on this kernel, from
/// its BTF, set by the loader (profiler_common::sched::TASK_RUN_DELAY_OFFSET
/// names it). 0: unknown, and the scheduler hooks are never attached.
#[unsafe(no_mangle)]
pub static TASK_RUN_DELAY_OFFSET: Global<u32> = Global::new(0);

/// Whether the scheduler hooks may run (the loader set where a task keeps
/// its run-queue wait): else reads and writes keep no thread accounts.
#[inline(always)]
pub fn split_on() -> bool {
    TASK_RUN_DELAY_OFFSET.load() != 0
}

/// The current task's run-queue wait in all, in ns (0 if unreadable).
#[inline(always)]
pub fn current_run_delay() -> u64 {
    // SAFETY: bpf_probe_read_kernel tolerates any address; the task
    // pointer is the running task's.
    unsafe {
        let task = bpf_get_current_task() as *const u8;
        bpf_probe_read_kernel(
            task.add(TASK_RUN_DELAY_OFFSET.load() as usize)
                .cast::<u64>(),
        )
        .unwrap_or(0)
    }
}

/// The account of thread `tid`, if it is followed.
#[inline(always)]
pub fn followed(tid: u32) -> Option<*mut ThreadSched> {
    let bits = THREAD_FILTER.get_ptr(0)?;
    // SAFETY: the map's one value, read once.
    if !unsafe { (*bits).has(tid) } {
        return None;
    }
    THREAD_SCHED.get_ptr_mut(&tid)
}

/// The account of a tracked proxy's thread that is reading or writing at
/// `now`, started if it is new (None: the table is full, counted).
#[inline(always)]
pub fn follow(tgid: u32, tid: u32, now: u64) -> Option<*mut ThreadSched> {
    let bits = THREAD_FILTER.get_ptr_mut(0)?;
    // SAFETY: the map's one value. Another CPU may set a bit of the same
    // word at once and one update be lost: a thread whose bit is found
    // clear here had its switches missed, so its following starts over.
    let seen = unsafe { (*bits).has(tid) };
    if !seen {
        unsafe { (*bits).set(tid) };
    }
    if seen && let Some(t) = THREAD_SCHED.get_ptr_mut(&tid) {
        // SAFETY: a map value; only the tgid is compared.
        if unsafe { (*t).tgid } == tgid {
            return Some(t);
        }
    }
    // New, missed, or a thread id reused by another process: start over.
    if THREAD_SCHED
        .insert(&tid, &ThreadSched::new(tgid, now), 0)
        .is_err()
    {
        count(Counter::MapFull);
        return None;
    }
    THREAD_SCHED.get_ptr_mut(&tid)
}

/// A run-queue wait of a followed thread, as a record.
#[inline(always)]
pub fn report_wait(tgid: u32, tid: u32, at_ns: u64, wait_ns: u64) {
    emit(RunnableWait {
        kind: KIND_RUNNABLE_WAIT,
        tgid,
        tid,
        _pad: 0,
        at_ns,
        wait_ns,
    });
}

/// sched_switch: `prev` left the CPU (still runnable or asleep, and its
/// run-queue wait, read only for a followed thread and only when its
/// account needs it), `next` got it.
#[inline(always)]
pub fn on_switch(
    prev: u32,
    next: u32,
    prev_runnable: impl FnOnce() -> bool,
    prev_run_delay: impl FnOnce() -> u64,
) {
    let p = followed(prev);
    let n = followed(next);
    if p.is_none() && n.is_none() {
        return;
    }
    let now = super::now_ns();
    if let Some(t) = p {
        // SAFETY: a map value, written on the CPU the thread runs on.
        let (tgid, ran_from) = unsafe { ((*t).tgid, (*t).since_ns) };
        let (waited, consistent) = unsafe { (*t).switch_out(now, prev_runnable(), prev_run_delay) };
        if !consistent {
            count(Counter::SchedResync);
        }
        // The end of a sleep that ended when this stint began.
        if let Some(wait_ns) = waited {
            report_wait(tgid, prev, ran_from, wait_ns);
        }
    }
    if let Some(t) = n {
        // SAFETY: as above.
        let (tgid, (waited, consistent)) = unsafe { ((*t).tgid, (*t).switch_in(now)) };
        if !consistent {
            count(Counter::SchedResync);
        }
        if let Some(wait_ns) = waited {
            report_wait(tgid, next, now, wait_ns);
        }
    }
}
