//! The aggregation side driven by recorded events, no BPF: an inbound hop
//! of the server pod's sidecar, both legs, through time order, pairing,
//! classification and the histograms; and what happens to a sidecar that
//! goes.
use std::net::IpAddr;

use profiler_common::{
    events::{KIND_READ, KIND_WRITE},
    sock::{ROLE_ACCEPTED, ROLE_CONNECTED},
};

use super::*;
use crate::classify::{
    Direction, Leg,
    tests::{LO, OTHER_POD, POD, sock},
};

const PROXY: u32 = 100;
const DOWN: u64 = 0xd0;
const UP: u64 = 0x0f;

fn sidecar() -> Sidecar {
    Sidecar {
        comm: "envoy".into(),
        pid: PROXY,
        pod: Some("reviews-v2-7c9f".into()),
        namespace: Some("bookinfo".into()),
        workload: Some("reviews-v2".into()),
        pod_uid: Some("uid".into()),
        procs: vec![(PROXY, 1)],
        local_addrs: vec![IpAddr::from(POD), IpAddr::from(LO)],
        listen_ports: vec![15001, 15006],
    }
}

fn io(kind: u32, sk: u64, at_ns: u64, arrival_ns: u64) -> Event {
    let io = Io {
        kind,
        tgid: PROXY,
        tid: PROXY,
        sk,
        at_ns,
        arrival_ns,
        bytes: 200,
        ..Io::default()
    };
    if kind == KIND_READ {
        Event::Read(io)
    } else {
        Event::Write(io)
    }
}

fn tracked(alive: bool) -> Aggregate {
    let mut a = Aggregate::new(vec![15090], false);
    let t = a.set_sidecars(vec![sidecar()], |_, _| alive);
    assert_eq!(t.tgids.get(&PROXY), alive.then_some(&0));
    assert_eq!(t.ports.iter().copied().collect::<Vec<_>>(), [15001, 15006]);
    a
}

/// Tracked, with its two sockets open: accepted from the client pod's
/// sidecar on 15006 (DOWN), connected to the app on loopback (UP).
fn with_sockets() -> Aggregate {
    let mut a = tracked(true);
    for (sk, info) in [
        (DOWN, sock(POD, 15006, OTHER_POD, 40000, ROLE_ACCEPTED)),
        (UP, sock(LO, 41000, LO, 8080, ROLE_CONNECTED)),
    ] {
        a.apply(Event::SockOpen { sk, info, at: 0 });
    }
    a
}

#[test]
fn a_request_and_its_response_fill_the_inbound_hop() {
    let mut a = with_sockets();
    for ev in [
        // Request: arrived at 1 ms, read 10 µs later, written 30 µs after.
        io(KIND_READ, DOWN, 1_010_000, 1_000_000),
        io(KIND_WRITE, UP, 1_040_000, 0),
        // Response: arrived at 3 ms, read at +5 µs, written at +20 µs.
        io(KIND_READ, UP, 3_005_000, 3_000_000),
        io(KIND_WRITE, DOWN, 3_025_000, 0),
    ] {
        a.apply(ev);
    }
    let req = &a.hops.by_key[&(0, Direction::Inbound, Leg::Request)];
    let resp = &a.hops.by_key[&(0, Direction::Inbound, Leg::Response)];
    assert_eq!((req.forwards, resp.forwards), (1, 1));
    assert_eq!(req.bytes, 200);
    // The exported buckets see the same clocks: total 40 µs (le 50 µs),
    // queue 10 µs, process 30 µs; the response 25 / 5 / 20 µs.
    let slot = crate::histogram::buckets::slot;
    assert_eq!(req.exported[0].counts[slot(40_000)], 1);
    assert_eq!(req.exported[0].sum_ns, 40_000);
    assert_eq!(req.exported[1].sum_ns, 10_000);
    assert_eq!(req.exported[2].sum_ns, 30_000);
    assert_eq!(
        (
            resp.exported[0].sum_ns,
            resp.exported[1].sum_ns,
            resp.exported[2].sum_ns
        ),
        (25_000, 5_000, 20_000)
    );
    assert_eq!(a.tally, Tally::default());
    assert_eq!(a.sockets(), 2);
}

#[test]
fn records_wait_for_the_horizon_and_are_taken_in_time_order() {
    let mut a = with_sockets();
    // The write reached userspace before its read (another CPU's ring).
    let as_record = |ev: Event| {
        let (Event::Read(io) | Event::Write(io)) = ev else {
            unreachable!("reads and writes only")
        };
        let mut r = Record::default();
        // SAFETY: Io is plain integers and fits in a record.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (&io as *const Io).cast::<u8>(),
                (&mut r as *mut Record).cast::<u8>(),
                size_of::<Io>(),
            )
        };
        r
    };
    let write = as_record(io(KIND_WRITE, UP, 1_040_000, 0));
    let read = as_record(io(KIND_READ, DOWN, 1_010_000, 1_000_000));
    a.ingest(&[write], 1_020_000);
    a.ingest(&[read], 1_020_000);
    // Only the read was before the horizon: nothing forwarded yet.
    assert!(a.hops.by_key.is_empty());
    a.ingest(&[], u64::MAX);
    let req = &a.hops.by_key[&(0, Direction::Inbound, Leg::Request)];
    assert_eq!((req.forwards, req.exported[2].sum_ns), (1, 30_000));
}

#[test]
fn events_of_an_untracked_process_are_counted_not_recorded() {
    let mut a = tracked(false);
    a.apply(io(KIND_READ, DOWN, 10, 5));
    assert_eq!(a.tally.untracked, 1);
    assert_eq!(a.tracked_sidecars(), 0);
}

#[test]
fn a_gone_sidecar_is_forgotten_after_the_ttl_with_its_figures() {
    let mut a = tracked(true);
    a.hops.by_key.insert(
        (0, Direction::Inbound, Leg::Request),
        crate::histogram::HopStats::new(false),
    );
    assert_eq!(a.tracked_sidecars(), 1);
    // Its processes are gone.
    a.set_sidecars(vec![], |_, _| false);
    assert_eq!(a.tracked_sidecars(), 0);
    assert!(a.expire(Duration::from_secs(60), |_, _| false).is_none());
    let (n, t) = a.expire(Duration::ZERO, |_, _| false).expect("expired");
    assert_eq!(n, 1);
    assert!(t.tgids.is_empty() && t.ports.is_empty());
    assert!(a.sidecars.is_empty() && a.hops.by_key.is_empty());
}

#[test]
fn without_the_scheduler_hooks_no_forward_is_split() {
    // The same forward, its read and write marked by one following of the
    // thread: split when the hooks attached, not when they did not (the
    // marks then never moved, and would read as all on-CPU).
    let marked = |ev: Event| match ev {
        Event::Read(mut io) => {
            io.sched_generation = 5;
            Event::Read(io)
        }
        Event::Write(mut io) => {
            io.sched_generation = 5;
            Event::Write(io)
        }
        other => other,
    };
    for attached in [true, false] {
        let mut a = with_sockets();
        a.sched_split = attached;
        a.apply(marked(io(KIND_READ, DOWN, 1_010_000, 1_000_000)));
        a.apply(marked(io(KIND_WRITE, UP, 1_040_000, 0)));
        let req = &a.hops.by_key[&(0, Direction::Inbound, Leg::Request)];
        assert_eq!((req.forwards, req.split), (1, u64::from(attached)));
    }
}
