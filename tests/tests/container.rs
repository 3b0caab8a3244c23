//! The DaemonSet's image under a real container runtime (podman with runc),
//! run as deploy/daemonset.yaml declares it, while load crosses the mesh in
//! a box; and what happens without each capability it adds, or under the
//! runtime's default seccomp profile.
use std::{thread, time::Duration};

use meshbox::{LoadGen, LoadSpec, SidecarKind};
use profiler_tests::{
    container::{self, Container},
    daemon::wait_ok,
    http, mesh, require_root,
};

fn listen() -> std::net::SocketAddr {
    http::free_loopback().expect("a free loopback port")
}

#[test]
fn the_image_finds_the_sidecars_as_the_daemonset_runs_it() {
    require_root();
    container::require_image();
    let m = mesh::up(&mesh::config(SidecarKind::Nginx));
    let addr = listen();
    let c = Container::start(
        &format!("profiler-test-{}", std::process::id()),
        &container::run_args(None, true),
        &container::command(&addr.to_string()),
    );
    wait_ok(addr, "/healthz", Duration::from_secs(20), "container");
    wait_ok(addr, "/readyz", Duration::from_secs(20), "container");
    let spec = LoadSpec {
        generator: LoadGen::Oha,
        duration: Duration::from_secs(3),
        connections: 4,
        rate: Some(200),
        streams: 1,
    };
    let load = meshbox::load::run(&m.client.netns, &m.url(), &spec).expect("load");
    assert!(load.completed > 300, "{load:?}");
    thread::sleep(Duration::from_millis(300));
    let text = http::get(addr, "/metrics", None).expect("scrape").body;
    assert!(
        text.contains("\nprofiler_sidecars_tracked 2\n"),
        "{text}\n{}",
        c.logs()
    );
    for pod in [&m.client.name, &m.server.name] {
        let line = text
            .lines()
            .find(|l| l.starts_with("sidecar_forwards_total{") && l.contains(pod.as_str()))
            .unwrap_or_else(|| panic!("no forwards of {pod}:\n{text}\n{}", c.logs()));
        let n: f64 = line
            .rsplit_once(' ')
            .and_then(|(_, v)| v.parse().ok())
            .expect("value");
        eprintln!("{line}");
        assert!(n >= 0.99 * load.completed as f64, "{line}: {load:?}");
    }
    let code = c.stop(5);
    assert_eq!(code, Some(0), "exit after SIGTERM; logs:\n{}", c.logs());
    // JSON logs, as the DaemonSet asks.
    let logs = c.logs();
    assert!(
        logs.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "{logs}"
    );
}

#[test]
fn without_a_capability_it_adds_the_error_names_it() {
    require_root();
    container::require_image();
    for (cap, named) in [
        ("BPF", "CAP_BPF"),
        ("PERFMON", "CAP_PERFMON"),
        ("SYS_PTRACE", "CAP_SYS_PTRACE"),
        ("DAC_READ_SEARCH", "CAP_DAC_READ_SEARCH"),
    ] {
        let out = container::run_once(
            &container::run_args(Some(cap), true),
            &container::command(&listen().to_string()),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        eprintln!(
            "without {cap}: exit {:?}: {}",
            out.status.code(),
            err.trim()
        );
        assert_eq!(out.status.code(), Some(2), "without {cap}: {out:?}");
        assert!(
            err.contains("missing privilege") && err.contains(named),
            "without {cap}: {err}"
        );
    }
}

#[test]
fn the_runtime_default_seccomp_profile_refuses_bpf_and_the_error_says_so() {
    require_root();
    container::require_image();
    let out = container::run_once(
        &container::run_args(None, false),
        &container::command(&listen().to_string()),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "default seccomp: exit {:?}: {}",
        out.status.code(),
        err.trim()
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        err.contains("seccomp") && err.contains("deploy/seccomp/profiler.json"),
        "{err}"
    );
}
