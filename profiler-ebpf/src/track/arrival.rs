//! Clock start: the moment data became readable on a proxy's socket.
use profiler_common::maps::{Counter, filter};

use crate::maps::{ARRIVALS, SK_FILTER, count};

/// Called where the kernel queues data on a TCP socket (sk_data_ready). This
/// runs in softirq context, so the current task is not the proxy: the socket
/// itself must be known. A socket that is no proxy's stops at the filter
/// (one inlined array load); a proxy's gets its arrival time.
#[inline(always)]
pub fn on_data_ready(sk: u64) {
    let Some(slot) = SK_FILTER.get_ptr(filter::sk_slot(sk)) else {
        return;
    };
    // SAFETY: an array slot, read once.
    if !filter::sk_may_be_watched(unsafe { *slot }, sk) {
        return;
    }
    if let Some(p) = ARRIVALS.get_ptr_mut(&sk) {
        // SAFETY: an 8-byte slot; a racing reader sees the old or the new value.
        unsafe { *p = super::now_ns() };
    }
}

/// Start recording arrivals on a proxy's socket (no arrival yet).
#[inline(always)]
pub fn watch(sk: &u64) {
    if ARRIVALS.insert(sk, &0, 0).is_err() {
        count(Counter::MapFull);
    }
    mark(*sk);
}

/// Make the filter let `sk` through. Also called on a proxy's read, which
/// repairs a slot lost to two CPUs marking it at once.
#[inline(always)]
pub fn mark(sk: u64) {
    if let Some(slot) = SK_FILTER.get_ptr_mut(filter::sk_slot(sk)) {
        // SAFETY: an array slot; see above for races.
        unsafe {
            let cur = *slot;
            if !filter::sk_may_be_watched(cur, sk) {
                *slot = filter::sk_slot_after_add(cur, sk);
            }
        }
    }
}

/// A socket closed: free its slot if it owns it (a collision marker stays).
#[inline(always)]
pub fn unwatch(sk: u64) {
    let _ = ARRIVALS.remove(&sk);
    if let Some(slot) = SK_FILTER.get_ptr_mut(filter::sk_slot(sk)) {
        // SAFETY: an array slot.
        unsafe {
            if *slot == sk {
                *slot = 0;
            }
        }
    }
}
