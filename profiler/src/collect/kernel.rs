//! The kernel side of a session: attach the hook set this kernel supports,
//! keep the kernel's tracked set and proxy ports, drain the per-CPU rings
//! into records. Nothing here pairs or aggregates.
use std::{collections::BTreeSet, os::fd::AsFd};

use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData, PerCpuArray},
};
use profiler_common::{
    maps::{self as names, Counter},
    ring::{self as rings, Record},
    sched::{self, ThreadSched},
};
use rustc_hash::FxHashMap;

use super::{CollectError, filter, ring};
use crate::ebpf::{Hook, HookSet, Hooks, SchedHooks, hookset, loader};

pub struct Kernel {
    ebpf: Ebpf,
    _logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    pub hook_set: HookSet,
    rings: ring::Rings,
    tracked: HashMap<MapData, u32, u32>,
    proxy_ports: HashMap<MapData, u16, u8>,
    tracked_filter: Array<MapData, u32>,
    /// What the maps hold now: tgid -> sidecar position, filter slots
    /// written, proxy ports.
    by_tgid: FxHashMap<u32, usize>,
    filter_slots: BTreeSet<u32>,
    ports: BTreeSet<u16>,
    /// The scheduler hooks attached, or why none are.
    pub sched: Result<&'static [Hook], String>,
    thread_sched: HashMap<MapData, u32, ThreadSched>,
    thread_filter: Array<MapData, sched::ThreadBits>,
    /// The classifiers on the followed pods' edges, where asked.
    edges: Option<crate::edge::Edges>,
}

fn take<T>(
    ebpf: &mut Ebpf,
    name: &'static str,
    f: impl FnOnce(aya::maps::Map) -> Result<T, aya::maps::MapError>,
) -> Result<T, CollectError> {
    let map = ebpf.take_map(name).ok_or(CollectError::MissingMap(name))?;
    f(map).map_err(|source| CollectError::Map { name, source })
}

/// The scheduler hooks, all of one kind or none: the BTF tracepoints where
/// the kernel's BTF gives a task's pid and they attach, else the classic
/// ones; which attached, or why neither did.
fn attach_sched(
    ebpf: &mut Ebpf,
    which: SchedHooks,
    btf: Option<&aya::Btf>,
) -> Result<&'static [Hook], String> {
    if which == SchedHooks::Off {
        return Err("left out (--no-sched-split)".to_string());
    }
    // Every set splits a thread's time off CPU by its run-queue wait.
    if let Err(e) = loader::task_run_delay_offset() {
        return Err(format!(
            "{e} (a task's run-queue wait, from CONFIG_SCHED_INFO)"
        ));
    }
    let mut why = Vec::new();
    for &hooks in which.candidates() {
        if hooks == &hookset::SCHED_BTF[..] {
            if let Err(e) = loader::task_pid_offset() {
                why.push(format!("BTF tracepoints: {e}"));
                continue;
            }
            if btf.is_none() {
                why.push("BTF tracepoints: the kernel's BTF did not parse".into());
                continue;
            }
        }
        match hooks
            .iter()
            .try_for_each(|hook| loader::attach(ebpf, hook, btf))
        {
            Ok(()) => {
                if !why.is_empty() {
                    log::info!(
                        "scheduler hooks: {} ({})",
                        hooks[0].describe(),
                        why.join("; ")
                    );
                }
                return Ok(hooks);
            }
            Err(e) => {
                for h in hooks {
                    loader::unload(ebpf, h.program);
                }
                why.push(loader::short_reason(&e));
            }
        }
    }
    let why = why.join("; ");
    log::warn!(
        "the scheduler hooks did not attach ({why}): process time is not split into \
         on-CPU, run-queue and blocked time"
    );
    Err(why)
}

/// Hand the heap the parsed kernel BTF held (tens of MB of small
/// allocations, freed once the programs are loaded) back to the system, so
/// a daemon's resident memory is what it keeps, not what it once parsed.
fn return_freed_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Kernel {
    /// Attach the forced set, or else the first hook set, in preference
    /// order, all of whose hooks attach here; nothing stays attached from a
    /// set that failed. Then the scheduler hooks, unless left out: without
    /// them the capture goes on, without the split of process time.
    pub fn attach(hooks: Hooks) -> Result<Kernel, CollectError> {
        let forced = hooks.set;
        let pod_edge = hooks.pod_edge.clone();
        let mut ebpf = loader::open_with(hooks.pod_edge.is_some(), hooks.sched != SchedHooks::Off)?;
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
        let candidates = match forced {
            Some(set) => vec![set],
            None => HookSet::PREFERENCE.to_vec(),
        };
        // Kernel BTF (several MB) is parsed once, for what needs it: the
        // fentry set and the BTF scheduler hooks.
        let btf = (hooks.sched != SchedHooks::Off || candidates.contains(&HookSet::Fentry))
            .then(|| aya::Btf::from_sys_fs().ok())
            .flatten();
        for set in candidates {
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
        let hook_set = chosen.ok_or_else(|| match forced {
            Some(set) => CollectError::HookSetRefused {
                set: set.name(),
                why: failures.join("; "),
            },
            None => CollectError::NoHookSet(failures.join("; ")),
        })?;
        let sched = attach_sched(&mut ebpf, hooks.sched, btf.as_ref());
        drop(btf);
        return_freed_heap();
        let edges = match pod_edge {
            Some(e) => Some(crate::edge::Edges::open(&mut ebpf, e)?),
            None => None,
        };
        Ok(Kernel {
            edges,
            sched,
            thread_sched: take(&mut ebpf, sched::THREAD_SCHED, HashMap::try_from)?,
            thread_filter: take(&mut ebpf, sched::THREAD_FILTER, Array::try_from)?,
            tracked: take(&mut ebpf, names::TRACKED, HashMap::try_from)?,
            proxy_ports: take(&mut ebpf, names::PROXY_PORTS, HashMap::try_from)?,
            tracked_filter: take(&mut ebpf, names::filter::TRACKED_FILTER, Array::try_from)?,
            ebpf,
            _logger: logger,
            hook_set,
            rings,
            by_tgid: FxHashMap::default(),
            filter_slots: BTreeSet::new(),
            ports: BTreeSet::new(),
        })
    }

    /// Point the tracked set (tgid -> sidecar position) and the proxy ports
    /// at `wanted` and `ports`, writing only what changed.
    pub fn track(
        &mut self,
        wanted: &FxHashMap<u32, usize>,
        ports: &BTreeSet<u16>,
    ) -> Result<(), CollectError> {
        if *wanted != self.by_tgid {
            self.apply_tracked(wanted)?;
            self.by_tgid = wanted.clone();
            // The capture goes on without a pod's edge; the log says why.
            if let Some(edges) = &mut self.edges
                && let Err(e) = edges.follow(&mut self.ebpf, wanted.keys().copied())
            {
                log::warn!("the classifiers on the pod edges: {e}");
            }
        }
        if *ports != self.ports {
            self.apply_ports(ports)?;
            self.ports = ports.clone();
        }
        Ok(())
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

    /// Forget the threads that ended (their ids may be reused): each
    /// followed thread whose /proc entry is gone leaves THREAD_SCHED, and
    /// the filter is rewritten from the threads still followed. Returns
    /// their count.
    pub fn prune_threads(&mut self) -> usize {
        let tids: Vec<u32> = self.thread_sched.keys().filter_map(Result::ok).collect();
        let mut bits = sched::ThreadBits::default();
        let mut left = 0;
        for tid in tids {
            if std::path::Path::new(&format!("/proc/{tid}")).exists() {
                bits.set(tid);
                left += 1;
            } else {
                let _ = self.thread_sched.remove(&tid);
            }
        }
        // A thread the kernel starts following meanwhile finds its bit
        // clear at its next read or write, and starts over.
        if let Err(e) = self.thread_filter.set(0, bits, 0) {
            log::warn!("rewriting the thread filter: {e}");
        }
        left
    }

    /// The classifiers on the pod edges: how they attach and where, or
    /// None when not asked for.
    pub fn pod_edges(&self) -> Option<&crate::edge::Edges> {
        self.edges.as_ref()
    }

    /// Hand `each` every record the kernel has reported so far; returns
    /// the most one CPU's ring held, and how many were handed.
    pub fn drain(&mut self, each: impl FnMut(&Record)) -> (u64, usize) {
        self.rings.drain(each)
    }

    /// Records one CPU's ring holds.
    pub fn ring_slots_per_cpu(&self) -> u64 {
        self.rings.slots_per_cpu()
    }

    /// Processes and ports in the kernel's maps now.
    pub fn tracked_len(&self) -> usize {
        self.by_tgid.len()
    }

    pub fn ports_len(&self) -> usize {
        self.ports.len()
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

    /// The hooks attached: the set's, then the scheduler's.
    pub fn attached_hooks(&self) -> impl Iterator<Item = &'static Hook> + '_ {
        let sched = self.sched.as_ref().copied().unwrap_or_default();
        self.hook_set.hooks().iter().chain(sched)
    }

    /// Runs the kernel skipped, per attached hook (the set's and the
    /// scheduler's); a hook whose count cannot be read is left out.
    pub fn skipped_runs(&self) -> Vec<(Hook, u64)> {
        self.attached_hooks()
            .filter_map(|h| {
                let fd = self.ebpf.program(h.program)?.fd().ok()?;
                let counts = super::skipped::run_counts(fd.as_fd()).ok()?;
                Some((*h, counts.skipped))
            })
            .collect()
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
}

impl Drop for Kernel {
    /// The classifiers come off in the node's namespace, before the programs
    /// are unloaded (a filter's removal names its interface by index, which
    /// only means the right one there).
    fn drop(&mut self) {
        if let Some(edges) = &mut self.edges {
            edges.close(&mut self.ebpf);
        }
    }
}
