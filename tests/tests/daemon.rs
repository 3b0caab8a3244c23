//! `profiler run` as a node daemon: probes, continuous discovery, the
//! metric contract against a real Prometheus, clean exit on SIGTERM, and
//! clear errors for a bad or busy listen address.
use std::{
    collections::BTreeMap,
    net::SocketAddr,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use meshbox::{LoadGen, LoadSpec, SidecarKind};
use profiler::{
    classify::{Direction, Leg},
    histogram::buckets,
};
use profiler_tests::{
    capture::{HOPS, hop, profile_under_load, sidecar},
    daemon::{Prometheus, start_daemon, wait_ok},
    http, mesh, require_root,
};

fn loopback() -> SocketAddr {
    http::free_loopback().expect("a free loopback port")
}

fn log_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("profiler-run-{name}-{}.log", std::process::id()))
}

/// Every sample of the exposition: `name{labels}` -> value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn scrape(addr: SocketAddr) -> String {
    let r = http::get(addr, "/metrics", None).expect("scrape");
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn tracked(addr: SocketAddr) -> f64 {
    samples(&scrape(addr))
        .get("profiler_sidecars_tracked")
        .copied()
        .unwrap_or(-1.0)
}

/// Poll until `done(tracked sidecars)`; panics with `what` and the last
/// scrape after `within`. Returns how long it took.
fn wait_tracked(
    addr: SocketAddr,
    done: impl Fn(f64) -> bool,
    within: Duration,
    what: &str,
) -> Duration {
    let t0 = Instant::now();
    while !done(tracked(addr)) {
        assert!(t0.elapsed() < within, "{what}: {}", scrape(addr));
        thread::sleep(Duration::from_millis(50));
    }
    t0.elapsed()
}

/// The daemon at `addr` is ready and tracks the mesh's two sidecars.
fn ready_with_both_sidecars(addr: SocketAddr) {
    wait_ok(addr, "/readyz", Duration::from_secs(30), "profiler run");
    wait_tracked(
        addr,
        |n| n >= 2.0,
        Duration::from_secs(5),
        "sidecars not tracked",
    );
}

#[test]
fn run_rejects_a_bad_or_busy_listen_address() {
    let bin = profiler_tests::profiler_bin();
    let out = Command::new(&bin)
        .args(["run", "--listen", "nonsense"])
        .output()
        .expect("run profiler");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--listen"),
        "{out:?}"
    );
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr");
    let out = Command::new(&bin)
        .args(["run", "--listen", &addr.to_string()])
        .output()
        .expect("run profiler");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("cannot listen on {addr}")) && err.contains("--listen"),
        "{err}"
    );
}

#[test]
fn run_follows_sidecars_that_come_and_go() {
    require_root();
    let addr = loopback();
    let log = log_path("follow");
    let mut d = start_daemon(addr, &["--series-ttl", "3s"], &log);
    wait_ok(addr, "/healthz", Duration::from_secs(10), "profiler run");
    wait_ok(addr, "/readyz", Duration::from_secs(30), "profiler run");
    assert_eq!(tracked(addr), 0.0, "no mesh yet");
    let m = mesh::up(&mesh::config(SidecarKind::Nginx));
    // The sidecars started during mesh::up; both must be tracked within 2 s.
    let took = wait_tracked(
        addr,
        |n| n >= 2.0,
        Duration::from_secs(2),
        "sidecars not tracked 2 s after they started",
    );
    eprintln!("both sidecars tracked {took:?} after the mesh was up");
    // Traffic, so that the pods have series.
    let spec = LoadSpec {
        generator: LoadGen::Oha,
        duration: Duration::from_secs(2),
        connections: 2,
        rate: Some(100),
        streams: 1,
    };
    meshbox::load::run(&m.client.netns, &m.url(), &spec).expect("load");
    thread::sleep(Duration::from_millis(300));
    let pods = [m.client.name.clone(), m.server.name.clone()];
    let text = scrape(addr);
    for p in &pods {
        assert!(
            text.contains(&format!("pod=\"{p}\"")),
            "no series for {p}:\n{text}"
        );
    }
    drop(m);
    let gone = Instant::now();
    wait_tracked(
        addr,
        |n| n <= 0.0,
        Duration::from_secs(3),
        "sidecars still tracked 3 s after their pods went",
    );
    // Their series stay for the TTL (3 s here), then go.
    while pods
        .iter()
        .any(|p| scrape(addr).contains(&format!("pod=\"{p}\"")))
    {
        assert!(
            gone.elapsed() < Duration::from_secs(3 + 3),
            "series of gone pods still served {:?} after they went: {}",
            gone.elapsed(),
            scrape(addr)
                .lines()
                .filter(|l| pods.iter().any(|p| l.contains(p.as_str())))
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
        thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "series of the gone pods removed {:?} after they went",
        gone.elapsed()
    );
    let (status, took) = d.terminate();
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM: {status:?} after {took:?}; log: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let _ = std::fs::remove_file(&log);
}

#[test]
fn run_serves_the_mesh_to_prometheus() {
    require_root();
    let addr = loopback();
    let log = log_path("prom");
    let m = mesh::up(&mesh::config(SidecarKind::Nginx));
    let mut d = start_daemon(addr, &[], &log);
    ready_with_both_sidecars(addr);
    let prom = Prometheus::start(addr, &[profiler_tests::deploy::dir().join("rules.yaml")]);
    // A snapshot over the same traffic, while Prometheus scrapes the daemon
    // every second and this test scrapes it every 200 ms.
    let spec = LoadSpec {
        generator: LoadGen::Oha,
        duration: Duration::from_secs(6),
        connections: 16,
        rate: Some(400),
        streams: 1,
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (snap, load, backwards) = thread::scope(|s| {
        let watcher = s.spawn(|| {
            let mut prev: BTreeMap<String, f64> = BTreeMap::new();
            let mut backwards = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let now = samples(&scrape(addr));
                for (k, v) in &now {
                    let monotonic = k.contains("_total")
                        || k.contains("_bucket")
                        || k.contains("_count")
                        || k.contains("_sum");
                    if monotonic && prev.get(k).is_some_and(|p| v < p) {
                        backwards.push(format!("{k}: {} -> {v}", prev[k]));
                    }
                }
                prev = now;
                thread::sleep(Duration::from_millis(200));
            }
            backwards
        });
        let (snap, load) = profile_under_load(&m, spec);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (snap, load, watcher.join().expect("watcher"))
    });
    assert!(load.completed > 1000, "{load:?}");
    assert!(
        backwards.is_empty(),
        "counters went backwards: {backwards:?}"
    );
    // Two more scrapes by Prometheus after the last forward.
    thread::sleep(Duration::from_millis(2500));
    for (pod, dir) in HOPS {
        let sc = sidecar(&snap, pod);
        let pod_name = sc.pod.clone().expect("pod name");
        for leg in [Leg::Request, Leg::Response] {
            let ours = hop(sc, dir, leg);
            let sel = format!(
                "pod=\"{pod_name}\",direction=\"{}\",leg=\"{}\"",
                match dir {
                    Direction::Inbound => "inbound",
                    Direction::Outbound => "outbound",
                },
                match leg {
                    Leg::Request => "request",
                    Leg::Response => "response",
                }
            );
            let q = format!(
                "histogram_quantile(0.99, sidecar_hop_duration_seconds_bucket{{{sel},component=\"total\"}})"
            );
            let r = prom.query(&q);
            assert_eq!(r.len(), 1, "{q}: {r:?}");
            let p99_s: f64 = r[0]["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{q}: {r:?}"));
            let (theirs, snap_ns) = ((p99_s * 1e9) as u64, (ours.total_us.p99 * 1000.0) as u64);
            let (bt, bs) = (buckets::slot(theirs), buckets::slot(snap_ns));
            eprintln!(
                "{pod_name} {sel}: Prometheus p99 {:.1} us (bucket {bt}), snapshot p99 {:.1} us (bucket {bs})",
                p99_s * 1e6,
                ours.total_us.p99
            );
            assert!(bt.abs_diff(bs) <= 1, "{sel}: more than one bucket apart");
            let fq = format!("sidecar_forwards_total{{{sel}}}");
            let f = prom.query(&fq);
            let n: f64 = f
                .first()
                .and_then(|x| x["value"][1].as_str())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{fq}: {f:?}"));
            eprintln!("{fq} = {n}; snapshot {} forwards", ours.forwards);
            assert!(
                (n - ours.forwards as f64).abs() <= 0.01 * ours.forwards as f64,
                "{fq}: {n} vs the snapshot's {}",
                ours.forwards
            );
        }
    }
    // The text format passes promtool's lint; OpenMetrics (which promtool
    // does not parse) is what Prometheus asked for and ingested above.
    let r = http::get(addr, "/metrics", None).expect("scrape");
    // Every attached program's skipped runs are exported: this machine's
    // four socket hooks and the scheduler's one.
    let skipped: Vec<&str> = r
        .body
        .lines()
        .filter(|l| l.starts_with("profiler_program_runs_skipped_total{"))
        .collect();
    assert_eq!(skipped.len(), 5, "{skipped:?}");
    assert!(
        skipped.iter().any(|l| l.starts_with(
            "profiler_program_runs_skipped_total{hook=\"btf tracepoint sched_switch\"}"
        )),
        "{skipped:?}"
    );
    let out = promtool_check_metrics(&r.body);
    assert!(out.is_empty(), "promtool check metrics: {out}");
    eprintln!(
        "{} ({} bytes) passes promtool",
        r.content_type,
        r.body.len()
    );
    let om = http::get(addr, "/metrics", Some(http::PROMETHEUS_ACCEPT)).expect("scrape");
    assert!(
        om.content_type.starts_with("application/openmetrics-text") && om.body.ends_with("# EOF\n"),
        "{}",
        om.content_type
    );
    let up = prom.query("up{job=\"profiler\"}");
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(up[0]["value"][1], "1", "{up:?}");
    rules_and_dashboard_return_data(&prom);
    drop(prom);
    let (status, took) = d.terminate();
    eprintln!("profiler run exited {status:?} {took:?} after SIGTERM");
    assert!(
        status.is_some_and(|s| s.success()) && took < Duration::from_secs(5),
        "SIGTERM: {status:?} after {took:?}; log: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let _ = std::fs::remove_file(&log);
}

/// The left side of an alert's comparison (`x > 0.005` -> `x`): what must
/// return data while the alert does not fire.
fn before_comparison(expr: &str) -> &str {
    [" > ", " < ", " == ", " >= ", " <= ", " != "]
        .iter()
        .filter_map(|op| expr.rfind(op))
        .max()
        .map_or(expr, |i| expr[..i].trim())
}

/// Every rule of deploy/rules.yaml is healthy and returns data; every
/// expression and variable of the Grafana dashboard returns data.
fn rules_and_dashboard_return_data(prom: &Prometheus) {
    let groups = prom.api("/api/v1/rules")["groups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut checked = 0;
    for g in &groups {
        for r in g["rules"].as_array().into_iter().flatten() {
            let expr = r["query"].as_str().unwrap_or_default();
            assert_eq!(r["health"], "ok", "rule {}: {r}", r["name"]);
            let q = match r["type"].as_str() {
                Some("recording") => r["name"].as_str().unwrap_or_default().to_string(),
                _ => before_comparison(expr).to_string(),
            };
            let res = prom.query(&q);
            eprintln!("rule {}: {q} -> {} series", r["name"], res.len());
            assert!(!res.is_empty(), "rule {}: {q} returned no data", r["name"]);
            checked += 1;
        }
    }
    assert_eq!(
        checked, 6,
        "rules loaded from deploy/rules.yaml: {groups:?}"
    );
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(profiler_tests::deploy::dir().join("grafana-dashboard.json"))
            .expect("dashboard"),
    )
    .expect("dashboard JSON");
    fn panels(v: &serde_json::Value, out: &mut Vec<String>) {
        for p in v["panels"].as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push(e.to_string());
                }
            }
            panels(p, out);
        }
    }
    let mut exprs = Vec::new();
    panels(&dash, &mut exprs);
    assert!(exprs.len() >= 8, "{exprs:?}");
    for e in &exprs {
        // As Grafana sends them with every namespace and workload chosen.
        let q = e
            .replace("$namespace", ".*")
            .replace("$workload", ".*")
            .replace("$__rate_interval", "1m");
        let res = prom.query(&q);
        eprintln!("dashboard: {q} -> {} series", res.len());
        assert!(
            !res.is_empty(),
            "dashboard expression returned no data: {q}"
        );
    }
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        let Some(q) = v["query"]["query"].as_str() else {
            continue;
        };
        // label_values(selector, label) is Grafana's call of the labels API.
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {}: {q}", v["name"]));
        let (sel, label) = inner.rsplit_once(',').expect("selector, label");
        let sel = sel.replace("$namespace", ".*");
        let values = prom.api(&format!(
            "/api/v1/label/{}/values?match[]={}",
            label.trim(),
            http::encode(&sel)
        ));
        eprintln!("dashboard variable {}: {values}", v["name"]);
        assert!(
            values.as_array().is_some_and(|a| !a.is_empty()),
            "variable {} ({q}) has no values",
            v["name"]
        );
    }
}

/// promtool's complaints about an exposition (empty: clean).
fn promtool_check_metrics(text: &str) -> String {
    use std::io::Write;
    let bin = "/usr/bin/promtool";
    assert!(
        std::path::Path::new(bin).exists(),
        "{bin} is missing: `cargo xtask setup` installs Debian's prometheus"
    );
    let mut child = Command::new(bin)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool output");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && all.trim().is_empty() {
        String::new()
    } else {
        format!("exit {:?}: {all}", out.status.code())
    }
}

#[test]
fn counters_survive_a_sidecar_restart() {
    require_root();
    let addr = loopback();
    let log = log_path("restart");
    let m = mesh::up(&mesh::config(SidecarKind::DelayProxy));
    // CPU sampled every second, so both processes' time shows.
    let mut d = start_daemon(addr, &["--cpu-interval", "1s"], &log);
    ready_with_both_sidecars(addr);
    let spec = LoadSpec {
        generator: LoadGen::Oha,
        duration: Duration::from_secs(2),
        connections: 2,
        rate: Some(100),
        streams: 1,
    };
    let load = || meshbox::load::run(&m.client.netns, &m.url(), &spec).expect("load");
    let server = |text: &str| -> BTreeMap<String, f64> {
        samples(text)
            .into_iter()
            .filter(|(k, _)| k.contains(&format!("pod=\"{}\"", m.server.name)))
            .collect()
    };
    load();
    thread::sleep(Duration::from_millis(300));
    let before = server(&scrape(addr));
    let key = format!(
        "sidecar_forwards_total{{namespace=\"meshbox\",pod=\"{}\",workload=\"server\",direction=\"inbound\",leg=\"request\"}}",
        m.server.name
    );
    assert!(
        before.get(&key).is_some_and(|&n| n > 100.0),
        "{key}: {before:?}"
    );
    // The server's proxy crashes; its agent starts a new one.
    let old = mesh::proxy_pid(&m.server).expect("the server's proxy");
    // SAFETY: a process of the test mesh this test built.
    unsafe { libc::kill(old as i32, libc::SIGKILL) };
    let t0 = Instant::now();
    let new = loop {
        if let Some(p) = mesh::proxy_pid(&m.server).filter(|&p| p != old) {
            break p;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the proxy was not restarted"
        );
        thread::sleep(Duration::from_millis(50));
    };
    // Discovery follows the new process within its period.
    thread::sleep(Duration::from_millis(2500));
    load();
    thread::sleep(Duration::from_millis(300));
    let after = server(&scrape(addr));
    // Counters only: a new process may well be smaller.
    let backwards: Vec<_> = before
        .iter()
        .filter(|(k, _)| !k.starts_with("sidecar_memory_rss_bytes"))
        .filter(|(k, v)| after.get(*k).is_none_or(|a| a < *v))
        .map(|(k, v)| format!("{k}: {v} -> {:?}", after.get(k)))
        .collect();
    assert!(
        backwards.is_empty(),
        "after the restart (pid {old} -> {new}): {backwards:?}"
    );
    eprintln!(
        "{key}: {} before the restart (pid {old}), {} after (pid {new})",
        before[&key], after[&key]
    );
    assert!(
        after[&key] >= before[&key] + 100.0,
        "forwards of the restarted proxy were not counted in the same series"
    );
    // CPU too: both processes' time, in the same series, and memory.
    let cpu = |s: &BTreeMap<String, f64>| -> f64 {
        s.iter()
            .filter(|(k, _)| k.starts_with("sidecar_cpu_seconds_total{"))
            .map(|(_, v)| v)
            .sum()
    };
    eprintln!(
        "server sidecar CPU: {:.4} s before the restart, {:.4} s after",
        cpu(&before),
        cpu(&after)
    );
    assert!(
        cpu(&before) > 0.0 && cpu(&after) > cpu(&before),
        "{before:?} -> {after:?}"
    );
    assert!(
        after
            .iter()
            .any(|(k, v)| k.starts_with("sidecar_memory_rss_bytes{") && *v > 1e6),
        "{after:?}"
    );
    let (status, _) = d.terminate();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let _ = std::fs::remove_file(&log);
}

/// `profiler run --pod-edge`: the kernel's components are exported on both
/// legs of the server's inbound hop (kernel_in, kernel_out and
/// sidecar_total: at the pod edge on one end, over the pod's loopback to
/// or from the app on the other), and the classifiers come off when the
/// daemon ends on SIGTERM.
#[test]
fn run_exports_the_pod_edge_components() {
    require_root();
    let addr = loopback();
    let log = log_path("pod-edge");
    let m = mesh::up(&mesh::config(SidecarKind::Nginx));
    let node = format!("/run/netns/{}", m.node_netns);
    let mut d = start_daemon(addr, &["--pod-edge", "--node-netns", &node], &log);
    ready_with_both_sidecars(addr);
    let load = meshbox::load::run(
        &m.client.netns,
        &m.url(),
        &profiler_tests::capture::oha(4, 300, 2),
    )
    .expect("load");
    thread::sleep(Duration::from_millis(300));
    let all = samples(&scrape(addr));
    let count = |leg: &str, component: &str| {
        all.get(&format!(
            "sidecar_hop_duration_seconds_count{{namespace=\"meshbox\",pod=\"{}\",workload=\"server\",direction=\"inbound\",leg=\"{leg}\",component=\"{component}\"}}",
            m.server.name
        ))
        .copied()
    };
    let completed = load.completed as f64;
    for leg in ["request", "response"] {
        for component in ["kernel_in", "kernel_out", "sidecar_total"] {
            let n = count(leg, component).unwrap_or(0.0);
            eprintln!("inbound {leg} {component}: {n} observations, {completed} requests");
            assert!(
                n >= 0.99 * completed,
                "inbound {leg} {component}: {n} for {completed} requests; log: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
    }
    let (status, _) = d.terminate();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let _ = std::fs::remove_file(&log);
    // Nothing of the daemon's left on the pods' veths.
    profiler_tests::edge::assert_none_of_ours(std::path::Path::new(&node), &["veth0", "veth1"]);
}
