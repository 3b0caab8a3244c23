//! The mesh in a box: interception really happens, the baseline bypasses
//! the sidecars, and nothing survives teardown (also after a panic).
use std::{thread, time::Duration};

use meshbox::{self as testbed, LoadGen, LoadSpec, SidecarKind};
use profiler_tests::mesh;

fn load(secs: u64, generator: LoadGen) -> LoadSpec {
    LoadSpec {
        generator,
        duration: Duration::from_secs(secs),
        connections: 4,
        rate: Some(300),
        // One request at a time per connection: oha speaks HTTP/2 above 1.
        streams: if generator == LoadGen::H2load {
            testbed::load::DEFAULT_STREAMS
        } else {
            1
        },
    }
}

/// Run load in the background and count sidecar connections while it runs.
fn connections_under_load(
    m: &testbed::Mesh,
    generator: LoadGen,
) -> (testbed::LoadResult, usize, usize) {
    thread::scope(|s| {
        let h = s.spawn(|| testbed::load::run(&m.client.netns, &m.url(), &load(3, generator)));
        thread::sleep(Duration::from_millis(1500));
        let c = m.sidecar_connections(&m.client).expect("ss client");
        let sv = m.sidecar_connections(&m.server).expect("ss server");
        (h.join().expect("load thread").expect("load run"), c, sv)
    })
}

/// HTTP status of a plaintext request from the client pod as UID 1337
/// (exempt from interception, so it bypasses the client's sidecar and meets
/// the server pod's inbound listener directly); "000" when refused.
fn plaintext_status_as_proxy_user(m: &testbed::Mesh) -> String {
    let out = testbed::netns::exec_in(&m.client.netns, "setpriv")
        .args([
            "--reuid=1337",
            "--regid=1337",
            "--clear-groups",
            "curl",
            "-s",
            "-o",
            "/dev/null",
        ])
        .args(["-w", "%{http_code}", "--max-time", "3", &m.url()])
        .output()
        .expect("run curl (apt-get install curl; cargo xtask setup does)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn assert_gone(id: &str) {
    let left = testbed::leftovers(id);
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn requests_cross_both_sidecars_with_nginx_and_oha() {
    let mut m = mesh::up(&mesh::config(SidecarKind::Nginx));
    let (r, client_conns, server_conns) = connections_under_load(&m, LoadGen::Oha);
    assert!(r.completed > 500 && r.errors <= 4, "{r:?}");
    assert!(
        client_conns >= 4,
        "client sidecar connections {client_conns}"
    );
    assert!(
        server_conns >= 1,
        "server sidecar connections {server_conns}"
    );
    let pids = [m.client.pids(), m.server.pids()].concat();
    let id = m.id.clone();
    m.teardown().expect("teardown");
    assert_gone(&id);
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} survived"
        );
    }
}

#[test]
fn requests_cross_both_sidecars_with_haproxy_and_wrk() {
    let m = mesh::up(&mesh::config(SidecarKind::Haproxy));
    let (r, client_conns, server_conns) = connections_under_load(&m, LoadGen::Wrk);
    assert!(r.completed > 500 && r.errors == 0, "{r:?}");
    assert!(
        client_conns >= 4 && server_conns >= 1,
        "{client_conns} {server_conns}"
    );
    let id = m.id.clone();
    drop(m);
    assert_gone(&id);
}

#[test]
fn baseline_bypasses_the_sidecars() {
    let mut cfg = mesh::config(SidecarKind::Nginx);
    cfg.intercept = false;
    let m = mesh::up(&cfg);
    let (r, client_conns, server_conns) = connections_under_load(&m, LoadGen::Oha);
    assert!(r.completed > 500, "{r:?}");
    assert_eq!((client_conns, server_conns), (0, 0));
}

#[test]
fn sidecar_runs_as_istio_proxy_would() {
    // haproxy: nginx rewrites its own environ for its process title.
    let m = mesh::up(&mesh::config(SidecarKind::Haproxy));
    let pid = m.server.sidecar_pid().expect("sidecar");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).expect("Uid");
    assert!(
        uid_line.split_whitespace().nth(1) == Some("1337"),
        "{uid_line}"
    );
    let env = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    let env = String::from_utf8_lossy(&env);
    for k in [
        "POD_NAME=server-",
        "POD_NAMESPACE=meshbox",
        "INSTANCE_IP=10.244.0.11",
        "ISTIO_META_WORKLOAD_NAME=server",
    ] {
        assert!(env.contains(k), "{k} missing");
    }
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    assert!(
        cg.contains("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod")
            && cg.contains("cri-containerd-"),
        "{cg}"
    );
}

#[test]
fn teardown_happens_after_a_panic() {
    let cfg = mesh::config(SidecarKind::Haproxy);
    let id = std::panic::catch_unwind(|| {
        let m = mesh::up(&cfg);
        let id = m.id.clone();
        std::panic::panic_any(id);
    })
    .expect_err("panicked")
    .downcast::<String>()
    .expect("id");
    assert_gone(&id);
}

#[test]
fn demo_cli_tears_down_on_sigint() {
    profiler_tests::require_root();
    let mut child = std::process::Command::new(profiler_tests::meshbox_bin())
        .args(["demo", "--seconds", "20"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn demo");
    // Wait for the mesh to exist, then interrupt.
    let mut id = None;
    for _ in 0..100 {
        thread::sleep(Duration::from_millis(100));
        if let Some(n) = std::fs::read_dir("/run/netns").ok().and_then(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .find(|n| n.starts_with(&format!("pmb{}x", child.id())))
        }) {
            id = Some(n.split('-').next().unwrap_or_default().to_string());
            break;
        }
    }
    let id = id.expect("demo built no mesh within 10 s");
    thread::sleep(Duration::from_millis(1500));
    // SAFETY: signalling the child this test started, by its PID.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().expect("wait");
    assert!(!status.success(), "an interrupted demo reports failure");
    assert_gone(&id);
}

#[test]
fn mutual_tls_between_sidecars() {
    for kind in [SidecarKind::Nginx, SidecarKind::Haproxy] {
        let mut cfg = mesh::config(kind);
        cfg.mtls = true;
        let m = mesh::up(&cfg);
        let (r, client_conns, server_conns) = connections_under_load(&m, LoadGen::Oha);
        assert!(r.completed > 500 && r.errors <= 4, "{kind:?}: {r:?}");
        assert!(
            client_conns >= 1 && server_conns >= 1,
            "{client_conns} {server_conns}"
        );
        let code = plaintext_status_as_proxy_user(&m);
        assert_ne!(
            code, "200",
            "{kind:?}: the server sidecar answered plaintext; mTLS is not enforced"
        );
    }
}
