//! A sidecar's CPU over a snapshot against an independent reading: its
//! container cgroup's own CPU usage (cgroup v1 cpuacct.usage, or v2
//! cpu.stat usage_usec), read by this test around the capture.
use std::time::Duration;

use meshbox::{LoadGen, LoadSpec, SidecarKind};
use profiler::classify::{Direction, Leg};
use profiler_tests::{
    capture::{assert_on_cpu_matches, hop, profile_under_load, sidecar},
    mesh,
};

/// The directory of `pid`'s v1 cpu controller cgroup, if the node has one.
fn v1_cpu_dir(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|line| {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        ctrls.split(',').any(|c| c == "cpu").then(|| {
            ["/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu"]
                .iter()
                .map(|root| format!("{root}{path}"))
                .find(|d| std::path::Path::new(d).join("cpu.cfs_quota_us").exists())
        })?
    })
}

/// The container cgroup's CPU usage in ns, read straight from the files of
/// the cgroup /proc/<pid>/cgroup names.
fn container_usage_ns(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read its cgroup");
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        if ctrls.split(',').any(|c| c == "cpuacct") {
            for root in ["/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpuacct"] {
                let file = format!("{root}{path}/cpuacct.usage");
                if let Ok(v) = std::fs::read_to_string(&file) {
                    return v.trim().parse().expect("a number of ns");
                }
            }
        }
        if ctrls.is_empty()
            && let Ok(stat) = std::fs::read_to_string(format!("/sys/fs/cgroup{path}/cpu.stat"))
            && let Some(us) = stat
                .lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        {
            return us * 1000;
        }
    }
    panic!("no CPU accounting for pid {pid}'s cgroup: {text}");
}

#[test]
fn vcpu_per_1k_requests_matches_the_container_cgroup() {
    let m = mesh::up(&mesh::config(SidecarKind::Nginx));
    let pid = m.client.sidecar_pid().expect("the client's sidecar");
    let before = container_usage_ns(pid);
    let (snap, load) = profile_under_load(
        &m,
        LoadSpec {
            generator: LoadGen::Oha,
            duration: Duration::from_secs(6),
            connections: 4,
            rate: Some(500),
            streams: 1,
        },
    );
    let used_s = (container_usage_ns(pid) - before) as f64 / 1e9;
    assert!(load.completed > 2000, "{load:?}");
    let client = sidecar(&snap, "client-");
    let cpu = client.cpu.as_ref().expect("a cpu block");
    let ours = cpu.vcpu_per_1k_rps.expect("requests were forwarded");
    let theirs = used_s * 1000.0 / load.completed as f64;
    eprintln!(
        "client sidecar: {ours:.4} vCPU per 1k requests/s from the snapshot ({:.3} s over {} \
         request forwards), {theirs:.4} from its container cgroup ({used_s:.3} s over {} \
         completed requests); {cpu:?}",
        cpu.cpu_seconds,
        hop(client, Direction::Outbound, Leg::Request).forwards,
        load.completed
    );
    assert!(
        (ours - theirs).abs() <= 0.10 * theirs,
        "{ours:.4} vs the cgroup's {theirs:.4} vCPU per 1k requests/s"
    );
    assert!(!cpu.restarted && cpu.samples >= 6, "{cpu:?}");
    assert!(
        cpu.rss_bytes > 1 << 20 && cpu.threads >= 2 && cpu.context_switches > 0,
        "{cpu:?}"
    );
    assert!(
        (cpu.user_seconds + cpu.system_seconds - cpu.cpu_seconds).abs() < 1e-6,
        "{cpu:?}"
    );
    // Per thread, the same run time, each thread named.
    let threads: f64 = cpu.per_thread.iter().map(|t| t.cpu_seconds).sum();
    assert!(
        !cpu.per_thread.is_empty()
            && cpu.per_thread.len() < 32
            && (threads - cpu.cpu_seconds).abs() <= 0.01 * cpu.cpu_seconds
            && cpu.per_thread.iter().all(|t| !t.name.is_empty()),
        "{:?}",
        cpu.per_thread
    );
    // Each thread's run time split by its own ticks: over nginx's
    // single-threaded processes the threads' system time is the processes'
    // (one tick is 10 ms: a tenth of the run time, 20 ms). Ticks sample who
    // runs at each tick, so a sidecar this lightly loaded may gain none in
    // a second (then its time counts as user, for both).
    let sys: f64 = cpu.per_thread.iter().map(|t| t.system_seconds).sum();
    assert!(
        (sys - cpu.system_seconds).abs() <= 0.1 * cpu.cpu_seconds + 0.02,
        "threads' system time {sys:.3} s vs the processes' {:.3} s: {:?}",
        cpu.system_seconds,
        cpu.per_thread
    );
}

/// A CPU limit of 10% of a core on the sidecar's container, at a load it
/// cannot sustain: the snapshot reports the limit and throttled time, and
/// the time the proxy's threads waited throttled shows in the run-queue
/// part of process time (and in queue time), not in its on-CPU part, which
/// stays as it was at a load the sidecar sustains without the limit. (The
/// container's cgroup goes with the mesh.)
#[test]
fn a_cpu_quota_shows_as_throttled_time_and_run_queue_not_on_cpu() {
    let m = mesh::up(&mesh::config(SidecarKind::Nginx));
    let pid = m.client.sidecar_pid().expect("the client's sidecar");
    let dir = v1_cpu_dir(pid).unwrap_or_else(|| {
        panic!("no cgroup v1 cpu controller for pid {pid}: this test sets cpu.cfs_quota_us")
    });
    let spec = |rate| LoadSpec {
        generator: LoadGen::Oha,
        duration: Duration::from_secs(5),
        connections: 16,
        rate,
        streams: 1,
    };
    let (free, _) = profile_under_load(&m, spec(Some(400)));
    std::fs::write(format!("{dir}/cpu.cfs_period_us"), "100000").expect("set the CFS period");
    std::fs::write(format!("{dir}/cpu.cfs_quota_us"), "10000").expect("set a 10% quota");
    let (snap, load) = profile_under_load(&m, spec(None));
    let cpu = sidecar(&snap, "client-").cpu.clone().expect("a cpu block");
    eprintln!("10% quota, {} requests completed: {cpu:?}", load.completed);
    assert_eq!(cpu.limit_cores, Some(0.1), "{cpu:?}");
    assert!(
        cpu.throttled_seconds.is_some_and(|t| t > 0.1) && cpu.throttled_periods > Some(0),
        "{cpu:?}"
    );
    // Held to about its limit over the capture (~7 s).
    assert!(
        cpu.cpu_seconds < 0.1 * snap.duration_s * 1.3,
        "{cpu:?} over {} s",
        snap.duration_s
    );
    let hop_of = |s| hop(sidecar(s, "client-"), Direction::Outbound, Leg::Request).clone();
    let (before, after) = (hop_of(&free), hop_of(&snap));
    eprintln!(
        "client outbound request, unthrottled at 400 req/s -> 10% quota unthrottled load: \
         process p99 {:.1} -> {:.1}, on cpu p99 {:.1} -> {:.1}, runqueue p99 {:.1} -> {:.1} \
         (max {:.1} -> {:.1}), \
         blocked p99 {:.1} -> {:.1} us (each leg's queue below); run-queue waits {:?}",
        before.process_us.p99,
        after.process_us.p99,
        before.on_cpu_us.p99,
        after.on_cpu_us.p99,
        before.runqueue_us.p99,
        after.runqueue_us.p99,
        before.runqueue_us.max,
        after.runqueue_us.max,
        before.blocked_us.p99,
        after.blocked_us.p99,
        cpu.runqueue_wait_us,
    );
    assert!(
        after.split_forwards as f64 >= 0.99 * after.forwards as f64,
        "{} of {} forwards split",
        after.split_forwards,
        after.forwards
    );
    // The kernel notices the quota is spent mostly when the proxy goes back
    // to its event loop's wait (the dequeue updates the cgroup's runtime),
    // so the stall falls between the next wake-up and the read: queue time,
    // of which the reading thread was runnable. A stall inside a forward
    // is rarer (a tick in a ~50 µs window); when it lands there it is
    // run-queue time (a_quota_stall_inside_a_forward_is_run_queue_time).
    // The data that arrived while the proxy was throttled waited runnable.
    // Each of the 16 connections meets a throttled window once a 100 ms
    // period, on one leg or the other (its request, or its response piling
    // up behind the stalled proxy): about 16 stalls a period over both legs
    // against 300 to 450 forwards on each, about 2% of a leg's forwards on
    // average and fewer on the leg fewer connections sit in. A leg's p99
    // sits at that edge (one CI run read 1.0 ms on the request leg where
    // other runs read 80 ms): there it need only rise (the backlog left by
    // a stall waits too), and each leg's p99.9 is held to the stall.
    for leg in [Leg::Request, Leg::Response] {
        let of = |s| hop(sidecar(s, "client-"), Direction::Outbound, leg).clone();
        let (b, a) = (of(&free), of(&snap));
        eprintln!(
            "client outbound {leg:?}: {} -> {} forwards; queue p99 {:.1} -> {:.1}, p99.9 {:.1} \
             -> {:.1} (of it runnable p99.9 {:.1} -> {:.1}) us",
            b.forwards,
            a.forwards,
            b.queue_us.p99,
            a.queue_us.p99,
            b.queue_us.p999,
            a.queue_us.p999,
            b.queue_runqueue_us.p999,
            a.queue_runqueue_us.p999
        );
        assert!(
            a.queue_us.p99 > 2.0 * b.queue_us.p99,
            "{leg:?}: queue p99 {:.1} -> {:.1} us",
            b.queue_us.p99,
            a.queue_us.p99
        );
        assert!(
            a.queue_us.p999 > b.queue_us.p999 + 1000.0 && a.queue_runqueue_us.p999 > 1000.0,
            "{leg:?}: queue p99.9 {:.1} -> {:.1} us, of it runnable {:.1} us",
            b.queue_us.p999,
            a.queue_us.p999,
            a.queue_runqueue_us.p999
        );
    }
    // Throttling is never charged as the proxy's own work.
    assert!(
        after.on_cpu_us.p99 <= 1.25 * before.on_cpu_us.p99,
        "on-CPU p99 rose from {:.1} to {:.1} us under the quota",
        before.on_cpu_us.p99,
        after.on_cpu_us.p99
    );
    let waits = cpu.runqueue_wait_us.expect("run-queue waits recorded");
    assert!(waits.max > 1000.0, "{waits:?}");
    // The report flags the intervals where throttling met the tail, and
    // none at the load the sidecar sustained without the limit.
    let free_cpu = sidecar(&free, "client-").cpu.clone().expect("a cpu block");
    let flagged: Vec<_> = cpu
        .intervals
        .iter()
        .filter(|i| !i.flags.is_empty())
        .map(|i| {
            (
                i.start_s,
                i.flags.clone(),
                i.total_p99_us,
                i.throttled_seconds,
            )
        })
        .collect();
    eprintln!(
        "flagged under the quota: {} of {} intervals {flagged:?}; latency vs CPU {:?}; without \
         the limit: {} of {} flagged",
        cpu.flagged_intervals,
        cpu.intervals.len(),
        cpu.latency_vs_cpu,
        free_cpu.flagged_intervals,
        free_cpu.intervals.len()
    );
    assert!(
        cpu.intervals.len() >= 5
            && cpu
                .intervals
                .iter()
                .filter(|i| i.flags.contains(&"throttled"))
                .count()
                >= 3,
        "the throttled intervals were not flagged: {:?}",
        cpu.intervals
    );
    assert!(
        free_cpu.intervals.len() >= 5 && free_cpu.flagged_intervals == 0,
        "intervals flagged without a limit: {:?}",
        free_cpu.intervals
    );
    assert!(cpu.cpu_us_per_forward.is_some_and(|c| c > 0.0), "{cpu:?}");
}

/// A proxy killed mid-snapshot and restarted by its agent: the snapshot
/// follows the new process, says the sidecar restarted, and counts no time
/// twice (at most the container cgroup's own reading over a wider window).
#[test]
fn a_proxy_restarting_mid_snapshot_is_followed_and_counted_once() {
    let m = mesh::up(&mesh::config(SidecarKind::DelayProxy));
    let server_pid = m.server.sidecar_pid().expect("the server's sidecar");
    let before = container_usage_ns(server_pid);
    let old = mesh::proxy_pid(&m.server).expect("the server's proxy");
    let (snap, load) = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_secs(2));
            // SAFETY: a process of the test mesh this test built.
            unsafe { libc::kill(old as i32, libc::SIGKILL) };
        });
        profile_under_load(
            &m,
            LoadSpec {
                generator: LoadGen::Oha,
                duration: Duration::from_secs(6),
                connections: 2,
                rate: Some(200),
                streams: 1,
            },
        )
    });
    let used_s = (container_usage_ns(server_pid) - before) as f64 / 1e9;
    let new = mesh::proxy_pid(&m.server).expect("the restarted proxy");
    assert_ne!(new, old, "the proxy was not restarted");
    let cpu = sidecar(&snap, "server-").cpu.clone().expect("a cpu block");
    eprintln!(
        "server proxy {old} killed, {new} started; {} requests; snapshot {:.4} s, container cgroup {used_s:.4} s: {cpu:?}",
        load.completed, cpu.cpu_seconds
    );
    assert!(cpu.restarted, "{cpu:?}");
    assert!(cpu.cpu_seconds > 0.0, "{cpu:?}");
    assert!(
        cpu.cpu_seconds <= used_s * 1.05,
        "{:.4} s counted, the container used {used_s:.4} s",
        cpu.cpu_seconds
    );
}

/// The same 10% quota on a proxy that works 1 ms per chunk (the fixture,
/// spinning): the quota runs out inside forwards, and each stall is
/// run-queue time of that forward; on-CPU time stays the fixture thread's
/// own CPU time.
#[test]
fn a_quota_stall_inside_a_forward_is_run_queue_time() {
    let mut cfg = mesh::config(SidecarKind::DelayProxy);
    cfg.proxy_mode = meshbox::delay_proxy::ProxyMode::Spin;
    cfg.proxy_delay = Duration::from_millis(1);
    let m = mesh::up(&cfg);
    let stats = m.delay_proxy_stats(&m.server);
    let pid = m.server.sidecar_pid().expect("the server's sidecar");
    let dir = v1_cpu_dir(pid).unwrap_or_else(|| {
        panic!("no cgroup v1 cpu controller for pid {pid}: this test sets cpu.cfs_quota_us")
    });
    std::fs::write(format!("{dir}/cpu.cfs_period_us"), "100000").expect("set the CFS period");
    std::fs::write(format!("{dir}/cpu.cfs_quota_us"), "10000").expect("set a 10% quota");
    let (snap, load) = profile_under_load(
        &m,
        LoadSpec {
            generator: LoadGen::Oha,
            duration: Duration::from_secs(8),
            connections: 4,
            rate: Some(100),
            streams: 1,
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    let truth = meshbox::delay_proxy::read_stats(&stats).expect("fixture stats");
    let server = sidecar(&snap, "server-");
    let cpu = server.cpu.clone().expect("a cpu block");
    let h = hop(server, Direction::Inbound, Leg::Request);
    let t = &truth["inbound/request"];
    eprintln!(
        "spinning proxy, 10% quota, {} requests: throttled {:?} s; process p99 {:.1}, on cpu \
         p50 {:.1} p99 {:.1} (fixture's thread CPU p50 {:.1} p99 {:.1}, {:.1} to {:.1} three \
         forwards away, {} forwards), runqueue p50 {:.1} p99 {:.1}, blocked p99 {:.1} us",
        load.completed,
        cpu.throttled_seconds,
        h.process_us.p99,
        h.on_cpu_us.p50,
        h.on_cpu_us.p99,
        t.on_cpu_p50_us,
        t.on_cpu_p99_us,
        t.on_cpu_p99_below_us,
        t.on_cpu_p99_above_us,
        t.forwards,
        h.runqueue_us.p50,
        h.runqueue_us.p99,
        h.blocked_us.p99,
    );
    assert!(cpu.throttled_seconds.is_some_and(|t| t > 0.1), "{cpu:?}");
    assert!(
        h.runqueue_us.p99 > 1000.0,
        "stalls inside forwards did not show as run-queue time: p99 {:.1} us",
        h.runqueue_us.p99
    );
    assert_on_cpu_matches("inbound/request", h, t);
}
