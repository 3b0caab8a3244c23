//! Where a sidecar's CPU and memory are sampled: every process's threads'
//! schedstat (ns), its stat, and its container's cgroup. Read by hand, not
//! with procfs: procfs's per-process directory handles and full stat parse
//! took the daemon at 64 sidecars to 1.12% of a core (0.93-1.02% by hand)
//! sampling every 5 s, and to 1.76% (1.55%) every second.
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use super::{cgroup, proc, read::Reader};
use crate::kernel::cgroup_cpu::CpuAccounting;

/// One process at one moment, cumulative since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcSample {
    pub pid: u32,
    pub start_time: u64,
    /// Run time and run-queue wait summed over its live threads, in ns,
    /// and the times they were switched in (context switches).
    pub run_ns: u64,
    pub wait_ns: u64,
    pub utime_ticks: u64,
    pub stime_ticks: u64,
    pub threads: u64,
    pub rss_bytes: u64,
    pub ctx_switches: u64,
}

/// One thread at one moment: its name (Envoy's `wrk:worker_N`), run time
/// and run-queue wait in ns since it started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskSample {
    pub pid: u32,
    pub tid: u32,
    pub name: String,
    pub run_ns: u64,
    pub wait_ns: u64,
    /// The thread's own user and system ticks (its task/<tid>/stat), which
    /// split its run time as the process's ticks split the process's.
    pub utime_ticks: u64,
    pub stime_ticks: u64,
}

/// A sidecar (its processes, its container) at one moment.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When it was taken (CLOCK_MONOTONIC ns).
    pub at_ns: u64,
    pub procs: Vec<ProcSample>,
    /// Every thread of those processes.
    pub tasks: Vec<TaskSample>,
    pub cgroup: Option<cgroup::CgroupCpu>,
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}

/// A process's thread ids, as its task directory lists them.
fn list_tasks(pid: u32) -> Option<Vec<u32>> {
    Some(
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .ok()?
            .flatten()
            .filter_map(|t| t.file_name().to_str()?.parse().ok())
            .collect(),
    )
}

/// A thread's run time and wait in ns, and its switches in.
type Schedstat = (u64, u64, u64);

/// What a sampler keeps between samples.
#[derive(Default)]
struct Memo {
    /// (pid, tid) -> thread name (threads are named at start).
    names: HashMap<(u32, u32), String>,
    /// (pid, start time) -> its threads at the last sample: listed again
    /// only when stat's thread count differs or a thread is gone, since a
    /// directory listing costs more than the files it names.
    tids: HashMap<(u32, u64), Vec<u32>>,
    reader: Reader,
}

impl Memo {
    /// The thread's run time, wait and switches in; None if it is gone.
    fn schedstat(&mut self, pid: u32, tid: u32) -> Option<Schedstat> {
        let path = format!("/proc/{pid}/task/{tid}/schedstat");
        self.reader
            .text(Path::new(&path))
            .and_then(proc::parse_schedstat)
    }

    /// Each listed thread's schedstat, and whether none was gone.
    fn schedstats(&mut self, pid: u32, tids: &[u32]) -> (Vec<(u32, Schedstat)>, bool) {
        let read: Vec<_> = tids
            .iter()
            .filter_map(|&tid| Some((tid, self.schedstat(pid, tid)?)))
            .collect();
        let complete = read.len() == tids.len();
        (read, complete)
    }

    fn name(&mut self, pid: u32, tid: u32) -> String {
        if let Some(n) = self.names.get(&(pid, tid)) {
            return n.clone();
        }
        let path = format!("/proc/{pid}/task/{tid}/comm");
        let n = self
            .reader
            .once(Path::new(&path))
            .map(|c| c.trim_end().to_string())
            .unwrap_or_default();
        self.names.insert((pid, tid), n.clone());
        n
    }

    fn ticks(&mut self, pid: u32, tid: u32) -> (u64, u64) {
        let path = format!("/proc/{pid}/task/{tid}/stat");
        self.reader
            .text(Path::new(&path))
            .and_then(proc::parse_stat)
            .map_or((0, 0), |t| (t.utime_ticks, t.stime_ticks))
    }
}

fn read_proc(
    pid: u32,
    start_time: u64,
    memo: &mut Memo,
    tasks: &mut Vec<TaskSample>,
    thread_ticks: bool,
) -> Option<ProcSample> {
    let path = format!("/proc/{pid}/stat");
    let stat = proc::parse_stat(memo.reader.text(Path::new(&path))?)?;
    let mut s = ProcSample {
        pid,
        start_time,
        utime_ticks: stat.utime_ticks,
        stime_ticks: stat.stime_ticks,
        threads: stat.threads,
        rss_bytes: stat.rss_pages * page_size(),
        ..ProcSample::default()
    };
    let key = (pid, start_time);
    let known = memo
        .tids
        .remove(&key)
        .filter(|t| t.len() as u64 == stat.threads);
    let listed = known.is_none();
    let tids = match known {
        Some(t) => t,
        None => list_tasks(pid)?,
    };
    let (mut read, complete) = memo.schedstats(pid, &tids);
    // A thread ended since the kept list: list again, once.
    if !complete && !listed {
        read = memo.schedstats(pid, &list_tasks(pid)?).0;
    }
    for &(tid, (run, wait, switches)) in &read {
        s.run_ns += run;
        s.wait_ns += wait;
        s.ctx_switches += switches;
        let name = memo.name(pid, tid);
        let ticks = if thread_ticks {
            memo.ticks(pid, tid)
        } else {
            (0, 0)
        };
        tasks.push(TaskSample {
            pid,
            tid,
            name,
            run_ns: run,
            wait_ns: wait,
            utime_ticks: ticks.0,
            stime_ticks: ticks.1,
        });
    }
    memo.tids
        .insert(key, read.iter().map(|&(tid, _)| tid).collect());
    Some(s)
}

/// Takes samples; remembers each process's cgroup directory (read once
/// from /proc/<pid>/cgroup, since a process does not change container) and
/// its container's CPU limit (read again every [`LIMIT_EVERY`] samples).
pub struct Sampler {
    acc: CpuAccounting,
    /// (pid, start time) -> its cgroup directory, v2 or not, and the limit
    /// read last, with the samples since.
    dirs: HashMap<(u32, u64), Option<Dir>>,
    memo: Memo,
    /// Whether each thread's stat is read too (its user/system split, for
    /// a snapshot's per-thread list; the daemon exports none of it, and one
    /// more file per thread and sample is its cost).
    thread_ticks: bool,
}

struct Dir {
    path: PathBuf,
    v2: bool,
    limit_cores: Option<f64>,
    since_limit: u32,
}

/// A container's CPU limit is read again every this many samples (10 s at
/// the default interval): it changes by hand, if ever, while throttling
/// moves at every sample.
pub const LIMIT_EVERY: u32 = 10;
/// Bound on remembered directories and thread lists (cleared when
/// reached: a node's churn).
const DIRS_MAX: usize = 8192;
/// Bound on remembered thread names (cleared when reached).
const NAMES_MAX: usize = 65536;

impl Sampler {
    pub fn new(acc: CpuAccounting, thread_ticks: bool) -> Sampler {
        Sampler {
            acc,
            dirs: HashMap::new(),
            memo: Memo {
                reader: Reader::keeping(super::read::keep_max()),
                ..Memo::default()
            },
            thread_ticks,
        }
    }

    /// A pass over every sidecar is done: close the files it did not read.
    pub fn sweep(&mut self) {
        self.memo.reader.sweep();
    }

    /// Sample the processes `procs` ((pid, start time) each; one that is
    /// gone is left out) and the CPU cgroup of the first that is there.
    pub fn sample(&mut self, procs: &[(u32, u64)]) -> Sample {
        let at_ns = crate::kernel::clock::monotonic_ns();
        if self.memo.names.len() >= NAMES_MAX {
            self.memo.names.clear();
        }
        if self.memo.tids.len() >= DIRS_MAX {
            self.memo.tids.clear();
        }
        let mut tasks = Vec::new();
        let procs: Vec<ProcSample> = procs
            .iter()
            .filter_map(|&(pid, start)| {
                read_proc(pid, start, &mut self.memo, &mut tasks, self.thread_ticks)
            })
            .collect();
        if self.dirs.len() >= DIRS_MAX {
            self.dirs.clear();
        }
        let cgroup = procs.first().and_then(|p| {
            let acc = &self.acc;
            let dir = self
                .dirs
                .entry((p.pid, p.start_time))
                .or_insert_with(|| {
                    let text = std::fs::read_to_string(format!("/proc/{}/cgroup", p.pid)).ok()?;
                    let (path, v2) = cgroup::dir_of(&text, acc)?;
                    Some(Dir {
                        path,
                        v2,
                        limit_cores: None,
                        since_limit: LIMIT_EVERY,
                    })
                })
                .as_mut()?;
            let limit = dir.since_limit >= LIMIT_EVERY;
            let mut c = cgroup::read(&dir.path, dir.v2, limit, &mut self.memo.reader)?;
            if limit {
                dir.limit_cores = c.limit_cores;
                dir.since_limit = 0;
            }
            dir.since_limit += 1;
            c.limit_cores = dir.limit_cores;
            Some(c)
        });
        Sample {
            at_ns,
            procs,
            tasks,
            cgroup,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    fn start_time_of_self() -> u64 {
        let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
        crate::discovery::procinfo::stat_field::<u64>(&stat, 22).expect("start time")
    }

    /// A thread that runs until told to end; its tid.
    fn thread() -> (u32, mpsc::Sender<()>, std::thread::JoinHandle<()>) {
        let (tid_tx, tid_rx) = mpsc::channel();
        let (end_tx, end_rx) = mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            tid_tx
                .send(unsafe { libc::gettid() } as u32)
                .expect("send tid");
            let _ = end_rx.recv();
        });
        (tid_rx.recv().expect("tid"), end_tx, h)
    }

    fn tids(s: &Sample) -> Vec<u32> {
        s.tasks.iter().map(|t| t.tid).collect()
    }

    /// Thread lists are kept between samples: a thread that starts, and one
    /// that ends while another starts (the count unchanged), are both seen.
    #[test]
    fn threads_that_come_and_go_between_samples_are_followed() {
        let me = (std::process::id(), start_time_of_self());
        let acc = crate::kernel::cgroup_cpu::detect().expect("cgroup mounts");
        let mut sampler = Sampler::new(acc, false);
        let (a, end_a, ha) = thread();
        let first = sampler.sample(&[me]);
        assert!(tids(&first).contains(&a), "{:?}", tids(&first));
        let (b, end_b, hb) = thread();
        let second = sampler.sample(&[me]);
        assert!(
            tids(&second).contains(&b),
            "a new thread: {:?}",
            tids(&second)
        );
        end_a.send(()).expect("end a");
        ha.join().expect("join a");
        let (c, end_c, hc) = thread();
        let third = sampler.sample(&[me]);
        assert!(
            tids(&third).contains(&c) && !tids(&third).contains(&a),
            "one ended, one started: {:?} (ended {a}, started {c})",
            tids(&third)
        );
        for (end, h) in [(end_b, hb), (end_c, hc)] {
            end.send(()).expect("end");
            h.join().expect("join");
        }
    }
}
