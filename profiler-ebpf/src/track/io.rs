//! Where a proxy thread's reads and writes are timestamped and reported;
//! userspace pairs them into forwards (profiler_common::pairing).
use profiler_common::events::{Io, KIND_CONNECT, KIND_READ, KIND_WRITE};

use super::{arrival, edge, emit::emit, loopback, sched, sockinfo};

/// Make sure a socket the proxy uses is watched; a socket it had before the
/// profiler started is learnt here (at `now`).
#[inline(always)]
fn learn(sk: u64, now: u64) {
    if arrival::watch(sk) {
        let info = sockinfo::read_existing(sk);
        sockinfo::report_open(sk, &info, now);
        edge::enter(sk, &info);
        loopback::on_learnt(sk, &info);
    }
}

#[inline(always)]
fn report(
    kind: u32,
    (tgid, tid): (u32, u32),
    sk: u64,
    at_ns: u64,
    arrival_ns: u64,
    ret: i64,
    edge_out: Option<(u64, u64)>,
) {
    let mut io = Io {
        kind,
        tgid,
        tid,
        bytes: ret.clamp(0, u32::MAX as i64) as u32,
        sk,
        at_ns,
        arrival_ns,
        ..Io::default()
    };
    if kind != KIND_CONNECT
        && sched::split_on()
        && let Some(t) = sched::follow(tgid, tid, at_ns)
    {
        // SAFETY: a map value; this thread is the one running, on the CPU
        // its switches are seen from.
        let t = unsafe { &mut *t };
        let (mark, waited) = t.mark(at_ns, sched::current_run_delay);
        io.sched_generation = mark.generation;
        io.runnable_ns = mark.runnable_ns;
        io.blocked_ns = mark.blocked_ns;
        if arrival_ns != 0 {
            let r = t.runnable_within(arrival_ns, at_ns);
            io.queue_runnable_ns = if r > u32::MAX as u64 {
                u32::MAX
            } else {
                r as u32
            };
        }
        // The end of the sleep this stint followed, settled by this mark.
        if let Some((from_ns, wait_ns)) = waited {
            sched::report_wait(tgid, tid, from_ns, wait_ns);
        }
    }
    if let Some((xmit_ns, edge_ns)) = edge_out {
        io.set_edge_out(xmit_ns, edge_ns);
    }
    emit(io);
}

/// A tracked thread's read of `ret` bytes from socket `sk` returned. The
/// hook has already checked the task, so untracked processes never get here.
/// `is_tcp` is asked only of a socket not watched yet (only TCP sockets
/// ever are), so a hook that must read the protocol does so once a socket.
#[inline(always)]
pub fn on_read(task: (u32, u32), sk: u64, ret: i64, is_tcp: impl FnOnce() -> bool) {
    if ret <= 0 {
        return;
    }
    let watched = arrival::take_for_read(sk);
    if watched.is_none() && !is_tcp() {
        return;
    }
    let now = super::now_ns();
    // A socket the proxy had before the profiler started is learnt here.
    let (oldest, last) = watched.unwrap_or_else(|| {
        learn(sk, now);
        (0, 0)
    });
    edge::take_in(sk, last, now);
    report(KIND_READ, task, sk, now, oldest, ret, None);
}

/// A tracked thread's write of `ret` bytes to socket `sk` returned (clock
/// stop). `is_tcp` as for [`on_read`].
#[inline(always)]
pub fn on_write(task: (u32, u32), sk: u64, ret: i64, is_tcp: impl FnOnce() -> bool) {
    if ret <= 0 {
        return;
    }
    // The destination's replies must be timed too; only its identity is
    // read here, not the arrival other CPUs keep writing.
    let watched = arrival::is_watched(sk);
    if !watched && !is_tcp() {
        return;
    }
    let now = super::now_ns();
    if !watched {
        learn(sk, now);
    }
    let edge_out = edge::take_out(sk);
    report(KIND_WRITE, task, sk, now, 0, ret, edge_out);
}

/// A tracked thread started connecting socket `sk`.
#[inline(always)]
pub fn report_connect(task: (u32, u32), sk: u64, at_ns: u64) {
    report(KIND_CONNECT, task, sk, at_ns, 0, 0, None);
}
