//! Cgroups shaped like a kubelet's (systemd driver): kubepods.slice /
//! kubepods-besteffort.slice / kubepods-besteffort-pod<uid>.slice /
//! cri-containerd-<id>.scope, in every hierarchy the machine has, so
//! discovery sees what it would on a node.
use std::path::{Path, PathBuf};

use super::TestbedError;

/// Hierarchies to create the container cgroup in, when mounted.
const HIERARCHIES: [&str; 7] = [
    "/sys/fs/cgroup/cpu",
    "/sys/fs/cgroup/cpuacct",
    "/sys/fs/cgroup/cpu,cpuacct",
    "/sys/fs/cgroup/memory",
    "/sys/fs/cgroup/systemd",
    "/sys/fs/cgroup/unified",
    "/sys/fs/cgroup",
];

/// The path below a hierarchy root for one container.
pub fn container_path(pod_uid: &str, container_id: &str) -> PathBuf {
    let uid = pod_uid.replace('-', "_");
    PathBuf::from("kubepods.slice")
        .join("kubepods-besteffort.slice")
        .join(format!("kubepods-besteffort-pod{uid}.slice"))
        .join(format!("cri-containerd-{container_id}.scope"))
}

/// Usable roots: a v1 controller mount, or a v2 root, but not the tmpfs that
/// holds v1 mounts.
fn roots() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for h in HIERARCHIES {
        let p = Path::new(h);
        if p.join("cgroup.procs").exists() && !out.iter().any(|o: &PathBuf| same_dir(o, p)) {
            out.push(p.to_path_buf());
        }
    }
    out
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Directories created for one container; removed deepest first.
#[derive(Debug, Default)]
pub struct ContainerCgroups {
    /// Every directory this testbed created, in creation order.
    created: Vec<PathBuf>,
    /// The leaf (container) directory in each hierarchy.
    pub leaves: Vec<PathBuf>,
}

impl ContainerCgroups {
    pub fn create(pod_uid: &str, container_id: &str) -> Result<Self, TestbedError> {
        let rel = container_path(pod_uid, container_id);
        let mut cg = ContainerCgroups::default();
        for root in roots() {
            let mut dir = root.clone();
            for part in rel.iter() {
                dir.push(part);
                if !dir.exists() {
                    std::fs::create_dir(&dir).map_err(|e| TestbedError::Io {
                        what: format!("creating cgroup {}", dir.display()),
                        source: e,
                    })?;
                    cg.created.push(dir.clone());
                }
            }
            cg.leaves.push(dir);
        }
        Ok(cg)
    }

    /// `cgroup.procs` of every leaf: a spawned process writes itself there.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.leaves.iter().map(|l| l.join("cgroup.procs")).collect()
    }

    /// Remove the pod slice and container scope we created. Processes must
    /// be gone first (rmdir of a populated cgroup fails with EBUSY, which is
    /// reported). kubepods.slice and the QoS slice may be shared with another
    /// pod: they are handed back, for the mesh to remove once all its pods are
    /// gone.
    pub fn remove(&mut self) -> Result<Vec<PathBuf>, TestbedError> {
        let mut first_err = None;
        let mut shared = Vec::new();
        while let Some(dir) = self.created.pop() {
            if is_shared(&dir) {
                shared.push(dir);
                continue;
            }
            if let Err(e) = remove_with_retry(&dir)
                && first_err.is_none()
            {
                first_err = Some(TestbedError::Io {
                    what: format!("removing cgroup {}", dir.display()),
                    source: e,
                });
            }
        }
        first_err.map_or(Ok(shared), Err)
    }
}

fn is_shared(dir: &Path) -> bool {
    dir.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == "kubepods.slice" || n == "kubepods-besteffort.slice")
}

/// Remove shared ancestors this mesh created, deepest first, if empty of
/// other pods (EBUSY otherwise, which is fine: someone else uses them).
pub fn remove_shared(mut dirs: Vec<PathBuf>) {
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        let _ = std::fs::remove_dir(d);
    }
}

/// A killed process leaves its cgroup a moment after it is reaped.
fn remove_with_retry(dir: &Path) -> std::io::Result<()> {
    let mut last = Ok(());
    for _ in 0..50 {
        last = std::fs::remove_dir(dir);
        match &last {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    last
}

impl Drop for ContainerCgroups {
    fn drop(&mut self) {
        if let Ok(shared) = self.remove() {
            remove_shared(shared);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_systemd_layout() {
        let p = container_path("6f1c2a3b-aaaa-bbbb-cccc-000000000001", "abc123");
        assert_eq!(
            p,
            Path::new(
                "kubepods.slice/kubepods-besteffort.slice/\
                 kubepods-besteffort-pod6f1c2a3b_aaaa_bbbb_cccc_000000000001.slice/\
                 cri-containerd-abc123.scope"
            )
        );
    }
}
