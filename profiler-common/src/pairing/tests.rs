//! Recorded event sequences replayed through the pairing logic, with the
//! arrival store the kernel keeps beside it.
extern crate std;
use std::{collections::HashMap, vec::Vec};

use super::*;
use crate::events::Forward;

#[derive(Clone, Copy)]
enum Ev {
    /// Data became readable on a socket (sk_data_ready).
    Arrive(u64, u64),
    /// Thread read n bytes from a socket at t.
    Read(u32, u64, u64, u64),
    /// Thread wrote to a socket at t.
    Write(u32, u64, u64),
    /// A socket closed at t (inet_sock_set_state -> CLOSE).
    Close(u64),
}
use Ev::*;

#[derive(Default)]
struct Sim {
    arrivals: HashMap<u64, u64>,
    threads: HashMap<u32, ThreadState>,
    forwards: Vec<Forward>,
    local_replies: usize,
    no_arrival: usize,
}

impl Sim {
    fn run(events: &[Ev]) -> Sim {
        let mut s = Sim::default();
        for &e in events {
            match e {
                Arrive(sk, t) => {
                    s.arrivals.insert(sk, t);
                }
                Read(tid, sk, n, t) => {
                    let (arr, known) = arrival_for_read(s.arrivals.get(&sk).copied(), t);
                    if !known {
                        s.no_arrival += 1;
                    }
                    s.threads.entry(tid).or_default().on_read(sk, n, arr, t);
                }
                Write(tid, sk, t) => match s.threads.entry(tid).or_default().on_write(sk) {
                    WriteOutcome::Forward(p) => s.forwards.push(Forward::new(1, tid, p, sk, t)),
                    WriteOutcome::LocalReply => s.local_replies += 1,
                    WriteOutcome::Nothing => {}
                },
                Close(sk) => {
                    s.arrivals.remove(&sk);
                    for st in s.threads.values_mut() {
                        st.on_close(sk);
                    }
                }
            }
        }
        s
    }
    fn times(&self) -> Vec<(u64, u64, u64, u64)> {
        self.forwards
            .iter()
            .map(|f| (f.src_sk, f.dst_sk, f.queue_ns(), f.process_ns()))
            .collect()
    }
}

const DOWN: u64 = 0xa0;
const UP: u64 = 0xb0;

#[test]
fn simple_request_and_response() {
    let s = Sim::run(&[
        Arrive(DOWN, 100),
        Read(7, DOWN, 300, 130),
        Write(7, UP, 180),
        Arrive(UP, 5000),
        Read(7, UP, 900, 5010),
        Write(7, DOWN, 5040),
    ]);
    assert_eq!(s.times(), [(DOWN, UP, 30, 50), (UP, DOWN, 10, 30)]);
    assert_eq!(s.forwards[0].bytes, 300);
    assert_eq!(s.forwards[1].total_ns(), 40);
}

#[test]
fn partial_reads_restart_the_clock_at_the_last_arrival() {
    // Headers arrive, the body trickles in 10 ms later from a slow peer: the
    // wait for the body is the peer's, not the proxy's.
    let s = Sim::run(&[
        Arrive(DOWN, 100),
        Read(7, DOWN, 200, 120),
        Arrive(DOWN, 10_100),
        Read(7, DOWN, 50, 10_110),
        Write(7, UP, 10_140),
    ]);
    assert_eq!(s.times(), [(DOWN, UP, 10, 30)]);
    assert_eq!(s.forwards[0].bytes, 250);
}

#[test]
fn read_in_pieces_of_one_arrival_keeps_that_arrival() {
    let s = Sim::run(&[
        Arrive(DOWN, 100),
        Read(7, DOWN, 4096, 120),
        Read(7, DOWN, 4096, 140),
        Write(7, UP, 160),
    ]);
    assert_eq!(s.times(), [(DOWN, UP, 40, 20)]);
}

#[test]
fn connections_interleaved_on_one_thread() {
    const D2: u64 = 0xa1;
    const U2: u64 = 0xb1;
    let s = Sim::run(&[
        Arrive(DOWN, 100),
        Arrive(D2, 105),
        Read(7, DOWN, 10, 110),
        Write(7, UP, 120),
        Read(7, D2, 10, 130),
        Write(7, U2, 150),
        Arrive(U2, 400),
        Read(7, U2, 10, 410),
        Write(7, D2, 415),
    ]);
    assert_eq!(
        s.times(),
        [(DOWN, UP, 10, 10), (D2, U2, 25, 20), (U2, D2, 10, 5)]
    );
}

#[test]
fn keepalive_reuse_pairs_each_request_once() {
    let mut evs = Vec::new();
    for i in 0..100u64 {
        let t = i * 1000;
        evs.extend([
            Arrive(DOWN, t),
            Read(7, DOWN, 100, t + 10),
            Write(7, UP, t + 30),
            Arrive(UP, t + 500),
            Read(7, UP, 100, t + 505),
            Write(7, DOWN, t + 520),
        ]);
    }
    let s = Sim::run(&evs);
    assert_eq!(s.forwards.len(), 200);
    assert!(s.times().iter().all(|&(_, _, q, p)| q <= 10 && p <= 20));
}

#[test]
fn pipelined_requests_charge_the_wait_in_the_queue() {
    // Two requests arrive in one segment; the second waits while the first is
    // processed, and that wait is the proxy's queue time.
    let s = Sim::run(&[
        Arrive(DOWN, 100),
        Read(7, DOWN, 100, 110),
        Write(7, UP, 150),
        Read(7, DOWN, 100, 160),
        Write(7, UP, 190),
    ]);
    assert_eq!(s.times(), [(DOWN, UP, 10, 40), (DOWN, UP, 60, 30)]);
}

#[test]
fn a_thread_that_reads_two_sockets_before_writing() {
    const D2: u64 = 0xa1;
    const U2: u64 = 0xb1;
    let s = Sim::run(&[
        Arrive(DOWN, 100),
        Arrive(D2, 100),
        Read(7, DOWN, 10, 110),
        Read(7, D2, 10, 120),
        Write(7, UP, 130),
        Write(7, U2, 140),
    ]);
    assert_eq!(s.times(), [(DOWN, UP, 10, 20), (D2, U2, 20, 20)]);
}

#[test]
fn a_third_source_evicts_the_oldest() {
    let mut st = ThreadState::default();
    assert_eq!(st.on_read(1, 1, 0, 1), ReadOutcome::Recorded);
    assert_eq!(st.on_read(2, 1, 0, 2), ReadOutcome::Recorded);
    assert_eq!(st.on_read(3, 1, 0, 3), ReadOutcome::EvictedOldest);
    assert_eq!(st.slots[0].sk, 2);
    assert_eq!(st.slots[1].sk, 3);
}

#[test]
fn a_reply_on_the_same_socket_is_not_a_forward() {
    let s = Sim::run(&[
        Arrive(DOWN, 100),
        Read(7, DOWN, 10, 110),
        Write(7, DOWN, 120),
        Write(7, UP, 130),
    ]);
    assert!(s.forwards.is_empty());
    assert_eq!(s.local_replies, 1);
}

#[test]
fn continuation_writes_are_not_counted_twice() {
    let s = Sim::run(&[
        Arrive(DOWN, 100),
        Read(7, DOWN, 10, 110),
        Write(7, UP, 120),
        Write(7, UP, 125),
        Write(7, UP, 130),
    ]);
    assert_eq!(s.forwards.len(), 1);
}

#[test]
fn threads_do_not_share_pairing_state() {
    let s = Sim::run(&[
        Arrive(DOWN, 100),
        Read(7, DOWN, 10, 110),
        Write(8, UP, 120),
        Write(7, UP, 130),
    ]);
    assert_eq!(s.forwards.len(), 1);
    assert_eq!(s.forwards[0].tid, 7);
}

#[test]
fn socket_address_reuse_after_close_starts_clean() {
    // The old connection's arrival and pending read must not leak into a new
    // socket that the allocator places at the same address.
    let s = Sim::run(&[
        Arrive(DOWN, 100),
        Read(7, DOWN, 10, 110),
        Close(DOWN),
        Read(7, DOWN, 10, 9000),
        Write(7, UP, 9010),
    ]);
    assert_eq!(s.times(), [(DOWN, UP, 0, 10)]);
    assert_eq!(s.forwards[0].bytes, 10);
    assert_eq!(s.no_arrival, 1);
}

#[test]
fn unknown_or_future_arrival_means_zero_queue() {
    assert_eq!(arrival_for_read(None, 50), (50, false));
    assert_eq!(arrival_for_read(Some(0), 50), (50, false));
    assert_eq!(arrival_for_read(Some(60), 50), (50, false));
    assert_eq!(arrival_for_read(Some(40), 50), (40, true));
}
