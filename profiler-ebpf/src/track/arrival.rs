//! Clock start: the moment data became readable on a proxy's socket.
use profiler_common::maps::Counter;

use crate::maps::{ARRIVALS, count};

/// Called where the kernel queues data on a TCP socket (sk_data_ready). This
/// runs in softirq context, so the current task is not the proxy: the socket
/// itself must be known. Sockets of tracked proxies are in ARRIVALS; any
/// other socket costs one lookup and leaves.
#[inline(always)]
pub fn on_data_ready(sk: u64) {
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
}
