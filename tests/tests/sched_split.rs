//! The split of process time (on CPU, run queue, blocked) against the
//! fixture's own account: its thread's CPU time (CLOCK_THREAD_CPUTIME_ID)
//! from each chunk's read to its write. Held asleep, a chunk's process time
//! is blocked; held spinning, it is on CPU, and where spinning threads
//! outnumber the CPUs, what the fixture did not run waited on a run queue.
use std::{thread, time::Duration};

use meshbox::{LoadGen, LoadSpec, SidecarKind, delay_proxy, delay_proxy::ProxyMode};
use profiler::{
    classify::{Direction, Leg},
    ebpf::{Hooks, SchedHooks},
};
use profiler_tests::{
    NoDeepIdle,
    capture::{assert_on_cpu_matches, hop, profile_under_load, profile_under_load_with, sidecar},
    contend::{Hogs, PinSelf, pin},
    mesh,
};

const HOLD: Duration = Duration::from_millis(1);

fn split_matches_the_fixture(
    mode: ProxyMode,
    conns: u32,
    rate: u32,
    contended: bool,
    sched: SchedHooks,
) {
    let _no_idle = NoDeepIdle::hold();
    let mut cfg = mesh::config(SidecarKind::DelayProxy);
    cfg.proxy_mode = mode;
    cfg.proxy_delay = HOLD;
    let m = mesh::up(&cfg);
    let stats = m.delay_proxy_stats(&m.server);
    let (snap, load) = profile_under_load_with(
        &m,
        LoadSpec {
            generator: LoadGen::Oha,
            duration: Duration::from_secs(4),
            connections: conns,
            rate: Some(rate),
            streams: 1,
        },
        Hooks {
            sched,
            ..Hooks::default()
        },
    );
    assert!(
        load.completed > 100,
        "{mode:?} {conns} connections: {load:?}"
    );
    assert!(snap.sched_split, "the scheduler hooks did not attach");
    let kind = match sched {
        SchedHooks::Classic => "tracepoint",
        // This machine's kernel has BTF and takes BTF tracepoints.
        _ => "btf_tracepoint",
    };
    assert_eq!(snap.sched_hooks, Some(kind), "{sched:?}");
    thread::sleep(Duration::from_millis(300));
    let truth = delay_proxy::read_stats(&stats).expect("fixture stats");
    let server = sidecar(&snap, "server-");
    for (leg, key) in [
        (Leg::Request, "inbound/request"),
        (Leg::Response, "inbound/response"),
    ] {
        let h = hop(server, Direction::Inbound, leg);
        let t = &truth[key];
        eprintln!(
            "{mode:?} {conns} conns {key}: {} of {} forwards split; process p50 {:.1} p99 {:.1}; \
             on cpu p50 {:.1} p99 {:.1} (fixture's thread CPU p50 {:.1} p99 {:.1}); runqueue \
             p50 {:.1} p99 {:.1}; blocked p50 {:.1} p99 {:.1}; queue p99 {:.1}, of it runnable \
             p99 {:.1} us",
            h.split_forwards,
            h.forwards,
            h.process_us.p50,
            h.process_us.p99,
            h.on_cpu_us.p50,
            h.on_cpu_us.p99,
            t.on_cpu_p50_us,
            t.on_cpu_p99_us,
            h.runqueue_us.p50,
            h.runqueue_us.p99,
            h.blocked_us.p50,
            h.blocked_us.p99,
            h.queue_us.p99,
            h.queue_runqueue_us.p99,
        );
        // One thread reads and writes each chunk: every forward splits.
        assert!(
            h.split_forwards as f64 >= 0.99 * h.forwards as f64 && h.forwards > 100,
            "{key}: {} of {} forwards split",
            h.split_forwards,
            h.forwards
        );
        assert_on_cpu_matches(key, h, t);
        let hold_us = HOLD.as_secs_f64() * 1e6;
        match mode {
            // Asleep for the hold: blocked, not on CPU.
            ProxyMode::Threads => assert!(
                h.blocked_us.p50 >= 0.9 * hold_us && h.on_cpu_us.p99 < 0.5 * hold_us,
                "{key}: a sleeping hold is blocked time"
            ),
            // Spinning: on CPU, or runnable while another spinner ran;
            // never asleep.
            _ => {
                assert!(
                    h.blocked_us.p99 <= 50.0,
                    "{key}: a spinning hold slept {:.1} us at p99",
                    h.blocked_us.p99
                );
                assert!(
                    h.on_cpu_us.p50 + h.runqueue_us.p50 >= 0.9 * hold_us,
                    "{key}: a spinning hold is on CPU or runnable"
                );
                if contended {
                    assert!(
                        h.runqueue_us.p99 >= 0.3 * hold_us,
                        "{key}: contended spinning holds waited only {:.1} us at p99 on \
                         the run queue",
                        h.runqueue_us.p99
                    );
                }
            }
        }
    }
}

#[test]
fn a_sleeping_hold_is_blocked_time() {
    for conns in [1, 16] {
        split_matches_the_fixture(ProxyMode::Threads, conns, 200, false, SchedHooks::Auto);
    }
}

#[test]
fn a_spinning_hold_is_on_cpu_time() {
    split_matches_the_fixture(ProxyMode::Spin, 1, 200, false, SchedHooks::Auto);
}

/// 64 connections of spinning holds: about four cores' worth of spinning
/// on this machine's two, so each hold is preempted; what the fixture's
/// thread did not run of it is run-queue time.
#[test]
fn spinning_holds_that_outnumber_the_cpus_wait_on_the_run_queue() {
    split_matches_the_fixture(ProxyMode::Spin, 64, 1000, true, SchedHooks::Auto);
}

/// The classic scheduler tracepoints, used where the BTF ones cannot go
/// (no kernel BTF, or Linux before 5.18), split alike: a sleeping hold is
/// blocked time, preempted spinning holds wait on the run queue.
#[test]
fn the_classic_scheduler_hooks_split_alike() {
    split_matches_the_fixture(ProxyMode::Threads, 1, 200, false, SchedHooks::Classic);
    split_matches_the_fixture(ProxyMode::Spin, 64, 1000, true, SchedHooks::Classic);
}

/// A real-time hog on the proxy's CPU, bursting 3 ms every 11 to 16 ms, while
/// the proxy spins 1 ms per chunk: a burst that lands in a hold preempts
/// the proxy for its length. That time is the hog's: it shows as run-queue
/// time, and on-CPU time stays the fixture thread's own CPU time.
#[test]
fn real_time_hog_bursts_are_run_queue_time_not_on_cpu() {
    let _no_idle = NoDeepIdle::hold();
    let mut cfg = mesh::config(SidecarKind::DelayProxy);
    cfg.proxy_mode = ProxyMode::Spin;
    cfg.proxy_delay = HOLD;
    let m = mesh::up(&cfg);
    let stats = m.delay_proxy_stats(&m.server);
    // Everything on CPU 0 but the server's proxy, alone with the hog on 1
    // (threads it starts per connection inherit its acceptors' CPU).
    pin(&m.client.pids(), 0);
    pin(&m.server.pids(), 0);
    pin(&[mesh::proxy_pid(&m.server).expect("server proxy")], 1);
    let _self_pin = PinSelf::to(0);
    // The bursts delay the requests they meet, so a fixed period would
    // lock onto one phase of the proxy's work: each sleep varies by 5 ms.
    let _hog = Hogs::start(1, 3, 8, 5);
    let (snap, load) = profile_under_load(
        &m,
        LoadSpec {
            generator: LoadGen::Oha,
            duration: Duration::from_secs(4),
            connections: 1,
            rate: Some(200),
            streams: 1,
        },
    );
    drop(_hog);
    assert!(load.completed > 200, "{load:?}");
    eprintln!(
        "switches missed (followings started over): {}",
        snap.sched_resyncs
    );
    thread::sleep(Duration::from_millis(300));
    let truth = delay_proxy::read_stats(&stats).expect("fixture stats");
    let server = sidecar(&snap, "server-");
    let hold_us = HOLD.as_secs_f64() * 1e6;
    for (leg, key) in [
        (Leg::Request, "inbound/request"),
        (Leg::Response, "inbound/response"),
    ] {
        let h = hop(server, Direction::Inbound, leg);
        let t = &truth[key];
        eprintln!(
            "hog on the proxy's CPU, {key}: {} of {} split; process p99 {:.1}; on cpu p50 {:.1} \
             p99 {:.1} max {:.1} (fixture's thread CPU p50 {:.1} p99 {:.1} max {:.1}); runqueue p50 {:.1} \
             p99 {:.1} max {:.1}; blocked p99 {:.1} us",
            h.split_forwards,
            h.forwards,
            h.process_us.p99,
            h.on_cpu_us.p50,
            h.on_cpu_us.p99,
            h.on_cpu_us.max,
            t.on_cpu_p50_us,
            t.on_cpu_p99_us,
            t.on_cpu_max_us,
            h.runqueue_us.p50,
            h.runqueue_us.p99,
            h.runqueue_us.max,
            h.blocked_us.p99
        );
        assert!(h.split_forwards as f64 >= 0.99 * h.forwards as f64);
        // Bursts landed in holds (some 5% of them): milliseconds of run
        // queue at p99, as the process time shows.
        assert!(
            h.runqueue_us.p99 >= 0.8 * 3000.0 - hold_us && h.process_us.p99 >= 2000.0,
            "{key}: the hog's 3 ms bursts did not show as run-queue time"
        );
        // None of it on CPU: on-CPU p50 and p99 stay the fixture thread's
        // own CPU time (below), where a burst charged as the proxy's work
        // in the ~5% of forwards it lands in would put p99 at 3 ms. (The
        // maximum is printed, not held: a switch the classic tracepoint
        // does not deliver, counted in sched_resyncs, left one forward in
        // about eight runs up to 1.8 ms over the fixture's longest.)
        assert_on_cpu_matches(key, h, t);
    }
}
