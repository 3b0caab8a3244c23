//! Clock start: the moment data became readable on a socket.
use profiler_common::maps::Counter;

use crate::maps::{ARRIVALS, count};

/// Called where the kernel queues data on a TCP socket (sk_data_ready). This
/// runs in softirq context, so the current task is not the proxy: every
/// socket's last arrival is kept (LRU), and reads look it up.
#[inline(always)]
pub fn on_data_ready(sk: u64) {
    let now = super::now_ns();
    if ARRIVALS.insert(&sk, &now, 0).is_err() {
        count(Counter::MapFull);
    }
}
