//! Map names and sizes, one definition for both sides.

/// tgid -> sidecar index; written by userspace discovery, read first by every hook.
pub const TRACKED: &str = "TRACKED";
pub const TRACKED_MAX: u32 = 4096;

/// Ports tracked proxies listen on (u16 -> 1): a socket accepted on one is
/// watched for arrivals from its first byte. Written by userspace discovery.
pub const PROXY_PORTS: &str = "PROXY_PORTS";
pub const PROXY_PORTS_MAX: u32 = 1024;

/// Proxy sockets and their arrivals: the [`crate::slots::SockSlot`] array
/// and the [`crate::slots::Arrival`] array SOCK_ARRIVALS beside it, both
/// indexed by socket address, and the LRU map socket -> arrivals for
/// sockets whose slot is taken.
pub const SOCK_SLOTS: &str = "SOCK_SLOTS";
pub const SOCK_ARRIVALS: &str = "SOCK_ARRIVALS";
pub const ARRIVALS: &str = "ARRIVALS";
pub const ARRIVALS_MAX: u32 = 65536;

/// Per-CPU counters indexed by [`Counter`].
pub const COUNTERS: &str = "COUNTERS";

/// Per-thread scratch for kprobe/fentry entry arguments (tid -> sock pointer).
pub const ENTRY_ARGS: &str = "ENTRY_ARGS";
pub const ENTRY_ARGS_MAX: u32 = 16384;

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// A record was ready but its CPU's ring was full: the record is lost.
    RingFull = 0,
    /// A map insert failed (map full): a socket's arrivals are not recorded.
    MapFull = 1,
    /// A program interrupted another one on the same CPU while it wrote a
    /// record, and its own record was dropped (fentry hooks only).
    RingBusy = 2,
    /// A followed thread's scheduler account contradicted itself (a switch
    /// in while running, or out while not): a switch was missed, so its
    /// following started over and the forwards across it are not split.
    SchedResync = 3,
}

impl Counter {
    pub const ALL: [Counter; 4] = [
        Counter::RingFull,
        Counter::MapFull,
        Counter::RingBusy,
        Counter::SchedResync,
    ];
}

pub const COUNTERS_LEN: u32 = Counter::ALL.len() as u32;

/// Direct-mapped filter in front of TRACKED, so an untracked task costs one
/// inlined array load instead of a hash lookup. A slot holds the one tgid
/// that maps there, or a collision marker that sends the lookup on to TRACKED.
pub mod filter {
    pub const LEN: u32 = 1 << 16;
    const MASK: u64 = LEN as u64 - 1;

    /// tgid -> slot of TRACKED_FILTER (values: tgid, TGID_COLLISION or 0).
    pub const TRACKED_FILTER: &str = "TRACKED_FILTER";
    pub const TGID_COLLISION: u32 = u32::MAX;

    pub const fn tgid_slot(tgid: u32) -> u32 {
        (tgid as u64 & MASK) as u32
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
}
