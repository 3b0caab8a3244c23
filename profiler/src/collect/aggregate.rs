//! The aggregation side of a session, with no BPF in it: records in, per
//! (sidecar, direction, leg) histograms and counters out. It orders the
//! CPUs' records in time, keeps the sockets' endpoints, pairs reads and
//! writes into forwards, classifies them and fills the hops. Unit tests
//! drive it with recorded events.
use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use profiler_common::{
    edge::EdgeIn,
    events::{Io, RunnableWait},
    pairing::{Forward, Pairing, Read, Role, Write},
    ring::Record,
    sock::SockInfo,
};
// Looked up for every read and write: a fast hash for pids and kernel
// addresses (nothing here is attacker-chosen).
use rustc_hash::FxHashMap;

use super::{
    decode::{self, Event},
    merge,
};
use crate::{
    classify::{PodView, Verdict},
    cpu::intervals::Intervals,
    discovery::Sidecar,
    histogram::{Hops, waits::Waits},
};

/// Bound on the endpoints table (sockets of tracked proxies open at once).
pub const SOCKS_MAX: usize = 1 << 18;
/// Sidecars known at once unless told otherwise (a node runs ~110 pods).
pub const SIDECARS_MAX: usize = 256;

/// Counts of what the session saw besides recorded hops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub excluded: u64,
    pub unclassified: u64,
    pub untracked: u64,
    /// Records of an unknown kind or size (a kernel/user version mismatch).
    pub bad_records: u64,
    /// Times the endpoints table was cleared because closes had been lost.
    pub sock_table_resets: u64,
}

/// What the kernel must track after a change of sidecars: tgid -> sidecar
/// position, and the ports the sidecars listen on.
pub struct Tracking {
    pub tgids: FxHashMap<u32, usize>,
    pub ports: BTreeSet<u16>,
}

pub struct Aggregate {
    /// Events taken and not yet paired (in time order after each settle).
    events: Vec<Event>,
    /// Reused between settles: the events' time order, and the buffer the
    /// events left for the next settle are gathered in.
    order: Vec<u128>,
    spare: Vec<Event>,
    /// Reused between settles.
    forwards: Vec<Forward>,
    pub pairing: Pairing,
    pub sidecars: Vec<Sidecar>,
    /// tgid -> index into `sidecars`, for live processes.
    by_tgid: FxHashMap<u32, usize>,
    pub excluded_ports: Vec<u16>,
    pub hops: Hops,
    pub tally: Tally,
    /// Endpoints of the tracked proxies' sockets, from open/close events.
    socks: FxHashMap<u64, SockInfo>,
    /// A kernel_in stamp for the read right behind it (at most one per
    /// socket, and only between the two; a write carries its own).
    edge_in: FxHashMap<u64, EdgeIn>,
    sidecars_max: usize,
    /// Sidecars the last discovery found beyond the cap.
    over_cap: usize,
    /// Per sidecar position: since when its processes are all gone.
    gone_since: Vec<Option<Instant>>,
    /// CPU and memory of each sidecar (same positions as `sidecars`), from
    /// the samples discovery takes.
    pub cpu: Vec<crate::cpu::Window>,
    /// Run-queue waits of each sidecar's threads (same positions).
    pub waits: Vec<Waits>,
    /// Snapshots only (empty in the daemon): each sidecar's series of
    /// intervals between CPU samples (same positions).
    pub intervals: Vec<Intervals>,
    /// Whether the scheduler hooks attached: without them the reads' and
    /// writes' thread accounts never moved, and no forward is split.
    pub sched_split: bool,
}

impl Aggregate {
    /// `detail`: keep HDR histograms per hop (a snapshot's percentiles);
    /// the daemon exports fixed buckets only.
    pub fn new(excluded_ports: Vec<u16>, detail: bool) -> Aggregate {
        Aggregate {
            events: Vec::new(),
            order: Vec::new(),
            spare: Vec::new(),
            forwards: Vec::new(),
            pairing: Pairing::default(),
            sidecars: Vec::new(),
            by_tgid: FxHashMap::default(),
            excluded_ports,
            hops: Hops::new(detail),
            tally: Tally::default(),
            socks: FxHashMap::default(),
            edge_in: FxHashMap::default(),
            sidecars_max: SIDECARS_MAX,
            over_cap: 0,
            gone_since: Vec::new(),
            cpu: Vec::new(),
            waits: Vec::new(),
            intervals: Vec::new(),
            sched_split: true,
        }
    }

    pub fn set_sidecars_max(&mut self, max: usize) {
        self.sidecars_max = max;
    }

    /// Merge a fresh discovery: known sidecars keep their position (their
    /// histograms stay theirs), new ones are appended up to the cap; `alive`
    /// says whether a (pid, start time) still runs.
    pub fn set_sidecars(
        &mut self,
        fresh: Vec<Sidecar>,
        alive: impl Fn(u32, u64) -> bool,
    ) -> Tracking {
        let refused = merge::merge(&mut self.sidecars, fresh, self.sidecars_max);
        if refused > 0 && self.over_cap == 0 {
            log::warn!(
                "{refused} sidecar(s) beyond the cap of {} are not tracked (raise --max-sidecars)",
                self.sidecars_max
            );
        }
        self.over_cap = refused;
        self.retrack(alive)
    }

    /// Which processes are live, and since when each sidecar has none.
    fn retrack(&mut self, alive: impl Fn(u32, u64) -> bool) -> Tracking {
        let mut tgids = FxHashMap::default();
        self.gone_since.resize(self.sidecars.len(), None);
        self.cpu.resize_with(self.sidecars.len(), Default::default);
        let detail = self.hops.detail;
        self.waits
            .resize_with(self.sidecars.len(), || Waits::new(detail));
        if detail {
            self.intervals
                .resize_with(self.sidecars.len(), Default::default);
        }
        let now = Instant::now();
        for (i, s) in self.sidecars.iter().enumerate() {
            let mut any = false;
            for &(pid, start) in &s.procs {
                if alive(pid, start) {
                    tgids.insert(pid, i);
                    any = true;
                }
            }
            let gone = &mut self.gone_since[i];
            *gone = if any { None } else { gone.or(Some(now)) };
        }
        self.by_tgid = tgids.clone();
        Tracking {
            tgids,
            ports: self
                .sidecars
                .iter()
                .flat_map(|s| s.listen_ports.iter().copied())
                .collect(),
        }
    }

    /// Add samples taken of `fresh` sidecars (one each, in order) to the
    /// windows of the known sidecars they are.
    pub fn add_cpu(&mut self, fresh: &[Sidecar], samples: Vec<crate::cpu::Sample>) {
        self.cpu.resize_with(self.sidecars.len(), Default::default);
        for (f, s) in fresh.iter().zip(samples) {
            if let Some(i) = self.sidecars.iter().position(|k| merge::same(k, f)) {
                let step = self.cpu[i].add(s);
                if let Some(series) = self.intervals.get_mut(i) {
                    series.close(step);
                }
            }
        }
    }

    /// Forget sidecars gone for longer than `ttl`, with their figures;
    /// positions of the others shift down. None when nothing was removed.
    pub fn expire(
        &mut self,
        ttl: Duration,
        alive: impl Fn(u32, u64) -> bool,
    ) -> Option<(usize, Tracking)> {
        let keep: Vec<bool> = self
            .gone_since
            .iter()
            .map(|g| g.is_none_or(|t| t.elapsed() < ttl))
            .collect();
        let removed = keep.iter().filter(|k| !**k).count();
        if removed == 0 {
            return None;
        }
        let remap = merge::compact(&mut self.sidecars, &keep);
        retain_kept(&mut self.gone_since, &keep);
        retain_kept(&mut self.cpu, &keep);
        retain_kept(&mut self.waits, &keep);
        retain_kept(&mut self.intervals, &keep);
        let old = std::mem::take(&mut self.hops.by_key);
        self.hops.by_key = old
            .into_iter()
            .filter_map(|((idx, d, l), h)| {
                let new = remap.get(idx as usize).copied().flatten()?;
                Some(((new, d, l), h))
            })
            .collect();
        Some((removed, self.retrack(alive)))
    }

    /// Sidecars whose processes are alive.
    pub fn tracked_sidecars(&self) -> usize {
        self.gone_since.iter().filter(|g| g.is_none()).count()
    }

    pub fn sidecars_over_cap(&self) -> usize {
        self.over_cap
    }

    pub fn sidecars_max(&self) -> usize {
        self.sidecars_max
    }

    /// Sockets in the endpoints table.
    pub fn sockets(&self) -> usize {
        self.socks.len()
    }

    /// Decode `records`, then pair every event before `horizon`
    /// ([`Aggregate::take`] each, then [`Aggregate::settle`]).
    #[cfg(test)]
    pub fn ingest(&mut self, records: &[Record], horizon: u64) {
        for r in records {
            self.take(r);
        }
        self.settle(horizon);
    }

    /// Decode one record, to be paired at the next [`Aggregate::settle`].
    /// A run-queue wait is counted at once: it is paired with nothing, so
    /// its order among the others does not matter (and it is about a
    /// quarter of the records: none of them sorted saves the daemon that).
    pub fn take(&mut self, r: &Record) {
        match decode::decode_record(r) {
            Some(Event::RunnableWait(w)) => self.runnable_wait(&w),
            Some(ev) => self.events.push(ev),
            None => self.tally.bad_records += 1,
        }
    }

    /// Pair every event taken before `horizon` (ns, the kernel's clock);
    /// later ones wait for the next settle, when a CPU's ring may still
    /// hold an earlier event of the same thread.
    pub fn settle(&mut self, horizon: u64) {
        let mut order = std::mem::take(&mut self.order);
        decode::time_order(&self.events, &mut order);
        let ready = order.partition_point(|&k| decode::key_time(k) < horizon);
        let events = std::mem::take(&mut self.events);
        let mut later = std::mem::take(&mut self.spare);
        later.clear();
        later.extend(order[ready..].iter().map(|&k| events[decode::key_index(k)]));
        for &k in &order[..ready] {
            self.apply(events[decode::key_index(k)]);
        }
        self.events = later;
        self.spare = events;
        self.order = order;
    }

    pub fn apply(&mut self, mut ev: Event) {
        // Without the scheduler hooks a read's or write's thread account
        // never moved: it marks no split.
        if !self.sched_split
            && let Event::Read(io) | Event::Write(io) = &mut ev
        {
            io.sched_generation = 0;
        }
        match ev {
            Event::Read(io) => {
                let edge = self.edge_in.remove(&io.sk);
                if let Some(role) = self.role(&io) {
                    let mut r = Read::from(&io);
                    r.edge_ns = edge.map_or(0, |e| e.start_for(io.arrival_ns));
                    self.pairing.on_read(&r, role);
                }
            }
            // Taken by the read or write right behind it (same CPU, same time).
            Event::EdgeIn(e) => {
                self.edge_in.insert(e.sk, e);
            }
            Event::Write(io) => {
                if let Some(role) = self.role(&io) {
                    let mut forwards = std::mem::take(&mut self.forwards);
                    let w = Write::from(&io);
                    self.pairing.on_write(&w, role, &mut forwards);
                    for f in forwards.drain(..) {
                        self.record(&f);
                    }
                    self.forwards = forwards;
                }
            }
            Event::Connect(io) => {
                if self.by_tgid.contains_key(&io.tgid) {
                    self.pairing.on_connect(io.tid, io.sk);
                }
            }
            Event::SockOpen { sk, info, .. } => {
                if self.socks.len() >= SOCKS_MAX && !self.socks.contains_key(&sk) {
                    // Closes were lost (ring full): start over rather than grow.
                    self.socks.clear();
                    self.tally.sock_table_resets += 1;
                }
                self.socks.insert(sk, info);
            }
            Event::RunnableWait(w) => self.runnable_wait(&w),
            Event::SockClose { sk, .. } => {
                self.socks.remove(&sk);
                self.edge_in.remove(&sk);
                self.pairing.on_close(sk);
            }
        }
    }

    /// A followed thread of a tracked sidecar waited runnable.
    fn runnable_wait(&mut self, w: &RunnableWait) {
        if let Some(&i) = self.by_tgid.get(&w.tgid) {
            if let Some(waits) = self.waits.get_mut(i) {
                waits.record(w.wait_ns);
            }
            if let Some(series) = self.intervals.get_mut(i) {
                series.wait(w.wait_ns);
            }
        }
    }

    /// The view classification has of sidecar `i`.
    fn view(&self, i: usize) -> PodView<'_> {
        let sc = &self.sidecars[i];
        PodView {
            local_addrs: &sc.local_addrs,
            listen_ports: &sc.listen_ports,
            excluded_ports: &self.excluded_ports,
        }
    }

    /// The role of the socket of a read or write, or None (counted) when
    /// its process is no longer tracked.
    fn role(&mut self, io: &Io) -> Option<Role> {
        let Some(&i) = self.by_tgid.get(&io.tgid) else {
            self.tally.untracked += 1;
            return None;
        };
        let unknown = SockInfo::default();
        let info = self.socks.get(&io.sk).unwrap_or(&unknown);
        Some(self.view(i).role(info))
    }

    fn record(&mut self, f: &Forward) {
        let Some(&i) = self.by_tgid.get(&f.tgid) else {
            self.tally.untracked += 1;
            return;
        };
        let unknown = SockInfo::default();
        let src = self.socks.get(&f.src_sk).unwrap_or(&unknown);
        let dst = self.socks.get(&f.dst_sk).unwrap_or(&unknown);
        match self.view(i).classify(src, dst) {
            Verdict::Hop(d, l) => {
                self.hops.record(i as u32, d, l, f);
                if let Some(series) = self.intervals.get_mut(i) {
                    series.record(f);
                }
            }
            Verdict::Excluded => self.tally.excluded += 1,
            Verdict::Unclassified => self.tally.unclassified += 1,
        }
    }
}

/// Keep the items of `v` whose position `keep` marks (those past its end
/// too): the per-sidecar tables beside `sidecars`, compacted with it.
fn retain_kept<T>(v: &mut Vec<T>, keep: &[bool]) {
    let mut i = 0;
    v.retain(|_| {
        i += 1;
        keep.get(i - 1).copied().unwrap_or(true)
    });
}

#[cfg(test)]
mod tests;
