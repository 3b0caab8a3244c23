//! How records reach userspace: one ring per CPU in an mmap-able array, so
//! handing over a record costs a few plain stores instead of a helper call
//! and a lock (`bpf_ringbuf_output`).
//!
//! `RING` holds [`slots_per_cpu`] records per CPU, back to back; `RING_CTL`
//! holds one [`RingCtl`] per CPU. Only programs running on a CPU write its
//! ring; userspace reads every ring through mmap and gives slots back by
//! moving `tail`. Both maps are sized for the machine's CPUs when the object
//! loads, and userspace writes each ring's size into its control block
//! before any program is attached.
use crate::events::{Io, RunnableWait, SockEvent};

pub const RING: &str = "RING";
pub const RING_CTL: &str = "RING_CTL";

/// Records all rings hold together (4 MiB), within per-CPU bounds: a small
/// machine gets deep rings that ride out a drain thread starved for a few
/// hundred ms by the very load it measures (two CPUs get the whole budget:
/// with half of it, the daemon lost 0.2% of the records of a saturating
/// load here); a large one stays within budget.
pub const RING_RECORDS: u32 = 1 << 16;
pub const RING_SLOTS_MIN: u32 = 2048;
pub const RING_SLOTS_MAX: u32 = 32768;

/// Slots of each CPU's ring on a machine with `cpus` CPU ids: a power of
/// two, so a position maps to a slot with a mask.
pub const fn slots_per_cpu(cpus: u32) -> u32 {
    let share = match RING_RECORDS.checked_div(cpus) {
        Some(share) => share,
        None => RING_RECORDS,
    };
    let pow2 = if share <= 1 {
        1
    } else {
        1 << (31 - share.leading_zeros())
    };
    if pow2 < RING_SLOTS_MIN {
        RING_SLOTS_MIN
    } else if pow2 > RING_SLOTS_MAX {
        RING_SLOTS_MAX
    } else {
        pow2
    }
}

/// BPF_F_MMAPABLE: the array's memory can be mapped by userspace.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

/// One ring slot: an [`Io`] or a [`SockEvent`], told apart by their
/// leading `kind`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub words: [u64; 8],
}

const _: () = assert!(size_of::<Io>() <= size_of::<Record>());
const _: () = assert!(size_of::<SockEvent>() <= size_of::<Record>());
const _: () = assert!(size_of::<crate::edge::EdgeIn>() <= size_of::<Record>());
const _: () = assert!(size_of::<RunnableWait>() <= size_of::<Record>());

/// A CPU's ring positions. Positions only grow; slot = position mod
/// `RING_SLOTS`. The kernel's fields and userspace's `tail` sit on separate
/// cache lines so the two sides do not fight over one line.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingCtl {
    /// Records published (written by the kernel, after the record).
    pub head: u64,
    /// Nonzero while a program on this CPU writes a record: a program that
    /// interrupts it (possible with fentry hooks) is turned away and counted.
    pub busy: u64,
    /// This ring's size (written once by userspace; 0: not ready, nothing
    /// is written).
    pub slots: u64,
    pub _kernel_line: [u64; 5],
    /// Records consumed (written by userspace).
    pub tail: u64,
    pub _user_line: [u64; 7],
}

/// Whether a record can be written at `head` of a ring of `slots` without
/// overwriting one userspace has not read.
pub const fn has_room(head: u64, tail: u64, slots: u64) -> bool {
    head.wrapping_sub(tail) < slots
}

/// Index in `RING` of position `pos` of `cpu`'s ring (`slots` a power of two).
pub const fn record_index(cpu: u32, pos: u64, slots: u64) -> u32 {
    (cpu as u64 * slots + (pos & (slots - 1))) as u32
}

/// Positions userspace may read, oldest first. A `head` behind `tail` or
/// more than a ring ahead cannot come from a well-behaved producer: read
/// nothing, or only the newest ring's worth.
pub const fn readable(head: u64, tail: u64, slots: u64) -> core::ops::Range<u64> {
    if head < tail {
        tail..tail
    } else if head - tail > slots {
        head - slots..head
    } else {
        tail..head
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    /// A producer and a consumer sharing one CPU's ring, with the kernel's
    /// and userspace's steps written out as the programs do them.
    const N: u64 = RING_SLOTS_MIN as u64;

    struct Model {
        ctl: RingCtl,
        slots: Vec<u64>,
        dropped: u64,
    }

    impl Model {
        fn new() -> Self {
            Model {
                ctl: RingCtl {
                    slots: N,
                    ..RingCtl::default()
                },
                slots: std::vec![0; N as usize],
                dropped: 0,
            }
        }

        fn produce(&mut self, value: u64) {
            if !has_room(self.ctl.head, self.ctl.tail, self.ctl.slots) {
                self.dropped += 1;
                return;
            }
            self.slots[record_index(0, self.ctl.head, N) as usize] = value;
            self.ctl.head += 1;
        }

        fn consume(&mut self) -> Vec<u64> {
            let got = readable(self.ctl.head, self.ctl.tail, N)
                .map(|p| self.slots[record_index(0, p, N) as usize])
                .collect();
            self.ctl.tail = self.ctl.head;
            got
        }
    }

    #[test]
    fn every_record_arrives_once_in_order_across_wraps() {
        let mut m = Model::new();
        let mut seen = Vec::new();
        let mut next = 0u64;
        // Uneven bursts between drains, crossing the wrap many times.
        for burst in [1u64, 7, 2047, 2048, 5, 1000, 3000, 0, 2048] {
            for _ in 0..burst {
                m.produce(next);
                next += 1;
            }
            seen.extend(m.consume());
        }
        let dropped = m.dropped;
        // Only the burst larger than a ring lost records, and exactly the excess.
        assert_eq!(dropped, 3000 - N);
        assert_eq!(seen.len() as u64 + dropped, next);
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "order kept");
    }

    #[test]
    fn a_full_ring_refuses_instead_of_overwriting() {
        let mut m = Model::new();
        for v in 0..N + 3 {
            m.produce(v);
        }
        assert_eq!(m.dropped, 3);
        let got = m.consume();
        assert_eq!(got.first(), Some(&0), "the oldest unread record survives");
        assert_eq!(got.len(), N as usize);
    }

    #[test]
    fn cpus_own_disjoint_slots() {
        assert_eq!(record_index(0, N, N), 0);
        assert_eq!(record_index(1, 0, N), N as u32);
        assert_eq!(record_index(1, N - 1, N), 2 * N as u32 - 1);
        assert_eq!(record_index(3, 5 + 7 * N, N), 3 * N as u32 + 5);
    }

    #[test]
    fn implausible_positions_read_at_most_one_ring() {
        assert!(readable(5, 9, N).is_empty());
        assert_eq!(readable(10_000, 0, N), 10_000 - N..10_000);
        assert_eq!(readable(7, 3, N), 3..7);
        assert!(!has_room(u64::MAX, u64::MAX - N, N));
        assert!(has_room(u64::MAX, u64::MAX - 1, N));
        assert!(!has_room(0, 0, 0), "a ring without a size takes nothing");
    }

    #[test]
    fn ring_sizes_follow_the_cpu_count_within_bounds() {
        assert_eq!(slots_per_cpu(1), RING_SLOTS_MAX);
        assert_eq!(slots_per_cpu(2), RING_SLOTS_MAX);
        assert_eq!(
            2 * slots_per_cpu(2),
            RING_RECORDS,
            "two CPUs get the whole budget"
        );
        assert_eq!(
            slots_per_cpu(6),
            8192,
            "65536/6 rounded down to a power of two"
        );
        assert_eq!(slots_per_cpu(32), 2048);
        assert_eq!(slots_per_cpu(96), RING_SLOTS_MIN);
        assert_eq!(slots_per_cpu(0), RING_SLOTS_MAX);
        for cpus in 1..512 {
            assert!(slots_per_cpu(cpus).is_power_of_two());
        }
    }

    #[test]
    fn control_block_puts_each_side_on_its_own_cache_line() {
        assert_eq!(size_of::<RingCtl>(), 128);
        assert_eq!(core::mem::offset_of!(RingCtl, tail), 64);
        assert_eq!(size_of::<Record>(), 64);
    }
}
