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
