//! Socket lifecycle of proxy sockets: watched from the connect (the proxy's
//! own thread) or from the accept on a port a proxy listens on; endpoints
//! reported at ESTABLISHED; forgotten at CLOSE so a socket address reused by
//! the allocator starts clean.
use profiler_common::sock::{
    ROLE_ACCEPTED, SockInfo, TCP_CLOSE, TCP_ESTABLISHED, TCP_SYN_SENT, role_from_transition,
};

use super::{arrival, edge, io, loopback, now_ns, sockinfo, tracked_task};
use crate::maps::PROXY_PORTS;

#[inline(always)]
pub fn on_state(sk: u64, old: i32, new: i32, info: SockInfo) {
    if new == TCP_SYN_SENT {
        // A proxy connecting upstream runs here in its own thread: watch the
        // socket before the first reply can arrive, and say which thread
        // connected it when (pairing takes the data it just read as the
        // cause).
        if let Some(task) = tracked_task() {
            arrival::watch(sk);
            io::report_connect(task, sk, now_ns());
        }
    } else if new == TCP_ESTABLISHED {
        let mut info = info;
        info.role = role_from_transition(old, new).unwrap_or(0);
        // Accepted on a port a tracked proxy listens on: its first request
        // may arrive before the proxy ever touches the socket.
        if info.role == ROLE_ACCEPTED && PROXY_PORTS.get_ptr(&info.local_port).is_some() {
            arrival::watch(sk);
        }
        let proxy = arrival::is_watched(sk);
        if proxy {
            sockinfo::report_open(sk, &info, now_ns());
            edge::enter(sk, &info);
        }
        loopback::on_established(sk, &info, proxy);
    } else if new == TCP_CLOSE {
        // An app's socket linked to a proxy's is not the proxy's: no close
        // to report.
        if loopback::on_close(sk, &info) {
            return;
        }
        // Its flows go while its entry still says which (before unwatch).
        if arrival::is_watched(sk) {
            edge::leave(sk, &info);
        }
        // Userspace forgets the socket's pending data with it.
        if arrival::unwatch(sk) {
            sockinfo::report_close(sk, now_ns());
        }
    }
}
