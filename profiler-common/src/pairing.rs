//! Forward pairing: which read fed which write, on one proxy thread.
//!
//! A forward is data that became readable on one TCP socket of a proxy and
//! was then written by the same thread to a different TCP socket. The clock
//! starts at the arrival of the last piece read (so time spent waiting on a
//! slow peer is never charged to the proxy) and stops when the write returns.
//! These functions are called by every hook set (tracepoint, kprobe, fentry)
//! and unit-tested on the host with recorded event sequences.

/// Sources a thread may have read from before it writes. Event-loop proxies
/// almost always forward one read before the next; two slots cover a thread
/// that reads two sockets before writing without growing the per-thread state.
pub const SLOTS: usize = 2;

/// One socket read by a thread and not yet forwarded. `sk == 0` is empty.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pending {
    pub sk: u64,
    pub arrival_ns: u64,
    pub read_ns: u64,
    pub bytes: u64,
}

/// Per-thread pairing state, oldest pending read first.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadState {
    pub slots: [Pending; SLOTS],
}

/// What a read did to the thread's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The read was recorded.
    Recorded,
    /// The read was recorded, and the oldest pending read (never written
    /// anywhere) was dropped to make room.
    EvictedOldest,
}

/// What a write did to the thread's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Data read from another socket was written: a forward.
    Forward(Pending),
    /// The thread answered on the socket it had read (a local reply such as a
    /// health check or an error page): not a forward; the read is consumed.
    LocalReply,
    /// Nothing pending: a continuation of an earlier write, or unrelated.
    Nothing,
}

/// The arrival time to charge a read with: the last recorded arrival on the
/// socket, or the read itself when none is known (queue time zero). Returns
/// the time and whether an arrival was known.
pub const fn arrival_for_read(recorded: Option<u64>, now_ns: u64) -> (u64, bool) {
    match recorded {
        Some(t) if t != 0 && t <= now_ns => (t, true),
        _ => (now_ns, false),
    }
}

impl ThreadState {
    /// A read of `bytes > 0` bytes from socket `sk` returned at `now_ns`;
    /// `arrival_ns` comes from [`arrival_for_read`].
    pub fn on_read(&mut self, sk: u64, bytes: u64, arrival_ns: u64, now_ns: u64) -> ReadOutcome {
        let mut i = 0;
        while i < SLOTS {
            let slot = &mut self.slots[i];
            if slot.sk == sk {
                // Another piece of the same data: the clock restarts at its arrival.
                slot.arrival_ns = arrival_ns;
                slot.read_ns = now_ns;
                slot.bytes += bytes;
                return ReadOutcome::Recorded;
            }
            i += 1;
        }
        let fresh = Pending {
            sk,
            arrival_ns,
            read_ns: now_ns,
            bytes,
        };
        let mut i = 0;
        while i < SLOTS {
            if self.slots[i].sk == 0 {
                self.slots[i] = fresh;
                return ReadOutcome::Recorded;
            }
            i += 1;
        }
        self.remove(0);
        self.slots[SLOTS - 1] = fresh;
        ReadOutcome::EvictedOldest
    }

    /// A write of data to socket `dst` returned. Pairs it with the oldest
    /// pending read from another socket.
    pub fn on_write(&mut self, dst: u64) -> WriteOutcome {
        let mut i = 0;
        while i < SLOTS {
            let slot = self.slots[i];
            if slot.sk != 0 && slot.sk != dst {
                self.remove(i);
                return WriteOutcome::Forward(slot);
            }
            i += 1;
        }
        let mut i = 0;
        while i < SLOTS {
            if self.slots[i].sk == dst && dst != 0 {
                self.remove(i);
                return WriteOutcome::LocalReply;
            }
            i += 1;
        }
        WriteOutcome::Nothing
    }

    /// Forget a socket that closed, so a new socket at the same address
    /// never inherits its pending data.
    pub fn on_close(&mut self, sk: u64) {
        let mut i = 0;
        while i < SLOTS {
            if self.slots[i].sk == sk {
                self.remove(i);
                return;
            }
            i += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        let mut i = 0;
        while i < SLOTS {
            if self.slots[i].sk != 0 {
                return false;
            }
            i += 1;
        }
        true
    }

    fn remove(&mut self, at: usize) {
        let mut i = at;
        while i + 1 < SLOTS {
            self.slots[i] = self.slots[i + 1];
            i += 1;
        }
        self.slots[SLOTS - 1] = Pending::default();
    }
}

#[cfg(test)]
mod tests;
