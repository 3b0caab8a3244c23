//! Socket lifecycle: endpoints and role at ESTABLISHED, cleanup at CLOSE so a
//! socket address reused by the allocator starts clean.
use profiler_common::{
    maps::Counter,
    sock::{
        ROLE_ACCEPTED, SockInfo, TCP_CLOSE, TCP_ESTABLISHED, TCP_SYN_SENT, role_from_transition,
    },
};

use super::{arrival, tracked_task};
use crate::maps::{PROXY_PORTS, SOCKS, THREADS, count};

#[inline(always)]
pub fn on_state(sk: u64, old: i32, new: i32, info: SockInfo) {
    if new == TCP_SYN_SENT {
        // A proxy connecting upstream runs here in its own thread: watch the
        // socket before the first reply can arrive.
        if tracked_task().is_some() {
            arrival::watch(&sk);
        }
    } else if new == TCP_ESTABLISHED {
        let mut info = info;
        info.role = role_from_transition(old, new).unwrap_or(0);
        if SOCKS.insert(&sk, &info, 0).is_err() {
            count(Counter::MapFull);
        }
        // Accepted on a port a tracked proxy listens on: its first request
        // may arrive before the proxy ever touches the socket.
        if info.role == ROLE_ACCEPTED && PROXY_PORTS.get_ptr(&info.local_port).is_some() {
            arrival::watch(&sk);
        }
    } else if new == TCP_CLOSE {
        let _ = SOCKS.remove(&sk);
        arrival::unwatch(sk);
        // A proxy closing its own socket runs here in its own thread.
        if let Some((_, tid)) = tracked_task()
            && let Some(state) = THREADS.get_ptr_mut(&tid)
        {
            // SAFETY: the entry belongs to this thread.
            unsafe { (*state).on_close(sk) };
        }
    }
}
