//! The pod edge: where data entering the pod passed the classifier, kept
//! per watched socket until a read of that data takes it.
//!
//! Sockets are entered in EDGE_FLOWS (by flow, see profiler_common::edge)
//! when they become known, so the classifier can place a packet; the stamp
//! goes in SOCK_EDGE_IN at the socket's slot, beside its arrival.
use aya_ebpf::Global;
use profiler_common::{
    edge::{EdgeIn, FlowKey, KIND_EDGE_IN},
    slots::{SockWhere, sock_slot},
    sock::SockInfo,
};

use super::emit::emit;
use crate::maps::{EDGE_FLOWS, SOCK_EDGE_IN, SOCK_SLOTS};

/// 1 when the classifiers run (set at load, a constant to the verifier):
/// otherwise no socket is entered and no read looks for a stamp.
#[unsafe(no_mangle)]
static EDGE_ON: Global<u32> = Global::new(0);

#[inline(always)]
fn on() -> bool {
    EDGE_ON.load() != 0
}

/// A proxy socket became known with these endpoints.
#[inline(always)]
pub fn enter(sk: u64, info: &SockInfo) {
    if !on() {
        return;
    }
    // The slot may have held another socket's stamp.
    if let Some(p) = stamp_of(sk) {
        // SAFETY: an array entry.
        unsafe { *p = 0 };
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

/// A socket with these endpoints closed: its flows go, where still its.
#[inline(always)]
pub fn leave(sk: u64, info: &SockInfo) {
    if !on() {
        return;
    }
    for k in FlowKey::of_socket_any(info) {
        // SAFETY: the value is read once.
        if unsafe { EDGE_FLOWS.get(&k) }.is_some_and(|v| *v == sk) {
            let _ = EDGE_FLOWS.remove(&k);
        }
    }
}

/// The stamp entry of a socket that owns its slot.
#[inline(always)]
fn stamp_of(sk: u64) -> Option<*mut u64> {
    let i = sock_slot(sk);
    let slot = SOCK_SLOTS.get_ptr(i)?;
    // SAFETY: an array entry, read once.
    if unsafe { (*slot).find(sk) } != SockWhere::Slot {
        return None;
    }
    SOCK_EDGE_IN.get_ptr_mut(i)
}

/// A packet with payload of flow `key` entered the pod at `now`.
#[inline(always)]
pub fn on_packet_in(key: &FlowKey, now: u64) {
    // SAFETY: the value is read once.
    let sk = match unsafe { EDGE_FLOWS.get(key) } {
        Some(sk) => *sk,
        None => match unsafe { EDGE_FLOWS.get(&key.accepted()) } {
            Some(sk) => *sk,
            None => return,
        },
    };
    if let Some(p) = stamp_of(sk) {
        // SAFETY: an array entry; the last packet wins.
        unsafe { *p = now };
    }
}

/// A read of `sk` whose data was last readable at `arrival_ns`, at `now`:
/// report the edge stamp of the data it took, if the data came through the
/// edge and has all reached the socket (a stamp later than the arrival is a
/// packet still on its way; it stays for the next read).
#[inline(always)]
pub fn take_in(sk: u64, arrival_ns: u64, now: u64) {
    if !on() || arrival_ns == 0 {
        return;
    }
    let Some(p) = stamp_of(sk) else {
        return;
    };
    // SAFETY: an array entry, read once.
    let edge_ns = unsafe { *p };
    if edge_ns == 0 || edge_ns > arrival_ns {
        return;
    }
    // SAFETY: as above.
    unsafe { *p = 0 };
    emit(EdgeIn {
        kind: KIND_EDGE_IN,
        _pad: 0,
        sk,
        at_ns: now,
        edge_ns,
    });
}
