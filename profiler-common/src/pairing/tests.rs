//! Recorded event sequences replayed through pairing, with the arrival
//! store the kernel keeps beside it: one sequence for every pattern real
//! proxies show (see ../shared notes on measurement), and generated
//! event-loop traffic checked against its own ground truth.
use std::{collections::HashMap, vec::Vec};

use super::{Basis, Forward, Pairing, PairingCounts, Role, arrival_for_read, state};
use crate::slots::Arrival;

#[derive(Clone, Copy)]
enum Ev {
    /// Data became readable on a socket at t (sk_data_ready).
    Arrive(u64, u64),
    /// Thread read n bytes from a socket at t.
    Read(u32, u64, u64, u64),
    /// Thread wrote n bytes to a socket at t.
    Write(u32, u64, u64, u64),
    /// A socket closed.
    Close(u64),
    /// Thread connected a socket.
    Connect(u32, u64),
}
use Ev::*;

/// Downstream (accepted) sockets are 0xa.., upstream (connected) 0xb..
fn role(sk: u64) -> Role {
    let mut lead = sk;
    while lead > 0xf {
        lead >>= 4;
    }
    match lead {
        0xa => Role::Accepted,
        0xb => Role::Connected,
        _ => Role::Unknown,
    }
}

#[derive(Default)]
struct Sim {
    arrivals: HashMap<u64, Arrival>,
    pairing: Pairing,
    forwards: Vec<Forward>,
}

impl Sim {
    fn run(events: &[Ev]) -> Sim {
        let mut s = Sim::default();
        for &e in events {
            s.step(e);
        }
        s
    }

    fn step(&mut self, e: Ev) {
        match e {
            Arrive(sk, t) => self.arrivals.entry(sk).or_default().queued(t),
            Read(tid, sk, n, t) => {
                let r = super::Read {
                    tgid: 1,
                    tid,
                    sk,
                    at_ns: t,
                    arrival_ns: self.arrivals.entry(sk).or_default().take().0,
                    bytes: n,
                    ..Default::default()
                };
                self.pairing.on_read(&r, role(sk));
            }
            Write(tid, sk, n, t) => {
                let w = super::Write {
                    tgid: 1,
                    tid,
                    sk,
                    at_ns: t,
                    bytes: n,
                    ..Default::default()
                };
                self.pairing.on_write(&w, role(sk), &mut self.forwards);
            }
            Close(sk) => {
                self.arrivals.remove(&sk);
                self.pairing.on_close(sk);
            }
            Connect(tid, sk) => self.pairing.on_connect(tid, sk),
        }
    }

    /// (source, destination, queue, process) of every forward.
    fn times(&self) -> Vec<(u64, u64, u64, u64)> {
        self.forwards
            .iter()
            .map(|f| (f.src_sk, f.dst_sk, f.queue_ns(), f.process_ns()))
            .collect()
    }

    fn counts(&self) -> PairingCounts {
        self.pairing.counts()
    }
}

const D: u64 = 0xa0;
const D2: u64 = 0xa1;
const D3: u64 = 0xa2;
const U: u64 = 0xb0;
const U2: u64 = 0xb1;
const U3: u64 = 0xb2;

#[test]
fn simple_request_and_response() {
    let s = Sim::run(&[
        Arrive(D, 100),
        Read(7, D, 300, 130),
        Write(7, U, 320, 180),
        Arrive(U, 5000),
        Read(7, U, 900, 5010),
        Write(7, D, 900, 5040),
    ]);
    assert_eq!(s.times(), [(D, U, 30, 50), (U, D, 10, 30)]);
    assert_eq!(s.forwards[0].bytes, 300);
    assert_eq!(s.forwards[1].total_ns(), 40);
    assert_eq!(
        s.forwards.iter().map(|f| f.basis).collect::<Vec<_>>(),
        [Basis::Only, Basis::Partner]
    );
}

#[test]
fn partial_reads_restart_the_clock_at_the_last_arrival() {
    // Headers arrive, the body trickles in 10 ms later from a slow peer: the
    // wait for the body is the peer's, not the proxy's.
    let s = Sim::run(&[
        Arrive(D, 100),
        Read(7, D, 200, 120),
        Arrive(D, 10_100),
        Read(7, D, 50, 10_110),
        Write(7, U, 250, 10_140),
    ]);
    assert_eq!(s.times(), [(D, U, 10, 30)]);
    assert_eq!(s.forwards[0].bytes, 250);
}

#[test]
fn one_read_of_data_that_arrived_over_time_is_timed_from_the_oldest() {
    // Several streams' frames of a multiplexed connection, queued while the
    // proxy was busy, taken by one read: the first waited longest.
    let s = Sim::run(&[
        Arrive(D, 100),
        Arrive(D, 150),
        Arrive(D, 180),
        Read(7, D, 300, 200),
        Write(7, U, 300, 230),
    ]);
    assert_eq!(s.times(), [(D, U, 100, 30)]);
}

#[test]
fn a_read_that_left_data_behind_keeps_the_clock_for_the_rest() {
    // The first read took part of what had arrived; the second takes the
    // rest, which was the proxy's to take at the first: the clock stays.
    let s = Sim::run(&[
        Arrive(D, 100),
        Arrive(D, 150),
        Read(7, D, 4096, 200),
        Read(7, D, 1000, 220),
        Write(7, U, 5096, 240),
    ]);
    assert_eq!(s.times(), [(D, U, 120, 20)]);
}

#[test]
fn read_in_pieces_of_one_arrival_keeps_that_arrival() {
    let s = Sim::run(&[
        Arrive(D, 100),
        Read(7, D, 4096, 120),
        Read(7, D, 4096, 140),
        Write(7, U, 8192, 160),
    ]);
    assert_eq!(s.times(), [(D, U, 40, 20)]);
}

#[test]
fn split_response_held_by_the_proxy_while_it_serves_others() {
    // The app sends headers, then its body 40 ms later (Nagle behind the
    // proxy's delayed ACK); nginx holds the headers (postpone_output) and
    // meanwhile forwards requests of other connections. The held headers
    // must neither be paired with those writes nor charge the 40 ms.
    let s = Sim::run(&[
        Arrive(U, 1_000),
        Read(7, U, 120, 1_010),
        Arrive(D2, 2_000),
        Read(7, D2, 80, 2_010),
        Write(7, U2, 90, 2_030),
        Arrive(D3, 3_000),
        Read(7, D3, 80, 3_010),
        Write(7, U3, 90, 3_030),
        Arrive(U, 41_000),
        Read(7, U, 128, 41_010),
        Write(7, D, 248, 41_040),
    ]);
    assert_eq!(
        s.times(),
        [(D2, U2, 10, 20), (D3, U3, 10, 20), (U, D, 10, 30)]
    );
    assert_eq!(s.counts().ambiguous, 0);
}

#[test]
fn split_response_forwarded_in_two_parts_counts_two_forwards() {
    let s = Sim::run(&[
        Arrive(U, 1_000),
        Read(7, U, 120, 1_010),
        Write(7, D, 120, 1_020),
        Arrive(U, 41_000),
        Read(7, U, 128, 41_010),
        Write(7, D, 128, 41_040),
    ]);
    assert_eq!(s.times(), [(U, D, 10, 10), (U, D, 10, 30)]);
}

#[test]
fn streamed_chunks_on_sixteen_connections() {
    // 16 keepalive connections, each response streamed in 5 chunks 10 ms
    // apart; the proxy forwards each chunk as it comes, interleaved with
    // the other connections' chunks and new requests.
    let mut evs = Vec::new();
    let mut t = 0;
    let down = |i: u64| 0xa00 + i;
    let up = |i: u64| 0xb00 + i;
    for i in 0..16 {
        t += 100;
        evs.extend([
            Arrive(down(i), t),
            Read(3, down(i), 80, t + 5),
            Write(3, up(i), 95, t + 15),
        ]);
    }
    for chunk in 0..5u64 {
        for i in 0..16 {
            let t = 10_000 * (chunk + 1) + 200 * i;
            evs.extend([
                Arrive(up(i), t),
                Read(3, up(i), 30, t + 5),
                Write(3, down(i), 30, t + 25),
            ]);
        }
    }
    let s = Sim::run(&evs);
    assert_eq!(s.forwards.len(), 16 + 16 * 5);
    assert!(s.times().iter().all(|&(_, _, q, p)| q == 5 && p <= 20));
    assert_eq!(s.counts().ambiguous, 0);
}

#[test]
fn connections_interleaved_on_one_thread() {
    let s = Sim::run(&[
        Arrive(D, 100),
        Arrive(D2, 105),
        Read(7, D, 10, 110),
        Write(7, U, 10, 120),
        Read(7, D2, 10, 130),
        Write(7, U2, 10, 150),
        Arrive(U2, 400),
        Read(7, U2, 10, 410),
        Write(7, D2, 10, 415),
    ]);
    assert_eq!(
        s.times(),
        [(D, U, 10, 10), (D2, U2, 25, 20), (U2, D2, 10, 5)]
    );
}

#[test]
fn keepalive_reuse_pairs_each_request_once() {
    let mut evs = Vec::new();
    for i in 0..100u64 {
        let t = i * 1000;
        evs.extend([
            Arrive(D, t),
            Read(7, D, 100, t + 10),
            Write(7, U, 110, t + 30),
            Arrive(U, t + 500),
            Read(7, U, 100, t + 505),
            Write(7, D, 90, t + 520),
        ]);
    }
    let s = Sim::run(&evs);
    assert_eq!(s.forwards.len(), 200);
    assert!(s.times().iter().all(|&(_, _, q, p)| q <= 10 && p <= 20));
}

#[test]
fn an_http1_pool_pairs_a_downstream_with_another_upstream_per_request() {
    // D's first request goes out on U, its second on U2 while D2's goes on U.
    let s = Sim::run(&[
        Read(7, D, 100, 10),
        Write(7, U, 110, 20),
        Read(7, U, 50, 100),
        Write(7, D, 50, 110),
        Read(7, D2, 100, 200),
        Write(7, U, 110, 210),
        Read(7, D, 100, 300),
        Write(7, U2, 110, 310),
        Read(7, U2, 50, 400),
        Write(7, D, 50, 410),
        Read(7, U, 50, 420),
        Write(7, D2, 50, 430),
    ]);
    let pairs: Vec<_> = s.times().iter().map(|t| (t.0, t.1)).collect();
    assert_eq!(pairs, [(D, U), (U, D), (D2, U), (D, U2), (U2, D), (U, D2)]);
    assert_eq!(s.counts().ambiguous, 0);
}

#[test]
fn pipelined_requests_charge_the_wait_in_the_queue() {
    // Two requests arrive in one segment; the second waits while the first is
    // processed, and that wait is the proxy's queue time.
    let s = Sim::run(&[
        Arrive(D, 100),
        Read(7, D, 100, 110),
        Write(7, U, 100, 150),
        Read(7, D, 100, 160),
        Write(7, U, 100, 190),
    ]);
    assert_eq!(s.times(), [(D, U, 10, 40), (D, U, 60, 30)]);
}

#[test]
fn batch_reads_then_writes_on_known_pairs_are_decided() {
    // Envoy's worker: every ready socket read, then the writes activated
    // during the reads. Pairs known from earlier forwards decide.
    let mut evs = Vec::new();
    for (d, u) in [(D, U), (D2, U2), (D3, U3)] {
        evs.extend([Read(7, d, 10, 1), Write(7, u, 10, 2)]);
        evs.extend([Read(7, u, 10, 3), Write(7, d, 10, 4)]);
    }
    evs.extend([
        Arrive(D3, 100),
        Arrive(U2, 100),
        Arrive(D, 100),
        Read(7, D3, 10, 110),
        Read(7, U2, 10, 120),
        Read(7, D, 10, 130),
        Write(7, U3, 10, 140),
        Write(7, D2, 10, 150),
        Write(7, U, 10, 160),
    ]);
    let s = Sim::run(&evs);
    assert_eq!(
        s.times()[6..],
        [(D3, U3, 10, 30), (U2, D2, 20, 30), (D, U, 30, 30)]
    );
    assert_eq!(s.counts().ambiguous, 0);
}

#[test]
fn batch_reads_of_new_connections_are_counted_ambiguous() {
    // Three first requests read before any write, all the same size and on
    // connections with no history: nothing decides. The oldest is taken
    // (writes follow the order of the reads) and each such forward counted.
    let s = Sim::run(&[
        Read(7, D, 10, 110),
        Read(7, D2, 10, 120),
        Read(7, D3, 10, 130),
        Write(7, U, 12, 140),
        Write(7, U2, 12, 150),
        Write(7, U3, 12, 160),
    ]);
    let pairs: Vec<_> = s.times().iter().map(|t| (t.0, t.1)).collect();
    assert_eq!(pairs, [(D, U), (D2, U2), (D3, U3)]);
    assert_eq!(s.counts().ambiguous, 2, "the last write had one candidate");
    assert_eq!(
        s.forwards.iter().map(|f| f.basis).collect::<Vec<_>>(),
        [Basis::Ambiguous, Basis::Ambiguous, Basis::Only]
    );
}

#[test]
fn a_new_upstream_connected_for_the_request_just_read_decides() {
    // An HTTP proxy reads a first request, connects an upstream for it,
    // reads another new connection's first request, connects for that one;
    // the connects complete in the other order.
    let s = Sim::run(&[
        Read(7, D, 10, 110),
        Connect(7, U),
        Read(7, D2, 10, 120),
        Connect(7, U2),
        Write(7, U2, 12, 300),
        Write(7, U, 12, 310),
    ]);
    let pairs: Vec<_> = s.times().iter().map(|t| (t.0, t.1)).collect();
    assert_eq!(pairs, [(D2, U2), (D, U)]);
    assert_eq!(s.counts().ambiguous, 0);
    // A connect after a write (an L4 proxy connecting at accept) says
    // nothing.
    let l4 = Sim::run(&[
        Read(7, D, 10, 110),
        Write(7, D3, 10, 115),
        Connect(7, U),
        Read(7, D2, 10, 120),
        Write(7, U, 12, 300),
    ]);
    assert_eq!(l4.forwards[0].basis, Basis::Ambiguous);
}

#[test]
fn an_event_loop_reading_all_then_connecting_all_connects_in_read_order() {
    // One turn reads three new connections' first requests (and a response
    // on an older pair), then connects an upstream for each new one in the
    // order read; the holds end in another order.
    let s = Sim::run(&[
        Read(7, D, 10, 1),
        Write(7, U, 10, 2),
        Read(7, D2, 10, 110),
        Read(7, U, 50, 112),
        Read(7, D3, 10, 115),
        Read(7, 0xa3, 10, 118),
        Connect(7, U2),
        Connect(7, U3),
        Connect(7, 0xb3),
        Write(7, 0xb3, 12, 300),
        Write(7, D, 50, 305),
        Write(7, U2, 12, 310),
        Write(7, U3, 12, 320),
    ]);
    let pairs: Vec<_> = s.times().iter().map(|t| (t.0, t.1)).collect();
    assert_eq!(pairs, [(D, U), (0xa3, 0xb3), (U, D), (D2, U2), (D3, U3)]);
    assert_eq!(s.counts().ambiguous, 0);
    assert!(
        s.forwards[1..]
            .iter()
            .filter(|f| f.dst_sk != D)
            .all(|f| f.basis == Basis::Connect)
    );
    // A later turn: one new connection's first request, a response read
    // after it, then its connect.
    let later = Sim::run(&[
        Read(7, D, 10, 1),
        Write(7, U, 10, 2),
        Read(7, D2, 10, 110),
        Read(7, D3, 10, 112),
        Connect(7, U2),
        Connect(7, U3),
        Read(7, 0xa3, 10, 200),
        Read(7, U, 50, 205),
        Connect(7, 0xb3),
        Write(7, 0xb3, 12, 300),
        Write(7, U3, 12, 305),
        Write(7, U2, 12, 310),
    ]);
    let pairs: Vec<_> = later.times().iter().map(|t| (t.0, t.1)).collect();
    assert_eq!(pairs, [(D, U), (0xa3, 0xb3), (D3, U3), (D2, U2)]);
    assert_eq!(later.counts().ambiguous, 0);
    // Fewer connects than new reads (one request went to a pooled
    // connection): no order decides, and what is guessed is counted.
    let pooled = Sim::run(&[
        Read(7, D, 10, 110),
        Read(7, D2, 10, 120),
        Read(7, D3, 10, 130),
        Connect(7, U),
        Connect(7, U2),
        Write(7, U2, 12, 300),
        Write(7, U, 12, 310),
    ]);
    assert!(pooled.forwards.iter().all(|f| f.basis != Basis::Connect));
    assert_eq!(pooled.counts().ambiguous, 2);
}

#[test]
fn byte_counts_decide_for_a_transparent_proxy() {
    let s = Sim::run(&[
        Read(7, D, 10, 110),
        Read(7, D2, 20, 120),
        Read(7, D3, 30, 130),
        Write(7, U2, 20, 140),
        Write(7, U3, 30, 150),
        Write(7, U, 10, 160),
    ]);
    let pairs: Vec<_> = s.times().iter().map(|t| (t.0, t.1)).collect();
    assert_eq!(pairs, [(D2, U2), (D3, U3), (D, U)]);
    assert_eq!(s.counts().ambiguous, 0);
}

#[test]
fn an_async_filter_holds_one_request_while_others_pass() {
    // ext_authz holds D's request 3 ms; D2 and D3 pass meanwhile. The hold is
    // the proxy's time and is charged to D alone.
    let mut evs = Vec::new();
    for (d, u) in [(D, U), (D2, U2), (D3, U3)] {
        evs.extend([Read(7, d, 10, 1), Write(7, u, 10, 2)]);
    }
    evs.extend([
        Arrive(D, 1_000),
        Read(7, D, 10, 1_010),
        Arrive(D2, 1_500),
        Read(7, D2, 10, 1_510),
        Write(7, U2, 10, 1_530),
        Arrive(D3, 2_000),
        Read(7, D3, 10, 2_010),
        Write(7, U3, 10, 2_030),
        Write(7, U, 10, 4_010),
    ]);
    let s = Sim::run(&evs);
    assert_eq!(
        s.times()[3..],
        [(D2, U2, 10, 20), (D3, U3, 10, 20), (D, U, 10, 3_000)]
    );
    assert_eq!(s.counts().ambiguous, 0);
}

#[test]
fn streams_of_several_downstreams_written_to_one_multiplexed_upstream() {
    // HTTP/2 upstream: D, D2 and D3 all forward to U. One write to U carries
    // the requests of all three that were read before it.
    let mut evs = Vec::new();
    for d in [D, D2, D3] {
        evs.extend([Read(7, d, 10, 1), Write(7, U, 10, 2)]);
    }
    evs.extend([
        Arrive(D, 100),
        Arrive(D2, 110),
        Arrive(D3, 120),
        Read(7, D, 10, 130),
        Read(7, D2, 10, 140),
        Read(7, D3, 10, 150),
        Write(7, U, 30, 160),
        Write(7, U, 30, 170),
    ]);
    let s = Sim::run(&evs);
    let mut tail: Vec<_> = s.times()[3..].to_vec();
    tail.sort_unstable();
    assert_eq!(tail, [(D, U, 30, 30), (D2, U, 30, 20), (D3, U, 30, 10)]);
    assert_eq!(s.counts().ambiguous, 0);
}

/// Three HTTP/2 clients' requests go out on one upstream connection,
/// which shows it is multiplexed; then the proxy idles.
fn three_streams_upstream() -> Vec<Ev> {
    let mut evs = Vec::new();
    for (i, d) in [D, D2, D3].into_iter().enumerate() {
        let t = 10 * i as u64;
        evs.extend([Read(7, d, 10, t + 1), Write(7, U, 10, t + 2)]);
    }
    evs
}

/// After [`three_streams_upstream`] and `before`: `bytes` of the clients'
/// responses come back in one read of the upstream at 5 ms, which the
/// proxy acknowledges there (WINDOW_UPDATE); then `writes`.
fn responses_read_at_once(before: &[Ev], bytes: u64, writes: &[Ev]) -> Vec<Ev> {
    let mut evs = three_streams_upstream();
    evs.extend_from_slice(before);
    evs.extend([
        Arrive(U, 5_000_000),
        Read(7, U, bytes, 5_000_010),
        Write(7, U, 13, 5_000_020),
    ]);
    evs.extend_from_slice(writes);
    evs
}

#[test]
fn one_read_of_several_streams_written_to_each_client_is_a_forward_each() {
    // The three responses come back in one read of the upstream; the proxy
    // acknowledges it there (WINDOW_UPDATE) and writes each response to its
    // client, one after the other: each client's response is timed from
    // the read's arrival to its own write.
    let evs = responses_read_at_once(
        &[],
        300,
        &[
            Write(7, D, 100, 5_000_030),
            Write(7, D2, 100, 5_000_040),
            Write(7, D3, 100, 5_000_050),
        ],
    );
    let s = Sim::run(&evs);
    assert_eq!(
        s.times()[3..],
        [(U, D, 10, 20), (U, D2, 10, 30), (U, D3, 10, 40)],
        "{:?}",
        s.forwards
    );
    let later: Vec<(Basis, u64)> = s.forwards[4..].iter().map(|f| (f.basis, f.bytes)).collect();
    // The read's bytes are counted once, with the first.
    assert_eq!(s.forwards[3].bytes, 300);
    assert_eq!(later, [(Basis::Fanout, 0), (Basis::Fanout, 0)]);
    // A second write to a client already written is a continuation.
    let mut again = evs.clone();
    again.push(Write(7, D2, 50, 5_000_060));
    assert_eq!(Sim::run(&again).forwards.len(), 6);
}

#[test]
fn a_fanned_out_read_ends_where_its_bytes_or_its_stretch_of_work_do() {
    let read_then = |tail: &[Ev]| {
        Sim::run(&responses_read_at_once(&[], 200, tail))
            .forwards
            .len()
            - 3
    };
    // Its 200 bytes went to D and D2: a frame the proxy then writes to D3
    // on its own is no forward.
    assert_eq!(
        read_then(&[
            Write(7, D, 100, 5_000_030),
            Write(7, D2, 100, 5_000_040),
            Write(7, D3, 13, 5_000_050),
        ]),
        2
    );
    // An idle gap since its last write: what follows is other work.
    assert_eq!(
        read_then(&[
            Write(7, D, 100, 5_000_030),
            Write(7, D2, 13, 5_000_030 + state::IDLE_GAP_NS),
        ]),
        1
    );
    // A client already answered waits for nothing: a frame written to it
    // is the proxy's own.
    let answered = Sim::run(&responses_read_at_once(
        &[
            Arrive(U, 1_000_000),
            Read(7, U, 100, 1_000_010),
            Write(7, D2, 100, 1_000_020),
        ],
        400,
        &[
            Write(7, D, 100, 5_000_030),
            Write(7, D2, 13, 5_000_040),
            Write(7, D3, 100, 5_000_050),
        ],
    ));
    assert_eq!(
        answered.times()[3..],
        [(U, D2, 10, 10), (U, D, 10, 20), (U, D3, 10, 40)],
        "{:?}",
        answered.forwards
    );
    // Another thread's write does not continue this thread's work.
    assert_eq!(
        read_then(&[Write(7, D, 100, 5_000_030), Write(8, D2, 100, 5_000_040)]),
        1
    );
    // HTTP/1.1 (not multiplexed): a read written to one client only; a
    // write to another of the upstream's former clients is not from it.
    let h1 = Sim::run(&[
        Read(7, D, 10, 1),
        Write(7, U, 10, 2),
        Read(7, U, 10, 3),
        Write(7, D, 10, 4),
        Read(7, D2, 10, 5),
        Write(7, U, 10, 6),
        Arrive(U, 100),
        Read(7, U, 300, 110),
        Write(7, D2, 100, 120),
        Write(7, D, 100, 130),
    ]);
    assert_eq!(h1.forwards.len(), 4, "{:?}", h1.forwards);
}

#[test]
fn new_connections_multiplexed_onto_one_upstream_ride_along() {
    // 16 new HTTP/2 client connections each send a first request; the proxy
    // writes all their streams to its one upstream connection, which has
    // shown it is multiplexed (two earlier clients' streams interleaved on
    // it and were answered), in one write.
    let mut evs = vec![
        Read(7, D, 10, 1),
        Write(7, U, 10, 2),
        Read(7, D2, 10, 3),
        Write(7, U, 10, 4),
        Read(7, U, 10, 5),
        Write(7, D, 10, 6),
    ];
    for i in 0..16 {
        evs.push(Read(7, 0xa00 + i, 110, 100 + i));
    }
    evs.push(Write(7, U, 1400, 200));
    let s = Sim::run(&evs);
    assert_eq!(s.forwards.len(), 3 + 16);
    assert!(
        s.times()[3..].iter().all(|&(_, _, _, p)| p <= 100),
        "{:?}",
        s.times()
    );
    assert_eq!(s.counts().ambiguous, 0);
    // The upstream's replies and an h1 pool do not look multiplexed.
    let h1 = Sim::run(&[
        Read(7, D, 10, 1),
        Write(7, U, 10, 2),
        Read(7, U, 10, 3),
        Write(7, D, 10, 4),
        Read(7, D2, 10, 5),
        Read(7, D3, 10, 6),
        Write(7, U, 10, 7),
    ]);
    assert_eq!(h1.forwards.len(), 3, "one of D2 and D3, not both");
}

#[test]
fn control_frames_left_on_multiplexed_connections_are_not_forwarded_later() {
    // Two HTTP/2 clients: the proxy answers each one's first flight with
    // its SETTINGS (the client acknowledges) and sends the request on its
    // one upstream connection. Each client then sends a frame the proxy
    // keeps (a WINDOW_UPDATE) and the proxy goes idle. 50 ms later the
    // responses come back and the proxy writes a WINDOW_UPDATE upstream:
    // the frames left before the idle gap are not forwarded by it.
    let s = Sim::run(&[
        Read(7, D, 101, 100),
        Write(7, D, 30, 105),
        Read(7, D, 9, 108),
        Write(7, U, 110, 110),
        Read(7, D2, 101, 120),
        Write(7, D2, 30, 125),
        Read(7, D2, 9, 128),
        Write(7, U, 100, 130),
        Read(7, D, 26, 200),
        Read(7, D2, 26, 210),
        Arrive(U, 50_000_000),
        Read(7, U, 390, 50_000_010),
        Write(7, U, 39, 50_000_020),
        Write(7, D, 200, 50_000_030),
    ]);
    assert_eq!(
        s.times(),
        [(D, U, 0, 2), (D2, U, 0, 2), (U, D, 10, 20)],
        "{:?}",
        s.forwards
    );
    // One HTTP/2 connection each side: the proxy answered the client's
    // first flight (SETTINGS; the client acknowledges) and forwarded its
    // request, so a WINDOW_UPDATE the client sends later and the proxy
    // keeps is no request.
    let one = Sim::run(&[
        Read(7, D, 101, 100),
        Write(7, D, 30, 110),
        Read(7, D, 9, 115),
        Write(7, U, 120, 120),
        Read(7, U, 200, 5_000_000),
        Write(7, D, 200, 5_000_010),
        Read(7, D, 26, 5_000_100),
        Read(7, D, 14, 9_000_000),
        Write(7, U, 30, 9_000_010),
        Read(7, D, 26, 9_500_000),
        Write(7, U, 13, 20_000_000),
    ]);
    assert_eq!(
        one.times(),
        [(D, U, 0, 5), (U, D, 0, 10), (D, U, 0, 10)],
        "{:?}",
        one.forwards
    );
    // A held chunk on a connection that is not multiplexed is still
    // forwarded after the proxy idled (an event loop's timer, an async
    // filter).
    let held = Sim::run(&[
        Read(7, D, 10, 100),
        Write(7, U, 10, 110),
        Read(7, U, 10, 200),
        Write(7, D, 10, 210),
        Read(7, D, 10, 300),
        Write(7, U, 10, 5_000_000),
    ]);
    assert_eq!(held.forwards.len(), 3);
    assert_eq!(held.forwards[2].process_ns(), 4_999_700);
}

#[test]
fn a_reply_on_the_same_socket_is_not_a_forward() {
    let s = Sim::run(&[
        Arrive(D, 100),
        Read(7, D, 10, 110),
        Write(7, D, 10, 120),
        Write(7, U, 10, 130),
    ]);
    assert!(s.forwards.is_empty());
    assert_eq!(s.counts().local_replies, 1);
}

#[test]
fn a_local_reply_leaves_the_next_connection_decided() {
    // nginx answers D itself (a 403); D2's request then goes upstream. D's
    // answered data must not compete with it, nor be forwarded later.
    let s = Sim::run(&[
        Read(7, D, 10, 110),
        Write(7, D, 10, 120),
        Read(7, D2, 10, 200),
        Write(7, U2, 10, 210),
        Write(7, U3, 10, 300),
    ]);
    assert_eq!(s.times(), [(D2, U2, 0, 10)]);
    assert_eq!(s.forwards[0].basis, Basis::Only);
    assert_eq!(s.counts().local_replies, 1);
}

#[test]
fn an_http2_window_update_before_the_data_is_written_on() {
    // The proxy reads a response DATA frame from the upstream connection,
    // acknowledges it there (WINDOW_UPDATE), then writes it downstream.
    let s = Sim::run(&[
        Read(7, D, 40, 100),
        Write(7, U, 40, 110),
        Arrive(U, 5_000),
        Read(7, U, 300, 5_010),
        Write(7, U, 13, 5_020),
        Write(7, D, 290, 5_030),
    ]);
    assert_eq!(s.times(), [(D, U, 0, 10), (U, D, 10, 20)]);
}

#[test]
fn continuation_writes_are_not_counted_twice() {
    let s = Sim::run(&[
        Arrive(D, 100),
        Read(7, D, 10, 110),
        Write(7, U, 4, 120),
        Write(7, U, 4, 125),
        Write(7, U, 2, 130),
    ]);
    assert_eq!(s.forwards.len(), 1);
}

#[test]
fn other_threads_do_not_take_a_threads_reads() {
    let s = Sim::run(&[
        Arrive(D, 100),
        Read(7, D, 10, 110),
        Write(8, U, 10, 120),
        Write(7, U, 10, 130),
    ]);
    assert_eq!(s.forwards.len(), 1);
    assert_eq!(s.forwards[0].tid, 7);
}

#[test]
fn a_partner_read_on_another_thread_is_forwarded() {
    // A response written by another thread than the one that read it finds
    // it through the pair the request made.
    let s = Sim::run(&[
        Read(7, D, 10, 110),
        Write(7, U, 10, 120),
        Read(8, U, 10, 500),
        Write(7, D, 10, 520),
    ]);
    assert_eq!(s.times(), [(D, U, 0, 10), (U, D, 0, 20)]);
}

#[test]
fn roles_keep_a_held_response_from_feeding_a_request() {
    // A response read and held on U must not be taken by a write to another
    // upstream, even when it is the only pending read.
    let s = Sim::run(&[Read(7, U, 10, 110), Write(7, U2, 10, 120)]);
    assert!(s.forwards.is_empty());
}

#[test]
fn socket_address_reuse_after_close_starts_clean() {
    // The old connection's arrival and pending read must not leak into a new
    // socket that the allocator places at the same address.
    let s = Sim::run(&[
        Arrive(D, 100),
        Read(7, D, 10, 110),
        Write(7, U, 10, 120),
        Close(D),
        Read(7, D, 10, 9000),
        Write(7, U, 10, 9010),
    ]);
    assert_eq!(s.times(), [(D, U, 10, 10), (D, U, 0, 10)]);
    assert_eq!(s.forwards[1].bytes, 10);
    assert_eq!(s.counts().reads_without_arrival, 1);
}

#[test]
fn pending_reads_are_bounded_and_drops_counted() {
    let mut s = Sim::default();
    let n = state::PENDING_MAX as u64 + 10;
    for i in 0..n {
        s.step(Read(7, 0xa000 + i, 1, i + 1));
    }
    assert_eq!(s.counts().evicted, 10);
    // The oldest were dropped: the newest remain.
    s.step(Write(7, 0xb000, 1, n + 1));
    assert!(s.forwards[0].src_sk >= 0xa000 + 10);
}

#[test]
fn unknown_or_future_arrival_means_zero_queue() {
    assert_eq!(arrival_for_read(0, 50), (50, false));
    assert_eq!(arrival_for_read(60, 50), (50, false));
    assert_eq!(arrival_for_read(40, 50), (40, true));
}

/// A small deterministic generator for the event-loop tests.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One event-loop thread proxying `conns` keepalive connections, holding
/// each chunk 200 µs to 3 ms while it serves the others (the fixture's
/// event-loop mode), with `split` responses in two parts. Returns the
/// events and the true (src, dst, arrival, read, write) of every chunk.
fn event_loop(conns: u64, requests: u64, seed: u64) -> (Vec<Ev>, Vec<(u64, u64, u64)>) {
    #[derive(Clone, Copy)]
    struct Held {
        src: u64,
        dst: u64,
        read: u64,
        write: u64,
        n: u64,
    }
    let mut rng = Rng(seed);
    let mut timeline: Vec<(u64, u8, Ev)> = Vec::new();
    let mut truth = Vec::new();
    for c in 0..conns {
        let (d, u) = (0xa000 + c, 0xb000 + c);
        // A rate-limited load opens its connections as it goes (1 ms
        // apart); a burst of new connections is the ambiguous case above.
        let mut t = 1_000_000 * c + rng.below(5_000);
        for _ in 0..requests {
            let mut chunks = [(d, u, 80 + rng.below(40)), (u, d, 0), (u, d, 0)];
            chunks[1].2 = 100 + rng.below(50);
            chunks[2].2 = 1 + rng.below(500);
            for (i, (src, dst, n)) in chunks.into_iter().enumerate() {
                // The app's body follows its headers by up to 40 ms.
                t += if i == 2 { rng.below(40_000) } else { 50 };
                let read = t + 5 + rng.below(20);
                let write = read + 200 + rng.below(2_800);
                let h = Held {
                    src,
                    dst,
                    read,
                    write,
                    n,
                };
                timeline.push((t, 0, Arrive(h.src, t)));
                timeline.push((h.read, 1, Read(1, h.src, h.n, h.read)));
                timeline.push((h.write, 1, Write(1, h.dst, h.n, h.write)));
                truth.push((h.src, h.read, h.write));
                t = h.write;
            }
        }
    }
    timeline.sort_by_key(|&(t, k, _)| (t, k));
    (timeline.into_iter().map(|(_, _, e)| e).collect(), truth)
}

#[test]
fn event_loop_holding_chunks_matches_ground_truth_at_1_16_and_64_connections() {
    for (conns, seed) in [(1, 11), (16, 22), (64, 33)] {
        let (evs, mut truth) = event_loop(conns, 30, seed);
        let s = Sim::run(&evs);
        let mut got: Vec<_> = s
            .forwards
            .iter()
            .map(|f| (f.src_sk, f.read_ns, f.write_ns))
            .collect();
        got.sort_unstable();
        truth.sort_unstable();
        let right = got
            .iter()
            .filter(|g| truth.binary_search(g).is_ok())
            .count();
        let c = s.counts();
        eprintln!(
            "{conns} connections: {} forwards, {right} right, {} true, {} ambiguous",
            got.len(),
            truth.len(),
            c.ambiguous
        );
        assert!(
            right as f64 >= 0.99 * truth.len() as f64,
            "{conns} connections: {right} of {} right",
            truth.len()
        );
        assert!(c.ambiguous as f64 <= 0.01 * truth.len() as f64);
    }
}

#[test]
fn a_forward_carries_its_split_when_one_followed_thread_read_and_wrote() {
    use crate::sched::{Mark, Split};
    let mark = |runnable_ns, blocked_ns| {
        Some(Mark {
            generation: 5,
            runnable_ns,
            blocked_ns,
        })
    };
    let mut p = Pairing::default();
    let mut out = Vec::new();
    let read = |tid, sk, at_ns, m| super::Read {
        tgid: 1,
        tid,
        sk,
        at_ns,
        arrival_ns: at_ns - 40,
        bytes: 10,
        mark: m,
        queue_runnable_ns: 25,
        edge_ns: 0,
    };
    let write = |tid, sk, at_ns, m| super::Write {
        tgid: 1,
        tid,
        sk,
        at_ns,
        bytes: 10,
        mark: m,
        edge_out: None,
    };
    // Read at 1000, write at 2000: 300 runnable, 200 blocked between.
    p.on_read(&read(7, D, 1_000, mark(50, 100)), Role::Accepted);
    p.on_write(
        &write(7, U, 2_000, mark(350, 300)),
        Role::Connected,
        &mut out,
    );
    assert_eq!(
        out[0].split,
        Some(Split {
            on_cpu_ns: 500,
            runnable_ns: 300,
            blocked_ns: 200
        })
    );
    assert_eq!(out[0].queue_runnable_ns, 25);
    // Read by one thread, written by another: no split of one thread's time.
    p.on_read(&read(7, U, 3_000, mark(400, 300)), Role::Connected);
    p.on_write(&write(8, D, 3_500, mark(0, 0)), Role::Accepted, &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].split, None);
}

/// The pod edge stamp follows the piece whose arrival starts the clock: a
/// later piece with new data brings its own, a piece of data already
/// readable keeps the last, and a piece with new data but no stamp leaves
/// kernel_in unknown rather than wrong.
#[test]
fn the_edge_stamp_follows_the_last_arrival() {
    use super::Role;
    let read = |sk, at_ns, arrival_ns, edge_ns| super::Read {
        tgid: 1,
        tid: 1,
        sk,
        at_ns,
        arrival_ns,
        bytes: 10,
        edge_ns,
        ..Default::default()
    };
    let write = |sk, at_ns| super::Write {
        tgid: 1,
        tid: 1,
        sk,
        at_ns,
        bytes: 10,
        mark: None,
        edge_out: None,
    };
    let kernel_in = |reads: &[super::Read]| {
        let mut p = Pairing::default();
        for r in reads {
            p.on_read(r, Role::Accepted);
        }
        let mut out = Vec::new();
        p.on_write(&write(2, 10_000), Role::Connected, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        out[0].kernel_in_ns()
    };
    assert_eq!(kernel_in(&[read(1, 1_000, 900, 880)]), Some(20));
    // A second piece with new data and its own stamp.
    assert_eq!(
        kernel_in(&[read(1, 1_000, 900, 880), read(1, 2_000, 1_900, 1_870)]),
        Some(30)
    );
    // A second piece of data that was already readable: same arrival.
    assert_eq!(
        kernel_in(&[read(1, 1_000, 900, 880), read(1, 1_100, 900, 0)]),
        Some(20)
    );
    // Or a later arrival, but before the first read (data it left behind).
    assert_eq!(
        kernel_in(&[read(1, 1_000, 900, 880), read(1, 1_100, 950, 0)]),
        Some(20)
    );
    // New data without a stamp: unknown.
    assert_eq!(
        kernel_in(&[read(1, 1_000, 900, 880), read(1, 2_000, 1_900, 0)]),
        None
    );
    // No edge at all (loopback from the app).
    assert_eq!(kernel_in(&[read(1, 1_000, 900, 0)]), None);

    // The forward of one read and the write after it, with the write's
    // edge stamps.
    let forward = |r: super::Read, edge_out| {
        let mut p = Pairing::default();
        p.on_read(&r, Role::Accepted);
        let mut out = Vec::new();
        let mut w = write(2, 10_000);
        w.edge_out = edge_out;
        p.on_write(&w, Role::Connected, &mut out);
        out[0]
    };

    // The way out: the write's own stamps, carried to its forward.
    let f = forward(read(1, 1_000, 900, 0), Some((9_950, 9_990)));
    assert_eq!(f.kernel_out_ns(), Some(40));
    assert_eq!(f.kernel_in_ns(), None);
    // Sent within the write: the data's way ends as it left the pod, not
    // as the write returned 10 us later.
    assert_eq!(f.exit_ns(), 9_990);
    assert_eq!(f.sidecar_total_ns(), 9_990 - 900);
    assert_eq!(f.total_ns(), 10_000 - 900);

    // An edge stamp from before the proxy read the data cannot be where
    // this data left: the way ends as the write returned.
    let f = forward(read(1, 1_000, 900, 0), Some((950, 990)));
    assert_eq!(f.exit_ns(), 10_000);
    assert_eq!(f.sidecar_total_ns(), 10_000 - 900);

    // In through the edge, out after the write returned (held by TCP).
    let f = forward(read(1, 1_000, 900, 850), Some((10_100, 10_130)));
    assert_eq!(f.kernel_in_ns(), Some(50));
    assert_eq!(f.kernel_out_ns(), Some(30));
    assert_eq!(f.sidecar_total_ns(), 10_130 - 850);
}
