//! What pairing remembers: per socket its role, its partner and the data
//! read from it and not yet forwarded; per process the sockets with such
//! data, oldest first. Both are bounded, and whatever is dropped is counted.
use std::{collections::HashMap, vec::Vec};

use rustc_hash::FxBuildHasher;

use super::{
    Basis, Forward, Mark, PairingCounts, Read, Role, Split, Write, arrival_for_read,
    choose::{Candidate, Choice, Target, choose},
};

/// Sockets remembered at once (tracked proxies' open sockets; closes
/// remove them). Past this, closes were lost: start over.
pub const SOCKS_MAX: usize = 1 << 18;
/// Sockets with unforwarded data in one process; past this the oldest is
/// dropped. An event loop holds far fewer: data is forwarded, or the socket
/// is read again, or closed.
pub const PENDING_MAX: usize = 4096;
/// A thread with no read or write for this long went idle (back to its
/// event loop's wait): what it does next is a new burst of work.
pub const IDLE_GAP_NS: u64 = 1_000_000;
/// Threads whose bursts are followed; past this the table starts over.
const THREADS_MAX: usize = 1 << 16;
/// Processes with a list of pending sockets; past this, empty lists go.
const PROCESSES_MAX: usize = 4096;
/// New connections' first reads, and connects, followed in one run.
const RUN_MAX: usize = 256;
/// Destinations one read of a multiplexed connection is fanned out to and
/// timed as forwards of their own; past this, further ones are not.
pub const FANOUT_MAX: usize = 64;

/// A thread's current burst of work.
#[derive(Clone, Debug, Default)]
struct Burst {
    start_ns: u64,
    last_ns: u64,
    /// The socket its last read or write read, if it was a read.
    last_read: Option<u64>,
    run: ConnectRun,
}

/// The reads of new connections' first data a thread made since its last
/// write, and the connects that followed them. An event loop that reads
/// every ready socket before it connects an upstream for each new one
/// connects in the order it read: with as many connects as such reads, the
/// n-th connect is for the n-th read. With one connect and more such reads
/// (the others went to pooled connections), a connect right after a new
/// connection's first data is for that data, as an HTTP proxy connects
/// upstream for the request it just read.
#[derive(Clone, Debug, Default)]
struct ConnectRun {
    fresh: Vec<u64>,
    connects: Vec<u64>,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    tid: u32,
    /// The proxy wrote back to the socket since (see choose::Candidate).
    answered: bool,
    arrival_ns: u64,
    read_ns: u64,
    bytes: u64,
    /// The scheduler mark and queue's runnable part of the last piece.
    mark: Option<Mark>,
    queue_runnable_ns: u64,
    /// The pod edge stamp of the last piece's data (0: none).
    edge_ns: u64,
}

/// A multiplexed connection's data that a write consumed: the proxy may
/// write it on to further sockets in the same stretch of work (several
/// streams' responses read at once, each written to its own client).
#[derive(Clone, Debug)]
struct Consumed {
    piece: Pending,
    /// The thread that wrote it, and when that burst of work began.
    tid: u32,
    burst_start_ns: u64,
    /// The sockets it was written to so far.
    dsts: Vec<u64>,
    /// Bytes read and not yet matched by bytes written on: a read that the
    /// writes so far account for has nothing left to fan out.
    left: u64,
    /// Its last write returned.
    last_write_ns: u64,
}

#[derive(Clone, Debug)]
struct Sock {
    tgid: u32,
    role: Role,
    partner: Option<u64>,
    pending: Option<Pending>,
    /// The source of the last forward written here, and whether it still
    /// waits for data to go back to it (see `interleaved`).
    last_src: Option<u64>,
    awaiting_reply: bool,
    /// A source that was still waiting for data back when another one's
    /// data was written here; when data does go back to it, the socket is
    /// multiplexed. (A guess that paired the wrong source never sees that
    /// reply, so it cannot make a socket look multiplexed.)
    interleaved: Option<u64>,
    /// The proxy answered this socket's peer itself before forwarding any
    /// of its data (HTTP/2's SETTINGS to a new connection).
    answered_first: bool,
    forwarded_from: bool,
    mux: bool,
    /// The socket whose data the thread had just read when it connected
    /// this one: an HTTP proxy connects upstream for the request it read.
    connected_for: Option<u64>,
    /// The last data a write took from this socket, while it is
    /// multiplexed.
    consumed: Option<Consumed>,
    /// Data from it was forwarded, and none forwarded to it since: its peer
    /// waits for an answer.
    waiting: bool,
}

type Map<K, V> = HashMap<K, V, FxBuildHasher>;

#[derive(Default)]
pub struct Pairing {
    socks: Map<u64, Sock>,
    /// tgid -> sockets with pending data, oldest first.
    pending: Map<u32, Vec<u64>>,
    /// Reused for every write: the candidates it is paired from.
    candidates: Vec<Candidate>,
    threads: Map<u32, Burst>,
    counts: PairingCounts,
}

impl Pairing {
    pub fn counts(&self) -> PairingCounts {
        self.counts
    }

    /// Sockets remembered now.
    pub fn sockets(&self) -> usize {
        self.socks.len()
    }

    fn sock(&mut self, sk: u64, tgid: u32, role: Role) -> &mut Sock {
        if self.socks.len() >= SOCKS_MAX && !self.socks.contains_key(&sk) {
            self.socks.clear();
            self.pending.clear();
            self.counts.table_resets += 1;
        }
        let s = self.socks.entry(sk).or_insert(Sock {
            tgid,
            role,
            partner: None,
            pending: None,
            last_src: None,
            awaiting_reply: false,
            interleaved: None,
            answered_first: false,
            forwarded_from: false,
            mux: false,
            connected_for: None,
            consumed: None,
            waiting: false,
        });
        if role != Role::Unknown {
            s.role = role;
        }
        s
    }

    /// Note an event of `tid` at `at_ns`: a read of socket `sk`, `fresh`
    /// when it is a new connection's first data (no partner yet, nothing
    /// forwarded from it), or a write (None); returns when its burst began.
    fn burst(&mut self, tid: u32, at_ns: u64, read: Option<(u64, bool)>) -> u64 {
        if self.threads.len() >= THREADS_MAX && !self.threads.contains_key(&tid) {
            self.threads.clear();
        }
        let b = self.threads.entry(tid).or_default();
        if at_ns.saturating_sub(b.last_ns) >= IDLE_GAP_NS {
            b.start_ns = at_ns;
        }
        b.last_ns = b.last_ns.max(at_ns);
        b.last_read = read.map(|(sk, _)| sk);
        let run = &mut b.run;
        // A write ends the run; so do reads after connects (a new run).
        if read.is_none() || !run.connects.is_empty() {
            run.fresh.clear();
            run.connects.clear();
        }
        if let Some((sk, true)) = read
            && run.fresh.len() < RUN_MAX
            && !run.fresh.contains(&sk)
        {
            run.fresh.push(sk);
        }
        b.start_ns
    }

    /// Whether a socket, or its partner, is multiplexed or answered by the
    /// proxy before it forwarded anything (both HTTP/2 signs).
    fn mux_near(&self, s: &Sock) -> bool {
        let shared = |s: &Sock| s.mux || s.answered_first;
        shared(s)
            || s.partner
                .and_then(|p| self.socks.get(&p))
                .is_some_and(shared)
    }

    /// Thread `tid` started connecting socket `sk`: decide, as far as the
    /// thread's run of reads and connects allows, which new connection's
    /// data it is for (see [`ConnectRun`]).
    pub fn on_connect(&mut self, tid: u32, sk: u64) {
        let Some(b) = self.threads.get_mut(&tid) else {
            return;
        };
        if b.run.connects.len() >= RUN_MAX {
            return;
        }
        b.run.connects.push(sk);
        let (fresh, connects, last_read) = (&b.run.fresh, &b.run.connects, b.last_read);
        let causes: Vec<(u64, Option<u64>)> = if connects.len() == fresh.len() {
            connects
                .iter()
                .copied()
                .zip(fresh.iter().copied().map(Some))
                .collect()
        } else if connects.len() == 1 {
            // Right after a new connection's first data: that data.
            let cause = last_read.filter(|r| fresh.last() == Some(r));
            vec![(sk, cause)]
        } else {
            // More connects than new reads, or fewer so far: no order says.
            connects.iter().map(|c| (*c, None)).collect()
        };
        for (c, cause) in causes {
            let tgid = cause.and_then(|src| self.socks.get(&src)).map(|s| s.tgid);
            match (cause, tgid) {
                (Some(src), Some(tgid)) => {
                    self.sock(c, tgid, Role::Unknown).connected_for = Some(src);
                }
                _ => {
                    if let Some(s) = self.socks.get_mut(&c) {
                        s.connected_for = None;
                    }
                }
            }
        }
    }

    /// A read returned; `role` is the socket's, as far as it is known.
    pub fn on_read(&mut self, r: &Read, role: Role) {
        let (arrival_ns, known) = arrival_for_read(r.arrival_ns, r.at_ns);
        if !known {
            self.counts.reads_without_arrival += 1;
        }
        let s = self.sock(r.sk, r.tgid, role);
        let fresh = s.partner.is_none() && !s.forwarded_from;
        let piece = match &mut s.pending {
            Some(p) => {
                // Another piece: the clock restarts at its arrival when the
                // proxy waited for it (it arrived after the last read). A
                // piece already readable then (a read that left data
                // behind) was the proxy's to take: the clock and the edge
                // stamp stay.
                p.tid = r.tid;
                p.answered = false;
                if arrival_ns > p.read_ns {
                    p.arrival_ns = arrival_ns;
                    p.edge_ns = r.edge_ns;
                    p.queue_runnable_ns = r.queue_runnable_ns;
                } else {
                    p.queue_runnable_ns = p.queue_runnable_ns.max(r.queue_runnable_ns);
                }
                p.read_ns = r.at_ns;
                p.bytes += r.bytes;
                p.mark = r.mark;
                true
            }
            None => {
                s.tgid = r.tgid;
                s.pending = Some(Pending {
                    tid: r.tid,
                    answered: false,
                    arrival_ns,
                    read_ns: r.at_ns,
                    bytes: r.bytes,
                    mark: r.mark,
                    queue_runnable_ns: r.queue_runnable_ns,
                    edge_ns: r.edge_ns,
                });
                false
            }
        };
        self.burst(r.tid, r.at_ns, Some((r.sk, fresh)));
        if piece {
            return;
        }
        if self.pending.len() >= PROCESSES_MAX && !self.pending.contains_key(&r.tgid) {
            self.pending.retain(|_, l| !l.is_empty());
        }
        let list = self.pending.entry(r.tgid).or_default();
        list.push(r.sk);
        if list.len() > PENDING_MAX {
            let oldest = list.remove(0);
            if let Some(s) = self.socks.get_mut(&oldest) {
                s.pending = None;
            }
            self.counts.evicted += 1;
        }
    }

    /// A write returned; the forwards it completes are appended to `out`.
    pub fn on_write(&mut self, w: &Write, role: Role, out: &mut Vec<Forward>) {
        let burst_start_ns = self.burst(w.tid, w.at_ns, None);
        let dst = self.sock(w.sk, w.tgid, role);
        let target = Target {
            sk: w.sk,
            tid: w.tid,
            role: dst.role,
            bytes: w.bytes,
            partner: dst.partner,
            has_pending: dst.pending.is_some_and(|p| !p.answered),
            mux: dst.mux,
            burst_start_ns,
            connected_for: dst.connected_for,
        };
        let dst_waiting = dst.waiting;
        let mut candidates = std::mem::take(&mut self.candidates);
        candidates.clear();
        candidates.extend(
            self.pending
                .get(&w.tgid)
                .into_iter()
                .flatten()
                .filter_map(|sk| {
                    let s = self.socks.get(sk)?;
                    let p = s.pending?;
                    Some(Candidate {
                        sk: *sk,
                        tid: p.tid,
                        role: s.role,
                        bytes: p.bytes,
                        partner: s.partner,
                        answered: p.answered,
                        read_ns: p.read_ns,
                        mux: self.mux_near(s),
                        paired: s
                            .partner
                            .and_then(|o| self.socks.get(&o))
                            .is_some_and(|o| o.partner == Some(*sk)),
                    })
                }),
        );
        let choice = choose(&target, &candidates);
        self.candidates = candidates;
        match choice {
            Choice::Forward { from, also, basis } => {
                if basis == Basis::Ambiguous {
                    self.counts.ambiguous += 1;
                }
                self.forward(from, w, basis, burst_start_ns, out);
                for src in also {
                    self.forward(src, w, Basis::Partner, burst_start_ns, out);
                }
                if let Some(d) = self.socks.get_mut(&w.sk) {
                    d.partner = Some(from);
                }
            }
            Choice::LocalReply => {
                // Kept, not consumed: only the partner may still take it.
                if let Some(s) = self.socks.get_mut(&w.sk) {
                    s.answered_first |= !s.forwarded_from;
                    if let Some(p) = s.pending.as_mut() {
                        p.answered = true;
                    }
                }
                self.counts.local_replies += 1;
            }
            Choice::Nothing => {
                // Only to a peer still waiting for an answer: a frame the
                // proxy writes to one already answered is its own.
                if let Some(src) = target.partner
                    && dst_waiting
                {
                    self.fan_out(src, w, burst_start_ns, out);
                }
            }
        }
    }

    /// A write with nothing pending to take, to a socket whose partner is
    /// a multiplexed connection: when this thread, in this burst of work,
    /// took that connection's last data and wrote it to other sockets but
    /// not yet to this one, this write carries a further stream of it (its
    /// own forward, timed from the same arrival). Its bytes were counted
    /// with the first.
    fn fan_out(&mut self, src: u64, w: &Write, burst_start_ns: u64, out: &mut Vec<Forward>) {
        let Some(s) = self.socks.get_mut(&src) else {
            return;
        };
        let Some(c) = s.consumed.as_mut() else {
            return;
        };
        // The same thread still writing out that read: no idle gap since
        // it wrote the last of it, bytes of it not yet written on, and a
        // socket it did not go to yet. (A control frame the proxy writes
        // on its own to such a socket inside that stretch is taken too:
        // timed from the same arrival, it cannot outlast the stretch.)
        if c.tid != w.tid
            || c.burst_start_ns != burst_start_ns
            || c.left == 0
            || w.at_ns.saturating_sub(c.last_write_ns) >= IDLE_GAP_NS
            || c.dsts.contains(&w.sk)
            || c.dsts.len() >= FANOUT_MAX
        {
            return;
        }
        c.dsts.push(w.sk);
        c.left = c.left.saturating_sub(w.bytes);
        c.last_write_ns = w.at_ns;
        let piece = Pending {
            bytes: 0,
            ..c.piece
        };
        self.written(src, w.sk);
        out.push(Self::timed(src, &piece, w, Basis::Fanout));
    }

    /// Bookkeeping on the written socket for a forward from `src`.
    fn written(&mut self, src: u64, dst: u64) {
        if let Some(d) = self.socks.get_mut(&dst) {
            if d.awaiting_reply && d.last_src.is_some_and(|p| p != src) {
                d.interleaved = d.last_src;
            }
            d.last_src = Some(src);
            d.awaiting_reply = true;
            d.waiting = false;
        }
    }

    fn forward(
        &mut self,
        src: u64,
        w: &Write,
        basis: Basis,
        burst_start_ns: u64,
        out: &mut Vec<Forward>,
    ) {
        let Some(p) = self.take_pending(src) else {
            return;
        };
        if let Some(s) = self.socks.get_mut(&src) {
            s.partner = Some(w.sk);
            if s.last_src == Some(w.sk) {
                s.awaiting_reply = false;
            }
            if s.interleaved == Some(w.sk) {
                s.mux = true;
            }
            // Answered by the proxy first and forwarded too: a connection
            // that carries the proxy's own frames beside the data.
            if s.answered_first && !s.forwarded_from {
                s.mux = true;
            }
            s.forwarded_from = true;
            s.waiting = true;
        }
        // Kept while the source is multiplexed (several streams' data may
        // have come in this one read), for fan_out.
        let mux = self.socks.get(&src).is_some_and(|s| self.mux_near(s));
        if let Some(s) = self.socks.get_mut(&src) {
            if !mux {
                s.consumed = None;
            } else {
                // The list's allocation is reused, one per connection.
                let mut dsts = s.consumed.take().map(|c| c.dsts).unwrap_or_default();
                dsts.clear();
                dsts.push(w.sk);
                s.consumed = Some(Consumed {
                    piece: p,
                    tid: w.tid,
                    burst_start_ns,
                    dsts,
                    left: p.bytes.saturating_sub(w.bytes),
                    last_write_ns: w.at_ns,
                });
            }
        }
        self.written(src, w.sk);
        out.push(Self::timed(src, &p, w, basis));
    }

    /// The forward of piece `p` of `src`, written by `w`.
    fn timed(src: u64, p: &Pending, w: &Write, basis: Basis) -> Forward {
        let process_ns = w.at_ns.saturating_sub(p.read_ns);
        let split = if p.tid == w.tid {
            Split::between(p.mark, w.mark, process_ns)
        } else {
            None
        };
        Forward {
            tgid: w.tgid,
            tid: w.tid,
            src_sk: src,
            dst_sk: w.sk,
            arrival_ns: p.arrival_ns,
            read_ns: p.read_ns,
            write_ns: w.at_ns,
            bytes: p.bytes,
            basis,
            split,
            queue_runnable_ns: p
                .queue_runnable_ns
                .min(p.read_ns.saturating_sub(p.arrival_ns)),
            edge_in_ns: p.edge_ns,
            edge_out: w.edge_out,
        }
    }

    fn take_pending(&mut self, sk: u64) -> Option<Pending> {
        let s = self.socks.get_mut(&sk)?;
        let p = s.pending.take()?;
        // An emptied list stays for the process's next read: no allocation
        // per request (the table is bounded by PROCESSES_MAX).
        if let Some(list) = self.pending.get_mut(&s.tgid) {
            list.retain(|x| *x != sk);
        }
        Some(p)
    }

    /// A socket closed: forget it, so a new socket at the same address
    /// starts clean.
    pub fn on_close(&mut self, sk: u64) {
        self.take_pending(sk);
        self.socks.remove(&sk);
    }
}
