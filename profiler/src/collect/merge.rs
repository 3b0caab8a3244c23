//! Keeping sidecar positions stable across re-discovery: histograms are
//! keyed by a sidecar's position in the list, so it must never move.
use crate::discovery::Sidecar;

/// The same sidecar in two discoveries: same pod and process name, or (no
/// pod) the same main process.
fn same(a: &Sidecar, b: &Sidecar) -> bool {
    match (&a.pod_uid, &b.pod_uid) {
        (Some(x), Some(y)) => x == y && a.comm == b.comm,
        (None, None) => a.procs.first() == b.procs.first(),
        _ => false,
    }
}

/// Update known sidecars in place, append new ones. Sidecars that vanished
/// stay (their figures are still reported); their processes are no longer
/// alive, so they are no longer tracked.
pub fn merge(known: &mut Vec<Sidecar>, fresh: Vec<Sidecar>) {
    for f in fresh {
        match known.iter_mut().find(|k| same(k, &f)) {
            Some(k) => *k = f,
            None => known.push(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sc(pod: Option<&str>, comm: &str, procs: &[(u32, u64)]) -> Sidecar {
        Sidecar {
            comm: comm.into(),
            pid: procs[0].0,
            pod: None,
            namespace: None,
            pod_uid: pod.map(Into::into),
            procs: procs.to_vec(),
            local_addrs: vec![],
            listen_ports: vec![],
        }
    }

    #[test]
    fn positions_survive_new_workers_new_sidecars_and_order_changes() {
        let mut known = Vec::new();
        merge(
            &mut known,
            vec![
                sc(Some("a"), "envoy", &[(10, 1)]),
                sc(None, "nginx", &[(20, 2)]),
            ],
        );
        let pods = |k: &[Sidecar]| k.iter().map(|s| s.pod_uid.clone()).collect::<Vec<_>>();
        assert_eq!(pods(&known), [Some("a".to_string()), None]);
        // A new sidecar sorts first in discovery; a worker joins nginx.
        merge(
            &mut known,
            vec![
                sc(Some("0"), "envoy", &[(5, 3)]),
                sc(None, "nginx", &[(20, 2), (21, 4)]),
                sc(Some("a"), "envoy", &[(10, 1)]),
            ],
        );
        assert_eq!(
            pods(&known),
            [Some("a".to_string()), None, Some("0".to_string())]
        );
        assert_eq!(known[1].procs.len(), 2);
        // The same pod with a restarted proxy (new pid) keeps its position.
        merge(&mut known, vec![sc(Some("a"), "envoy", &[(11, 9)])]);
        assert_eq!(known.len(), 3);
        assert_eq!((known[0].pod_uid.as_deref(), known[0].pid), (Some("a"), 11));
    }
}
