//! The mesh in a box: Istio-style pods in network namespaces, with real
//! sidecar proxies, istio-iptables interception, kubelet-shaped cgroups and
//! real load generators. Used by the integration tests, `meshbox demo` and
//! `meshbox bench`; none of it ships in the profiler.
//! Everything it creates is torn down on drop (also on panic), and meshes
//! left by a killed process are swept on the next start.
pub mod ab;
pub mod agent;
pub mod app;
pub mod bench;
pub mod cgroups;
pub mod cli;
pub mod delay_proxy;
pub mod h2app;
pub mod http;
pub mod intercept;
pub mod load;
pub mod matrix;
mod mesh;
pub mod netns;
pub mod sidecar;
pub mod spawn;
pub mod tls;

pub use load::{LoadGen, LoadResult, LoadSpec};
pub use mesh::{Mesh, MeshConfig, Pod, leftovers, sweep_stale};
pub use sidecar::SidecarKind;

#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    #[error("{cmd} failed: {detail}")]
    Command { cmd: String, detail: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("not ready: {0}")]
    NotReady(String),
    #[error("cannot parse load generator output: {0}")]
    Parse(String),
    #[error("teardown left things behind: {0}")]
    Leftovers(String),
}
