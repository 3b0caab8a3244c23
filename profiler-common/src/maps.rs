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
