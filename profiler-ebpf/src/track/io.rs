//! Where a proxy thread's reads and writes are timestamped and reported;
//! userspace pairs them into forwards (profiler_common::pairing).
use profiler_common::events::{Io, KIND_CONNECT, KIND_READ, KIND_WRITE};

use super::{arrival, emit::emit, sockinfo};

/// Make sure a socket the proxy uses is watched; a socket it had before the
/// profiler started is learnt here (at `now`).
#[inline(always)]
fn learn(sk: u64, now: u64) {
    if arrival::watch(sk) {
        sockinfo::report_open(sk, &sockinfo::read_existing(sk), now);
    }
}

/// A read socket's last arrival (0: none), learning the socket if new.
#[inline(always)]
fn touch(sk: u64, now: u64) -> u64 {
    arrival::arrival_of(sk).unwrap_or_else(|| {
        learn(sk, now);
        0
    })
}

#[inline(always)]
fn report(kind: u32, (tgid, tid): (u32, u32), sk: u64, at_ns: u64, arrival_ns: u64, ret: i64) {
    emit(Io {
        kind,
        tgid,
        tid,
        _pad: 0,
        sk,
        at_ns,
        arrival_ns,
        bytes: ret as u64,
    });
}

/// A tracked thread's read of `ret` bytes from socket `sk` returned. The
/// hook has already checked the task, so untracked processes never get here.
#[inline(always)]
pub fn on_read(task: (u32, u32), sk: u64, ret: i64) {
    if ret <= 0 {
        return;
    }
    let now = super::now_ns();
    let arrival = touch(sk, now);
    report(KIND_READ, task, sk, now, arrival, ret);
}

/// A tracked thread's write of `ret` bytes to socket `sk` returned (clock stop).
#[inline(always)]
pub fn on_write(task: (u32, u32), sk: u64, ret: i64) {
    if ret <= 0 {
        return;
    }
    let now = super::now_ns();
    // The destination's replies must be timed too; only its identity is
    // read here, not the arrival other CPUs keep writing.
    if !arrival::is_watched(sk) {
        learn(sk, now);
    }
    report(KIND_WRITE, task, sk, now, 0, ret);
}

/// A tracked thread started connecting socket `sk`.
#[inline(always)]
pub fn report_connect(task: (u32, u32), sk: u64, at_ns: u64) {
    report(KIND_CONNECT, task, sk, at_ns, 0, 0);
}
