//! Clock start: the moment data became readable on a proxy's socket. Proxy
//! sockets live in SOCK_SLOTS (one array entry per socket address), with the
//! ARRIVALS LRU map behind for a socket whose slot is taken.
use profiler_common::{
    maps::Counter,
    slots::{SockWhere, sock_slot},
};

use crate::maps::{ARRIVALS, SOCK_SLOTS, count};

/// BPF_NOEXIST: insert only a new key, so overflow counts stay exact.
const NOEXIST: u64 = 1;

/// Called where the kernel queues data on a TCP socket (sk_data_ready), in
/// softirq context: the socket itself must be known. A socket that is no
/// proxy's costs one load and a compare.
#[inline(always)]
pub fn on_data_ready(sk: u64) {
    let Some(slot) = SOCK_SLOTS.get_ptr_mut(sock_slot(sk)) else {
        return;
    };
    // SAFETY: an array entry; a racing reader sees the old or the new value.
    unsafe {
        match (*slot).find(sk) {
            SockWhere::Slot => (*slot).arrival_ns = super::now_ns(),
            SockWhere::Map => {
                if let Some(p) = ARRIVALS.get_ptr_mut(&sk) {
                    *p = super::now_ns();
                }
            }
            SockWhere::Nowhere => {}
        }
    }
}

/// The last arrival on a watched socket (0: none yet); None when the socket
/// is not watched.
#[inline(always)]
pub fn arrival_of(sk: u64) -> Option<u64> {
    let slot = SOCK_SLOTS.get_ptr(sock_slot(sk))?;
    // SAFETY: an array entry, read once.
    unsafe {
        match (*slot).find(sk) {
            SockWhere::Slot => Some((*slot).arrival_ns),
            SockWhere::Map => ARRIVALS.get(&sk).copied(),
            SockWhere::Nowhere => None,
        }
    }
}

/// Start recording arrivals on a proxy's socket. Returns false when it was
/// already watched.
#[inline(always)]
pub fn watch(sk: u64) -> bool {
    let Some(slot) = SOCK_SLOTS.get_ptr_mut(sock_slot(sk)) else {
        return false;
    };
    // SAFETY: an array entry. Two CPUs claiming one free slot at once: one
    // socket loses it, and its next read watches it again (via the map).
    unsafe {
        if (*slot).sk == sk {
            return false;
        }
        if (*slot).claim(sk) {
            return true;
        }
        match ARRIVALS.insert(&sk, &0, NOEXIST) {
            Ok(()) => {
                (*slot).overflow += 1;
                true
            }
            // Already there (EEXIST), or the map is full.
            Err(e) => {
                if e != -17 {
                    count(Counter::MapFull);
                }
                false
            }
        }
    }
}

/// A socket closed: forget it, so an address reused by the allocator starts
/// clean. Returns whether it was watched.
#[inline(always)]
pub fn unwatch(sk: u64) -> bool {
    let Some(slot) = SOCK_SLOTS.get_ptr_mut(sock_slot(sk)) else {
        return false;
    };
    // SAFETY: an array entry.
    unsafe {
        if (*slot).release(sk) {
            return true;
        }
        if (*slot).overflow > 0 && ARRIVALS.remove(&sk).is_ok() {
            (*slot).overflow -= 1;
            return true;
        }
    }
    false
}
