//! What pairing remembers: per socket its role, its partner and the data
//! read from it and not yet forwarded; per process the sockets with such
//! data, oldest first. Both are bounded, and whatever is dropped is counted.
use std::{collections::HashMap, vec::Vec};

use super::{
    Basis, Forward, PairingCounts, Read, Role, Write, arrival_for_read,
    choose::{Candidate, Choice, Target, choose},
};

/// Sockets remembered at once (tracked proxies' open sockets; closes
/// remove them). Past this, closes were lost: start over.
pub const SOCKS_MAX: usize = 1 << 18;
/// Sockets with unforwarded data in one process; past this the oldest is
/// dropped. An event loop holds far fewer: data is forwarded, or the socket
/// is read again, or closed.
pub const PENDING_MAX: usize = 4096;

#[derive(Clone, Copy, Debug)]
struct Pending {
    tid: u32,
    /// The proxy wrote back to the socket since (see choose::Candidate).
    answered: bool,
    arrival_ns: u64,
    read_ns: u64,
    bytes: u64,
}

#[derive(Clone, Copy, Debug)]
struct Sock {
    tgid: u32,
    role: Role,
    partner: Option<u64>,
    pending: Option<Pending>,
    /// The source of the last forward written here, and whether it still
    /// waits for data to go back to it: a second source meanwhile makes this
    /// socket multiplexed.
    last_src: Option<u64>,
    awaiting_reply: bool,
    mux: bool,
}

#[derive(Default)]
pub struct Pairing {
    socks: HashMap<u64, Sock>,
    /// tgid -> sockets with pending data, oldest first.
    pending: HashMap<u32, Vec<u64>>,
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
            mux: false,
        });
        if role != Role::Unknown {
            s.role = role;
        }
        s
    }

    /// A read returned; `role` is the socket's, as far as it is known.
    pub fn on_read(&mut self, r: &Read, role: Role) {
        let (arrival_ns, known) = arrival_for_read(r.arrival_ns, r.at_ns);
        if !known {
            self.counts.reads_without_arrival += 1;
        }
        let s = self.sock(r.sk, r.tgid, role);
        if let Some(p) = &mut s.pending {
            // Another piece: the clock restarts at its arrival.
            p.tid = r.tid;
            p.answered = false;
            p.arrival_ns = arrival_ns;
            p.read_ns = r.at_ns;
            p.bytes += r.bytes;
            return;
        }
        s.tgid = r.tgid;
        s.pending = Some(Pending {
            tid: r.tid,
            answered: false,
            arrival_ns,
            read_ns: r.at_ns,
            bytes: r.bytes,
        });
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
        let dst = *self.sock(w.sk, w.tgid, role);
        let candidates: Vec<Candidate> = self
            .pending
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
                    paired: s
                        .partner
                        .and_then(|o| self.socks.get(&o))
                        .is_some_and(|o| o.partner == Some(*sk)),
                })
            })
            .collect();
        let target = Target {
            sk: w.sk,
            tid: w.tid,
            role: dst.role,
            bytes: w.bytes,
            partner: dst.partner,
            has_pending: dst.pending.is_some_and(|p| !p.answered),
            // Data went in and nothing came back: anything else written
            // now shares the connection (HTTP/1.1 never does that).
            mux: dst.mux || dst.awaiting_reply,
        };
        match choose(&target, &candidates) {
            Choice::Forward { from, also, basis } => {
                if basis == Basis::Ambiguous {
                    self.counts.ambiguous += 1;
                }
                self.forward(from, w, basis, out);
                for src in also {
                    self.forward(src, w, Basis::Partner, out);
                }
                if let Some(d) = self.socks.get_mut(&w.sk) {
                    d.partner = Some(from);
                }
            }
            Choice::LocalReply => {
                // Kept, not consumed: only the partner may still take it.
                if let Some(p) = self.socks.get_mut(&w.sk).and_then(|s| s.pending.as_mut()) {
                    p.answered = true;
                }
                self.counts.local_replies += 1;
            }
            Choice::Nothing => {}
        }
    }

    fn forward(&mut self, src: u64, w: &Write, basis: Basis, out: &mut Vec<Forward>) {
        let Some(p) = self.take_pending(src) else {
            return;
        };
        if let Some(s) = self.socks.get_mut(&src) {
            s.partner = Some(w.sk);
            if s.last_src == Some(w.sk) {
                s.awaiting_reply = false;
            }
        }
        if let Some(d) = self.socks.get_mut(&w.sk) {
            if d.awaiting_reply && d.last_src.is_some_and(|prev| prev != src) {
                d.mux = true;
            }
            d.last_src = Some(src);
            d.awaiting_reply = true;
        }
        out.push(Forward {
            tgid: w.tgid,
            tid: w.tid,
            src_sk: src,
            dst_sk: w.sk,
            arrival_ns: p.arrival_ns,
            read_ns: p.read_ns,
            write_ns: w.at_ns,
            bytes: p.bytes,
            basis,
        });
    }

    fn take_pending(&mut self, sk: u64) -> Option<Pending> {
        let s = self.socks.get_mut(&sk)?;
        let p = s.pending.take()?;
        if let Some(list) = self.pending.get_mut(&s.tgid) {
            list.retain(|x| *x != sk);
            if list.is_empty() {
                self.pending.remove(&s.tgid);
            }
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
