//! The decision for one write: which pending reads it forwards (rules 1 to
//! 6 of [`super`]), as a pure function of what the proxy has shown so far.
use std::vec::Vec;

use super::{Basis, Role};

/// A socket with data read and not yet forwarded, oldest pending first.
#[derive(Clone, Copy, Debug)]
pub(super) struct Candidate {
    pub sk: u64,
    /// The thread that read it last.
    pub tid: u32,
    pub role: Role,
    /// Pending bytes.
    pub bytes: u64,
    /// The other socket of its last forward.
    pub partner: Option<u64>,
    /// Whether that pair is still live (the partner's partner is this socket).
    pub paired: bool,
    /// The proxy already wrote back to this socket since it was read (a
    /// local reply, or a control frame such as HTTP/2's WINDOW_UPDATE).
    pub answered: bool,
    /// When it was last read.
    pub read_ns: u64,
    /// It, or its partner, is a multiplexed connection.
    pub mux: bool,
}

/// The write being paired.
#[derive(Clone, Copy, Debug)]
pub(super) struct Target {
    pub sk: u64,
    pub tid: u32,
    pub role: Role,
    pub bytes: u64,
    pub partner: Option<u64>,
    /// The written socket has pending data of its own, not yet answered.
    pub has_pending: bool,
    /// The written socket has carried data of two sources at once (HTTP/2
    /// upstream): every open source of the writing thread that is not in a
    /// pair with another socket rides along.
    pub mux: bool,
    /// When the writing thread's current burst of work began: its first
    /// read or write after an idle gap ([`super::state::IDLE_GAP_NS`]).
    pub burst_start_ns: u64,
    /// The socket whose first data the thread had just read when it
    /// connected the written socket.
    pub connected_for: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Choice {
    /// Forward from `from`; `also` are further sources the same write carries.
    Forward {
        from: u64,
        also: Vec<u64>,
        basis: Basis,
    },
    LocalReply,
    Nothing,
}

pub(super) fn choose(w: &Target, pending: &[Candidate]) -> Choice {
    // On a multiplexed connection the proxy answers control frames itself
    // (SETTINGS ACK, WINDOW_UPDATE, PING) and forwards nothing: data it read
    // there and left behind when it last went idle was such a frame, not a
    // stream it holds.
    let left_idle = |c: &Candidate| (w.mux || c.mux) && c.read_ns < w.burst_start_ns;
    let fits = |c: &&Candidate| c.sk != w.sk && c.role.may_feed(w.role) && !left_idle(c);
    // Data the proxy answered itself may still be forwarded, but only to
    // its partner (HTTP/2 acknowledges a DATA frame with a WINDOW_UPDATE on
    // the same connection before it writes the data on), or, for a new
    // connection, to a multiplexed one (HTTP/2 answers a client's first
    // flight, SETTINGS and all, with its own SETTINGS before it writes the
    // request upstream).
    let open = |c: &&Candidate| fits(c) && !c.answered;
    // Rule 2: the partner decides, from whichever thread read it; streams
    // bound for the same socket ride along.
    let rides = |c: &&Candidate| {
        fits(c)
            && c.tid == w.tid
            && ((c.partner == Some(w.sk) && !c.answered) || (w.mux && !c.paired))
    };
    if let Some(p) = w.partner
        && pending.iter().filter(fits).any(|c| c.sk == p)
    {
        let also = pending
            .iter()
            .filter(rides)
            .filter(|c| c.sk != p)
            .map(|c| c.sk)
            .collect();
        return Choice::Forward {
            from: p,
            also,
            basis: Basis::Partner,
        };
    }
    let mut bound = pending.iter().filter(rides);
    if let Some(first) = bound.next() {
        return Choice::Forward {
            from: first.sk,
            also: bound.map(|c| c.sk).collect(),
            basis: if first.partner == Some(w.sk) {
                Basis::Partner
            } else {
                Basis::Multiplexed
            },
        };
    }
    let mine = |c: &&Candidate| open(c) && c.tid == w.tid;
    // Rule 3 a: a new connection made for data the thread had just read.
    if let Some(cause) = w.connected_for
        && pending.iter().filter(mine).any(|c| c.sk == cause)
    {
        return Choice::Forward {
            from: cause,
            also: Vec::new(),
            basis: Basis::Connect,
        };
    }
    // Rules 3 and 4: the free ones of this thread if any, else all of it.
    let any_free = pending.iter().filter(mine).any(|c| !c.paired);
    let pool = || {
        pending
            .iter()
            .filter(mine)
            .filter(move |c| !any_free || !c.paired)
    };
    let one = |from: u64, basis| Choice::Forward {
        from,
        also: Vec::new(),
        basis,
    };
    let mut it = pool();
    match (it.next(), it.next()) {
        (None, _) if w.has_pending => Choice::LocalReply,
        (None, _) => Choice::Nothing,
        (Some(c), None) => one(c.sk, Basis::Only),
        (Some(oldest), Some(_)) => {
            // Rule 5.
            let mut same = pool().filter(|c| c.bytes == w.bytes);
            match (same.next(), same.next()) {
                (Some(c), None) => one(c.sk, Basis::Bytes),
                _ => one(oldest.sk, Basis::Ambiguous),
            }
        }
    }
}
