//! Building and tearing down a two-pod mesh.
use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    process::{Child, Command},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use super::{
    TestbedError,
    cgroups::ContainerCgroups,
    intercept, netns,
    sidecar::{self, Routes, SidecarKind},
    spawn::{self, Spec},
    tls,
};

/// Every name this testbed creates starts with this, followed by the
/// creating process's pid, so stale meshes can be found and swept.
const PREFIX: &str = "pmb";
const APP_PORT: u16 = 8080;
const K8S_NAMESPACE: &str = "meshbox";

#[derive(Clone, Debug)]
pub struct MeshConfig {
    pub sidecar: SidecarKind,
    /// Interception on (a mesh) or off (the A/B baseline: same topology,
    /// traffic goes straight to the app).
    pub intercept: bool,
    pub app_delay: Duration,
    pub app_size: usize,
    /// Hold time of the delay-proxy sidecar in its threads mode.
    pub proxy_delay: Duration,
    /// How the delay-proxy sidecar forwards (threads, event loop, batch).
    pub proxy_mode: super::delay_proxy::ProxyMode,
    /// How the HTTP/1.1 app writes its responses (one write, split, chunked).
    pub app_response: super::app::AppResponse,
    /// Mutual TLS between the two sidecars (nginx and haproxy only).
    pub mtls: bool,
    /// HTTP/2 on every leg: the h2c app, haproxy sidecars speaking h2c
    /// (h2 by ALPN with `mtls`), load from h2load. haproxy sidecars only.
    pub http2: bool,
    /// The profiler binary; it carries the app and the delay proxy.
    pub helper: PathBuf,
}

pub struct Pod {
    pub name: String,
    pub namespace: String,
    pub netns: String,
    pub ip: Ipv4Addr,
    pub uid: String,
    cgroups: Vec<ContainerCgroups>,
    procs: Vec<(String, Child)>,
}

impl Pod {
    pub fn sidecar_pid(&self) -> Option<u32> {
        self.procs
            .iter()
            .find(|(n, _)| n == "istio-proxy")
            .map(|(_, c)| c.id())
    }

    /// PIDs of every process in the pod's containers (e.g. nginx workers).
    pub fn pids(&self) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .cgroups
            .iter()
            .flat_map(|c| c.procs_files())
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .flat_map(|t| {
                t.lines()
                    .filter_map(|l| l.parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

pub struct Mesh {
    pub id: String,
    pub node_netns: String,
    pub client: Pod,
    pub server: Pod,
    pub dir: PathBuf,
    torn_down: bool,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Mesh {
    pub fn up(cfg: &MeshConfig) -> Result<Mesh, TestbedError> {
        sweep_stale();
        let id = format!(
            "{PREFIX}{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(format!("profiler-testbed-{id}"));
        let mut mesh = Mesh {
            node_netns: format!("{id}-node"),
            client: new_pod(&id, "client", Ipv4Addr::new(10, 244, 0, 10)),
            server: new_pod(&id, "server", Ipv4Addr::new(10, 244, 0, 11)),
            dir,
            id,
            torn_down: false,
        };
        // On error the partly built mesh is dropped, which tears it down.
        mesh.build(cfg)?;
        Ok(mesh)
    }

    fn build(&mut self, cfg: &MeshConfig) -> Result<(), TestbedError> {
        let io = |what: &str| {
            let what = what.to_string();
            move |source| TestbedError::Io { what, source }
        };
        if cfg.http2 {
            // Refused before anything is built.
            sidecar::check_http2(cfg.sidecar).map_err(TestbedError::NotReady)?;
            if cfg.app_response != super::app::AppResponse::default() {
                return Err(TestbedError::NotReady(
                    "response framings are HTTP/1.1 app modes; HTTP/2 meshes run the h2c app"
                        .into(),
                ));
            }
        }
        std::fs::create_dir_all(&self.dir).map_err(io("creating the testbed directory"))?;
        // The sidecars run as UID 1337 and write their logs and pid files here.
        set_mode(&self.dir, 0o777).map_err(io("chmod testbed directory"))?;
        netns::add(&self.node_netns)?;
        let bridge = "cbr0";
        netns::add_bridge(&self.node_netns, bridge)?;
        for (i, pod) in [&self.client, &self.server].into_iter().enumerate() {
            netns::add(&pod.netns)?;
            netns::add_pod_link(
                &self.node_netns,
                bridge,
                &pod.netns,
                &format!("veth{i}"),
                &format!("{}/24", pod.ip),
            )?;
            if cfg.intercept {
                intercept::apply(&pod.netns)?;
            }
        }
        // The app in the server pod.
        let app_dir = self.dir.clone();
        let mut app = Command::new(&cfg.helper);
        let app_cmd = if cfg.http2 { "h2-app" } else { "app" };
        app.args(["testbed", app_cmd, "--port", &APP_PORT.to_string()])
            .args(["--delay-us", &cfg.app_delay.as_micros().to_string()])
            .args(["--size", &cfg.app_size.to_string()]);
        // Only a framing other than the default is passed, so the flags
        // reach the HTTP/1.1 app only when asked for.
        if cfg.app_response != super::app::AppResponse::default() {
            app.args(cfg.app_response.args());
        }
        start(&mut self.server, &app_dir, "app", app, None, vec![])?;
        if cfg.mtls && cfg.sidecar == SidecarKind::DelayProxy {
            return Err(TestbedError::NotReady(
                "mutual TLS needs nginx or haproxy sidecars; the delay-proxy fixture speaks plain TCP".into(),
            ));
        }
        let certs_dir = self.dir.join("certs");
        if cfg.mtls {
            std::fs::create_dir_all(&certs_dir)
                .map_err(io("creating the certificate directory"))?;
            set_mode(&certs_dir, 0o755).map_err(io("chmod certificate directory"))?;
            tls::make_ca(&certs_dir)?;
        }
        // A sidecar in each pod.
        let (client_ip, server_ip) = (self.client.ip, self.server.ip);
        let (client_wl, server_wl) = (workload(&self.client.name), workload(&self.server.name));
        for (pod, peer, peer_wl) in [
            (&mut self.client, server_ip, &server_wl),
            (&mut self.server, client_ip, &client_wl),
        ] {
            let tls = if cfg.mtls {
                Some(tls::make_pod(
                    &certs_dir,
                    &pod.name,
                    &workload(&pod.name),
                    pod.ip,
                )?)
            } else {
                None
            };
            let routes = Routes {
                inbound: SocketAddr::from((Ipv4Addr::LOCALHOST, APP_PORT)),
                outbound: SocketAddr::from((peer, APP_PORT)),
                tls,
                peer_identity: tls::identity(peer_wl),
                http2: cfg.http2,
            };
            let pod_dir = self.dir.join(&pod.name);
            std::fs::create_dir_all(&pod_dir).map_err(io("creating sidecar directory"))?;
            set_mode(&pod_dir, 0o777).map_err(io("chmod sidecar directory"))?;
            let proxy =
                sidecar::command(cfg.sidecar, &pod_dir, &routes, &cfg.helper, cfg.proxy_delay)
                    .map_err(io("writing sidecar config"))?;
            // Started by an agent, as pilot-agent starts Envoy.
            let mut cmd = Command::new(&cfg.helper);
            cmd.args(["testbed", "agent", "--"])
                .arg(proxy.get_program())
                .args(proxy.get_args());
            if cfg.sidecar == SidecarKind::DelayProxy {
                cmd.args(cfg.proxy_mode.args());
            }
            let env = vec![
                ("POD_NAME".into(), pod.name.clone()),
                ("POD_NAMESPACE".into(), pod.namespace.clone()),
                ("INSTANCE_IP".into(), pod.ip.to_string()),
                ("ISTIO_META_WORKLOAD_NAME".into(), workload(&pod.name)),
            ];
            start(
                pod,
                &pod_dir,
                "istio-proxy",
                cmd,
                Some(intercept::PROXY_UID),
                env,
            )?;
        }
        for pod in [&self.client, &self.server] {
            for port in [intercept::INBOUND_PORT, intercept::OUTBOUND_PORT] {
                spawn::wait_listening(&pod.netns, port, Duration::from_secs(5))?;
            }
        }
        spawn::wait_listening(&self.server.netns, APP_PORT, Duration::from_secs(5))?;
        Ok(())
    }

    /// The URL the client calls: the server pod's app port (intercepted on
    /// the way when interception is on).
    pub fn url(&self) -> String {
        format!("http://{}:{APP_PORT}/", self.server.ip)
    }

    /// The mesh's node namespace, as `ip netns` names it under /run/netns:
    /// where both pods' veths end.
    pub fn node_netns_path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.node_netns)
    }

    /// The profiler's pod edge on both pods (`--pod-edge`): the classifiers
    /// on the node side of their veths, in the mode the kernel allows.
    pub fn pod_edge(&self) -> profiler::ebpf::PodEdge {
        profiler::ebpf::PodEdge {
            node_netns: Some(self.node_netns_path()),
            mode: None,
        }
    }

    /// Where the delay-proxy sidecar of a pod publishes its own timing.
    pub fn delay_proxy_stats(&self, pod: &Pod) -> PathBuf {
        self.dir.join(&pod.name).join("delay-proxy-stats.json")
    }

    /// Established TCP connections to a pod's sidecar listeners.
    pub fn sidecar_connections(&self, pod: &Pod) -> Result<usize, TestbedError> {
        let out = netns::run(netns::exec_in(&pod.netns, "ss").args([
            "-Htn",
            "state",
            "established",
            "( sport = :15006 or sport = :15001 )",
        ]))?;
        Ok(out.lines().filter(|l| !l.trim().is_empty()).count())
    }

    /// Stop every process, remove cgroups, namespaces and files, then check
    /// that nothing is left. Safe to call more than once.
    pub fn teardown(&mut self) -> Result<(), TestbedError> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        let mut errors = Vec::new();
        let mut shared = Vec::new();
        for pod in [&mut self.server, &mut self.client] {
            for (_, child) in pod.procs.iter_mut().rev() {
                spawn::stop(child);
            }
            // Children a sidecar forked (workers) are still ours: end them by PID.
            for pid in pod.pids() {
                // SAFETY: signalling a process in a cgroup this testbed created.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
            // Reverse creation order: the first container created the pod slice.
            for cg in pod.cgroups.iter_mut().rev() {
                match cg.remove() {
                    Ok(s) => shared.extend(s),
                    Err(e) => errors.push(e.to_string()),
                }
            }
        }
        super::cgroups::remove_shared(shared);
        for ns in [&self.client.netns, &self.server.netns, &self.node_netns] {
            if let Err(e) = netns::delete(ns) {
                errors.push(e.to_string());
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        let left = leftovers(&self.id);
        errors.extend(left);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(TestbedError::Leftovers(errors.join("; ")))
        }
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("testbed teardown: {e}");
        }
    }
}

fn new_pod(id: &str, role: &str, ip: Ipv4Addr) -> Pod {
    Pod {
        name: format!("{role}-7d4b9c-{}", &id[PREFIX.len()..]),
        namespace: K8S_NAMESPACE.into(),
        netns: format!("{id}-{role}"),
        ip,
        uid: format!("{id}-{role}"),
        cgroups: Vec::new(),
        procs: Vec::new(),
    }
}

fn workload(pod_name: &str) -> String {
    pod_name.split('-').next().unwrap_or(pod_name).to_string()
}

fn set_mode(path: &std::path::Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Start one container's process in a pod.
fn start(
    pod: &mut Pod,
    dir: &std::path::Path,
    container: &str,
    cmd: Command,
    uid: Option<u32>,
    env: Vec<(String, String)>,
) -> Result<(), TestbedError> {
    let container_id = format!("{}{}", pod.uid.replace('-', ""), container.replace('-', ""));
    let cg = ContainerCgroups::create(&pod.uid, &container_id)?;
    let spec = Spec {
        netns: pod.netns.clone(),
        cgroup_procs: cg.procs_files(),
        uid,
        env,
        log: dir.join(format!("{}-{container}.log", pod.name)),
    };
    pod.cgroups.push(cg);
    let child = spawn::spawn(cmd, &spec)?;
    pod.procs.push((container.to_string(), child));
    Ok(())
}

/// Anything of mesh `id` still present: namespaces, cgroups, files.
/// A namespace or pod uid of mesh `id` (`{id}-node`, `{id}-client`, ...):
/// mesh 1's id is a prefix of mesh 10's, so the dash must follow.
fn belongs(name: &str, id: &str) -> bool {
    name.strip_prefix(id)
        .is_some_and(|rest| rest.starts_with('-'))
}

pub fn leftovers(id: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(list) = std::fs::read_dir("/run/netns") {
        for e in list.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if belongs(&n, id) {
                out.push(format!("network namespace {n}"));
            }
        }
    }
    for cg in stale_cgroups(|name| {
        name.strip_prefix("kubepods-besteffort-pod")
            .is_some_and(|rest| belongs(rest, id))
    }) {
        out.push(format!("cgroup {}", cg.display()));
    }
    out
}

/// Pod cgroup directories (kubepods-besteffort-pod<uid>.slice) whose uid matches.
fn stale_cgroups(matches: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for root in ["cpu", "cpuacct", "memory", "systemd", "unified", ""] {
        let base = PathBuf::from("/sys/fs/cgroup")
            .join(root)
            .join("kubepods.slice/kubepods-besteffort.slice");
        if let Ok(list) = std::fs::read_dir(&base) {
            for e in list.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with("kubepods-besteffort-pod") && matches(&n.replace('_', "-")) {
                    out.push(e.path());
                }
            }
        }
    }
    out
}

/// The pid encoded in a testbed name (`pmb<pid>x<n>...`), if any.
fn creator_pid(name: &str) -> Option<u32> {
    let rest = name.split(PREFIX).nth(1)?;
    rest.split('x').next()?.parse().ok()
}

/// Remove meshes whose creating process is gone (killed before its teardown).
pub fn sweep_stale() {
    let dead = |name: &str| {
        creator_pid(name).is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
    };
    if let Ok(list) = std::fs::read_dir("/run/netns") {
        for e in list.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(PREFIX) && dead(&n) {
                let _ = netns::delete(&n);
            }
        }
    }
    for pod_dir in stale_cgroups(|n| dead(n)) {
        // Deepest first: container scopes, then the pod slice.
        if let Ok(list) = std::fs::read_dir(&pod_dir) {
            for e in list.flatten() {
                if e.path().is_dir() {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(&pod_dir);
        // The shared slices above it, if nothing else uses them now.
        if let Some(qos) = pod_dir.parent() {
            super::cgroups::remove_shared(vec![
                qos.to_path_buf(),
                qos.parent().map(Into::into).unwrap_or_default(),
            ]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_creator_pid() {
        assert_eq!(creator_pid("pmb1234x0-client"), Some(1234));
        assert_eq!(
            creator_pid("kubepods-besteffort-podpmb99x2-server.slice"),
            Some(99)
        );
        assert_eq!(creator_pid("other"), None);
        assert_eq!(workload("client-7d4b9c-1x0"), "client");
    }

    #[test]
    fn a_mesh_owns_only_its_own_names() {
        assert!(belongs("pmb7x1-node", "pmb7x1"));
        assert!(belongs("pmb7x1-client.slice", "pmb7x1"));
        assert!(!belongs("pmb7x10-node", "pmb7x1"));
        assert!(!belongs("pmb7x1", "pmb7x1"));
    }
}
