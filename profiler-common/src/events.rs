//! What the kernel reports through the per-CPU rings (see [`crate::ring`]).
//! Every record starts with a `u32` kind so userspace can tell them apart.
use crate::sock::SockInfo;

pub const KIND_SOCK_OPEN: u32 = 2;
pub const KIND_SOCK_CLOSE: u32 = 3;
pub const KIND_READ: u32 = 4;
pub const KIND_WRITE: u32 = 5;
/// A tracked thread started connecting a TCP socket (SYN sent): `Io` with
/// `bytes` and `arrival_ns` 0.
pub const KIND_CONNECT: u32 = 6;

/// A tracked proxy thread's read from, or write to, a TCP socket that
/// returned `bytes > 0`. Userspace pairs them into forwards
/// (`crate::pairing`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Io {
    /// [`KIND_READ`], [`KIND_WRITE`] or [`KIND_CONNECT`].
    pub kind: u32,
    pub tgid: u32,
    pub tid: u32,
    /// What the read or write returned (a syscall moves less than 2 GiB).
    pub bytes: u32,
    pub sk: u64,
    /// When the read or write returned (CLOCK_MONOTONIC ns).
    pub at_ns: u64,
    /// Reads: when the oldest data the read took became readable (the first
    /// queued since the last read; for data a read left behind, the last
    /// queued), 0: none seen. Writes (with `--pod-edge`): where kernel_out
    /// stops for the data the write sent, its last packet at the pod edge or
    /// its arrival at the app's socket (0: no stamp); see [`Io::edge_out`].
    pub arrival_ns: u64,
    /// The thread's scheduler account at `at_ns` ([`crate::sched::Mark`]):
    /// cumulative runnable and blocked time, and the generation of its
    /// following (0: not followed, no split).
    pub runnable_ns: u64,
    pub blocked_ns: u64,
    pub sched_generation: u32,
    /// Reads: how much of arrival to read the thread spent runnable (ns,
    /// saturating). Writes with a kernel_out stop: how long before it TCP
    /// sent the data (ns).
    pub queue_runnable_ns: u32,
}

impl Io {
    /// A write's kernel_out, carried in its own record (one record less per
    /// forward than a record of its own): when TCP sent the data, and when
    /// it passed the pod edge or reached the app's socket.
    pub const fn edge_out(&self) -> Option<(u64, u64)> {
        if self.kind == KIND_WRITE && self.arrival_ns != 0 {
            Some((
                self.arrival_ns - self.queue_runnable_ns as u64,
                self.arrival_ns,
            ))
        } else {
            None
        }
    }

    /// A write record carrying kernel_out (`xmit_ns` at most `edge_ns`, at
    /// most 4.29 s apart; else it carries none).
    pub fn set_edge_out(&mut self, xmit_ns: u64, edge_ns: u64) {
        if let Some(d) = edge_ns.checked_sub(xmit_ns)
            && d <= u64::from(u32::MAX)
        {
            self.arrival_ns = edge_ns;
            self.queue_runnable_ns = d as u32;
        }
    }

    /// The scheduler mark, when the thread was followed.
    pub const fn mark(&self) -> Option<crate::sched::Mark> {
        if self.sched_generation == 0 {
            None
        } else {
            Some(crate::sched::Mark {
                generation: self.sched_generation,
                runnable_ns: self.runnable_ns,
                blocked_ns: self.blocked_ns,
            })
        }
    }
}

/// A followed proxy thread got a CPU after waiting `wait_ns` runnable
/// (woken or preempted, then queued; throttling included).
pub const KIND_RUNNABLE_WAIT: u32 = 7;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunnableWait {
    pub kind: u32,
    pub tgid: u32,
    pub tid: u32,
    pub _pad: u32,
    /// When the wait ended (CLOCK_MONOTONIC ns).
    pub at_ns: u64,
    pub wait_ns: u64,
}

/// A proxy socket's endpoints (open, sent once per socket before any
/// read or write on it) or its end (close, after the last).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockEvent {
    pub kind: u32,
    pub _pad: u32,
    pub sk: u64,
    /// When it happened (CLOCK_MONOTONIC ns): userspace merges the CPUs'
    /// rings in time order, so an open is applied before the reads on it.
    pub at_ns: u64,
    pub info: SockInfo,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_carries_its_kernel_out_and_a_read_none() {
        let mut w = Io {
            kind: KIND_WRITE,
            ..Io::default()
        };
        assert_eq!(w.edge_out(), None);
        w.set_edge_out(10_000, 10_250);
        assert_eq!(w.edge_out(), Some((10_000, 10_250)));
        // Out of order, or too far apart for the record: none.
        let mut bad = Io {
            kind: KIND_WRITE,
            ..Io::default()
        };
        bad.set_edge_out(10_250, 10_000);
        bad.set_edge_out(0, 5_000_000_000);
        assert_eq!(bad.edge_out(), None);
        // A read's arrival is not a kernel_out.
        let r = Io {
            kind: KIND_READ,
            arrival_ns: 9_000,
            queue_runnable_ns: 100,
            ..Io::default()
        };
        assert_eq!(r.edge_out(), None);
    }
}
