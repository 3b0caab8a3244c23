//! Map names and sizes, one definition for both sides.

/// tgid -> sidecar index; written by userspace discovery, read first by every hook.
pub const TRACKED: &str = "TRACKED";
pub const TRACKED_MAX: u32 = 4096;

/// tid -> [`crate::pairing::ThreadState`] (LRU: a thread that vanished ages out).
pub const THREADS: &str = "THREADS";
pub const THREADS_MAX: u32 = 16384;

/// socket address -> last arrival time (LRU: closed sockets age out).
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
    /// A forward was emitted.
    Forwards = 2,
    /// A map insert failed (map full): pairing state for that thread or socket was lost.
    MapFull = 3,
}

impl Counter {
    pub const ALL: [Counter; 4] = [
        Counter::RingFull,
        Counter::NoArrival,
        Counter::Forwards,
        Counter::MapFull,
    ];
    pub const fn name(self) -> &'static str {
        match self {
            Counter::RingFull => "ring_full",
            Counter::NoArrival => "no_arrival",
            Counter::Forwards => "forwards",
            Counter::MapFull => "map_full",
        }
    }
}

pub const COUNTERS_LEN: u32 = Counter::ALL.len() as u32;
