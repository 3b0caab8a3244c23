//! What the kernel reports through the per-CPU rings (see [`crate::ring`]).
//! Every record starts with a `u32` kind so userspace can tell them apart.
use crate::{pairing::Pending, sock::SockInfo};

pub const KIND_FORWARD: u32 = 1;
pub const KIND_SOCK_OPEN: u32 = 2;
pub const KIND_SOCK_CLOSE: u32 = 3;

/// One forward: data read from `src_sk`, then written to `dst_sk`, by one thread.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Forward {
    pub kind: u32,
    pub tgid: u32,
    pub tid: u32,
    pub _pad: u32,
    pub src_sk: u64,
    pub dst_sk: u64,
    /// Data became readable on the source socket (clock start).
    pub arrival_ns: u64,
    /// The proxy's last read of it returned.
    pub read_ns: u64,
    /// The proxy's write to the destination socket returned (clock stop).
    pub write_ns: u64,
    pub bytes: u64,
}

impl Forward {
    pub fn new(tgid: u32, tid: u32, from: Pending, dst_sk: u64, write_ns: u64) -> Self {
        Forward {
            kind: KIND_FORWARD,
            tgid,
            tid,
            _pad: 0,
            src_sk: from.sk,
            dst_sk,
            arrival_ns: from.arrival_ns,
            read_ns: from.read_ns,
            write_ns,
            bytes: from.bytes,
        }
    }

    /// Arrival to read: waiting to be picked up (event loop, CPU contention).
    pub const fn queue_ns(&self) -> u64 {
        self.read_ns.saturating_sub(self.arrival_ns)
    }

    /// Read to write: the proxy's own work (parsing, routing, TLS, filters).
    pub const fn process_ns(&self) -> u64 {
        self.write_ns.saturating_sub(self.read_ns)
    }

    pub const fn total_ns(&self) -> u64 {
        self.write_ns.saturating_sub(self.arrival_ns)
    }
}

/// A proxy socket's endpoints (open, sent once per socket before any
/// forward on it) or its end (close, after the last).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockEvent {
    pub kind: u32,
    pub _pad: u32,
    pub sk: u64,
    /// When it happened (CLOCK_MONOTONIC ns): userspace merges the CPUs'
    /// rings in time order, so an open is applied before the forwards on it.
    pub at_ns: u64,
    pub info: SockInfo,
}
