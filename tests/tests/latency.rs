//! Per-hop latency against ground truth on the mesh in a box.
use std::{thread, time::Duration};

use meshbox::{self as testbed, LoadGen, LoadSpec, SidecarKind, delay_proxy};
use profiler::{
    classify::{Direction, Leg},
    histogram::{ON_CPU, PROCESS, QUEUE, RUNQUEUE},
    snapshot,
};
use profiler_tests::{
    NoDeepIdle,
    capture::{HOPS, hop, istio, profile_under_load, sidecar},
    contend::{Hogs, PinSelf, pin},
    mesh,
};

fn oha(secs: u64, rate: u32) -> LoadSpec {
    LoadSpec {
        generator: LoadGen::Oha,
        duration: Duration::from_secs(secs),
        connections: 2,
        rate: Some(rate),
        streams: 1,
    }
}

fn ground_truth(delay: Duration) {
    let mut cfg = mesh::config(SidecarKind::DelayProxy);
    cfg.proxy_delay = delay;
    let m = mesh::up(&cfg);
    let (snap, load) = profile_under_load(&m, oha(8, 100));
    assert!(load.completed > 600, "{load:?}");
    thread::sleep(Duration::from_millis(300));
    let truth = delay_proxy::read_stats(&m.delay_proxy_stats(&m.server)).expect("fixture stats");
    let server = sidecar(&snap, "server-");
    for (leg, key) in [
        (Leg::Request, "inbound/request"),
        (Leg::Response, "inbound/response"),
    ] {
        let ours = &hop(server, Direction::Inbound, leg).process_us;
        let t = &truth[key];
        eprintln!(
            "delay {delay:?} {key}: profiler process p50 {:.1} p99 {:.1} us; fixture p50 {:.1} \
             p99 {:.1} us ({:.1} and {:.1} before its write call)",
            ours.p50, ours.p99, t.p50_us, t.p99_us, t.before_write_p50_us, t.before_write_p99_us
        );
        // The profiler's clock stops inside the write: between the
        // fixture's clock before its write call and after it returns.
        for (q, o, lo, hi, slack) in [
            (
                "p50",
                ours.p50,
                t.before_write_p50_us,
                t.p50_us,
                (0.03 * t.p50_us).max(50.0),
            ),
            (
                "p99",
                ours.p99,
                t.before_write_p99_us,
                t.p99_us,
                (0.05 * t.p99_us).max(100.0),
            ),
        ] {
            assert!(
                o <= hi + slack && o >= lo - slack,
                "{key} {q} {o:.1} us outside [{lo:.1}, {hi:.1}] ± {slack:.1}"
            );
        }
    }
}

#[test]
fn process_time_matches_the_fixture_at_2ms() {
    ground_truth(Duration::from_millis(2));
}

#[test]
fn process_time_matches_the_fixture_at_200us() {
    ground_truth(Duration::from_micros(200));
}

/// A proxy busy while data piles up in its socket: the app writes its
/// response in four chunks 500 µs apart, and the server's sidecar (the
/// fixture, holding each chunk 2 ms) reads the first at once, then the
/// other three together as its hold ends. That read is timed from the
/// oldest chunk it took (sent 500 µs after the first: 1.5 ms before the
/// read), not from the newest (0.5 ms).
#[test]
fn a_read_of_data_that_piled_up_is_timed_from_the_oldest() {
    let hold = Duration::from_millis(2);
    let gap = Duration::from_micros(500);
    let mut cfg = mesh::config(SidecarKind::DelayProxy);
    cfg.proxy_delay = hold;
    cfg.app_response = testbed::app::AppResponse::Chunked { chunks: 4, gap };
    let m = mesh::up(&cfg);
    let (snap, load) = profile_under_load(&m, oha(6, 50));
    assert!(load.completed > 200, "{load:?}");
    let server = sidecar(&snap, "server-");
    let h = hop(server, Direction::Inbound, Leg::Response);
    let q = &h.queue_us;
    let oldest_us = (hold - gap).as_secs_f64() * 1e6;
    let newest_us = (hold - 3 * gap).as_secs_f64() * 1e6;
    eprintln!(
        "{} forwards for {} responses; queue p50 {:.1} p90 {:.1} p99 {:.1} us; the piled-up \
         read's oldest chunk waited {oldest_us:.0} us, its newest {newest_us:.0}",
        h.forwards, load.completed, q.p50, q.p90, q.p99
    );
    // Two forwards a response (three if the last chunk misses the read):
    // the first chunk's, queued briefly, and the piled-up read's.
    assert!(
        h.forwards as f64 >= 1.9 * load.completed as f64,
        "{} forwards for {} responses",
        h.forwards,
        load.completed
    );
    // p90 is a piled-up read's: from the oldest chunk, within what sleeps
    // overshoot here (the app's gap and the fixture's hold).
    assert!(
        q.p90 >= oldest_us - 300.0 && q.p90 <= hold.as_secs_f64() * 1e6,
        "queue p90 {:.1} us: want about {oldest_us:.0} (from the oldest chunk), not \
         {newest_us:.0} (from the newest)",
        q.p90
    );
}

/// A proxy that reads less than its socket holds leaves the rest behind,
/// readable while it holds the chunk before: the app answers 256 KiB in one
/// write and the server's sidecar (the fixture) reads at most 64 KiB at a
/// time, holding each chunk 2 ms. A read of data left behind keeps the
/// clock of the read before (its queue covers that hold); only a read that
/// drained the socket leaves no clock, so the reads stay timed.
#[test]
fn data_a_read_left_behind_is_timed_from_before_that_read() {
    let hold = Duration::from_millis(2);
    let mut cfg = mesh::config(SidecarKind::DelayProxy);
    cfg.proxy_delay = hold;
    cfg.app_size = 256 * 1024;
    let m = mesh::up(&cfg);
    let (snap, load) = profile_under_load(&m, oha(6, 20));
    assert!(load.completed > 80, "{load:?}");
    let server = sidecar(&snap, "server-");
    let h = hop(server, Direction::Inbound, Leg::Response);
    let q = &h.queue_us;
    let hold_us = hold.as_secs_f64() * 1e6;
    eprintln!(
        "{} forwards for {} responses; queue p50 {:.1} p90 {:.1} p99 {:.1} us; {} reads \
         without arrival",
        h.forwards, load.completed, q.p50, q.p90, q.p99, snap.reads_without_arrival
    );
    // Four or more reads a response: all but the first find data left.
    assert!(
        h.forwards as f64 >= 4.0 * load.completed as f64,
        "{} forwards for {} responses",
        h.forwards,
        load.completed
    );
    assert!(
        q.p50 >= hold_us - 100.0,
        "queue p50 {:.1} us: a read of data left behind is timed from before the \
         {hold_us:.0} us hold of the chunk before it",
        q.p50
    );
    // The sockets first seen at a read, at most.
    assert!(
        snap.reads_without_arrival <= 8,
        "{} reads without arrival",
        snap.reads_without_arrival
    );
}

#[test]
fn a_slow_app_does_not_leak_into_sidecar_time() {
    let mut cfg = mesh::config(SidecarKind::Nginx);
    cfg.app_delay = Duration::from_millis(50);
    let m = mesh::up(&cfg);
    let (snap, load) = profile_under_load(&m, oha(4, 60));
    assert!(
        load.p50_us > 50_000.0,
        "the app delay shows at the client: {load:?}"
    );
    for (pod, d) in HOPS {
        let s = sidecar(&snap, pod);
        for leg in [Leg::Request, Leg::Response] {
            let t = &hop(s, d, leg).total_us;
            eprintln!("{pod} {d:?} {leg:?}: {:?}", hop(s, d, leg));
            assert!(
                t.p99 < 1000.0,
                "{pod} {d:?} {leg:?} total p99 {:.1} us",
                t.p99
            );
        }
    }
}

fn counts_match(kind: SidecarKind) {
    let m = mesh::up(&mesh::config(kind));
    let (snap, load) = profile_under_load(&m, oha(4, 400));
    assert!(load.completed > 1000, "{load:?}");
    assert_eq!(snap.lost_events, 0);
    for (pod, d) in [
        ("client-", Direction::Outbound),
        ("server-", Direction::Inbound),
    ] {
        let s = snap
            .sidecar(pod)
            .unwrap_or_else(|| panic!("{pod} sidecar missing: {snap:?}"));
        assert_eq!(s.namespace.as_deref(), Some("meshbox"));
        for leg in [Leg::Request, Leg::Response] {
            let f = hop(s, d, leg).forwards as f64;
            let want = load.completed as f64;
            eprintln!("{kind:?} {pod} {d:?} {leg:?}: {f} forwards, {want} completed requests");
            assert!(
                (f - want).abs() <= 0.01 * want,
                "{kind:?} {pod} {d:?} {leg:?}: {f} forwards vs {want} completed requests"
            );
        }
    }
}

#[test]
fn forwards_equal_completed_requests_with_nginx() {
    counts_match(SidecarKind::Nginx);
}

#[test]
fn forwards_equal_completed_requests_with_haproxy() {
    counts_match(SidecarKind::Haproxy);
}

/// Stall the drain while wrk overfills every CPU's ring: the records that
/// did not fit are lost, and each is counted. A calm run first measures how
/// many records a request causes (reads, writes, socket events, with
/// nothing lost); then records taken plus records lost account for every
/// record the stalled load caused. Without the scheduler hooks: their
/// records (one per run-queue wait) come as often as the threads wait,
/// which differs between a calm and a stalled run, not per request.
#[test]
fn a_stalled_drain_loses_records_and_counts_every_one() {
    profiler_tests::require_root();
    let m = mesh::up(&mesh::config(SidecarKind::Nginx));
    let opts = snapshot::Options {
        hooks: profiler::ebpf::Hooks {
            set: None,
            sched: profiler::ebpf::SchedHooks::Off,
            ..profiler::ebpf::Hooks::default()
        },
        ..istio(Duration::ZERO)
    };
    let mut capture = snapshot::start(&opts).expect("attach");
    let spec = |secs| LoadSpec {
        generator: LoadGen::Wrk,
        duration: Duration::from_secs(secs),
        connections: 16,
        rate: None,
        streams: 1,
    };
    let session = &mut capture.session;
    // Calm: drained every 10 ms while the load runs, by a thread that gets
    // the CPU when it wakes (at the default weight, wrk and the sidecars
    // once kept it off the CPU longer than a ring lasts).
    let raised = profiler_tests::priority::raise_this_thread(-10);
    let (calm_taken, calm) = thread::scope(|s| {
        let url = m.url();
        let ns = m.client.netns.clone();
        let load = s.spawn(move || testbed::load::run(&ns, &url, &spec(2)));
        let mut taken = 0;
        while !load.is_finished() {
            thread::sleep(Duration::from_millis(10));
            taken += session.drain();
        }
        thread::sleep(Duration::from_millis(50));
        taken += session.finish();
        (
            taken as u64,
            load.join().expect("load thread").expect("load"),
        )
    });
    drop(raised);
    let counters: Vec<_> = profiler_common::maps::Counter::ALL
        .iter()
        .map(|&c| (c, session.counter(c)))
        .collect();
    // A drain held up longer than a ring lasts (about 400 ms of this load
    // per CPU) loses records even here: in CI 2790 of 306590 once, 11214 of
    // 284889 another time, before the drain thread ran raised. They are
    // counted, and counted in: what this test holds is that every record is
    // taken or counted lost, which a calm run that lost a little still
    // measures.
    let calm_lost = session.lost_events();
    let calm_caused = calm_taken + calm_lost;
    assert!(
        calm_lost as f64 <= 0.02 * calm_caused as f64,
        "the drain every 10 ms fell behind: {counters:?}, {calm_taken} taken for {} requests",
        calm.completed
    );
    let per_request = calm_caused as f64 / calm.completed as f64;
    let rings = session.ring_capacity();
    // No drain while the load runs, until it caused twice what the rings
    // hold (bounded: five runs of two seconds).
    let mut completed = 0;
    for _ in 0..5 {
        let load = testbed::load::run(&m.client.netns, &m.url(), &spec(2)).expect("load");
        completed += load.completed;
        if per_request * completed as f64 > 2.0 * rings as f64 {
            break;
        }
    }
    let taken = session.finish() as u64;
    let lost = session.lost_events() - calm_lost;
    let caused = per_request * completed as f64;
    eprintln!(
        "calm: {calm_taken} records taken, {calm_lost} lost, for {} requests ({per_request:.2} \
         a request); stalled: {completed} requests caused ~{caused:.0} records: {taken} taken, \
         {lost} lost",
        calm.completed
    );
    assert!(
        caused > 2.0 * rings as f64,
        "the load must overfill the rings: {caused:.0} records"
    );
    assert!(
        lost > 0,
        "rings of {rings} records in all cannot hold {caused:.0}"
    );
    assert!(taken <= rings, "more taken ({taken}) than the rings hold");
    let accounted = (taken + lost) as f64;
    assert!(
        (accounted - caused).abs() <= 0.02 * caused,
        "{taken} taken + {lost} lost vs {caused:.0} records caused"
    );
}

#[test]
fn snapshot_cli_json_contract_and_no_sidecar_exit_code() {
    profiler_tests::require_root();
    let out = std::process::Command::new(profiler_tests::profiler_bin())
        .args([
            "snapshot",
            "--duration",
            "300ms",
            "--comm",
            "no-such-proxy",
            "--format",
            "json",
        ])
        .output()
        .expect("run snapshot");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no sidecar matched"), "{err}");
    let m = mesh::up(&mesh::config(SidecarKind::Haproxy));
    let out = std::process::Command::new(profiler_tests::profiler_bin())
        .args(["snapshot", "--duration", "500ms", "--format", "json"])
        .output()
        .expect("run snapshot");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(v["duration_s"].as_f64().is_some_and(|d| d >= 0.5));
    assert_eq!(v["lost_events"], 0);
    // This machine's kernel has BTF and BTF tracepoints: those scheduler
    // hooks are the ones chosen.
    assert_eq!(v["sched_split"], true, "{v}");
    assert_eq!(v["sched_hooks"], "btf_tracepoint", "{v}");
    assert!(v["skipped_program_runs"].as_u64().is_some(), "{v}");
    let sidecars = v["sidecars"].as_array().expect("sidecars");
    assert_eq!(sidecars.len(), 2, "{v}");
    for s in sidecars {
        assert!(s["pid"].as_u64().is_some() && s["comm"] == "haproxy");
        assert_eq!(s["namespace"], "meshbox");
        assert!(s["pod"].as_str().is_some_and(|p| p.ends_with(&m.id[3..])));
        assert!(s["hops"].is_array());
    }
}

#[test]
fn cpu_contention_shows_in_queue_not_process() {
    let m = mesh::up(&mesh::config(SidecarKind::Nginx));
    let cpu = 1;
    // Everything (both pods, load generator, profiler: children and threads
    // of this one) on the other CPU, then the server's proxy alone on the
    // hog's: calm and contended periods differ only by the hog, and the app
    // the proxy wakes does not preempt it on its own CPU.
    pin(&m.server.pids(), 0);
    pin(&m.client.pids(), 0);
    let _self_pin = PinSelf::to(0);
    // Calm periods must not pay a halted vCPU's wake-up that contended
    // ones (whose vCPU the hog keeps busy) do not.
    let _no_idle = NoDeepIdle::hold();
    let mut capture = snapshot::start(&istio(Duration::ZERO)).expect("attach");
    let server = capture
        .session
        .agg
        .sidecars
        .iter()
        .position(|s| s.pod.as_deref().is_some_and(|p| p.starts_with("server-")))
        .expect("server sidecar") as u32;
    let proxy: Vec<u32> = capture.session.agg.sidecars[server as usize]
        .procs
        .iter()
        .map(|&(pid, _)| pid)
        .collect();
    pin(&proxy, cpu);
    // A p99 of a ~50 µs operation moves by a third between runs on this VM
    // (the host's other tenants), so one load runs throughout while the hog
    // is switched on and off every 2 s; each period's forwards go to a calm
    // or a contended pool, and the pools' p99s compare.
    const SEGMENT: Duration = Duration::from_secs(2);
    const PAIRS: u64 = 10;
    let legs = [Leg::Request, Leg::Response];
    let key = |leg| (server, Direction::Inbound, leg);
    let (calm, busy, load) = thread::scope(|s| {
        let (url, ns) = (m.url(), m.client.netns.clone());
        // One connection: which of nginx's two workers serves it, and whether
        // two connections share one, would otherwise differ between runs.
        let spec = LoadSpec {
            connections: 1,
            ..oha(2 * PAIRS * 2 + 3, 500)
        };
        let load = s.spawn(move || testbed::load::run(&ns, &url, &spec));
        let session = &mut capture.session;
        // Per leg: queue, process, and process's on-CPU and run-queue
        // parts, as recorded so far.
        let hists = |session: &profiler::collect::Session| -> Vec<_> {
            legs.iter()
                .flat_map(|&l| {
                    let h = &session.agg.hops.by_key[&key(l)];
                    let d = h.detail.as_ref().expect("a snapshot keeps HDR detail");
                    [QUEUE, PROCESS, ON_CPU, RUNQUEUE].map(|i| d[i].clone())
                })
                .collect()
        };
        let run = |session: &mut profiler::collect::Session, d: Duration| {
            let t0 = std::time::Instant::now();
            while t0.elapsed() < d {
                thread::sleep(Duration::from_millis(10));
                session.drain();
            }
        };
        // Warm-up, not pooled: connections open, the first requests pass.
        run(session, Duration::from_secs(1));
        let mut prev = hists(session);
        let empty = |h: &hdrhistogram::Histogram<u64>| {
            let mut e = h.clone();
            e.reset();
            e
        };
        let mut calm: Vec<_> = prev.iter().map(empty).collect();
        let mut busy = calm.clone();
        for seg in 0..2 * PAIRS {
            // A burst that starts while the proxy works lands in process
            // time (until on-CPU and run-queue time are told apart), and
            // each burst leaves the proxy's caches cold: at a burst every
            // 15 ms that moved process p99 by a quarter in half the runs;
            // every 30 ms still makes the queue p99 rise by milliseconds.
            let hogs = (seg % 2 == 1).then(|| Hogs::start(cpu, 3, 27, 0));
            run(session, SEGMENT);
            drop(hogs);
            session.drain();
            let now = hists(session);
            let pool = if seg % 2 == 1 { &mut busy } else { &mut calm };
            for ((p, n), old) in pool.iter_mut().zip(&now).zip(&prev) {
                let mut delta = n.clone();
                delta.subtract(old).expect("histograms only grow");
                p.add(&delta).expect("same bounds");
            }
            prev = now;
        }
        (calm, busy, load.join().expect("load thread").expect("load"))
    });
    assert!(load.completed > 10_000, "{load:?}");
    let p99 = |h: &hdrhistogram::Histogram<u64>| h.value_at_quantile(0.99) as f64 / 1000.0;
    // Forwards of a pool with a part of 1 ms or more (the hog's bursts
    // are 3 ms; sched_split.rs checks where they go against the fixture).
    let long = |h: &hdrhistogram::Histogram<u64>| h.count_between(1_000_000, u64::MAX);
    for (i, leg) in legs.into_iter().enumerate() {
        let (cq, bq) = (&calm[4 * i], &busy[4 * i]);
        let (cp, bp) = (&calm[4 * i + 1], &busy[4 * i + 1]);
        let (c_cpu, b_cpu) = (&calm[4 * i + 2], &busy[4 * i + 2]);
        let (c_rq, b_rq) = (&calm[4 * i + 3], &busy[4 * i + 3]);
        eprintln!(
            "{leg:?}: forwards with 1 ms or more of run-queue time: {} calm, {} contended; \
             of on-CPU time: {} calm, {} contended; on-CPU p99 {:.1} -> {:.1} us",
            long(c_rq),
            long(b_rq),
            long(c_cpu),
            long(b_cpu),
            p99(c_cpu),
            p99(b_cpu)
        );

        eprintln!(
            "{leg:?}: {} calm / {} contended forwards; queue p99 {:.1} -> {:.1} us; process p99 {:.1} -> {:.1} us",
            cp.len(),
            bp.len(),
            p99(cq),
            p99(bq),
            p99(cp),
            p99(bp)
        );
        assert!(
            cp.len() > 4000 && bp.len() > 4000,
            "too few forwards pooled"
        );
        let (cq, bq, cp, bp) = (p99(cq), p99(bq), p99(cp), p99(bp));
        // The hog delays the wake-up for a request; the response, which
        // arrives ~50 µs later while the proxy is already running, rarely
        // meets a burst, so the queue rise is asserted on the request leg.
        assert!(
            leg == Leg::Response || bq - cq >= 1000.0,
            "{leg:?}: queue p99 rose only from {cq:.1} to {bq:.1} us"
        );
        // Contention must not be charged to processing. A burst that lands
        // between a read and its write would add milliseconds, as it does to
        // the queue; the proxy running on caches the hog left cold adds tens
        // of microseconds (real processing, +20-35% in some runs here). So
        // process p99 may rise by at most a tenth of the queue's rise (on the
        // response leg, of the request leg's), and may not fall by a quarter.
        let queue_rise = p99(&busy[0]) - p99(&calm[0]);
        // Nor to the proxy's own work: a 3 ms burst charged to on-CPU time
        // would give forwards 1 ms or more of it, and at 1% of forwards
        // would lift its p99 by milliseconds. Cold caches lift it by tens of
        // microseconds (+44% of 33 us once in CI), which is real running
        // time, so the p99 is held to the process bound, not to a ratio.
        assert!(
            long(b_cpu) <= long(c_cpu) + b_cpu.len() / 1000,
            "{leg:?}: {} contended forwards with 1 ms or more of on-CPU time ({} calm)",
            long(b_cpu),
            long(c_cpu)
        );
        assert!(
            p99(b_cpu) - p99(c_cpu) <= 0.1 * queue_rise
                && p99(c_cpu) - p99(b_cpu) <= 0.25 * p99(c_cpu),
            "{leg:?}: on-CPU p99 moved from {:.1} to {:.1} us \
             (request queue p99 rose by {queue_rise:.1} us)",
            p99(c_cpu),
            p99(b_cpu)
        );
        assert!(
            bp - cp <= 0.1 * queue_rise && cp - bp <= 0.25 * cp,
            "{leg:?}: process p99 moved from {cp:.1} to {bp:.1} us \
             (request queue p99 rose by {queue_rise:.1} us)"
        );
    }
}

#[test]
fn snapshot_without_privilege_names_the_capability() {
    profiler_tests::require_root();
    // As nobody, with no capabilities: the profiler must say which it needs.
    // A copy in a world-readable place, since the checkout may not be.
    let dir = std::env::temp_dir().join(format!("profiler-nopriv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bin = dir.join("profiler");
    std::fs::copy(profiler_tests::profiler_bin(), &bin).expect("copy the binary");
    use std::os::unix::fs::PermissionsExt;
    for (p, mode) in [(&dir, 0o755), (&bin, 0o755)] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(&bin)
        .args(["snapshot", "--duration", "200ms"])
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let out = out.expect("run setpriv (util-linux)");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing privilege") && err.contains("CAP_BPF"),
        "{err}"
    );
}
