//! Map names and sizes, one definition for both sides.

/// tgid -> sidecar index; written by userspace discovery, read first by every hook.
pub const TRACKED: &str = "TRACKED";
pub const TRACKED_MAX: u32 = 4096;

/// Ports tracked proxies listen on (u16 -> 1): a socket accepted on one is
/// watched for arrivals from its first byte. Written by userspace discovery.
pub const PROXY_PORTS: &str = "PROXY_PORTS";
pub const PROXY_PORTS_MAX: u32 = 1024;

/// tid -> [`crate::pairing::ThreadState`] (LRU: a thread that vanished ages out).
pub const THREADS: &str = "THREADS";
pub const THREADS_MAX: u32 = 16384;

/// socket address -> last arrival time, for sockets of tracked proxies only
/// (0 = none yet). LRU: closed sockets age out.
pub const ARRIVALS: &str = "ARRIVALS";
pub const ARRIVALS_MAX: u32 = 65536;

/// socket address -> [`crate::sock::SockInfo`] learnt from `inet_sock_set_state`.
pub const SOCKS: &str = "SOCKS";
pub const SOCKS_MAX: u32 = 65536;

/// Ring buffer of [`crate::pairing::Forward`] records.
pub const FORWARDS: &str = "FORWARDS";
pub const FORWARDS_BYTES: u32 = 4 * 1024 * 1024;

/// Per-CPU counters indexed by [`Counter`].
pub const COUNTERS: &str = "COUNTERS";

/// Per-thread scratch for kprobe/fentry entry arguments (tid -> sock pointer).
pub const ENTRY_ARGS: &str = "ENTRY_ARGS";
pub const ENTRY_ARGS_MAX: u32 = 16384;

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// A forward was paired but the ring buffer was full: the record is lost.
    RingFull = 0,
    /// A read found no recorded arrival for its socket (queue time counted as zero).
    NoArrival = 1,
    /// A map insert failed (map full): pairing state for that thread or socket was lost.
    MapFull = 2,
}

impl Counter {
    pub const ALL: [Counter; 3] = [Counter::RingFull, Counter::NoArrival, Counter::MapFull];
    pub const fn name(self) -> &'static str {
        match self {
            Counter::RingFull => "ring_full",
            Counter::NoArrival => "no_arrival",
            Counter::MapFull => "map_full",
        }
    }
}

pub const COUNTERS_LEN: u32 = Counter::ALL.len() as u32;

/// Direct-mapped filters in front of the hash maps, so the common case (a
/// task or socket that is not a proxy's) costs one inlined array load
/// instead of a hash lookup. A slot holds the one key that maps there, or
/// a collision marker that sends the lookup on to the hash map.
pub mod filter {
    pub const LEN: u32 = 1 << 16;
    const MASK: u64 = LEN as u64 - 1;

    /// tgid -> slot of TRACKED_FILTER (values: tgid, TGID_COLLISION or 0).
    pub const TRACKED_FILTER: &str = "TRACKED_FILTER";
    pub const TGID_COLLISION: u32 = u32::MAX;

    /// socket address -> slot of SK_FILTER (values: sk, SK_COLLISION or 0).
    pub const SK_FILTER: &str = "SK_FILTER";
    pub const SK_COLLISION: u64 = u64::MAX;

    pub const fn tgid_slot(tgid: u32) -> u32 {
        (tgid as u64 & MASK) as u32
    }

    /// Sockets are slab objects a few hundred bytes to kilobytes apart:
    /// drop the low bits and fold the high ones in.
    pub const fn sk_slot(sk: u64) -> u32 {
        (((sk >> 6) ^ (sk >> 22)) & MASK) as u32
    }

    /// What a slot must hold for `tgid` to pass the filter.
    pub const fn passes_tgid(slot_value: u32, tgid: u32) -> TgidVerdict {
        if tgid == 0 || slot_value == 0 {
            TgidVerdict::No
        } else if slot_value == tgid {
            TgidVerdict::Yes
        } else if slot_value == TGID_COLLISION {
            TgidVerdict::AskMap
        } else {
            TgidVerdict::No
        }
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum TgidVerdict {
        Yes,
        No,
        AskMap,
    }

    /// The value a slot takes when `sk` is added to it.
    pub const fn sk_slot_after_add(current: u64, sk: u64) -> u64 {
        if current == 0 || current == sk {
            sk
        } else {
            SK_COLLISION
        }
    }

    /// Whether a socket may be watched, from its slot's value.
    pub const fn sk_may_be_watched(slot_value: u64, sk: u64) -> bool {
        sk != 0 && (slot_value == sk || slot_value == SK_COLLISION)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::{collections::BTreeMap, vec::Vec};

    use super::filter::*;

    #[test]
    fn sk_filter_never_hides_a_watched_socket() {
        let socks: Vec<u64> = (0..5000u64)
            .map(|i| 0xffff_8880_0000_0000 + i * 2304)
            .collect();
        let mut slots = BTreeMap::new();
        for &sk in socks.iter().step_by(3) {
            let v = slots.entry(sk_slot(sk)).or_insert(0);
            *v = sk_slot_after_add(*v, sk);
        }
        for &sk in socks.iter().step_by(3) {
            assert!(sk_may_be_watched(slots[&sk_slot(sk)], sk));
        }
        let passed_unwatched = socks
            .iter()
            .enumerate()
            .filter(|(i, sk)| {
                i % 3 != 0
                    && sk_may_be_watched(slots.get(&sk_slot(**sk)).copied().unwrap_or(0), **sk)
            })
            .count();
        // Unwatched sockets mostly stop at the filter.
        assert!(passed_unwatched < socks.len() / 20, "{passed_unwatched}");
        assert!(!sk_may_be_watched(0, 0));
    }
}
