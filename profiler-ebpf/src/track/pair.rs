//! Where a forward is paired: a tracked thread's read, then its write to a
//! different socket (logic in profiler_common::pairing).
use aya_ebpf::EbpfContext;
use profiler_common::{
    events::Forward,
    maps::Counter,
    pairing::{WriteOutcome, arrival_for_read},
};

use super::{arrival, emit::emit, sockinfo, threads};
use crate::maps::count;

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

/// A tracked thread's read of `ret` bytes from socket `sk` returned. The
/// hook has already checked the task, so untracked processes never get here.
#[inline(always)]
pub fn on_read<C: EbpfContext>(ctx: &C, (_tgid, tid): (u32, u32), sk: u64, ret: i64) {
    if ret <= 0 {
        return;
    }
    let now = super::now_ns();
    let (arrival, known) = arrival_for_read(Some(touch(sk, now)), now);
    if !known {
        count(Counter::NoArrival);
    }
    let Some(state) = threads::state(tid, true) else {
        // Rare (both the slot and the LRU map failed): worth a log line.
        aya_log_ebpf::warn!(ctx, "no pairing state for tid {}", tid);
        return;
    };
    // SAFETY: the state belongs to this thread; only it touches it.
    unsafe { (*state).on_read(sk, ret as u64, arrival, now) };
}

/// A tracked thread's write of `ret` bytes to socket `sk` returned (clock stop).
#[inline(always)]
pub fn on_write((tgid, tid): (u32, u32), sk: u64, ret: i64) {
    if ret <= 0 {
        return;
    }
    let now = super::now_ns();
    // The destination's replies must be timed too.
    if !arrival::is_watched(sk) {
        learn(sk, now);
    }
    let Some(state) = threads::state(tid, false) else {
        return;
    };
    // SAFETY: the state belongs to this thread; only it touches it.
    let WriteOutcome::Forward(from) = (unsafe { (*state).on_write(sk) }) else {
        return;
    };
    emit(Forward::new(tgid, tid, from, sk, now));
}
