//! Socket lifecycle: endpoints and role at ESTABLISHED, cleanup at CLOSE so a
//! socket address reused by the allocator starts clean.
use profiler_common::{
    maps::Counter,
    sock::{SockInfo, TCP_CLOSE, TCP_ESTABLISHED, role_from_transition},
};

use super::tracked_task;
use crate::maps::{ARRIVALS, SOCKS, THREADS, count};

#[inline(always)]
pub fn on_state(sk: u64, old: i32, new: i32, info: SockInfo) {
    if new == TCP_ESTABLISHED {
        let mut info = info;
        info.role = role_from_transition(old, new).unwrap_or(0);
        if SOCKS.insert(&sk, &info, 0).is_err() {
            count(Counter::MapFull);
        }
    } else if new == TCP_CLOSE {
        let _ = SOCKS.remove(&sk);
        let _ = ARRIVALS.remove(&sk);
        // A proxy closing its own socket runs here in its own thread.
        if let Some((_, tid)) = tracked_task()
            && let Some(state) = THREADS.get_ptr_mut(&tid)
        {
            // SAFETY: the entry belongs to this thread.
            unsafe { (*state).on_close(sk) };
        }
    }
}
