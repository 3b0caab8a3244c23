//! Label values as exported: bounded in length, never absent.

/// Longest label value exported, in bytes; longer values are cut at a
/// character boundary (a pod name is at most 253 bytes, a pathological
/// environment value could be anything).
pub const LABEL_MAX: usize = 128;

/// `v` cut to at most [`LABEL_MAX`] bytes without splitting a character.
pub fn bounded(v: &str) -> String {
    if v.len() <= LABEL_MAX {
        return v.to_string();
    }
    let mut end = LABEL_MAX;
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    v[..end].to_string()
}

/// Who a series belongs to. A sidecar outside a pod (a proxy found by
/// `--pid` or `--comm`) has no namespace or pod: its process name and pid
/// stand in for the pod, so its series stay apart from other such proxies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SidecarLabels {
    pub namespace: String,
    pub pod: String,
    pub workload: String,
}

impl SidecarLabels {
    pub fn of(s: &crate::discovery::Sidecar) -> SidecarLabels {
        let pod = match &s.pod {
            Some(p) => p.clone(),
            None => format!("{}-{}", s.comm, s.pid),
        };
        SidecarLabels {
            namespace: bounded(s.namespace.as_deref().unwrap_or("")),
            workload: bounded(s.workload.as_deref().unwrap_or("")),
            pod: bounded(&pod),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        assert_eq!(bounded("reviews-v2"), "reviews-v2");
        let long = "é".repeat(100); // 200 bytes
        let cut = bounded(&long);
        assert!(cut.len() <= LABEL_MAX && cut.len() >= LABEL_MAX - 1);
        assert!(long.starts_with(&cut));
        assert_eq!(bounded(&"a".repeat(300)).len(), LABEL_MAX);
    }

    #[test]
    fn a_proxy_outside_a_pod_is_named_by_process() {
        let s = crate::discovery::Sidecar {
            comm: "nginx".into(),
            pid: 42,
            pod: None,
            namespace: None,
            workload: None,
            pod_uid: None,
            procs: vec![(42, 1)],
            local_addrs: vec![],
            listen_ports: vec![],
        };
        let l = SidecarLabels::of(&s);
        assert_eq!((l.namespace.as_str(), l.pod.as_str()), ("", "nginx-42"));
    }
}
