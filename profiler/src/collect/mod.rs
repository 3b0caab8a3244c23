//! A profiling session: attach the hook set this kernel supports, tell the
//! kernel which processes are sidecars, drain the proxies' reads and writes
//! from the per-CPU rings, pair them into forwards and fill histograms.
mod decode;
mod filter;
mod merge;
mod ring;

use decode::Event;

/// Bound on the endpoints table (sockets of tracked proxies open at once).
const SOCKS_MAX: usize = 1 << 18;
/// Sidecars tracked at once unless told otherwise (a node runs ~110 pods).
pub const SIDECARS_MAX: usize = 256;
/// Events this recent wait for the next drain: a CPU's ring may still be
/// receiving an earlier one (a thread that read on one CPU and wrote on
/// another), and pairing needs every thread's events in time order.
const SETTLE_NS: u64 = 2_000_000;

use std::collections::BTreeSet;

// Looked up for every read and write: a fast hash for pids and kernel
// addresses (nothing here is attacker-chosen). Not aya's HashMap (a map of
// the kernel's), which this file also uses.
use rustc_hash::FxHashMap;

use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData, PerCpuArray},
};
use profiler_common::{
    events::Io,
    maps::{self as names, Counter},
    pairing::{Forward, Pairing, Read, Role, Write},
    ring::{self as rings, Record},
    sock::SockInfo,
};

use crate::{
    classify::{PodView, Verdict},
    discovery::{ProcInfo, Sidecar},
    ebpf::{self, EbpfError, HookSet, loader},
    histogram::Hops,
};

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Ebpf(#[from] EbpfError),
    #[error("no hook set attaches on this kernel ({0}); run `profiler check` for details")]
    NoHookSet(String),
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("map {0} is missing from the eBPF object")]
    MissingMap(&'static str),
    #[error("mapping the per-CPU rings into memory failed: {0}")]
    Rings(#[source] std::io::Error),
}

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

pub struct Session {
    ebpf: Ebpf,
    _logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    pub hook_set: HookSet,
    rings: ring::Rings,
    /// Reused between drains: the records taken, and the forwards paired.
    records: Vec<Record>,
    forwards: Vec<Forward>,
    /// Events not yet paired, in time order after each drain.
    events: Vec<Event>,
    pub pairing: Pairing,
    tracked: HashMap<MapData, u32, u32>,
    proxy_ports: HashMap<MapData, u16, u8>,
    tracked_filter: Array<MapData, u32>,
    /// Filter slots currently written, and proxy ports currently in the map.
    filter_slots: BTreeSet<u32>,
    ports: BTreeSet<u16>,
    pub sidecars: Vec<Sidecar>,
    /// tgid -> index into `sidecars`.
    by_tgid: FxHashMap<u32, usize>,
    pub excluded_ports: Vec<u16>,
    pub hops: Hops,
    pub tally: Tally,
    /// Endpoints of the tracked proxies' sockets, from open/close events.
    socks: FxHashMap<u64, SockInfo>,
    /// Most sidecars known at once; the last discovery's excess.
    sidecars_max: usize,
    over_cap: usize,
    /// Per sidecar position: when its processes were last seen gone.
    gone_since: Vec<Option<std::time::Instant>>,
}

fn take<T>(
    ebpf: &mut Ebpf,
    name: &'static str,
    f: impl FnOnce(aya::maps::Map) -> Result<T, aya::maps::MapError>,
) -> Result<T, CollectError> {
    let map = ebpf.take_map(name).ok_or(CollectError::MissingMap(name))?;
    f(map).map_err(|source| CollectError::Map { name, source })
}

impl Session {
    /// Attach the first hook set, in preference order, all of whose hooks
    /// attach here; nothing stays attached from a set that failed.
    pub fn start(
        sidecars: Vec<Sidecar>,
        excluded_ports: Vec<u16>,
    ) -> Result<Session, CollectError> {
        let mut ebpf = ebpf::open()?;
        // Rings first: a program must find its ring sized when it first runs.
        let rings = ring::Rings::new(
            take(&mut ebpf, rings::RING_CTL, Array::try_from)?,
            take(&mut ebpf, rings::RING, Array::try_from)?,
        )
        .map_err(CollectError::Rings)?;
        // The logger owns the log map the programs reference: keep it alive.
        let logger = aya_log::EbpfLogger::init(&mut ebpf)
            .map_err(|e| log::debug!("no eBPF logger: {e}"))
            .ok();
        let mut failures = Vec::new();
        let mut chosen = None;
        for set in HookSet::PREFERENCE {
            // Kernel BTF is parsed (several MB) only for the set that needs it.
            let btf = (set == HookSet::Fentry)
                .then(|| aya::Btf::from_sys_fs().ok())
                .flatten();
            let mut ok = true;
            for hook in set.hooks() {
                if let Err(e) = loader::attach(&mut ebpf, hook, btf.as_ref()) {
                    failures.push(format!("{}: {}", set.name(), loader::short_reason(&e)));
                    ok = false;
                    break;
                }
            }
            if ok {
                chosen = Some(set);
                break;
            }
            for hook in set.hooks() {
                loader::unload(&mut ebpf, hook.program);
            }
        }
        let hook_set = chosen.ok_or_else(|| CollectError::NoHookSet(failures.join("; ")))?;
        let tracked = take(&mut ebpf, names::TRACKED, HashMap::try_from)?;
        let proxy_ports = take(&mut ebpf, names::PROXY_PORTS, HashMap::try_from)?;
        let tracked_filter = take(&mut ebpf, names::filter::TRACKED_FILTER, Array::try_from)?;
        let mut s = Session {
            ebpf,
            _logger: logger,
            hook_set,
            rings,
            records: Vec::new(),
            forwards: Vec::new(),
            events: Vec::new(),
            pairing: Pairing::default(),
            tracked,
            proxy_ports,
            tracked_filter,
            filter_slots: BTreeSet::new(),
            ports: BTreeSet::new(),
            sidecars: Vec::new(),
            by_tgid: FxHashMap::default(),
            excluded_ports,
            hops: Hops::default(),
            tally: Tally::default(),
            socks: FxHashMap::default(),
            sidecars_max: SIDECARS_MAX,
            over_cap: 0,
            gone_since: Vec::new(),
        };
        s.set_sidecars(sidecars)?;
        Ok(s)
    }

    /// Merge a fresh discovery: known sidecars keep their index (their
    /// histograms stay theirs), new ones are appended; then the kernel's
    /// tracked set and proxy ports follow, if they changed.
    pub fn set_sidecars(&mut self, fresh: Vec<Sidecar>) -> Result<(), CollectError> {
        let refused = merge::merge(&mut self.sidecars, fresh, self.sidecars_max);
        if refused > 0 && self.over_cap == 0 {
            log::warn!(
                "{refused} sidecar(s) beyond the cap of {} are not tracked (raise --max-sidecars)",
                self.sidecars_max
            );
        }
        self.over_cap = refused;
        self.retrack()
    }

    /// Point the kernel's tracked set and proxy ports at the live processes
    /// of the known sidecars, and note which sidecars are gone.
    fn retrack(&mut self) -> Result<(), CollectError> {
        let mut wanted = FxHashMap::default();
        self.gone_since.resize(self.sidecars.len(), None);
        let now = std::time::Instant::now();
        for (i, s) in self.sidecars.iter().enumerate() {
            let mut alive = false;
            for &(pid, start) in &s.procs {
                if ProcInfo::is_alive(pid, start) {
                    wanted.insert(pid, i);
                    alive = true;
                }
            }
            let gone = &mut self.gone_since[i];
            *gone = if alive { None } else { gone.or(Some(now)) };
        }
        let ports: BTreeSet<u16> = self
            .sidecars
            .iter()
            .flat_map(|s| s.listen_ports.iter().copied())
            .collect();
        if wanted != self.by_tgid {
            self.apply_tracked(&wanted)?;
            self.by_tgid = wanted;
        }
        if ports != self.ports {
            self.apply_ports(&ports)?;
            self.ports = ports;
        }
        Ok(())
    }

    /// Most sidecars tracked at once (discovery's excess is counted).
    pub fn set_sidecars_max(&mut self, max: usize) {
        self.sidecars_max = max;
    }

    /// Sidecars whose processes are alive and tracked.
    pub fn tracked_sidecars(&self) -> usize {
        self.gone_since.iter().filter(|g| g.is_none()).count()
    }

    /// Sidecars the last discovery found beyond the cap.
    pub fn sidecars_over_cap(&self) -> usize {
        self.over_cap
    }

    /// Forget sidecars gone for longer than `ttl`, with their figures, so a
    /// long-running daemon's memory and series follow the node's pods;
    /// returns how many were removed. Positions of the others shift down.
    pub fn expire(&mut self, ttl: std::time::Duration) -> Result<usize, CollectError> {
        let keep: Vec<bool> = self
            .gone_since
            .iter()
            .map(|g| g.is_none_or(|t| t.elapsed() < ttl))
            .collect();
        let removed = keep.iter().filter(|k| !**k).count();
        if removed == 0 {
            return Ok(0);
        }
        let remap = merge::compact(&mut self.sidecars, &keep);
        let mut i = 0;
        self.gone_since.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        let old = std::mem::take(&mut self.hops.by_key);
        self.hops.by_key = old
            .into_iter()
            .filter_map(|((idx, d, l), h)| {
                let new = remap.get(idx as usize).copied().flatten()?;
                Some(((new, d, l), h))
            })
            .collect();
        self.retrack()?;
        Ok(removed)
    }

    /// Fill of the kernel maps and userspace tables that have a bound.
    pub fn map_fill(&self) -> Vec<crate::metrics::MapFill> {
        use crate::metrics::MapFill;
        vec![
            MapFill {
                map: "tracked",
                entries: self.by_tgid.len() as u64,
                capacity: u64::from(names::TRACKED_MAX),
            },
            MapFill {
                map: "proxy_ports",
                entries: self.ports.len() as u64,
                capacity: u64::from(names::PROXY_PORTS_MAX),
            },
            MapFill {
                map: "sockets",
                entries: self.socks.len() as u64,
                capacity: SOCKS_MAX as u64,
            },
            MapFill {
                map: "sidecars",
                entries: self.sidecars.len() as u64,
                capacity: self.sidecars_max as u64,
            },
        ]
    }

    fn apply_tracked(&mut self, wanted: &FxHashMap<u32, usize>) -> Result<(), CollectError> {
        let map_err = |name| move |source| CollectError::Map { name, source };
        for pid in self.by_tgid.keys().filter(|p| !wanted.contains_key(p)) {
            let _ = self.tracked.remove(pid);
        }
        for (&pid, &i) in wanted {
            self.tracked
                .insert(pid, i as u32, 0)
                .map_err(map_err(names::TRACKED))?;
        }
        // The filter the programs check first: write the new slots, clear
        // the slots nothing maps to any more.
        let slots = filter::tgid_slots(wanted.keys().copied());
        for (&slot, &value) in &slots {
            self.tracked_filter
                .set(slot, value, 0)
                .map_err(map_err(names::filter::TRACKED_FILTER))?;
        }
        for slot in self.filter_slots.iter().filter(|s| !slots.contains_key(s)) {
            self.tracked_filter
                .set(*slot, 0, 0)
                .map_err(map_err(names::filter::TRACKED_FILTER))?;
        }
        self.filter_slots = slots.keys().copied().collect();
        Ok(())
    }

    fn apply_ports(&mut self, ports: &BTreeSet<u16>) -> Result<(), CollectError> {
        for p in self.ports.iter().filter(|p| !ports.contains(p)) {
            let _ = self.proxy_ports.remove(p);
        }
        for &p in ports {
            self.proxy_ports
                .insert(p, 1, 0)
                .map_err(|source| CollectError::Map {
                    name: names::PROXY_PORTS,
                    source,
                })?;
        }
        Ok(())
    }

    /// Take every record the kernel has reported so far and pair all but
    /// the most recent events (they wait for the next drain, see
    /// [`SETTLE_NS`]); returns how many records were taken.
    pub fn drain(&mut self) -> usize {
        let horizon = crate::kernel::clock::monotonic_ns().saturating_sub(SETTLE_NS);
        self.drain_until(horizon)
    }

    /// Take every record and pair every event: the capture is over.
    pub fn finish(&mut self) -> usize {
        self.drain_until(u64::MAX)
    }

    fn drain_until(&mut self, horizon: u64) -> usize {
        let mut records = std::mem::take(&mut self.records);
        records.clear();
        self.rings.drain(&mut records);
        for r in &records {
            match decode::decode_record(r) {
                Some(ev) => self.events.push(ev),
                None => self.tally.bad_records += 1,
            }
        }
        decode::in_time_order(&mut self.events);
        let ready = self.events.partition_point(|e| e.order().0 < horizon);
        let mut events = std::mem::take(&mut self.events);
        for ev in events.drain(..ready) {
            self.apply(ev);
        }
        self.events = events;
        let n = records.len();
        self.records = records;
        n
    }

    fn apply(&mut self, ev: Event) {
        match ev {
            Event::Read(io) => {
                if let Some(role) = self.role(&io) {
                    self.pairing.on_read(&Read::from(&io), role);
                }
            }
            Event::Write(io) => {
                if let Some(role) = self.role(&io) {
                    let mut forwards = std::mem::take(&mut self.forwards);
                    self.pairing
                        .on_write(&Write::from(&io), role, &mut forwards);
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
            Event::SockClose { sk, .. } => {
                self.socks.remove(&sk);
                self.pairing.on_close(sk);
            }
        }
    }

    /// The view classification has of the sidecar process `tgid` belongs to.
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
            Verdict::Hop(d, l) => self.hops.record(i as u32, d, l, f),
            Verdict::Excluded => self.tally.excluded += 1,
            Verdict::Unclassified => self.tally.unclassified += 1,
        }
    }

    /// Records the per-CPU rings hold together between two drains.
    pub fn ring_capacity(&self) -> u64 {
        self.rings.capacity()
    }

    /// Kernel counters summed over CPUs.
    pub fn counter(&self, c: Counter) -> u64 {
        let Some(map) = self.ebpf.map(names::COUNTERS) else {
            return 0;
        };
        let Ok(arr) = PerCpuArray::<_, u64>::try_from(map) else {
            return 0;
        };
        arr.get(&(c as u32), 0).map(|v| v.iter().sum()).unwrap_or(0)
    }

    /// (program name, invocations, total run time in ns) of every program
    /// loaded; counted only while kernel BPF stats are enabled.
    pub fn program_stats(&self) -> Vec<(String, u64, u64)> {
        self.ebpf
            .programs()
            .filter_map(|(name, p)| {
                let info = p.info().ok()?;
                Some((
                    name.to_string(),
                    info.run_count(),
                    info.run_time().as_nanos() as u64,
                ))
            })
            .collect()
    }

    /// Records lost (a CPU's ring full, or a writer interrupted) and
    /// sockets whose arrivals could not be recorded (map full).
    pub fn lost_events(&self) -> u64 {
        self.counter(Counter::RingFull)
            + self.counter(Counter::RingBusy)
            + self.counter(Counter::MapFull)
    }
}
