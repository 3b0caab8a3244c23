//! Finding sidecar proxies on the node from /proc: which processes, which
//! pod and namespace, which addresses are the pod's own.
pub mod cache;
pub mod cgroup_path;
pub mod netinfo;
pub mod procinfo;
pub mod selector;

pub use cache::Discovery;
pub use procinfo::ProcInfo;
pub use selector::{Selector, Sidecar};
