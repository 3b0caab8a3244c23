//! Which processes are sidecars, grouped into one sidecar per container
//! (nginx master and workers, or Envoy with its `wrk:worker_N` threads, are
//! one sidecar).
use std::{collections::BTreeMap, net::IpAddr};

use super::procinfo::ProcInfo;

/// Istio's sidecar user.
pub const ISTIO_PROXY_UID: u32 = 1337;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// Istio's sidecars: processes named `envoy`, or running as UID 1337
    /// inside a pod's cgroup (the istio-proxy container).
    Istio,
    Pid(u32),
    Comm(String),
    /// A substring of the process's cgroup path.
    Cgroup(String),
}

impl Selector {
    pub fn matches(&self, p: &ProcInfo) -> bool {
        match self {
            Selector::Istio => p.comm == "envoy" || (p.uid == ISTIO_PROXY_UID && p.pod.is_some()),
            Selector::Pid(pid) => p.pid == *pid,
            Selector::Comm(c) => p.comm == *c,
            Selector::Cgroup(s) => p.cgroup.contains(s.as_str()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sidecar {
    /// The main process's name (the one that forwards most often differs
    /// from an agent parent; the first non-agent comm is shown).
    pub comm: String,
    pub pid: u32,
    pub pod: Option<String>,
    pub namespace: Option<String>,
    pub workload: Option<String>,
    pub pod_uid: Option<String>,
    /// (pid, start time) of every process of this sidecar.
    pub procs: Vec<(u32, u64)>,
    pub local_addrs: Vec<IpAddr>,
    pub listen_ports: Vec<u16>,
}

/// Group the selected processes: by container when in a pod, else by the
/// topmost selected ancestor.
/// `all` may be owned processes or references to them (discovery passes
/// references: cloning every process a second is what it avoids).
pub fn select<P: std::borrow::Borrow<ProcInfo>>(all: &[P], selectors: &[Selector]) -> Vec<Sidecar> {
    let chosen: Vec<&ProcInfo> = all
        .iter()
        .map(|p| p.borrow())
        .filter(|p| selectors.iter().any(|s| s.matches(p)))
        .collect();
    let is_chosen = |pid: u32| chosen.iter().any(|p| p.pid == pid);
    let mut groups: BTreeMap<String, Vec<&ProcInfo>> = BTreeMap::new();
    for p in &chosen {
        let key = match p.pod.as_ref() {
            Some(pod) => format!(
                "pod {} {}",
                pod.pod_uid,
                pod.container_id.as_deref().unwrap_or("")
            ),
            None => {
                let mut top = p.pid;
                let mut cur = p.ppid;
                while is_chosen(cur) {
                    top = cur;
                    cur = all
                        .iter()
                        .map(|q| q.borrow())
                        .find(|q| q.pid == cur)
                        .map_or(0, |q| q.ppid);
                }
                format!("pid {top:010}")
            }
        };
        groups.entry(key).or_default().push(p);
    }
    groups
        .into_values()
        .map(|mut procs| {
            procs.sort_by_key(|p| p.pid);
            // Envoy, else the topmost process that is not the agent
            // (pilot-agent starts the proxy and forwards nothing).
            let proxies: Vec<&&ProcInfo> =
                procs.iter().filter(|p| p.comm != "pilot-agent").collect();
            let main = procs
                .iter()
                .find(|p| p.comm == "envoy")
                .or_else(|| {
                    proxies
                        .iter()
                        .find(|p| !proxies.iter().any(|q| q.pid == p.ppid))
                        .copied()
                })
                .or_else(|| procs.first())
                .copied()
                .expect("group is never empty");
            Sidecar {
                comm: main.comm.clone(),
                pid: main.pid,
                pod: procs.iter().find_map(|p| p.env_pod_name.clone()),
                namespace: procs.iter().find_map(|p| p.env_pod_namespace.clone()),
                workload: procs.iter().find_map(|p| p.env_workload.clone()),
                pod_uid: procs
                    .iter()
                    .find_map(|p| p.pod.as_ref().map(|x| x.pod_uid.clone())),
                procs: procs.iter().map(|p| (p.pid, p.start_time)).collect(),
                local_addrs: Vec::new(),
                listen_ports: Vec::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::cgroup_path;

    /// Recorded from an Istio 1.2x node: pilot-agent and envoy in the
    /// istio-proxy container (containerd, systemd driver), plus the app.
    fn istio_node() -> Vec<ProcInfo> {
        let cg = |c: &str| {
            format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod2d1c9b7a_4e5f_4a3b_8c2d_1e0f9a8b7c6d.slice/cri-containerd-{c}.scope\n"
            )
        };
        let p = |pid, ppid, comm: &str, uid, cgroup: String, env: bool| ProcInfo {
            pid,
            ppid,
            start_time: 1000 + u64::from(pid),
            comm: comm.into(),
            uid,
            pod: cgroup_path::parse(&cgroup),
            cgroup,
            env_pod_name: env.then(|| "reviews-v2-7c9f".into()),
            env_pod_namespace: env.then(|| "bookinfo".into()),
            env_workload: env.then(|| "reviews-v2".into()),
        };
        vec![
            p(1, 0, "systemd", 0, "0::/init.scope\n".into(), false),
            p(
                3100,
                3000,
                "pilot-agent",
                1337,
                cg("aaaa1111bbbb2222"),
                true,
            ),
            p(3150, 3100, "envoy", 1337, cg("aaaa1111bbbb2222"), true),
            p(3200, 3001, "java", 1000, cg("cccc3333dddd4444"), false),
            p(
                4000,
                1,
                "nginx",
                0,
                "0::/system.slice/nginx.service\n".into(),
                false,
            ),
            p(
                4001,
                4000,
                "nginx",
                33,
                "0::/system.slice/nginx.service\n".into(),
                false,
            ),
            p(
                4002,
                4000,
                "nginx",
                33,
                "0::/system.slice/nginx.service\n".into(),
                false,
            ),
        ]
    }

    #[test]
    fn default_selector_finds_the_istio_proxy_container() {
        let s = select(&istio_node(), &[Selector::Istio]);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].comm, "envoy");
        assert_eq!(s[0].pid, 3150);
        assert_eq!(s[0].pod.as_deref(), Some("reviews-v2-7c9f"));
        assert_eq!(s[0].namespace.as_deref(), Some("bookinfo"));
        assert_eq!(
            s[0].pod_uid.as_deref(),
            Some("2d1c9b7a-4e5f-4a3b-8c2d-1e0f9a8b7c6d")
        );
        assert_eq!(s[0].procs, vec![(3100, 4100), (3150, 4150)]);
    }

    #[test]
    fn comm_selector_groups_master_and_workers() {
        let s = select(&istio_node(), &[Selector::Comm("nginx".into())]);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].pid, 4000);
        assert_eq!(s[0].procs.len(), 3);
        assert_eq!(s[0].pod, None);
    }

    #[test]
    fn pid_and_cgroup_selectors() {
        let s = select(&istio_node(), &[Selector::Pid(3200)]);
        assert_eq!((s.len(), s[0].comm.as_str()), (1, "java"));
        let s = select(&istio_node(), &[Selector::Cgroup("nginx.service".into())]);
        assert_eq!(s[0].procs.len(), 3);
        assert!(select(&istio_node(), &[Selector::Pid(99)]).is_empty());
    }
}
