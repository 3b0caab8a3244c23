//! Clock start: the moment data became readable on a proxy's socket. Proxy
//! sockets live in SOCK_SLOTS (one array entry per socket address) with
//! their arrivals at the same index of SOCK_ARRIVALS, and the ARRIVALS LRU
//! map behind for a socket whose slot is taken.
use aya_ebpf::{Global, helpers::bpf_probe_read_kernel};
use profiler_common::{
    maps::Counter,
    slots::{Arrival, SockSlot, SockWhere, sock_slot},
};

use super::edge;
use crate::maps::{ARRIVALS, SOCK_ARRIVALS, SOCK_SLOTS, count};

/// Where `sock` keeps its receive queue's length on this kernel, from its
/// BTF, set by the loader (0: unknown).
#[unsafe(no_mangle)]
static SK_RECEIVE_QUEUE_LEN_OFFSET: Global<u32> = Global::new(0);

/// How many buffers `sk`'s receive queue holds; None where unknown.
#[inline(always)]
pub fn receive_queue_len(sk: u64) -> Option<u32> {
    let off = SK_RECEIVE_QUEUE_LEN_OFFSET.load();
    if off == 0 {
        return None;
    }
    let at = (sk as *const u8).wrapping_add(off as usize);
    // SAFETY: bpf_probe_read_kernel tolerates any address.
    unsafe { bpf_probe_read_kernel(at.cast::<u32>()) }.ok()
}

/// BPF_NOEXIST: insert only a new key, so overflow counts stay exact.
const NOEXIST: u64 = 1;

/// Slot `i` and the arrival entry beside it.
#[inline(always)]
fn slot_at(i: u32) -> Option<(*mut SockSlot, *mut Arrival)> {
    Some((SOCK_SLOTS.get_ptr_mut(i)?, SOCK_ARRIVALS.get_ptr_mut(i)?))
}

/// A socket's slot and the arrival entry beside it.
#[inline(always)]
fn slot_of(sk: u64) -> Option<(*mut SockSlot, *mut Arrival)> {
    slot_at(sock_slot(sk))
}

/// Called where the kernel queues data on a TCP socket (sk_data_ready), in
/// softirq context: the socket itself must be known. A socket that is no
/// proxy's costs one load and a compare.
#[inline(always)]
pub fn on_data_ready(sk: u64) {
    let i = sock_slot(sk);
    let Some((slot, arrival)) = slot_at(i) else {
        return;
    };
    // SAFETY: array entries; a racing reader sees the old or the new value.
    unsafe {
        match (*slot).find(sk) {
            SockWhere::Slot => {
                (*arrival).queued(super::now_ns());
                super::loopback::on_arrival(|| edge::at_slot(i));
            }
            SockWhere::Map => {
                if let Some(p) = ARRIVALS.get_ptr_mut(&sk) {
                    (*p).queued(super::now_ns());
                    super::loopback::on_arrival(|| edge::spilled(sk));
                }
            }
            SockWhere::Nowhere => super::loopback::on_other_data_ready(sk),
        }
    }
}

/// A watched socket's arrivals; None when the socket is not watched.
#[inline(always)]
fn arrivals_of(sk: u64) -> Option<*mut Arrival> {
    let (slot, arrival) = slot_of(sk)?;
    // SAFETY: array entries, read once.
    unsafe {
        match (*slot).find(sk) {
            SockWhere::Slot => Some(arrival),
            SockWhere::Map => ARRIVALS.get_ptr_mut(&sk),
            SockWhere::Nowhere => None,
        }
    }
}

/// The last arrival on a watched socket (0: none yet); None when the socket
/// is not watched.
#[inline(always)]
pub fn arrival_of(sk: u64) -> Option<u64> {
    // SAFETY: an array entry or map value, read once.
    arrivals_of(sk).map(|a| unsafe { (*a).last_ns })
}

/// A read of a watched socket returned: when the oldest and the newest data
/// it took arrived (see [`Arrival::take`]); None when it is not watched.
/// A read that left the receive queue empty leaves no arrival standing
/// ([`Arrival::drained`]).
#[inline(always)]
pub fn take_for_read(sk: u64) -> Option<(u64, u64)> {
    let a = arrivals_of(sk)?;
    // SAFETY: an array entry or map value; data queued on another CPU
    // meanwhile is this read's newest or the next read's.
    unsafe {
        let taken = (*a).take();
        if receive_queue_len(sk) == Some(0) {
            (*a).drained(taken.1);
        }
        Some(taken)
    }
}

/// Whether a socket is watched, reading only its identity (not the arrival
/// other CPUs keep writing).
#[inline(always)]
pub fn is_watched(sk: u64) -> bool {
    let Some(slot) = SOCK_SLOTS.get_ptr(sock_slot(sk)) else {
        return false;
    };
    // SAFETY: an array entry, read once.
    match unsafe { (*slot).find(sk) } {
        SockWhere::Slot => true,
        SockWhere::Map => ARRIVALS.get_ptr(&sk).is_some(),
        SockWhere::Nowhere => false,
    }
}

/// Start recording arrivals on a proxy's socket. Returns false when it was
/// already watched.
#[inline(always)]
pub fn watch(sk: u64) -> bool {
    let Some((slot, arrival)) = slot_of(sk) else {
        return false;
    };
    // SAFETY: array entries. Two CPUs claiming one free slot at once: one
    // socket loses it, and its next read watches it again (via the map).
    unsafe {
        if (*slot).sk == sk {
            return false;
        }
        if (*slot).claim(sk, &mut *arrival) {
            return true;
        }
        match ARRIVALS.insert(&sk, &Arrival::NONE, NOEXIST) {
            Ok(()) => {
                (*slot).overflow += 1;
                edge::spill(sk);
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
    let Some((slot, arrival)) = slot_of(sk) else {
        return false;
    };
    // SAFETY: array entries.
    unsafe {
        if (*slot).release(sk, &mut *arrival) {
            return true;
        }
        if (*slot).overflow > 0 && ARRIVALS.remove(&sk).is_ok() {
            (*slot).overflow -= 1;
            edge::unspill(sk);
            return true;
        }
    }
    false
}
