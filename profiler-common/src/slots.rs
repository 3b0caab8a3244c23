//! Direct-mapped slots that keep the hot paths free of hash lookups: one
//! array entry per socket address, with an LRU map behind for a key whose
//! slot is taken (uncommon, not rare: two of a few hundred sockets share
//! one of the 65536 slots in about a quarter of runs). Array lookups are
//! inlined by the JIT; a socket that is no proxy's costs one load and a
//! compare.

pub const SOCK_SLOTS_LEN: u32 = 1 << 16;

/// Which proxy socket owns a slot. The socket's [`Arrival`] sits at the same
/// index of a separate array
/// (SOCK_ARRIVALS): arrivals are written on every packet, identities almost
/// never, so a write's "is this socket watched?" check reads a line no other
/// CPU keeps dirtying (`meshbox bench`, three paired runs: 562 ns per
/// forward against 597 with both in one array).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockSlot {
    /// The socket owning the slot, 0 when free.
    pub sk: u64,
    /// How many other watched sockets of this slot live in the LRU map
    /// (0: a miss here is a miss everywhere).
    pub overflow: u64,
}

/// Sockets are slab objects hundreds of bytes to kilobytes apart: drop the
/// low bits and fold the high ones in.
pub const fn sock_slot(sk: u64) -> u32 {
    (((sk >> 6) ^ (sk >> 22)) & (SOCK_SLOTS_LEN as u64 - 1)) as u32
}

/// Where a socket's arrival lives, judged from its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockWhere {
    /// In the slot.
    Slot,
    /// Maybe in the LRU map (the slot has overflow).
    Map,
    /// Not watched.
    Nowhere,
}

impl SockSlot {
    pub const fn find(&self, sk: u64) -> SockWhere {
        if sk != 0 && self.sk == sk {
            SockWhere::Slot
        } else if self.overflow > 0 {
            SockWhere::Map
        } else {
            SockWhere::Nowhere
        }
    }

    /// Watch `sk`: take the slot if free, with no arrival yet; returns false
    /// when the slot belongs to another socket (the caller uses the LRU map
    /// then).
    pub fn claim(&mut self, sk: u64, arrival: &mut Arrival) -> bool {
        if self.sk == sk {
            return true;
        }
        if self.sk == 0 {
            self.sk = sk;
            *arrival = Arrival::NONE;
            return true;
        }
        false
    }

    /// Stop watching `sk`; returns false when it was not in the slot (the
    /// caller checks the LRU map then).
    pub fn release(&mut self, sk: u64, arrival: &mut Arrival) -> bool {
        if self.sk == sk {
            self.sk = 0;
            *arrival = Arrival::NONE;
            return true;
        }
        false
    }
}

/// When data became readable on a watched socket (CLOCK_MONOTONIC ns, 0:
/// not seen), written where the kernel queues it (sk_data_ready) and taken
/// by the proxy's read of it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Arrival {
    /// The last data queued.
    pub last_ns: u64,
    /// The first data queued since the last read: the oldest the next read
    /// takes (0: none since).
    pub unread_ns: u64,
}

impl Arrival {
    pub const NONE: Self = Self {
        last_ns: 0,
        unread_ns: 0,
    };

    /// Data was queued on the socket at `now`.
    pub fn queued(&mut self, now: u64) {
        if self.unread_ns == 0 {
            self.unread_ns = now;
        }
        self.last_ns = now;
    }

    /// A read took the socket's data: returns when the oldest data it took
    /// was queued and when the newest was. A read that left data behind
    /// hands the next one only the last arrival (it may be older), as does
    /// data queued between the kernel's copy and this call (it is this
    /// read's newest or the next one's).
    pub fn take(&mut self) -> (u64, u64) {
        let oldest = if self.unread_ns != 0 {
            self.unread_ns
        } else {
            self.last_ns
        };
        self.unread_ns = 0;
        (oldest, self.last_ns)
    }

    /// The read that took up to `taken_last` left the socket's receive
    /// queue empty: a later read with nothing queued since has no arrival
    /// to be timed from, rather than this one's. Data now and then becomes
    /// readable without the data-ready hook seeing it, and must not be timed
    /// from the data before it. Data queued since the take (another CPU)
    /// keeps its arrival.
    pub fn drained(&mut self, taken_last: u64) {
        if self.unread_ns == 0 && self.last_ns == taken_last {
            self.last_ns = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::{collections::BTreeMap, vec::Vec};

    use super::*;

    #[test]
    fn sockets_in_slots_or_the_map_never_vanish() {
        let socks: Vec<u64> = (0..20_000u64)
            .map(|i| 0xffff_8880_0000_0000 + i * 2304)
            .collect();
        let mut slots: BTreeMap<u32, SockSlot> = BTreeMap::new();
        let mut map = Vec::new();
        let watched: Vec<u64> = socks.iter().copied().step_by(4).collect();
        for &sk in &watched {
            let slot = slots.entry(sock_slot(sk)).or_default();
            if !slot.claim(sk, &mut Arrival::default()) {
                map.push(sk);
                slot.overflow += 1;
            }
        }
        for &sk in &watched {
            match slots[&sock_slot(sk)].find(sk) {
                SockWhere::Slot => {}
                SockWhere::Map => assert!(map.contains(&sk)),
                SockWhere::Nowhere => panic!("watched socket {sk:#x} lost"),
            }
        }
        // Most sockets live in their slot; most others stop at it.
        assert!(
            map.len() < watched.len() / 10,
            "{} of {}",
            map.len(),
            watched.len()
        );
        let passed = socks
            .iter()
            .enumerate()
            .filter(|(i, sk)| {
                i % 4 != 0
                    && slots
                        .get(&sock_slot(**sk))
                        .is_some_and(|s| s.find(**sk) != SockWhere::Nowhere)
            })
            .count();
        assert!(passed < socks.len() / 10, "{passed}");
    }

    #[test]
    fn release_frees_the_slot_for_a_reused_address() {
        let mut s = SockSlot::default();
        let mut arrival = Arrival::NONE;
        assert!(s.claim(0xa0, &mut arrival));
        arrival.queued(77);
        assert!(!s.claim(0xb0, &mut arrival));
        assert_eq!(
            arrival.last_ns, 77,
            "a refused claim leaves the owner's arrival"
        );
        assert!(s.claim(0xa0, &mut arrival));
        assert_eq!(
            arrival.last_ns, 77,
            "claiming one's own slot keeps its arrival"
        );
        assert!(s.release(0xa0, &mut arrival));
        assert_eq!(arrival, Arrival::NONE);
        assert_eq!(s.find(0xa0), SockWhere::Nowhere);
        arrival.queued(55);
        assert!(s.claim(0xa0, &mut arrival));
        assert_eq!(
            arrival,
            Arrival::NONE,
            "a reused address starts without an arrival"
        );
        assert!(!s.release(0xb0, &mut arrival));
    }

    #[test]
    fn a_read_takes_its_oldest_and_newest_arrival() {
        let mut a = Arrival::NONE;
        assert_eq!(a.take(), (0, 0), "nothing seen: nothing to time from");
        a.queued(100);
        assert_eq!(a.take(), (100, 100), "one segment");
        a.queued(200);
        a.queued(250);
        a.queued(300);
        assert_eq!(a.take(), (200, 300), "three segments read at once");
        // Data left behind by that read, or queued between the copy and the
        // hook: only the last arrival is known.
        assert_eq!(a.take(), (300, 300));
        a.queued(400);
        assert_eq!(a.take(), (400, 400), "the next data starts afresh");
    }

    #[test]
    fn a_read_that_drained_the_socket_leaves_no_arrival_standing() {
        let mut a = Arrival::NONE;
        a.queued(100);
        let (_, last) = a.take();
        a.drained(last);
        assert_eq!(
            a.take(),
            (0, 0),
            "data the data-ready hook did not see: unknown, not 100"
        );
        // Data queued between the read's take and its check of the queue
        // (another CPU) keeps its arrival.
        a.queued(200);
        let (_, last) = a.take();
        a.queued(250);
        a.drained(last);
        assert_eq!(a.take(), (250, 250));
        // A read that left data behind hands its clock on, as before.
        a.queued(300);
        a.take();
        assert_eq!(a.take(), (300, 300));
    }
}
