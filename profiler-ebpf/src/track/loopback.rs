//! The pod's loopback half (see profiler_common::loopback): a proxy socket
//! whose other end is the app's socket in the same pod is linked to it when
//! the second of the two opens. The app's socket is then watched like a
//! proxy's, so the data-ready hook keeps its arrival at no extra cost.
use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{Global, helpers::bpf_probe_read_kernel};
use profiler_common::{
    edge::SockEdge,
    loopback::{APP_SIDE, LoopKey, SEEKING, is_other_end, stays_in_pod, waiting, waiting_of},
    sock::{AF_INET, ROLE_ACCEPTED, SockInfo},
};

use super::{arrival, edge, sockinfo, tracked_task};
use crate::maps::{LOOP_LAST_RX, LOOP_PEERS, LOOP_SEEKING, PROXY_PORTS};

/// Where `sock_common` keeps `skc_net` (set at load from the kernel's BTF;
/// 0: unknown, and the loopback half is off).
#[unsafe(no_mangle)]
static SKC_NET_OFFSET: Global<u32> = Global::new(0);

#[inline(always)]
fn on() -> bool {
    edge::on() && SKC_NET_OFFSET.load() != 0
}

/// The network namespace a socket lives in (its `struct net`), 0 if unread.
#[inline(always)]
fn net_of(sk: u64) -> u64 {
    // SAFETY: bpf_probe_read_kernel tolerates any address.
    unsafe {
        bpf_probe_read_kernel((sk as *const u8).add(SKC_NET_OFFSET.load() as usize) as *const u64)
            .unwrap_or(0)
    }
}

/// The app's socket linked to the proxy socket of entry `e`, if any.
#[inline(always)]
pub fn app_of(e: *const SockEdge) -> Option<u64> {
    // SAFETY: an array entry, read once.
    let p = unsafe { (*e).peer };
    (p > SEEKING && p & APP_SIDE == 0).then_some(p)
}

/// Data became readable on a proxy socket (`entry` finds its entry, asked
/// only when this half is on): if it came from the app over loopback,
/// stamp when the app's TCP sent it. Read here, not at the proxy's read: by
/// then the app may have sent more. The app's send runs this before it
/// returns, so its departure time is this data's.
#[inline(always)]
pub fn on_arrival(entry: impl FnOnce() -> Option<*mut SockEdge>) {
    if !on() {
        return;
    }
    if let Some(e) = entry()
        && let Some(app) = app_of(e)
    {
        // SAFETY: an array entry; the last arrival wins.
        unsafe { (*e).stamp_in = edge::sent_ns(app) };
    }
}

/// Count a socket into (`1`) or out of (`-1`) SEEKING.
#[inline(always)]
fn count_seeking(by: i64) {
    if let Some(p) = LOOP_SEEKING.get_ptr_mut(0) {
        // SAFETY: an array entry, updated atomically (all CPUs share it).
        unsafe { atomic_xadd::<i64, i64, { AtomicOrdering::Relaxed }>(p, by) };
    }
}

/// An entry is taken by a new socket: forget the last one's link.
#[inline(always)]
pub fn reset(e: *mut SockEdge) {
    // SAFETY: an array entry.
    unsafe {
        if (*e).peer == SEEKING {
            count_seeking(-1);
        }
        (*e).peer = 0;
    }
}

/// A proxy's socket open before the profiler started was learnt: if its
/// connection stays in the pod, it looks for the app's socket at its next
/// write.
#[inline(always)]
pub fn on_learnt(sk: u64, info: &SockInfo) {
    if !on() || info.family != AF_INET || !stays_in_pod(info) {
        return;
    }
    if let Some(e) = edge::entry(sk) {
        // SAFETY: an array entry.
        unsafe {
            if (*e).peer == 0 {
                (*e).peer = SEEKING;
                count_seeking(1);
            }
        }
    }
}

/// Data became readable on socket `sk`, which is no proxy's: while some
/// proxy socket is SEEKING and a proxy's thread is running (sending over
/// loopback runs the receiver's side before the send returns), remember it
/// for that write.
#[inline(always)]
pub fn on_other_data_ready(sk: u64) {
    if !on() {
        return;
    }
    // SAFETY: an array entry, read once.
    if LOOP_SEEKING.get_ptr(0).is_none_or(|n| unsafe { *n } <= 0) {
        return;
    }
    if tracked_task().is_none() {
        return;
    }
    if let Some(p) = LOOP_LAST_RX.get_ptr_mut(0) {
        // SAFETY: this CPU's entry.
        unsafe { *p = sk };
    }
}

/// A proxy's write to `sk` (entry `e`) returned: if `sk` is SEEKING, link
/// it to the socket that received data during the write, if that is its
/// other end.
#[inline(always)]
pub fn seek(sk: u64, e: *mut SockEdge) {
    if !on() {
        return;
    }
    // SAFETY: an array entry, read once.
    if unsafe { (*e).peer } != SEEKING {
        return;
    }
    let Some(last) = LOOP_LAST_RX.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's entry.
    let app = unsafe { core::mem::replace(&mut *last, 0) };
    if app == 0 {
        return;
    }
    let proxy_info = sockinfo::read_existing(sk);
    let app_info = sockinfo::read_existing(app);
    let accepted = PROXY_PORTS.get_ptr(&proxy_info.local_port).is_some();
    if is_other_end(&proxy_info, net_of(sk), &app_info, net_of(app), accepted) {
        count_seeking(-1);
        // SAFETY: as above.
        unsafe { (*e).peer = 0 };
        link(sk, app);
    }
}

/// A socket reached ESTABLISHED (`proxy`: it is a proxy's, watched). Its
/// connection's other end is linked if it opened already; else this one
/// waits for it. Runs once per connection, not per packet.
#[inline(always)]
pub fn on_established(sk: u64, info: &SockInfo, proxy: bool) {
    if !on() {
        return;
    }
    // A proxy's connection across the edge, or one the app accepted from
    // outside the pod, is not this half. A connection the app opened may
    // be whatever it dialled: REDIRECT leaves the socket that address.
    if (proxy || info.role == ROLE_ACCEPTED) && !stays_in_pod(info) {
        return;
    }
    let net = net_of(sk);
    if net == 0 {
        return;
    }
    let Some(key) = LoopKey::client_end(net, info) else {
        return;
    };
    // SAFETY: the value is read once.
    if let Some(v) = unsafe { LOOP_PEERS.get(&key) }.copied() {
        let (other, other_proxy) = waiting_of(v);
        if other != sk && other_proxy != proxy {
            let _ = LOOP_PEERS.remove(&key);
            if proxy {
                link(sk, other);
            } else {
                link(other, sk);
            }
            return;
        }
    }
    let _ = LOOP_PEERS.insert(&key, &waiting(sk, proxy), 0);
}

/// Link a proxy's socket with the app's: both must be watched (in their
/// slots or spilled).
#[inline(always)]
fn link(proxy_sk: u64, app_sk: u64) {
    let Some(pe) = edge::entry(proxy_sk) else {
        return;
    };
    if !arrival::watch(app_sk) {
        return;
    }
    let Some(ae) = edge::entry(app_sk) else {
        arrival::unwatch(app_sk);
        return;
    };
    edge::clear_stamps(pe);
    // SAFETY: array entries.
    unsafe {
        (*pe).peer = app_sk;
        (*ae).peer = proxy_sk | APP_SIDE;
    }
}

/// A socket closed: undo its link and forget it waiting. Returns true for
/// an app's socket (then unwatched here: it is not the proxy's, and its
/// close is not reported).
#[inline(always)]
pub fn on_close(sk: u64, info: &SockInfo) -> bool {
    if !on() {
        return false;
    }
    let mut app = false;
    if let Some(e) = edge::entry(sk) {
        // SAFETY: array entries.
        unsafe {
            let v = (*e).peer;
            if v == SEEKING {
                count_seeking(-1);
                (*e).peer = 0;
            } else if v != 0 {
                (*e).peer = 0;
                app = v & APP_SIDE != 0;
                let other = v & !APP_SIDE;
                if let Some(q) = edge::entry(other)
                    && (*q).peer & !APP_SIDE == sk
                {
                    // An app's socket outliving its proxy's stays marked as
                    // the app's, so its own close is not reported either.
                    (*q).peer = if app { 0 } else { APP_SIDE };
                }
            }
        }
    }
    let net = net_of(sk);
    if net != 0 {
        for local in [true, false] {
            let key = LoopKey::end(net, info, local);
            // SAFETY: the value is read once.
            if unsafe { LOOP_PEERS.get(&key) }.is_some_and(|v| waiting_of(*v).0 == sk) {
                let _ = LOOP_PEERS.remove(&key);
            }
        }
    }
    if app {
        arrival::unwatch(sk);
    }
    app
}
