//! Re-discovery that stays cheap on a busy node: /proc is listed every
//! refresh, but only new pids are read; everything is re-read every
//! `FULL_EVERY` refreshes (a process that exec'd in place, a recycled pid),
//! and a sidecar's network view when it is new and then every `NET_EVERY`,
//! a few sidecars per refresh. Reading /proc/<pid>/net/tcp walks the
//! kernel's whole established-socket table (every namespace's) to find one
//! pod's: ~3 ms each here, which at 64 sidecars and every 10 s was 4% of a
//! core. A proxy's listening ports rarely change (Istio's are fixed).
use std::collections::HashMap;

use super::{
    netinfo,
    procinfo::ProcInfo,
    selector::{Selector, Sidecar, select},
};

const FULL_EVERY: u32 = 30;
const NET_EVERY: u32 = 300;
/// A proxy seen with no listener yet (Envoy binds once istiod has sent
/// its listeners, seconds after it starts) is looked at again this soon.
const NET_EMPTY_EVERY: u32 = 2;
/// Known sidecars whose network view is re-read in one refresh, at most.
const NET_PER_REFRESH: usize = 4;

pub struct Discovery {
    selectors: Vec<Selector>,
    procs: HashMap<u32, ProcInfo>,
    /// pid -> (pod-local addresses, listening ports, refresh count when read).
    net: HashMap<u32, (Vec<std::net::IpAddr>, Vec<u16>, u32)>,
    refreshes: u32,
}

fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

impl Discovery {
    pub fn new(selectors: Vec<Selector>) -> Discovery {
        Discovery {
            selectors,
            procs: HashMap::new(),
            net: HashMap::new(),
            refreshes: 0,
        }
    }

    pub fn procs(&self) -> impl Iterator<Item = &ProcInfo> {
        self.procs.values()
    }

    /// The sidecars now, with their network view.
    pub fn refresh(&mut self) -> Vec<Sidecar> {
        let full = self.refreshes.is_multiple_of(FULL_EVERY);
        let live = pids();
        if full {
            self.procs.clear();
        }
        let live_set: std::collections::HashSet<u32> = live.iter().copied().collect();
        self.procs.retain(|pid, _| live_set.contains(pid));
        for pid in live {
            if !self.procs.contains_key(&pid)
                && let Some(p) = ProcInfo::read(pid)
            {
                self.procs.insert(pid, p);
            }
        }
        let all: Vec<&ProcInfo> = self.procs.values().collect();
        let mut sidecars = select(&all, &self.selectors);
        let now = self.refreshes;
        // New sidecars (a restarted proxy is one: new pid) at once; known
        // ones when stale, the stalest first, a few per refresh.
        let mut stale: Vec<(u32, usize)> = sidecars
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match self.net.get(&s.pid) {
                None => Some((0, i)),
                Some((_, ports, at))
                    if now.saturating_sub(*at)
                        >= if ports.is_empty() {
                            NET_EMPTY_EVERY
                        } else {
                            NET_EVERY
                        } =>
                {
                    Some((at + 1, i))
                }
                Some(_) => None,
            })
            .collect();
        stale.sort_unstable();
        let fresh = stale.iter().filter(|(at, _)| *at == 0).count();
        for &(_, i) in stale.iter().take(fresh.max(NET_PER_REFRESH)) {
            let s = &sidecars[i];
            let pids: Vec<u32> = s.procs.iter().map(|(p, _)| *p).collect();
            let mut uids: Vec<u32> = pids
                .iter()
                .filter_map(|p| self.procs.get(p).map(|i| i.uid))
                .collect();
            uids.dedup();
            let (a, p) = netinfo::read(s.pid, &pids, &uids);
            self.net.insert(s.pid, (a, p, now));
        }
        for s in &mut sidecars {
            if let Some((a, p, _)) = self.net.get(&s.pid) {
                s.local_addrs = a.clone();
                s.listen_ports = p.clone();
            }
        }
        self.net
            .retain(|pid, _| sidecars.iter().any(|s| s.pid == *pid));
        self.refreshes += 1;
        sidecars
    }
}
