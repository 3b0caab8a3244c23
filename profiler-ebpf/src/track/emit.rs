//! Where a record is handed to userspace: appended to this CPU's ring
//! (profiler_common::ring). No helper call, no lock, no wakeup; userspace
//! drains every ring on a timer.
use core::ptr::{read_volatile, write_volatile};

use aya_ebpf::helpers::bpf_get_smp_processor_id;
use profiler_common::{
    maps::Counter,
    ring::{Record, has_room, record_index},
};

use crate::maps::{RING, RING_CTL, count};

/// Append `rec` (a Forward or SockEvent, at most one Record long) to this
/// CPU's ring; a full ring drops it and counts the loss.
#[inline(always)]
pub fn emit<T: Copy>(rec: T) {
    const { assert!(size_of::<T>() <= size_of::<Record>()) };
    // SAFETY: a plain helper call with no arguments (inlined by the verifier).
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let Some(ctl) = RING_CTL.get_ptr_mut(cpu) else {
        count(Counter::RingFull);
        return;
    };
    // SAFETY: this CPU's control block and slots. Volatile accesses keep
    // the compiler from reordering them.
    unsafe {
        // Tracepoint and kprobe programs never interrupt one another on a
        // CPU (the kernel's bpf_prog_active); fentry programs can.
        if read_volatile(&(*ctl).busy) != 0 {
            count(Counter::RingBusy);
            return;
        }
        write_volatile(&mut (*ctl).busy, 1);
        let head = read_volatile(&(*ctl).head);
        let tail = read_volatile(&(*ctl).tail);
        let slots = read_volatile(&(*ctl).slots);
        match RING.get_ptr_mut(record_index(cpu, head, slots)) {
            Some(slot) if has_room(head, tail, slots) => {
                write_volatile(slot.cast::<T>(), rec);
                // Publish after the record. A plain store: x86 keeps stores
                // in order for the reader, and a locked add here would stall
                // on the record's cache miss (measured: +110 ns per forward).
                write_volatile(&mut (*ctl).head, head + 1);
            }
            _ => count(Counter::RingFull),
        }
        write_volatile(&mut (*ctl).busy, 0);
    }
}
