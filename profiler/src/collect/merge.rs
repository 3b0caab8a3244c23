//! Keeping sidecar positions stable across re-discovery: histograms are
//! keyed by a sidecar's position in the list, so it must never move.
use crate::discovery::Sidecar;

/// The same sidecar in two discoveries: same pod and process name, or (no
/// pod) the same main process.
pub fn same(a: &Sidecar, b: &Sidecar) -> bool {
    match (&a.pod_uid, &b.pod_uid) {
        (Some(x), Some(y)) => x == y && a.comm == b.comm,
        (None, None) => a.procs.first() == b.procs.first(),
        _ => false,
    }
}

/// Update known sidecars in place, append new ones while fewer than `cap`
/// are known; returns how many new ones were refused. Sidecars that
/// vanished stay (their figures are still reported) until [`compact`]
/// removes them; their processes are no longer alive, so they are no
/// longer tracked.
pub fn merge(known: &mut Vec<Sidecar>, fresh: Vec<Sidecar>, cap: usize) -> usize {
    let mut refused = 0;
    for f in fresh {
        match known.iter().position(|k| same(k, &f)) {
            Some(i) => known[i] = f,
            None if known.len() < cap => known.push(f),
            None => refused += 1,
        }
    }
    refused
}

/// Keep the sidecars `keep` says, in order; returns each old position's
/// new one (None: removed), for whatever is keyed by position.
pub fn compact(known: &mut Vec<Sidecar>, keep: &[bool]) -> Vec<Option<u32>> {
    let mut next = 0u32;
    let remap: Vec<Option<u32>> = (0..known.len())
        .map(|i| {
            keep.get(i).copied().unwrap_or(true).then(|| {
                next += 1;
                next - 1
            })
        })
        .collect();
    let mut i = 0;
    known.retain(|_| {
        i += 1;
        remap[i - 1].is_some()
    });
    remap
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
            workload: None,
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
            256,
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
            256,
        );
        assert_eq!(
            pods(&known),
            [Some("a".to_string()), None, Some("0".to_string())]
        );
        assert_eq!(known[1].procs.len(), 2);
        // The same pod with a restarted proxy (new pid) keeps its position.
        merge(&mut known, vec![sc(Some("a"), "envoy", &[(11, 9)])], 256);
        assert_eq!(known.len(), 3);
        assert_eq!((known[0].pod_uid.as_deref(), known[0].pid), (Some("a"), 11));
    }

    #[test]
    fn sidecars_beyond_the_cap_are_refused_and_counted() {
        let mut known = Vec::new();
        let fresh: Vec<_> = (0..5)
            .map(|i| sc(Some(&i.to_string()), "envoy", &[(100 + i, 1)]))
            .collect();
        assert_eq!(merge(&mut known, fresh.clone(), 3), 2);
        assert_eq!(known.len(), 3);
        // Known ones still update at the cap.
        assert_eq!(merge(&mut known, fresh, 3), 2);
        assert_eq!(known.len(), 3);
    }

    #[test]
    fn compacting_keeps_order_and_maps_positions() {
        let mut known: Vec<_> = (0..4)
            .map(|i| sc(Some(&i.to_string()), "envoy", &[(100 + i, 1)]))
            .collect();
        let remap = compact(&mut known, &[true, false, true, false]);
        assert_eq!(remap, [Some(0), None, Some(1), None]);
        let pods: Vec<_> = known
            .iter()
            .map(|s| s.pod_uid.clone().unwrap_or_default())
            .collect();
        assert_eq!(pods, ["0", "2"]);
    }
}
