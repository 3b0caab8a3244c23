//! A tracked thread's pairing state: its THREAD_SLOTS entry, or the THREADS
//! LRU map when another thread holds that slot.
use profiler_common::{maps::Counter, pairing::ThreadState, slots::thread_slot};

use crate::maps::{THREAD_SLOTS, THREADS, count};

#[inline(always)]
pub fn state(tid: u32, create: bool) -> Option<*mut ThreadState> {
    let slot = THREAD_SLOTS.get_ptr_mut(thread_slot(tid))?;
    // SAFETY: the slot holds this thread's state only once it owns it; only
    // that thread touches it.
    if let Some(s) = unsafe { (*slot).state_of(tid, create) } {
        return Some(s as *mut ThreadState);
    }
    if let Some(p) = THREADS.get_ptr_mut(&tid) {
        return Some(p);
    }
    if !create {
        return None;
    }
    if THREADS.insert(&tid, &ThreadState::default(), 0).is_err() {
        count(Counter::MapFull);
        return None;
    }
    THREADS.get_ptr_mut(&tid)
}
