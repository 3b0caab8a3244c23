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
    /// upstream), or is about to: data went in and nothing came back yet.
    /// Every open source of the writing thread that is not in a pair with
    /// another socket then rides along.
    pub mux: bool,
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
    let fits = |c: &&Candidate| c.sk != w.sk && c.role.may_feed(w.role);
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
    let mine: Vec<&Candidate> = pending
        .iter()
        .filter(open)
        .filter(|c| c.tid == w.tid)
        .collect();
    // Rules 3 and 4.
    let free: Vec<&Candidate> = mine.iter().copied().filter(|c| !c.paired).collect();
    let pool = if free.is_empty() { mine } else { free };
    let one = |from: u64, basis| Choice::Forward {
        from,
        also: Vec::new(),
        basis,
    };
    match pool.as_slice() {
        [] if w.has_pending => Choice::LocalReply,
        [] => Choice::Nothing,
        [c] => one(c.sk, Basis::Only),
        [oldest, ..] => {
            // Rule 5.
            let mut same = pool.iter().filter(|c| c.bytes == w.bytes);
            match (same.next(), same.next()) {
                (Some(c), None) => one(c.sk, Basis::Bytes),
                _ => one(oldest.sk, Basis::Ambiguous),
            }
        }
    }
}
