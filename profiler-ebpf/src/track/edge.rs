//! The pod edge: where data entering the pod passed the classifier, kept
//! per watched socket until a read of that data takes it, and where data a
//! write sent left the pod, taken by the write.
//!
//! Sockets are entered in EDGE_FLOWS (by flow, see profiler_common::edge)
//! when they become known, so the classifier can place a packet; the stamps
//! go in the socket's SOCK_EDGE entry, at its slot, beside its arrival (or in
//! SOCK_EDGE_SPILL when another socket holds the slot). A socket whose other end is the app in the pod is stamped over
//! loopback instead (`loopback.rs`); the reads and writes take both alike.
use aya_ebpf::{Global, helpers::bpf_probe_read_kernel};
use profiler_common::{
    edge::{EdgeIn, FlowKey, KIND_EDGE_IN, SockEdge},
    maps::Counter,
    slots::{SockWhere, sock_slot},
    sock::SockInfo,
};

use super::emit::emit;
use super::{arrival, loopback};
use crate::maps::{EDGE_FLOWS, SOCK_EDGE, SOCK_EDGE_BLANK, SOCK_EDGE_SPILL, SOCK_SLOTS, count};

/// 1 when the classifiers run (set at load, a constant to the verifier):
/// otherwise no socket is entered and no read looks for a stamp.
#[unsafe(no_mangle)]
static EDGE_ON: Global<u32> = Global::new(0);

/// Where `tcp_sock` keeps `tcp_wstamp_ns` (set at load from the
/// kernel's BTF; 0: unknown, no kernel_out).
#[unsafe(no_mangle)]
static TCP_WSTAMP_OFFSET: Global<u32> = Global::new(0);

#[inline(always)]
pub fn on() -> bool {
    EDGE_ON.load() != 0
}

/// A proxy socket became known with these endpoints.
#[inline(always)]
pub fn enter(sk: u64, info: &SockInfo) {
    if !on() {
        return;
    }
    // The slot may have held another socket's stamps or link.
    if let Some(e) = entry(sk) {
        clear_stamps(e);
        loopback::reset(e);
    }
    match FlowKey::of_socket(info) {
        Some(k) => {
            let _ = EDGE_FLOWS.insert(&k, &sk, 0);
        }
        None => {
            for k in FlowKey::of_socket_any(info) {
                let _ = EDGE_FLOWS.insert(&k, &sk, 0);
            }
        }
    }
}

/// A proxy's socket with these endpoints is closing (still watched): its
/// flows go, where still its, with the one its packets showed.
#[inline(always)]
pub fn leave(sk: u64, info: &SockInfo) {
    if !on() {
        return;
    }
    let [exact, accepted] = FlowKey::of_socket_any(info);
    // SAFETY: an array entry, read once.
    let dialled = entry(sk).map_or(0, |e| unsafe { (*e).dialled_port });
    for k in [exact, accepted, exact.with_local_port(dialled as u16)] {
        // SAFETY: the value is read once.
        if unsafe { EDGE_FLOWS.get(&k) }.is_some_and(|v| *v == sk) {
            let _ = EDGE_FLOWS.remove(&k);
        }
    }
}

/// Clear an entry's stamps (and what its last socket's packets showed).
#[inline(always)]
pub fn clear_stamps(e: *mut SockEdge) {
    // SAFETY: an array entry.
    unsafe {
        (*e).stamp_in = 0;
        (*e).stamp_out = 0;
        (*e).dialled_port = 0;
    }
}

/// A watched socket's entry: at its slot, or spilled where another socket
/// holds the slot.
#[inline(always)]
pub fn entry(sk: u64) -> Option<*mut SockEdge> {
    let i = sock_slot(sk);
    let slot = SOCK_SLOTS.get_ptr(i)?;
    // SAFETY: an array entry, read once.
    match unsafe { (*slot).find(sk) } {
        SockWhere::Slot => at_slot(i),
        SockWhere::Map => spilled(sk),
        SockWhere::Nowhere => None,
    }
}

/// The entry at slot `i` (of the socket owning it).
#[inline(always)]
pub fn at_slot(i: u32) -> Option<*mut SockEdge> {
    SOCK_EDGE.get_ptr_mut(i)
}

/// The entry of a watched socket whose slot another socket holds.
#[inline(always)]
pub fn spilled(sk: u64) -> Option<*mut SockEdge> {
    SOCK_EDGE_SPILL.get_ptr_mut(&sk)
}

/// A socket is watched out of its slot (its slot is another's): give it an
/// entry of its own. A full map is counted: that socket goes unstamped.
#[inline(always)]
pub fn spill(sk: u64) {
    if !on() {
        return;
    }
    let Some(blank) = SOCK_EDGE_BLANK.get_ptr(0) else {
        return;
    };
    // SAFETY: a map value, never written.
    if SOCK_EDGE_SPILL.insert(&sk, unsafe { &*blank }, 0).is_err() {
        count(Counter::MapFull);
    }
}

/// A socket watched out of its slot is no longer watched.
#[inline(always)]
pub fn unspill(sk: u64) {
    if on() {
        let _ = SOCK_EDGE_SPILL.remove(&sk);
    }
}

/// The proxy socket of a flow seen at the edge, and its entry. A socket
/// the proxy accepted is found by its flow without the pod's port (its
/// client dialled another than the socket has); that packet's port is
/// then entered too, so the flow's next packets take one lookup.
#[inline(always)]
fn socket_of(key: &FlowKey) -> Option<(u64, *mut SockEdge)> {
    // SAFETY: values are read once.
    unsafe {
        if let Some(sk) = EDGE_FLOWS.get(key).copied() {
            // A socket closed since (its slot released) falls through.
            if let Some(e) = entry(sk) {
                return Some((sk, e));
            }
        }
        let sk = EDGE_FLOWS.get(&key.accepted()).copied()?;
        let e = entry(sk)?;
        if key.local_port != 0 && (*e).dialled_port == 0 {
            (*e).dialled_port = u32::from(key.local_port);
            let _ = EDGE_FLOWS.insert(key, &sk, 0);
        }
        Some((sk, e))
    }
}

/// A packet with payload of flow `key` entered (`into_pod`) or left the
/// pod, now: the clock is read only for a proxy's packet.
#[inline(always)]
pub fn on_packet(key: &FlowKey, into_pod: bool) {
    let Some((_, e)) = socket_of(key) else {
        return;
    };
    // SAFETY: an array entry; the last packet wins.
    unsafe {
        if into_pod {
            (*e).stamp_in = super::now_ns();
        } else {
            (*e).stamp_out = super::now_ns();
        }
    }
}

/// When TCP last sent data of socket `sk` (its `tcp_wstamp_ns`), 0 if
/// unknown.
#[inline(always)]
pub fn sent_ns(sk: u64) -> u64 {
    let offset = TCP_WSTAMP_OFFSET.load();
    if offset == 0 {
        return 0;
    }
    // SAFETY: bpf_probe_read_kernel tolerates any address.
    unsafe {
        bpf_probe_read_kernel((sk as *const u8).add(offset as usize) as *const u64).unwrap_or(0)
    }
}

/// A read of `sk` whose newest data became readable at `arrival_ns`, at
/// `now`: report where that data started its way to the proxy, if it has
/// all reached the socket (a stamp later than the arrival is a packet
/// still on its way; it stays for the next read): its last packet at the
/// edge, or, from the app over the pod's loopback, when the app's TCP sent
/// it (stamped at its arrival, see `loopback::on_arrival`).
#[inline(always)]
pub fn take_in(sk: u64, arrival_ns: u64, now: u64) {
    if !on() || arrival_ns == 0 {
        return;
    }
    let Some(e) = entry(sk) else {
        return;
    };
    // SAFETY: an array entry, read once.
    let edge_ns = unsafe { (*e).stamp_in };
    if edge_ns == 0 || edge_ns > arrival_ns {
        return;
    }
    // SAFETY: as above.
    unsafe { (*e).stamp_in = 0 };
    emit(EdgeIn {
        kind: KIND_EDGE_IN,
        _pad: 0,
        sk,
        at_ns: now,
        edge_ns,
        arrival_ns,
    });
}

/// A write to `sk` returned: when its data left the pod (its last packet
/// at the edge) or, sent to the app over the pod's loopback, became
/// readable at the app's socket (once per arrival), with TCP's transmit
/// time for it, when that happened during the write (an earlier one is an
/// earlier write's; none yet: the data has not left). The write's own
/// record carries them.
#[inline(always)]
pub fn take_out(sk: u64) -> Option<(u64, u64)> {
    if !on() || TCP_WSTAMP_OFFSET.load() == 0 {
        return None;
    }
    let e = entry(sk)?;
    loopback::seek(sk, e);
    // SAFETY: an array entry, read once.
    let taken = unsafe { (*e).stamp_out };
    let edge_ns = match loopback::app_of(e) {
        Some(app) => {
            let arrived = arrival::arrival_of(app).unwrap_or(0);
            if arrived == 0 || arrived == taken {
                return None;
            }
            // SAFETY: as above; kept so one arrival is not taken twice.
            unsafe { (*e).stamp_out = arrived };
            arrived
        }
        None => {
            if taken == 0 {
                return None;
            }
            // SAFETY: as above.
            unsafe { (*e).stamp_out = 0 };
            taken
        }
    };
    let xmit_ns = sent_ns(sk);
    (xmit_ns != 0 && xmit_ns <= edge_ns).then_some((xmit_ns, edge_ns))
}
