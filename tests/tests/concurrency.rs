//! Pairing under concurrency, at 1, 16 and 64 connections: against the
//! event-loop and batch fixtures' own account of every chunk, and, with a
//! slow app, real proxies (nginx, haproxy; HTTP/1.1 with one-write, split
//! and chunked responses, and HTTP/2) must never charge the app's time to
//! the proxy; and an HTTP/2 read written on to several clients is a
//! forward per client.
use std::{thread, time::Duration};

use meshbox::{LoadResult, SidecarKind, app::AppResponse, delay_proxy, delay_proxy::ProxyMode};
use profiler::{classify::Leg, report::Snapshot};
use profiler_tests::{
    NoDeepIdle,
    capture::{HOPS, hop, oha, profile_under_load, sidecar},
    mesh, steal,
};

const CONNECTIONS: [u32; 3] = [1, 16, 64];

/// Ambiguous and unclassified forwards together, as a share of all.
fn undecided_share(snap: &Snapshot) -> (u64, u64, f64) {
    let all: u64 = snap
        .sidecars
        .iter()
        .flat_map(|s| &s.hops)
        .map(|h| h.forwards)
        .sum::<u64>()
        + snap.unclassified_forwards;
    let undecided = snap.ambiguous_forwards + snap.unclassified_forwards;
    (undecided, all, undecided as f64 / all.max(1) as f64)
}

/// The fixture as both sidecars, timing itself; the server's inbound hop is
/// compared with its account of the same chunks.
fn fixture_matches_its_account(mode: ProxyMode) {
    let _no_idle = NoDeepIdle::hold();
    for conns in CONNECTIONS {
        let mut cfg = mesh::config(SidecarKind::DelayProxy);
        cfg.proxy_mode = mode;
        let m = mesh::up(&cfg);
        let stats = m.delay_proxy_stats(&m.server);
        let before = delay_proxy::read_stats(&stats).unwrap_or_default();
        let (snap, load) = profile_under_load(&m, oha(conns, (conns * 40).min(400), 4));
        assert!(load.completed > 50, "{conns} connections: {load:?}");
        thread::sleep(Duration::from_millis(300));
        let truth = delay_proxy::read_stats(&stats).expect("fixture stats");
        let server = sidecar(&snap, "server-");
        let (undecided, all, share) = undecided_share(&snap);
        eprintln!(
            "{mode:?} {conns} connections: {undecided} of {all} forwards undecided \
             ({} unclassified, {} ambiguous); {} events lost, {} reads without arrival, \
             {} unforwarded reads dropped, {} local replies",
            snap.unclassified_forwards,
            snap.ambiguous_forwards,
            snap.lost_events,
            snap.reads_without_arrival,
            snap.unforwarded_reads_dropped,
            snap.local_replies
        );
        for (leg, key) in [
            (Leg::Request, "inbound/request"),
            (Leg::Response, "inbound/response"),
        ] {
            let ours = hop(server, HOPS[1].1, leg);
            let t = &truth[key];
            let chunks = t.forwards - before.get(key).map_or(0, |b| b.forwards);
            let p = &ours.process_us;
            eprintln!(
                "{mode:?} {conns} connections {key}: {} forwards ({} ambiguous) for {chunks} chunks; \
                 process p50 {:.1} p99 {:.1} us, fixture p50 {:.1} p99 {:.1} us",
                ours.forwards, ours.ambiguous, p.p50, p.p99, t.p50_us, t.p99_us
            );
            assert!(
                ours.forwards as f64 >= 0.99 * chunks as f64 && ours.forwards <= chunks + 2,
                "{conns} connections {key}: {} forwards for {chunks} chunks",
                ours.forwards
            );
            // The profiler's clock stops inside the write: between the
            // fixture's clock before its write call and after it returns
            // (a preemption right after the write shows in the fixture's
            // figure only).
            for (q, o, lo, f) in [
                ("p50", p.p50, t.before_write_p50_us, t.p50_us),
                ("p99", p.p99, t.before_write_p99_us, t.p99_us),
            ] {
                let slack = (0.05 * f).max(100.0);
                assert!(
                    o <= f + slack && o >= lo - slack,
                    "{conns} connections {key}: process {q} {o:.1} us vs the fixture's \
                     {lo:.1} before its write and {f:.1} after (slack {slack:.1})"
                );
            }
        }
        assert!(
            share <= 0.01,
            "{conns} connections: {undecided} of {all} undecided"
        );
    }
}

#[test]
fn event_loop_fixture_holding_chunks_matches_its_own_account() {
    fixture_matches_its_account(ProxyMode::EventLoop {
        hold_min: Duration::from_micros(200),
        hold_max: Duration::from_millis(3),
    });
}

#[test]
fn batch_fixture_reading_all_then_writing_all_matches_its_own_account() {
    fixture_matches_its_account(ProxyMode::Batch);
}

/// With the app taking 50 ms (plus Nagle's ~40 ms for split responses, or
/// 40 ms of chunks), no sidecar hop may show it; nor may any forward's
/// queue reach 20 ms, which data timed from an arrival before the proxy's
/// last read of the socket would.
fn no_leak(kind: SidecarKind, response: AppResponse, http2: bool) {
    // At 1 connection the machine idles between requests; a halted vCPU's
    // wake-up would show as milliseconds of (real) queue time.
    let _no_idle = NoDeepIdle::hold();
    for conns in CONNECTIONS {
        let mut cfg = mesh::config(kind);
        cfg.app_delay = Duration::from_millis(50);
        cfg.app_response = response;
        cfg.http2 = http2;
        let m = mesh::up(&cfg);
        // Below what the app and this machine take: one request in flight
        // per HTTP/1.1 connection (50 ms, or ~90 ms for split and chunked
        // responses); on HTTP/2, 200 requests/s in all, which keeps ten
        // streams in flight on one connection. At least 200 requests, so
        // that a p99 is not just the largest value.
        let rate = match (http2, response) {
            (true, _) => 200,
            (false, AppResponse::OneWrite) => (conns * 16).min(400),
            (false, _) => (conns * 10).min(400),
        };
        let secs = u64::from(200u32.div_ceil(rate)).clamp(5, 20);
        let mut spec = oha(conns, rate, secs);
        if http2 {
            // Ten streams on each connection, paced evenly.
            spec.streams = 10;
        }
        let what = format!("{kind:?} {response:?} h2={http2} {conns} conns");
        let leak = smallest_leak(&cfg);
        // A leak is the app's time charged to a proxy: at least `leak` on
        // every forward it touches, so a hop's p99 at half of it fails at
        // once. The 1 ms tail bound is stricter than that, and a stall of
        // the machine (the hypervisor's stolen time, or several tasks
        // runnable on two CPUs) breaks it for a few milliseconds of real
        // proxy latency that is not the app's: a window failing only on
        // that is measured once more, saying so with the steal and the
        // proxies' time runnable; failing twice fails.
        for attempt in 1..=2 {
            let steal0 = steal::total_ms();
            let (snap, load) = profile_under_load(&m, spec.clone());
            let stolen = steal::since(steal0).map_or(0, |ms| ms.max(0.0) as u64);
            let (leaked, tail) = check_no_leak(&what, &snap, &load, http2, leak);
            if let Some(e) = leaked {
                panic!("{e} (hypervisor steal in the window: {stolen} ms)");
            }
            match tail {
                None => break,
                Some(e) if attempt == 1 => eprintln!(
                    "{e}; no hop near the {} ms a leak would add, {stolen} ms stolen by the \
                     hypervisor in the window: measuring again",
                    leak.as_millis()
                ),
                Some(e) => panic!("{e} (hypervisor steal in the window: {stolen} ms)"),
            }
        }
    }
}

/// Half the least delayed ACK (TCP_DELACK_MIN, 40 ms): a forward's queue
/// this long, where the proxy reads within microseconds, was timed from data
/// it had read before.
const STALE_QUEUE_US: f64 = 20_000.0;

/// The least time the app puts between two pieces of data a proxy
/// forwards: what a forward charged with the app's time would show at least.
fn smallest_leak(cfg: &meshbox::MeshConfig) -> Duration {
    match cfg.app_response {
        AppResponse::OneWrite => cfg.app_delay,
        // The kernel's least delayed ACK (TCP_DELACK_MIN) holds the body.
        AppResponse::Split => cfg.app_delay.min(Duration::from_millis(40)),
        AppResponse::Chunked { gap, .. } => cfg.app_delay.min(gap),
    }
}

fn check_no_leak(
    what: &str,
    snap: &Snapshot,
    load: &LoadResult,
    http2: bool,
    leak: Duration,
) -> (Option<String>, Option<String>) {
    if !(load.completed >= 20 && load.p50_us > 50_000.0) {
        return (
            Some(format!(
                "{what}: the app's delay does not show at the client: {load:?}"
            )),
            None,
        );
    }
    let leak_us = leak.as_secs_f64() * 1e6;
    let mut leaked = Vec::new();
    let (undecided, all, share) = undecided_share(snap);
    eprintln!(
        "{what}: {} requests, {undecided} of {all} forwards undecided; {} events lost, \
         {} program runs skipped, {} reads without arrival",
        load.completed, snap.lost_events, snap.skipped_program_runs, snap.reads_without_arrival
    );
    let mut failed = Vec::new();
    for (pod, d) in HOPS {
        let s = sidecar(snap, pod);
        for leg in [Leg::Request, Leg::Response] {
            let h = hop(s, d, leg);
            eprintln!(
                "{what} {pod} {d:?} {leg:?}: {} forwards ({} ambiguous), total p50 {:.1} p99 {:.1} \
                 max {:.1} us (p99 queue {:.1}, of it runnable {:.1}; process {:.1}: on cpu {:.1}, \
                 runnable {:.1}, asleep {:.1}; the largest queue {:.1}, process {:.1})",
                h.forwards,
                h.ambiguous,
                h.total_us.p50,
                h.total_us.p99,
                h.total_us.max,
                h.queue_us.p99,
                h.queue_runqueue_us.p99,
                h.process_us.p99,
                h.on_cpu_us.p99,
                h.runqueue_us.p99,
                h.blocked_us.p99,
                h.queue_us.max,
                h.process_us.max
            );
            if h.total_us.p99 >= leak_us / 2.0 {
                leaked.push(format!(
                    "{what} {pod} {d:?} {leg:?}: total p99 {:.1} us, at least half the {:.0} us \
                     a leak of the app's time would add",
                    h.total_us.p99, leak_us
                ));
            } else if h.total_us.p99 >= 1000.0 {
                failed.push(format!(
                    "{what} {pod} {d:?} {leg:?}: total p99 {:.1} us",
                    h.total_us.p99
                ));
            }
            // Data now and then becomes readable without the data-ready
            // hook seeing it (a split response's second half); timed from
            // the arrival before the proxy's last read, it showed as ~40 ms
            // of queue on one forward in thousands.
            if h.queue_us.max >= STALE_QUEUE_US {
                failed.push(format!(
                    "{what} {pod} {d:?} {leg:?}: largest queue {:.1} us",
                    h.queue_us.max
                ));
            }
        }
        // A multiplexed connection carries several requests in one write.
        if !http2 {
            let f = hop(s, d, Leg::Request).forwards as f64;
            let want = load.completed as f64;
            if (f - want).abs() > (0.01 * want).max(2.0) {
                failed.push(format!(
                    "{what} {pod}: {f} request forwards for {want} completed requests"
                ));
            }
        }
    }
    if share > 0.01 {
        failed.push(format!("{what}: {undecided} of {all} undecided"));
    }
    let joined = |v: Vec<String>| (!v.is_empty()).then(|| v.join("; "));
    (joined(leaked), joined(failed))
}

#[test]
fn nginx_one_write_responses_do_not_leak() {
    no_leak(SidecarKind::Nginx, AppResponse::OneWrite, false);
}

#[test]
fn nginx_split_responses_do_not_leak() {
    no_leak(SidecarKind::Nginx, AppResponse::Split, false);
}

#[test]
fn nginx_chunked_responses_do_not_leak() {
    no_leak(SidecarKind::Nginx, chunked(), false);
}

#[test]
fn haproxy_one_write_responses_do_not_leak() {
    no_leak(SidecarKind::Haproxy, AppResponse::OneWrite, false);
}

#[test]
fn haproxy_split_responses_do_not_leak() {
    no_leak(SidecarKind::Haproxy, AppResponse::Split, false);
}

#[test]
fn haproxy_chunked_responses_do_not_leak() {
    no_leak(SidecarKind::Haproxy, chunked(), false);
}

#[test]
fn http2_through_haproxy_does_not_leak() {
    no_leak(SidecarKind::Haproxy, AppResponse::OneWrite, true);
}

fn chunked() -> AppResponse {
    AppResponse::Chunked {
        chunks: 5,
        gap: Duration::from_millis(10),
    }
}

/// h2load's four connections send their requests in step (one timer on one
/// thread): the client's sidecar sends the four on its one connection
/// upstream in one write, and reads the four responses back in one read,
/// which it writes to the four clients in turn. Each client's write is a
/// forward of its own (fan-out), timed from that read: without it the leg
/// counted one forward a read (799 for 2500 requests in the demo's shape).
/// Fewer forwards than responses remain where one client's streams share a
/// write; more would mean a write counted that carried no response.
#[test]
fn http2_responses_read_together_are_a_forward_per_client() {
    let mut cfg = mesh::config(SidecarKind::Haproxy);
    cfg.http2 = true;
    cfg.app_delay = Duration::from_micros(200);
    cfg.app_size = 512;
    let m = mesh::up(&cfg);
    let spec = meshbox::LoadSpec {
        generator: meshbox::LoadGen::H2load,
        duration: Duration::from_secs(5),
        connections: 4,
        rate: Some(500),
        streams: meshbox::load::DEFAULT_STREAMS,
    };
    let (snap, load) = profile_under_load(&m, spec);
    let client = sidecar(&snap, "client-");
    let h = hop(client, HOPS[0].1, Leg::Response);
    let reqs = hop(client, HOPS[0].1, Leg::Request);
    eprintln!(
        "{} requests: {} request forwards, {} response forwards (p50 {:.1} us)",
        load.completed, reqs.forwards, h.forwards, h.total_us.p50
    );
    assert!(load.completed >= 2000 && load.errors == 0, "{load:?}");
    let share = h.forwards as f64 / load.completed as f64;
    assert!(
        (0.75..=1.01).contains(&share),
        "{} response forwards for {} requests on the client's sidecar ({:.2} a request; \
         a read of several streams' responses should be a forward per client written)",
        h.forwards,
        load.completed,
        share
    );
}
