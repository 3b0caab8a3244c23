//! Re-discovery that stays cheap on a busy node: /proc is listed every
//! refresh, but only new pids are read; everything is re-read every
//! `FULL_EVERY` refreshes (a process that exec'd in place, a recycled pid),
//! and a sidecar's network view every `NET_EVERY`.
use std::collections::HashMap;

use super::{
    netinfo,
    procinfo::ProcInfo,
    selector::{Selector, Sidecar, select},
};

const FULL_EVERY: u32 = 30;
const NET_EVERY: u32 = 10;

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
        let all: Vec<ProcInfo> = self.procs.values().cloned().collect();
        let mut sidecars = select(&all, &self.selectors);
        let now = self.refreshes;
        for s in &mut sidecars {
            let stale = self
                .net
                .get(&s.pid)
                .is_none_or(|(_, _, at)| now.saturating_sub(*at) >= NET_EVERY);
            if stale {
                let pids: Vec<u32> = s.procs.iter().map(|(p, _)| *p).collect();
                let mut uids: Vec<u32> = pids
                    .iter()
                    .filter_map(|p| self.procs.get(p).map(|i| i.uid))
                    .collect();
                uids.dedup();
                let (a, p) = netinfo::read(s.pid, &pids, &uids);
                self.net.insert(s.pid, (a, p, now));
            }
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
