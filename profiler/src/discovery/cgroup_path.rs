//! Pod UID and container ID from a /proc/<pid>/cgroup line, for the layouts
//! kubelet produces: systemd driver (kubepods-<qos>-pod<uid>.slice /
//! cri-containerd-<id>.scope, crio-<id>.scope, docker-<id>.scope) and cgroupfs
//! driver (/kubepods/<qos>/pod<uid>/<id>).

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodCgroup {
    /// With dashes, as Kubernetes writes it.
    pub pod_uid: String,
    pub container_id: Option<String>,
    pub runtime: Option<&'static str>,
}

/// Parse the path part of one cgroup line (after the second ':').
pub fn parse_path(path: &str) -> Option<PodCgroup> {
    if !path.contains("kubepods") {
        return None;
    }
    let mut pod_uid = None;
    let mut container_id = None;
    let mut runtime = None;
    for part in path.split('/') {
        if let Some(rest) = part.strip_suffix(".slice") {
            // kubepods-besteffort-pod<uid>.slice or kubepods-pod<uid>.slice
            if let Some(i) = rest.rfind("-pod") {
                pod_uid = Some(rest[i + 4..].replace('_', "-"));
            }
        } else if let Some(rest) = part.strip_suffix(".scope") {
            for (prefix, rt) in [
                ("cri-containerd-", "containerd"),
                ("crio-", "cri-o"),
                ("docker-", "docker"),
            ] {
                if let Some(id) = rest.strip_prefix(prefix) {
                    container_id = Some(id.to_string());
                    runtime = Some(rt);
                }
            }
        } else if let Some(uid) = part.strip_prefix("pod") {
            pod_uid = Some(uid.to_string());
        } else if pod_uid.is_some()
            && container_id.is_none()
            && part.len() >= 12
            && part.bytes().all(|b| b.is_ascii_hexdigit())
        {
            container_id = Some(part.to_string());
        }
    }
    Some(PodCgroup {
        pod_uid: pod_uid?,
        container_id,
        runtime,
    })
}

/// The first pod cgroup in the text of /proc/<pid>/cgroup (any hierarchy).
pub fn parse(text: &str) -> Option<PodCgroup> {
    text.lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .find_map(parse_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "5c3a1f0e-8b2d-4a47-9d55-2f1f3c0b7e21";
    const CID: &str = "0f4d3b8e6c2a9f71d5e3c8b4a6f2e9d1c7b5a3f8e2d6c4b9a1f7e3d5c8b2a4f6";

    #[test]
    fn containerd_systemd_driver_cgroup_v2() {
        let t = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CID}.scope\n",
            UID.replace('-', "_")
        );
        let p = parse(&t).expect("pod");
        assert_eq!(p.pod_uid, UID);
        assert_eq!(p.container_id.as_deref(), Some(CID));
        assert_eq!(p.runtime, Some("containerd"));
    }

    #[test]
    fn crio_systemd_driver_hybrid_v1() {
        let t = format!(
            "12:cpu,cpuacct:/kubepods.slice/kubepods-pod{}.slice/crio-{CID}.scope\n1:name=systemd:/kubepods.slice/kubepods-pod{}.slice/crio-{CID}.scope\n",
            UID.replace('-', "_"),
            UID.replace('-', "_")
        );
        let p = parse(&t).expect("pod");
        assert_eq!(p.pod_uid, UID);
        assert_eq!(p.runtime, Some("cri-o"));
    }

    #[test]
    fn docker_systemd_and_cgroupfs_drivers() {
        let t = format!(
            "4:memory:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/docker-{CID}.scope\n",
            UID.replace('-', "_")
        );
        assert_eq!(parse(&t).expect("pod").runtime, Some("docker"));
        let t = format!("3:cpu,cpuacct:/kubepods/besteffort/pod{UID}/{CID}\n");
        let p = parse(&t).expect("pod");
        assert_eq!(p.pod_uid, UID);
        assert_eq!(p.container_id.as_deref(), Some(CID));
        assert_eq!(p.runtime, None);
        let t = format!("0::/kubepods/pod{UID}/{CID}\n");
        assert_eq!(parse(&t).expect("pod").pod_uid, UID);
    }

    #[test]
    fn not_a_pod() {
        assert_eq!(parse("0::/system.slice/sshd.service\n"), None);
        assert_eq!(parse("0::/user.slice/user-0.slice/session-1.scope\n"), None);
    }
}
