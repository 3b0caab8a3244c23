//! Building meshes for tests.
use std::time::Duration;

use meshbox::{Mesh, MeshConfig, SidecarKind, app::AppResponse, delay_proxy::ProxyMode};

pub fn config(sidecar: SidecarKind) -> MeshConfig {
    MeshConfig {
        sidecar,
        intercept: true,
        app_delay: Duration::ZERO,
        app_size: 128,
        proxy_delay: Duration::ZERO,
        proxy_mode: ProxyMode::Threads,
        app_response: AppResponse::OneWrite,
        mtls: false,
        http2: false,
        helper: crate::meshbox_bin(),
    }
}

pub fn up(cfg: &MeshConfig) -> Mesh {
    crate::require_root();
    Mesh::up(cfg).unwrap_or_else(|e| panic!("building the mesh failed: {e}"))
}

/// The proxy process of a pod: the child of its pilot-agent.
pub fn proxy_pid(pod: &meshbox::Pod) -> Option<u32> {
    let comm = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim().to_string())
            .unwrap_or_default()
    };
    let ppid = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| profiler::discovery::procinfo::parse_stat(&s))
            .map(|(pp, _)| pp)
    };
    pod.pids()
        .into_iter()
        .find(|&p| ppid(p).is_some_and(|pp| comm(pp) == "pilot-agent"))
}
