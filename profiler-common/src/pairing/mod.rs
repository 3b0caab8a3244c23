//! Where a forward is paired: which read fed which write, in one proxy.
//!
//! A forward is data that became readable on one TCP socket of a proxy and
//! was then written by the proxy to a different TCP socket. The clock starts
//! when the oldest data of the last piece read before the write became
//! readable (time spent waiting on a slow peer is never the proxy's; data
//! that waited in the socket while the proxy was busy is) and stops when the
//! write returns.
//!
//! The kernel reports every read and write of a tracked proxy
//! ([`crate::events::Io`]); pairing runs in userspace, where state per socket
//! costs nothing in the kernel's hot path and the rules can use all a proxy
//! has shown so far. Data read from a socket stays *pending* on that socket
//! until a write consumes it; another read of the same socket adds a piece
//! (the clock restarts at its arrival if that came after the last read: the
//! proxy waited for it). A write to socket `W` by thread `T`
//! is paired by these rules ([`choose`]), in order:
//!
//! 1. Candidates: sockets other than `W` with pending data whose role is not
//!    `W`'s (a forward joins an accepted socket and a connected one; an
//!    unknown role matches either), read by `T`; or read by any thread when
//!    the socket is `W`'s partner.
//! 2. `W`'s partner (the other socket of the last forward `W` was part of)
//!    decides when it is a candidate. Every other candidate of `T` whose
//!    partner is `W` is forwarded by the same write too (several streams
//!    written to one multiplexed upstream); and once `W` has shown it is
//!    *multiplexed* (it took data from a second source before anything went
//!    back to the first, which HTTP/1.1 never does), so is every candidate
//!    of `T` not in a live pair with another socket. A socket whose data the proxy both answered
//!    itself and forwarded is multiplexed too (HTTP/2's own frames beside
//!    the streams).
//! 3. Otherwise, when `W` is a new connection that `T` connected for a new
//!    connection's first data, that data: `T` read such data from as many
//!    new connections as it then connected (an event loop that reads every
//!    ready socket, then connects upstreams in the same order), or it
//!    connected once right after reading it (an HTTP proxy connects
//!    upstream for the request it just read). Else the *free*
//!    candidates of `T` (not in a live pair with a third socket): exactly
//!    one decides.
//! 4. No free one but exactly one candidate: it (an HTTP/1.1 pool pairs a
//!    downstream with a different upstream per request).
//! 5. Several: the only one whose pending bytes equal the write's, if
//!    exactly one does (a byte-transparent proxy); else the oldest pending
//!    read. This is counted as *ambiguous*.
//! 6. No candidate: a write back to a socket with pending data is a local
//!    reply (no forward); that data is then *answered*: from now on only
//!    its partner may take it (HTTP/2 answers a DATA frame with a
//!    WINDOW_UPDATE before writing the data on), until the socket is read
//!    again. A write to a socket whose partner is multiplexed and whose
//!    peer still waits for an answer (its data went there, none came back
//!    yet), while the
//!    writing thread is still writing out that partner's last data (no idle
//!    gap since it wrote it to another socket, bytes of it not yet written
//!    on, this socket not yet written from it), is a forward of its own from
//!    the same arrival (*fan-out*: one read of several streams' responses,
//!    each written to its own client; its bytes were counted once). Any
//!    other write continues an earlier forward, and is not counted again.
//!
//! Answered data never feeds rules 2 (riding along), 3, 4 or 5. And where a
//! multiplexed connection is involved (the destination, the candidate or
//! its partner), data the writing thread read before it last went idle (no
//! read or write for [`state::IDLE_GAP_NS`]) is no candidate at all: such a
//! proxy answers control frames itself (SETTINGS ACK, WINDOW_UPDATE, PING)
//! and forwards a stream's data in the burst of work that read it.
mod choose;
pub mod state;

use crate::sched::{Mark, Split};

pub use state::Pairing;

/// How a socket came to be connected, as far as pairing is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Accepted by the proxy (downstream side).
    Accepted,
    /// Connected by the proxy (upstream side).
    Connected,
    Unknown,
}

impl Role {
    /// Whether data read on a socket of role `self` may be forwarded to one
    /// of role `dst`.
    pub const fn may_feed(self, dst: Role) -> bool {
        !matches!(
            (self, dst),
            (Role::Accepted, Role::Accepted) | (Role::Connected, Role::Connected)
        )
    }
}

/// A read of `bytes > 0` bytes from `sk` that returned at `at_ns`;
/// `arrival_ns` is when the oldest data it took became readable (one read
/// may take data that arrived over time: several packets, or several
/// streams' frames of a multiplexed connection), or for data an earlier
/// read left behind the socket's last arrival before it (0: unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Read {
    pub tgid: u32,
    pub tid: u32,
    pub sk: u64,
    pub at_ns: u64,
    pub arrival_ns: u64,
    pub bytes: u64,
    /// The reading thread's scheduler account at the read (None: not
    /// followed).
    pub mark: Option<Mark>,
    /// How much of arrival to read the thread spent runnable.
    pub queue_runnable_ns: u64,
    /// Where kernel_in starts for the data this read took: its last packet
    /// passed the pod edge, or the app's TCP sent it over the pod's loopback,
    /// moved back to its oldest data (`EdgeIn::start_for`); 0: no stamp.
    pub edge_ns: u64,
}

/// A write of `bytes > 0` bytes to `sk` that returned at `at_ns`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Write {
    pub tgid: u32,
    pub tid: u32,
    pub sk: u64,
    pub at_ns: u64,
    pub bytes: u64,
    pub mark: Option<Mark>,
    /// Where the write's data went: TCP sent its last packet at `.0`, which
    /// passed the pod edge, or became readable at the app's socket over the
    /// pod's loopback, at `.1` (None: no stamp).
    pub edge_out: Option<(u64, u64)>,
}

impl From<&crate::events::Io> for Read {
    fn from(io: &crate::events::Io) -> Read {
        Read {
            tgid: io.tgid,
            tid: io.tid,
            sk: io.sk,
            at_ns: io.at_ns,
            arrival_ns: io.arrival_ns,
            bytes: u64::from(io.bytes),
            mark: io.mark(),
            queue_runnable_ns: u64::from(io.queue_runnable_ns),
            edge_ns: 0,
        }
    }
}

impl From<&crate::events::Io> for Write {
    fn from(io: &crate::events::Io) -> Write {
        Write {
            tgid: io.tgid,
            tid: io.tid,
            sk: io.sk,
            at_ns: io.at_ns,
            bytes: u64::from(io.bytes),
            mark: io.mark(),
            edge_out: io.edge_out(),
        }
    }
}

/// What decided a forward's source (rules 2 to 5 above).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Basis {
    /// The destination's partner, or another stream to the same partner.
    Partner,
    /// A new source riding along on a multiplexed destination.
    Multiplexed,
    /// The data the thread had just read when it connected the destination.
    Connect,
    /// The only free candidate, or the only candidate.
    Only,
    /// The only candidate whose pending bytes equal the write's.
    Bytes,
    /// Several candidates and nothing decided: the oldest was taken.
    Ambiguous,
    /// A multiplexed connection's data, already forwarded by an earlier
    /// write of the same burst of work, written to a further socket.
    Fanout,
}

/// One forward: data read from `src_sk`, then written to `dst_sk`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    pub tgid: u32,
    /// The thread that wrote.
    pub tid: u32,
    pub src_sk: u64,
    pub dst_sk: u64,
    /// Data became readable on the source socket (clock start): the oldest
    /// data of the last piece the proxy waited for (see [`Read::arrival_ns`]),
    /// or its read when the arrival is unknown.
    pub arrival_ns: u64,
    /// The proxy's last read of it returned.
    pub read_ns: u64,
    /// The proxy's write to the destination returned (clock stop).
    pub write_ns: u64,
    /// Bytes read from the source for this forward.
    pub bytes: u64,
    pub basis: Basis,
    /// Process time split into running, runnable and blocked, when one
    /// thread read and wrote and the kernel followed it across both.
    pub split: Option<Split>,
    /// How much of the queue time the reading thread spent runnable.
    pub queue_runnable_ns: u64,
    /// Where kernel_in starts for the last piece read (see
    /// [`Read::edge_ns`]; 0: no stamp).
    pub edge_in_ns: u64,
    /// TCP sent the write's last packet, and it passed the pod edge or
    /// reached the app (see [`Write::edge_out`]).
    pub edge_out: Option<(u64, u64)>,
}

impl Forward {
    /// Pod edge (or the app's send over loopback) to readable at the
    /// proxy's socket: the kernel's part on the way in (veth or loopback,
    /// netfilter with the interception's NAT, TCP).
    pub const fn kernel_in_ns(&self) -> Option<u64> {
        if self.edge_in_ns != 0 && self.edge_in_ns <= self.arrival_ns {
            Some(self.arrival_ns - self.edge_in_ns)
        } else {
            None
        }
    }

    /// TCP sent the write's data -> its last packet left the pod edge, or
    /// became readable at the app's socket: the kernel's part on the way
    /// out (IP, netfilter, veth or loopback). The write call usually sends
    /// the packet itself, so this is then inside process, which ends as it
    /// returns.
    pub fn kernel_out_ns(&self) -> Option<u64> {
        self.edge_out
            .and_then(|(xmit, edge)| edge.checked_sub(xmit))
    }

    /// Where the data left the sidecar: its last packet passed the pod edge,
    /// or became readable at the app's socket, if that was stamped after
    /// the proxy read the data; else the write's return. The write usually
    /// returns later: a send over loopback or the veth runs the next hop's
    /// receive inside the call, which is the next traversal's kernel_in,
    /// not this data's wait.
    pub fn exit_ns(&self) -> u64 {
        match self.edge_out {
            Some((_, edge)) if edge > self.read_ns => edge,
            _ => self.write_ns,
        }
    }

    /// The data's whole way through the sidecar as far as it is stamped:
    /// from where kernel_in starts (the pod edge, or the app's send over
    /// loopback; else from readable at the proxy's socket) to where it left
    /// (see [`Forward::exit_ns`]): kernel_in + queue + the proxy's work up
    /// to the data leaving, including kernel_out.
    pub fn sidecar_total_ns(&self) -> u64 {
        let start = match self.kernel_in_ns() {
            Some(_) => self.edge_in_ns,
            None => self.arrival_ns,
        };
        self.exit_ns().saturating_sub(start)
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

/// What pairing saw besides forwards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PairingCounts {
    /// Forwards whose source nothing decided (rule 5, oldest taken).
    pub ambiguous: u64,
    /// Writes back to the socket just read (rule 6): not forwards.
    pub local_replies: u64,
    /// Reads whose arrival was unknown (queue counted as zero).
    pub reads_without_arrival: u64,
    /// Pending reads dropped unforwarded because a process had too many.
    pub evicted: u64,
    /// Times the socket table was cleared because it was full (closes lost).
    pub table_resets: u64,
}

/// The arrival to charge a read with: the recorded one when it is known and
/// not after the read, else the read itself (queue time zero).
pub const fn arrival_for_read(recorded_ns: u64, read_ns: u64) -> (u64, bool) {
    if recorded_ns != 0 && recorded_ns <= read_ns {
        (recorded_ns, true)
    } else {
        (read_ns, false)
    }
}

#[cfg(test)]
mod tests;
