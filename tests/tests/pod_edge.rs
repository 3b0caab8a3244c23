//! The classifiers on the pod edges: they go on the node side of each
//! followed pod's veth, pass every packet on, and come off exactly as they
//! went on: at exit, after a kill -9, and never taking anyone else's
//! filter or qdisc with them.
use std::{
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use meshbox::{self as testbed, LoadGen, LoadSpec, Mesh, SidecarKind};
use profiler::{
    ebpf::{Hooks, PodEdge},
    edge::{Mode, filters::Side, inspect::Attachments},
    snapshot,
};
use profiler_tests::{
    NoDeepIdle,
    capture::{istio, oha},
    edge::{self, ours, own_filters},
    mesh,
};

const EDGES: [&str; 2] = ["veth0", "veth1"];
/// The handle of the filter the test puts on as "someone else's".
const FOREIGN: u32 = 7;

fn hooks(m: &Mesh, mode: Option<Mode>) -> Hooks {
    Hooks {
        pod_edge: Some(PodEdge {
            mode,
            ..m.pod_edge()
        }),
        ..Hooks::default()
    }
}

/// What is on `side` of `ifname` in the mesh's node namespace.
fn on(m: &Mesh, ifname: &str, side: Side) -> Attachments {
    edge::on(&m.node_netns_path(), ifname, side)
}

fn tc(m: &Mesh, args: &[&str]) -> String {
    let out = Command::new("tc")
        .args(["-n", &m.node_netns])
        .args(args)
        .output()
        .expect("run tc (iproute2)");
    assert!(
        out.status.success(),
        "tc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Someone else's clsact and filter on veth0's ingress: a classic BPF
/// filter (cls_bpf is the one classifier every kernel here has), handle 7.
fn add_foreign(m: &Mesh) {
    tc(m, &["qdisc", "add", "dev", "veth0", "clsact"]);
    tc(
        m,
        &[
            "filter",
            "add",
            "dev",
            "veth0",
            "ingress",
            "prio",
            "1",
            "handle",
            "7",
            "bpf",
            "bytecode",
            "1,6 0 0 0,",
        ],
    );
}

fn assert_foreign_intact(m: &Mesh) {
    let a = on(m, "veth0", Side::Ingress);
    assert!(
        a.filters
            .iter()
            .any(|f| f.handle == FOREIGN && f.kind == "bpf" && f.program.is_none()),
        "the foreign filter on veth0 is gone: {a:?}"
    );
}

fn has_clsact(m: &Mesh, ifname: &str) -> bool {
    tc(m, &["qdisc", "show", "dev", ifname]).contains("clsact")
}

fn wrk(secs: u64) -> LoadSpec {
    LoadSpec {
        generator: LoadGen::Wrk,
        duration: Duration::from_secs(secs),
        connections: 16,
        rate: None,
        streams: 1,
    }
}

/// The classifiers of `mode` (tcx or filters) are on both sides of both
/// pod edges, one each.
fn assert_attached(m: &Mesh, mode: Mode, owner: u32) {
    for ifname in EDGES {
        for side in [Side::Ingress, Side::Egress] {
            let a = on(m, ifname, side);
            let (tcx, filters) = (
                a.tcx.iter().filter(|n| *n == ours(side)).count(),
                own_filters(&a, side),
            );
            match mode {
                Mode::Tcx => assert!(
                    tcx == 1 && filters.is_empty(),
                    "{ifname} {side:?}: want one tcx {}: {a:?}",
                    ours(side)
                ),
                Mode::Netlink => assert!(
                    tcx == 0 && filters.len() == 1 && filters[0].handle == owner,
                    "{ifname} {side:?}: want one filter {} of pid {owner}: {a:?}",
                    ours(side)
                ),
            }
        }
    }
}

fn assert_none_of_ours(m: &Mesh) {
    edge::assert_none_of_ours(&m.node_netns_path(), &EDGES);
}

/// Both modes in turn, each on a fresh mesh with a foreign filter on
/// veth0: on the edges of both pods while a capture runs, every request
/// still served, and off at exit with the foreign filter and qdisc kept.
/// The clsact the profiler added (veth1, filters mode) goes with it.
#[test]
fn classifiers_sit_on_each_pod_edge_and_come_off_at_exit() {
    profiler_tests::require_root();
    for mode in [Mode::Tcx, Mode::Netlink] {
        let m = mesh::up(&mesh::config(SidecarKind::Nginx));
        add_foreign(&m);
        let opts = snapshot::Options {
            hooks: hooks(&m, Some(mode)),
            ..istio(Duration::ZERO)
        };
        let capture = snapshot::start(&opts).expect("attach");
        let edges = capture.session.pod_edges().expect("pod edges asked for");
        assert_eq!(edges.mode(), Some(mode));
        assert_eq!(edges.interfaces(), EDGES.map(String::from).to_vec());
        assert_attached(&m, mode, std::process::id());
        assert_foreign_intact(&m);
        let load = testbed::load::run(&m.client.netns, &m.url(), &wrk(2)).expect("load");
        eprintln!("{mode:?}: {load:?}");
        assert!(
            load.completed > 100 && load.errors == 0,
            "{mode:?}: requests failed through the classifiers: {load:?}"
        );
        drop(capture);
        assert_none_of_ours(&m);
        assert_foreign_intact(&m);
        assert!(has_clsact(&m, "veth0"), "the foreign clsact on veth0 went");
        assert!(
            !has_clsact(&m, "veth1"),
            "{mode:?}: a clsact is left on veth1, which had none"
        );
    }
}

/// `profiler snapshot` with the classifiers, killed with SIGKILL while
/// traffic flows: its tcx links end with it; its filters (filters mode)
/// stay, and the next profiler removes them, and only them.
#[test]
fn a_killed_profiler_leaves_nothing_the_next_one_does_not_sweep() {
    profiler_tests::require_root();
    let m = mesh::up(&mesh::config(SidecarKind::Nginx));
    add_foreign(&m);
    for mode in [Mode::Tcx, Mode::Netlink] {
        let arg = match mode {
            Mode::Tcx => "--pod-edge=tcx",
            Mode::Netlink => "--pod-edge=netlink",
        };
        let node = m.node_netns_path();
        let mut child = Command::new(profiler_tests::profiler_bin())
            .args(["snapshot", "--duration", "60s", "--format", "json", arg])
            .arg("--node-netns")
            .arg(&node)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start profiler snapshot");
        let pid = child.id();
        // Bounded: the classifiers go on within seconds of start.
        let deadline = Instant::now() + Duration::from_secs(30);
        let on_all = || {
            EDGES.iter().all(|i| {
                [Side::Ingress, Side::Egress].iter().all(|&s| {
                    let a = on(&m, i, s);
                    a.tcx.iter().any(|n| n == ours(s))
                        || own_filters(&a, s).iter().any(|f| f.handle == pid)
                })
            })
        };
        while !on_all() {
            if Instant::now() > deadline || child.try_wait().expect("wait").is_some() {
                // SAFETY: our own child, by its pid.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                let out = child.wait_with_output().expect("reap");
                panic!(
                    "{mode:?}: the classifiers did not go on within 30 s: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
        assert_attached(&m, mode, pid);
        thread::scope(|s| {
            let load = s.spawn(|| testbed::load::run(&m.client.netns, &m.url(), &wrk(2)));
            thread::sleep(Duration::from_millis(800));
            // SAFETY: our own child, by its pid.
            assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
            let _ = child.wait();
            let load = load.join().expect("load thread").expect("load");
            assert!(load.completed > 0, "{load:?}");
        });
        match mode {
            Mode::Tcx => assert_none_of_ours(&m),
            // The filters outlive their owner: this is what the next
            // profiler must find and remove.
            Mode::Netlink => assert_attached(&m, mode, pid),
        }
        assert_foreign_intact(&m);

        let opts = snapshot::Options {
            hooks: hooks(&m, Some(mode)),
            ..istio(Duration::ZERO)
        };
        let capture = snapshot::start(&opts).expect("attach");
        let swept = capture.session.pod_edges().expect("pod edges").swept();
        assert_eq!(
            swept,
            match mode {
                Mode::Tcx => 0,
                Mode::Netlink => 4,
            },
            "{mode:?}: leftover filters removed at start"
        );
        assert_attached(&m, mode, std::process::id());
        assert_foreign_intact(&m);
        drop(capture);
        assert_none_of_ours(&m);
        assert_foreign_intact(&m);
    }
}

/// A pod edge component on at least 99% of a leg's forwards, with values a
/// kernel path has (above zero, under 5 ms at p99).
fn stamped(what: &str, stamped: u64, forwards: u64, p: &profiler::histogram::Percentiles) {
    eprintln!(
        "{what}: {stamped} of {forwards} forwards, p50 {:.1} p99 {:.1} us",
        p.p50, p.p99
    );
    assert!(
        stamped as f64 >= 0.99 * forwards as f64,
        "{what}: {stamped} of {forwards} forwards stamped"
    );
    assert!(p.p50 > 0.0 && p.p99 < 5_000.0, "{what}: {p:?}");
}

/// Every leg of both sidecars gets kernel_in and kernel_out: through the
/// pod edge (data into the server's inbound request and the client's
/// outbound response, out of the server's inbound response and the
/// client's outbound request), and over the pod's loopback to or from the
/// app (the other end of each of those legs).
#[test]
fn kernel_in_and_out_are_measured_on_every_leg() {
    use meshbox::app::AppResponse;
    use profiler_tests::capture::profile_under_load_with;
    profiler_tests::require_root();
    // Plain HTTP at 1, 16 and 64 connections; mutual TLS between the
    // sidecars (other bytes, same flows); an app that flushes its headers
    // before the body; a streamed response (five chunks 2 ms apart, each
    // its own forward on the response legs); HTTP/2 with ten streams per
    // connection.
    let shapes = [
        (SidecarKind::Nginx, 1, false, AppResponse::OneWrite, false),
        (SidecarKind::Nginx, 16, false, AppResponse::OneWrite, false),
        (SidecarKind::Nginx, 64, false, AppResponse::OneWrite, false),
        (SidecarKind::Nginx, 16, true, AppResponse::OneWrite, false),
        (SidecarKind::Nginx, 16, false, AppResponse::Split, false),
        (
            SidecarKind::Nginx,
            16,
            false,
            AppResponse::Chunked {
                chunks: 5,
                gap: Duration::from_millis(2),
            },
            false,
        ),
        (SidecarKind::Haproxy, 4, false, AppResponse::OneWrite, true),
    ];
    for (kind, conns, mtls, response, http2) in shapes {
        let mut cfg = mesh::config(kind);
        cfg.mtls = mtls;
        cfg.app_response = response;
        cfg.http2 = http2;
        let m = mesh::up(&cfg);
        let mut spec = oha(conns, 600, 3);
        if http2 {
            spec.streams = 10;
        }
        let (snap, load) = profile_under_load_with(&m, spec, hooks(&m, None));
        // HTTP/2 streams still open when oha's time is up count as errors
        // ("aborted due to deadline"): the run's edge, not the mesh's.
        let deadline: u64 = load
            .error_kinds
            .iter()
            .filter(|(k, _)| k == "aborted due to deadline")
            .map(|(_, n)| n)
            .sum();
        assert!(load.completed > 1000 && load.errors == deadline, "{load:?}");
        every_leg_stamped(
            &snap,
            &format!("{kind:?} {conns} conns, mtls {mtls}, {response:?}, h2 {http2}"),
        );
    }
}

/// Both sidecars' legs (each direction's request and response) carry
/// kernel_in and kernel_out on their forwards.
fn every_leg_stamped(snap: &profiler::report::Snapshot, shape: &str) {
    use profiler::classify::{Direction, Leg};
    use profiler_tests::capture::{hop, sidecar};
    for (pod, d) in [
        ("server-", Direction::Inbound),
        ("client-", Direction::Outbound),
    ] {
        let s = sidecar(snap, pod);
        for leg in [Leg::Request, Leg::Response] {
            let h = hop(s, d, leg);
            let at = format!("{shape}, {pod} {d:?} {leg:?}");
            eprintln!(
                "{at}: queue p50 {:.1}, process p50 {:.1} us",
                h.queue_us.p50, h.process_us.p50
            );
            stamped(
                &format!("{at} kernel_in"),
                h.kernel_in_forwards,
                h.forwards,
                &h.kernel_in_us,
            );
            stamped(
                &format!("{at} kernel_out"),
                h.kernel_out_forwards,
                h.forwards,
                &h.kernel_out_us,
            );
        }
    }
}

/// Sockets live in slots hashed from their address, and two of a few
/// hundred share one in about a quarter of runs; the one out of its slot
/// once lost its pod edge stamps (a 64-connection run lost 112 of a leg's
/// 1801). Here every free slot is taken before the load starts, so every
/// socket of the load lives out of its slot: all legs are still stamped.
#[test]
fn sockets_out_of_their_slots_are_stamped_too() {
    use profiler_tests::{capture::profile_under_load_around, slots};
    profiler_tests::require_root();
    let m = mesh::up(&mesh::config(SidecarKind::Nginx));
    let (snap, load, (spilled, slot_maps, spill_maps)) = profile_under_load_around(
        &m,
        oha(16, 600, 3),
        hooks(&m, None),
        || {
            let taken = slots::take_free_slots();
            assert!(taken > 65_000, "only {taken} free slots taken");
        },
        || {
            // The most seen while the load runs: a load that starts late
            // (a busy machine) is still looked at mid-load.
            let mut most = 0;
            for _ in 0..30 {
                thread::sleep(Duration::from_millis(100));
                most = most.max(slots::spilled_edges());
                if most >= 32 {
                    break;
                }
            }
            (
                most,
                slots::loaded("SOCK_SLOTS"),
                slots::loaded("SOCK_EDGE_SPILL"),
            )
        },
    );
    assert!(load.completed > 1000 && load.errors == 0, "{load:?}");
    // Mid-load: at least the client app's 16 sockets and the 16 its proxy
    // accepted (the proxies' pooled connections between the pods add more).
    assert!(
        spilled >= 32,
        "{spilled} sockets out of their slots mid-load (maps loaded, by id: \
         SOCK_SLOTS {slot_maps:?}, SOCK_EDGE_SPILL {spill_maps:?})"
    );
    eprintln!("{spilled} sockets out of their slots mid-load");
    every_leg_stamped(&snap, "Nginx 16 conns, every socket out of its slot");
}

/// A connection between a proxy and its app that was open before the
/// profiler started (a warm keepalive pool: no opening to link its two
/// ends at) is linked at the proxy's next write to it.
#[test]
fn loopback_connections_open_before_the_profiler_are_followed() {
    use profiler::classify::{Direction, Leg};
    use profiler_tests::capture::{hop, profile_under_load_with, sidecar};
    profiler_tests::require_root();
    let m = mesh::up(&mesh::config(SidecarKind::Nginx));
    // Warm the server sidecar's pool to the app, unprofiled.
    let warm = testbed::load::run(&m.client.netns, &m.url(), &oha(4, 400, 2)).expect("warm-up");
    assert!(warm.errors == 0 && warm.completed > 400, "{warm:?}");
    let (snap, load) = profile_under_load_with(&m, oha(4, 600, 3), hooks(&m, None));
    assert!(load.completed > 1000 && load.errors == 0, "{load:?}");
    let s = sidecar(&snap, "server-");
    let to_app = hop(s, Direction::Inbound, Leg::Request);
    let from_app = hop(s, Direction::Inbound, Leg::Response);
    stamped(
        "inbound request kernel_out to the app",
        to_app.kernel_out_forwards,
        to_app.forwards,
        &to_app.kernel_out_us,
    );
    stamped(
        "inbound response kernel_in from the app",
        from_app.kernel_in_forwards,
        from_app.forwards,
        &from_app.kernel_in_us,
    );
}

/// Ground truth: a known kernel delay between the server pod's edge and
/// its sockets (every packet held 300 µs on the pod's eth0 ingress) moves
/// the server's inbound request kernel_in by that much, and neither its
/// queue nor its process time, nor the client's kernel_in. Held on the way
/// out instead (eth0 egress), the server's inbound response kernel_out
/// moves by as much, and so does its process time: the proxy's write call
/// sends the packet, and process stops when the write returns. Held on the
/// pod's loopback (lo egress), the way to the app (the inbound request's
/// kernel_out) and back (the inbound response's kernel_in) move instead.
#[test]
fn a_known_kernel_delay_lands_in_kernel_in_or_out() {
    use aya::programs::TcAttachType;
    use profiler::classify::{Direction, Leg};
    use profiler_tests::{
        capture::{hop, profile_under_load_with, sidecar},
        hold::hold_pod,
    };
    profiler_tests::require_root();
    const HOLD_US: f64 = 300.0;
    let m = mesh::up(&mesh::config(SidecarKind::Nginx));
    let measure = |what: &str| {
        let (snap, load) = profile_under_load_with(&m, oha(1, 200, 3), hooks(&m, None));
        assert!(load.completed > 400 && load.errors == 0, "{what}: {load:?}");
        let server = sidecar(&snap, "server-");
        let inbound = hop(server, Direction::Inbound, Leg::Request).clone();
        let back = hop(server, Direction::Inbound, Leg::Response).clone();
        let client = sidecar(&snap, "client-");
        let client = hop(client, Direction::Outbound, Leg::Response).clone();
        eprintln!(
            "{what}: server inbound request kernel_in p50 {:.1} p99 {:.1} ({} of {}), queue p50 \
             {:.1}, process p50 {:.1}; inbound response kernel_out p50 {:.1} ({} of {}), \
             process p50 {:.1}; client outbound response kernel_in p50 {:.1}; client p50 {:.0} us",
            inbound.kernel_in_us.p50,
            inbound.kernel_in_us.p99,
            inbound.kernel_in_forwards,
            inbound.forwards,
            inbound.queue_us.p50,
            inbound.process_us.p50,
            back.kernel_out_us.p50,
            back.kernel_out_forwards,
            back.forwards,
            back.process_us.p50,
            client.kernel_in_us.p50,
            load.p50_us
        );
        eprintln!(
            "{what}: over the server pod's loopback: inbound request kernel_out p50 {:.1} ({} of \
             {}), inbound response kernel_in p50 {:.1} ({} of {}), queue p50 {:.1} us",
            inbound.kernel_out_us.p50,
            inbound.kernel_out_forwards,
            inbound.forwards,
            back.kernel_in_us.p50,
            back.kernel_in_forwards,
            back.forwards,
            back.queue_us.p50,
        );
        (inbound, back, client)
    };
    let rose_by_the_hold = |what: &str, before: f64, after: f64| {
        let rise = after - before;
        assert!(
            (0.9 * HOLD_US..=1.1 * HOLD_US + 20.0).contains(&rise),
            "{what} p50 rose {rise:.1} us for a {HOLD_US} us hold ({before:.1} -> {after:.1})"
        );
    };
    let unmoved = |what: &str, before: f64, after: f64| {
        assert!(
            (after - before).abs() < 0.25 * HOLD_US,
            "{what} p50 moved {before:.1} -> {after:.1} us with a hold it must not see"
        );
    };
    let hold_ns = (HOLD_US * 1000.0) as u64;
    let (s0, b0, c0) = measure("no hold");

    let (s1, _, c1) = {
        let _hold = hold_pod(&m.server.netns, "eth0", TcAttachType::Ingress, hold_ns);
        measure("300 us hold in")
    };
    rose_by_the_hold("kernel_in", s0.kernel_in_us.p50, s1.kernel_in_us.p50);
    stamped(
        "kernel_in under the hold",
        s1.kernel_in_forwards,
        s1.forwards,
        &s1.kernel_in_us,
    );
    unmoved("server queue", s0.queue_us.p50, s1.queue_us.p50);
    unmoved("server process", s0.process_us.p50, s1.process_us.p50);
    unmoved("client kernel_in", c0.kernel_in_us.p50, c1.kernel_in_us.p50);

    let (s2, b2, _) = {
        let _hold = hold_pod(&m.server.netns, "eth0", TcAttachType::Egress, hold_ns);
        measure("300 us hold out")
    };
    rose_by_the_hold("kernel_out", b0.kernel_out_us.p50, b2.kernel_out_us.p50);
    rose_by_the_hold("response process", b0.process_us.p50, b2.process_us.p50);
    stamped(
        "kernel_out under the hold",
        b2.kernel_out_forwards,
        b2.forwards,
        &b2.kernel_out_us,
    );
    unmoved("kernel_in", s0.kernel_in_us.p50, s2.kernel_in_us.p50);

    // Held on the pod's loopback (lo egress, every packet between the
    // proxy and the app): the request's way to the app (kernel_out, and
    // process with it) and the response's way back (kernel_in) each rise
    // by the hold; what crossed the edge does not.
    let (s3, b3, _) = {
        let _hold = hold_pod(&m.server.netns, "lo", TcAttachType::Egress, hold_ns);
        measure("300 us hold on lo")
    };
    rose_by_the_hold(
        "request kernel_out to the app",
        s0.kernel_out_us.p50,
        s3.kernel_out_us.p50,
    );
    rose_by_the_hold("request process", s0.process_us.p50, s3.process_us.p50);
    rose_by_the_hold(
        "response kernel_in from the app",
        b0.kernel_in_us.p50,
        b3.kernel_in_us.p50,
    );
    stamped(
        "request kernel_out on lo",
        s3.kernel_out_forwards,
        s3.forwards,
        &s3.kernel_out_us,
    );
    stamped(
        "response kernel_in on lo",
        b3.kernel_in_forwards,
        b3.forwards,
        &b3.kernel_in_us,
    );
    unmoved(
        "request kernel_in at the edge",
        s0.kernel_in_us.p50,
        s3.kernel_in_us.p50,
    );
    unmoved("response queue", b0.queue_us.p50, b3.queue_us.p50);
}

/// The A/B cross-check, in the demo's shape (a 200 µs app, 4 connections
/// at 500 requests/s): what the sidecars add to the client's p50 (the same
/// pods and load without interception as the baseline) is matched within
/// 25% by the profiler's account, the four traversals' sidecar_total p50s.
/// The two meshes take turns for `rounds` rounds and the median round is
/// judged, as one round alone moves with the machine's load. Both arms run
/// under the profiler (its cost to the client's and the app's own calls is
/// no sidecar's), with the CPUs kept from halting ([`NoDeepIdle`]: a wake of
/// a halted vCPU, in the hand-offs into the app and the client that no
/// traversal holds, is the VM's cost, not the sidecars'). Each
/// traversal ends where its data left the pod, not at the write's return,
/// which on loopback and veth comes after the next hop's receive (README:
/// the mesh in a box). `http2`: every leg HTTP/2 (haproxy sidecars, h2load,
/// the h2c app), as the demo's `--load h2load`; else nginx and oha.
fn sidecars_added_latency_is_matched(mtls: bool, http2: bool, rounds: usize) {
    use profiler_tests::capture::profile_under_load_with;
    profiler_tests::require_root();
    let mut cfg = mesh::config(if http2 {
        SidecarKind::Haproxy
    } else {
        SidecarKind::Nginx
    });
    cfg.app_delay = Duration::from_micros(200);
    cfg.app_size = 512;
    cfg.mtls = mtls;
    cfg.http2 = http2;
    let spec = if http2 {
        LoadSpec {
            generator: LoadGen::H2load,
            streams: testbed::load::DEFAULT_STREAMS,
            ..oha(4, 500, 5)
        }
    } else {
        oha(4, 500, 5)
    };
    let mut plain = cfg.clone();
    plain.intercept = false;
    plain.mtls = false;
    let _no_idle = NoDeepIdle::hold();
    let m = mesh::up(&cfg);
    let mut all_rounds: Vec<(f64, String)> = Vec::new();
    for _ in 0..rounds {
        // Its own pods for each round, gone before the capture (they run
        // the same sidecar processes, idle, which the capture would find).
        let baseline = {
            let b = mesh::up(&plain);
            profile_under_load_with(&b, spec.clone(), hooks(&b, None)).1
        };
        let (snap, load) = profile_under_load_with(&m, spec.clone(), hooks(&m, None));
        assert!(
            baseline.errors == 0 && load.errors == 0 && load.completed > 2000,
            "{baseline:?} {load:?}"
        );
        let account = testbed::ab::account(&snap);
        let line = format!(
            "{}; {}",
            testbed::ab::summary(baseline.p50_us, load.p50_us, &account),
            testbed::ab::means(baseline.mean_us, load.mean_us, &account)
        );
        eprintln!("{line}");
        assert_eq!(account.traversals, 4, "{snap:?}");
        let ratio = testbed::ab::agreement(load.p50_us - baseline.p50_us, account.sidecars_us)
            .unwrap_or_else(|| panic!("the sidecars added nothing: {line}"));
        all_rounds.push((ratio, line));
    }
    all_rounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (median, line) = &all_rounds[rounds / 2];
    let all: Vec<String> = all_rounds
        .iter()
        .map(|(r, _)| format!("{:+.0}%", (r - 1.0) * 100.0))
        .collect();
    eprintln!("median round: {line}; rounds {}", all.join(", "));
    assert!(
        (0.75..=1.25).contains(median),
        "median round: {line}; rounds {} (allowed: -25% to +25%)",
        all.join(", ")
    );
}

#[test]
fn the_sidecars_added_latency_is_matched_by_the_profilers_account() {
    sidecars_added_latency_is_matched(false, false, 7);
}

/// The same with mTLS between the sidecars, as Istio runs them: the
/// baseline stays plain (the app reached directly), so the A/B includes
/// the encryption, which the proxies' process time holds.
#[test]
fn with_mtls_the_sidecars_added_latency_is_matched_too() {
    sidecars_added_latency_is_matched(true, false, 5);
}

/// The same over HTTP/2: the client's four connections' requests go up one
/// multiplexed connection and their responses come back in shared reads,
/// each written on to its client (README: which read fed which write, rule
/// 6). Reads there take several streams' frames that arrived over time,
/// timed from the oldest (README: what is measured).
#[test]
fn over_http2_the_sidecars_added_latency_is_matched_too() {
    sidecars_added_latency_is_matched(false, true, 7);
}
