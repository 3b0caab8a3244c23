//! Re-discovery that stays cheap on a busy node: /proc is listed every
//! refresh, but only new pids are read whole (five files), and a young one
//! (started within `YOUNG_SECS`) once more at the refresh after (a forked
//! worker drops its privileges or joins its cgroup just after the fork).
//! Every `FULL_EVERY` refreshes each known process's stat alone is read
//! again: a recycled pid (another start time) or an exec in place (another
//! name) is read whole, a reparented one takes its new parent. Reading
//! every process whole instead cost the daemon 1200 files every 30 s here,
//! environ (the process's memory) among them.
//! A sidecar's network view is read when it is new and then every
//! `NET_EVERY`, a few sidecars per refresh. Reading /proc/<pid>/net/tcp
//! walks the kernel's whole established-socket table (every namespace's)
//! to find one pod's: ~3 ms each here, which at 64 sidecars and every 10 s
//! was 4% of a core. A proxy's listening ports rarely change (Istio's are
//! fixed).
use std::{
    collections::{HashMap, HashSet},
    path::Path,
};

use super::{
    netinfo,
    procinfo::{ProcInfo, Recheck},
    selector::{Selector, Sidecar, select},
};

const FULL_EVERY: u32 = 30;
const NET_EVERY: u32 = 300;
/// A process first read this soon after its start is read whole once more
/// (not every process at the first refresh: a snapshot's start).
const YOUNG_SECS: u64 = 2;
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
    /// Young pids read whole at the last refresh, read whole once more at
    /// this.
    young: HashSet<u32>,
    reader: crate::cpu::read::Reader,
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
            young: HashSet::new(),
            reader: Default::default(),
            refreshes: 0,
        }
    }

    pub fn procs(&self) -> impl Iterator<Item = &ProcInfo> {
        self.procs.values()
    }

    /// The sidecars now, with their network view.
    pub fn refresh(&mut self) -> Vec<Sidecar> {
        let recheck = self.refreshes > 0 && self.refreshes.is_multiple_of(FULL_EVERY);
        let live = pids();
        let live_set: HashSet<u32> = live.iter().copied().collect();
        self.procs.retain(|pid, _| live_set.contains(pid));
        let second_look = std::mem::take(&mut self.young);
        let young_since = crate::kernel::clock::boot_ticks()
            .saturating_sub(YOUNG_SECS * crate::kernel::clock::ticks_per_second());
        for pid in live {
            let again = second_look.contains(&pid);
            let whole = match self.procs.get_mut(&pid) {
                None => true,
                Some(_) if again => true,
                Some(p) if recheck => {
                    let path = format!("/proc/{pid}/stat");
                    match self.reader.text(Path::new(&path)).map(|s| p.recheck(s)) {
                        Some(Recheck::Same { ppid }) => {
                            p.ppid = ppid;
                            false
                        }
                        Some(Recheck::Changed) => true,
                        // Gone since the listing.
                        None => {
                            self.procs.remove(&pid);
                            false
                        }
                    }
                }
                Some(_) => false,
            };
            if whole {
                match ProcInfo::read(pid) {
                    Some(p) => {
                        // A second look is the last.
                        if !again && p.start_time >= young_since {
                            self.young.insert(pid);
                        }
                        self.procs.insert(pid, p);
                    }
                    None => {
                        self.procs.remove(&pid);
                    }
                }
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

#[cfg(test)]
mod tests {
    use std::{
        io::Write,
        process::{Command, Stdio},
        time::{Duration, Instant},
    };

    use super::*;

    fn comm_of(d: &Discovery, pid: u32) -> Option<String> {
        d.procs().find(|p| p.pid == pid).map(|p| p.comm.clone())
    }

    #[test]
    fn a_known_process_is_not_read_again_until_its_stat_says_it_changed() {
        // A shell that waits for a line, then becomes `sleep` in place: same
        // pid and start time, another program.
        let mut child = Command::new("sh")
            .args(["-c", "read line; exec sleep 30"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let pid = child.id();
        let mut d = Discovery::new(vec![Selector::Pid(pid)]);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // New (and young: a second look), then its second look.
            d.refresh();
            assert!(d.young.contains(&pid), "{:?}", d.young);
            assert!(!d.young.contains(&1), "init is not young");
            d.refresh();
            assert_eq!(comm_of(&d, pid).as_deref(), Some("sh"));
            writeln!(child.stdin.as_mut().expect("stdin"), "go").expect("write");
            let deadline = Instant::now() + Duration::from_secs(5);
            while std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .ok()
                .as_deref()
                != Some("sleep\n")
            {
                assert!(Instant::now() < deadline, "the child never exec'd sleep");
                std::thread::sleep(Duration::from_millis(10));
            }
            // Between rechecks the cache is what was read: not re-read.
            while !d.refreshes.is_multiple_of(FULL_EVERY) {
                d.refresh();
                assert_eq!(comm_of(&d, pid).as_deref(), Some("sh"));
            }
            // The recheck reads its stat, sees another name, reads it whole.
            d.refresh();
            assert_eq!(comm_of(&d, pid).as_deref(), Some("sleep"));
        }));
        child.kill().ok();
        child.wait().ok();
        if let Err(e) = result {
            std::panic::resume_unwind(e);
        }
    }
}
