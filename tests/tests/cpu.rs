//! A sidecar's CPU over a snapshot against an independent reading: its
//! container cgroup's own CPU usage (cgroup v1 cpuacct.usage, or v2
//! cpu.stat usage_usec), read by this test around the capture.
use std::time::Duration;

use meshbox::{LoadGen, LoadSpec, SidecarKind};
use profiler::classify::{Direction, Leg};
use profiler_tests::{
    capture::{hop, profile_under_load, sidecar},
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
}

/// A CPU limit of 10% of a core on the sidecar's container, at a load it
/// cannot sustain: the snapshot reports the limit and throttled time. (The
/// container's cgroup goes with the mesh.)
#[test]
fn a_cpu_quota_shows_as_throttled_time() {
    let m = mesh::up(&mesh::config(SidecarKind::Nginx));
    let pid = m.client.sidecar_pid().expect("the client's sidecar");
    let dir = v1_cpu_dir(pid).unwrap_or_else(|| {
        panic!("no cgroup v1 cpu controller for pid {pid}: this test sets cpu.cfs_quota_us")
    });
    std::fs::write(format!("{dir}/cpu.cfs_period_us"), "100000").expect("set the CFS period");
    std::fs::write(format!("{dir}/cpu.cfs_quota_us"), "10000").expect("set a 10% quota");
    let (snap, load) = profile_under_load(
        &m,
        LoadSpec {
            generator: LoadGen::Oha,
            duration: Duration::from_secs(5),
            connections: 16,
            rate: None,
            streams: 1,
        },
    );
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
