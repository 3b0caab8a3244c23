//! Where a proxy thread's scheduler account is kept: started at its first
//! read or write, moved by the scheduler hooks, read into every read and
//! write it reports (profiler_common::sched). A switch or wake-up of a
//! thread that is not followed leaves after one array load.
use profiler_common::{
    events::{KIND_RUNNABLE_WAIT, RunnableWait},
    maps::Counter,
    sched::{BLOCKED, ThreadSched},
};

use super::emit::emit;
use crate::maps::{THREAD_FILTER, THREAD_SCHED, count};

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

/// sched_switch: `prev` left the CPU (still runnable or asleep, which is
/// read only for a followed thread), `next` got it.
#[inline(always)]
pub fn on_switch(prev: u32, next: u32, prev_runnable: impl FnOnce() -> bool) {
    let p = followed(prev);
    let n = followed(next);
    if p.is_none() && n.is_none() {
        return;
    }
    let now = super::now_ns();
    if let Some(t) = p {
        // SAFETY: a map value, written on the CPU the thread runs on.
        if !unsafe { (*t).switch_out(now, prev_runnable()) } {
            count(Counter::SchedResync);
        }
    }
    if let Some(t) = n {
        // SAFETY: as above; the wake-up that made it runnable came first.
        let (tgid, (waited, consistent)) = unsafe { ((*t).tgid, (*t).switch_in(now)) };
        if !consistent {
            count(Counter::SchedResync);
        }
        if let Some(wait_ns) = waited {
            emit(RunnableWait {
                kind: KIND_RUNNABLE_WAIT,
                tgid,
                tid: next,
                _pad: 0,
                at_ns: now,
                wait_ns,
            });
        }
    }
}

/// sched_wakeup: `tid` became runnable.
#[inline(always)]
pub fn on_wakeup(tid: u32) {
    if let Some(t) = followed(tid) {
        // SAFETY: a map value; the thread is asleep, nothing else moves it.
        // A wake-up of a thread not asleep changes nothing: no clock read.
        unsafe {
            if (*t).state == BLOCKED {
                (*t).wake(super::now_ns());
            }
        }
    }
}
