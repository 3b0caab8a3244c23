//! A sidecar's CPU and memory over a capture, from its samples (pure): run
//! time of every process between consecutive samples, split into user and
//! system by its ticks in that interval; the container's throttling; a
//! restart, when a process of the first sample is gone or a new one came.
use serde::Serialize;

use super::{
    intervals::Step,
    sample::{ProcSample, Sample},
};

/// The sums over a capture, added interval by interval so that every
/// figure only grows (the daemon exports them as counters).
#[derive(Clone, Debug, Default)]
pub struct Window {
    /// The latest sample of each process seen.
    procs: Vec<ProcSample>,
    first: Option<Sample>,
    last: Option<Sample>,
    run_s: f64,
    user_s: f64,
    system_s: f64,
    wait_s: f64,
    ctx_switches: u64,
    samples: u32,
    restarted: bool,
    /// Each thread's run time and run-queue wait (bounded).
    threads: Vec<ThreadAcc>,
}

#[derive(Clone, Debug, Default)]
struct ThreadAcc {
    pid: u32,
    tid: u32,
    name: String,
    run_ns: u64,
    wait_ns: u64,
    utime_ticks: u64,
    stime_ticks: u64,
    run_s: f64,
    user_s: f64,
    system_s: f64,
    wait_s: f64,
}

/// Threads followed per sidecar (a proxy restarting many times leaves the
/// old ones' totals until this fills; then new threads are not listed).
const THREADS_MAX: usize = 256;
/// Threads listed in a report, busiest first.
const THREADS_LISTED: usize = 32;

/// One thread's CPU over the capture (schedstat, ns).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ThreadCpu {
    pub pid: u32,
    pub tid: u32,
    pub name: String,
    pub cpu_seconds: f64,
    /// cpu_seconds split by the thread's own user/system ticks.
    pub user_seconds: f64,
    pub system_seconds: f64,
    pub runqueue_wait_seconds: f64,
}

/// Of `run` seconds, the user share by `u` user and `k` system ticks in
/// the same interval; with no tick, all of it (ticks only split ns).
fn user_share(u: u64, k: u64) -> f64 {
    if u + k == 0 {
        1.0
    } else {
        u as f64 / (u + k) as f64
    }
}

/// What the snapshot reports per sidecar (the JSON `cpu` block).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct CpuReport {
    /// Run time of the sidecar's processes over the capture (schedstat, ns
    /// summed over threads), and its split by their user/system ticks.
    pub cpu_seconds: f64,
    pub user_seconds: f64,
    pub system_seconds: f64,
    /// cpu_seconds per 1000 requests forwarded (request legs, both
    /// directions): vCPU at 1000 requests/s.
    pub vcpu_per_1k_rps: Option<f64>,
    /// Time its threads waited runnable on a run queue (schedstat).
    pub runqueue_wait_seconds: f64,
    pub rss_bytes: u64,
    pub threads: u64,
    pub context_switches: u64,
    /// The container's CFS throttling over the capture, and its limit.
    pub throttled_seconds: Option<f64>,
    pub throttled_periods: Option<u64>,
    pub limit_cores: Option<f64>,
    /// A process of the sidecar ended or started during the capture; each
    /// process counts from its first sample to its last, once.
    pub restarted: bool,
    pub samples: u32,
    /// Each wait of its threads on a run queue (scheduler hooks; None
    /// without them or without a wait).
    pub runqueue_wait_us: Option<crate::histogram::Percentiles>,
    /// cpu_seconds per forward (all hops), in µs.
    pub cpu_us_per_forward: Option<f64>,
    /// The series between samples (snapshots: one a second), how total p99
    /// moved with each CPU signal over it, and the intervals flagged.
    pub intervals: Vec<super::intervals::Interval>,
    pub latency_vs_cpu: Option<super::intervals::Correlation>,
    pub flagged_intervals: u32,
    /// Its busiest threads (at most 32), with Envoy's names for them: a
    /// worker that does most of the work shows here.
    pub per_thread: Vec<ThreadCpu>,
}

impl Window {
    /// Add a sample; returns the interval it ends (None for the first).
    pub fn add(&mut self, s: Sample) -> Option<Step> {
        let key = |p: &ProcSample| (p.pid, p.start_time);
        let run_before = self.run_s;
        let step_from = self.last.as_ref().map(|l| {
            let throttled_ns = |c: &Option<super::cgroup::CgroupCpu>| c.map(|c| c.throttled_ns);
            (l.at_ns, throttled_ns(&l.cgroup), throttled_ns(&s.cgroup))
        });
        if let Some(first) = &self.first {
            let gone = first
                .procs
                .iter()
                .any(|f| !s.procs.iter().any(|p| key(p) == key(f)));
            let new = s
                .procs
                .iter()
                .any(|p| !first.procs.iter().any(|f| key(f) == key(p)));
            self.restarted |= gone || new;
        }
        for p in &s.procs {
            match self.procs.iter_mut().find(|q| key(q) == key(p)) {
                Some(prev) => {
                    let run = p.run_ns.saturating_sub(prev.run_ns) as f64 / 1e9;
                    let u = p.utime_ticks.saturating_sub(prev.utime_ticks);
                    let k = p.stime_ticks.saturating_sub(prev.stime_ticks);
                    let user_share = user_share(u, k);
                    self.run_s += run;
                    self.user_s += run * user_share;
                    self.system_s += run * (1.0 - user_share);
                    self.wait_s += p.wait_ns.saturating_sub(prev.wait_ns) as f64 / 1e9;
                    self.ctx_switches += p.ctx_switches.saturating_sub(prev.ctx_switches);
                    *prev = *p;
                }
                None => self.procs.push(*p),
            }
        }
        // Processes gone for good are forgotten (their time stays counted).
        self.procs
            .retain(|q| s.procs.iter().any(|p| key(p) == key(q)));
        for t in &s.tasks {
            let known = self
                .threads
                .iter_mut()
                .find(|a| (a.pid, a.tid) == (t.pid, t.tid));
            if let Some(a) = known {
                let run = t.run_ns.saturating_sub(a.run_ns) as f64 / 1e9;
                let share = user_share(
                    t.utime_ticks.saturating_sub(a.utime_ticks),
                    t.stime_ticks.saturating_sub(a.stime_ticks),
                );
                a.run_s += run;
                a.user_s += run * share;
                a.system_s += run * (1.0 - share);
                a.wait_s += t.wait_ns.saturating_sub(a.wait_ns) as f64 / 1e9;
                (a.run_ns, a.wait_ns) = (t.run_ns, t.wait_ns);
                (a.utime_ticks, a.stime_ticks) = (t.utime_ticks, t.stime_ticks);
            } else if self.threads.len() < THREADS_MAX {
                self.threads.push(ThreadAcc {
                    pid: t.pid,
                    tid: t.tid,
                    name: t.name.clone(),
                    run_ns: t.run_ns,
                    wait_ns: t.wait_ns,
                    utime_ticks: t.utime_ticks,
                    stime_ticks: t.stime_ticks,
                    ..ThreadAcc::default()
                });
            }
        }
        if self.first.is_none() {
            self.first = Some(s.clone());
        }
        let to_ns = s.at_ns;
        self.last = Some(s);
        self.samples = self.samples.saturating_add(1);
        step_from.map(|(from_ns, before, after)| Step {
            from_ns,
            to_ns,
            run_s: self.run_s - run_before,
            throttled_s: match (before, after) {
                (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / 1e9),
                _ => None,
            },
        })
    }

    /// The report, `requests` being the request-leg forwards meanwhile.
    pub fn report(&self, requests: u64) -> Option<CpuReport> {
        let (first, last) = (self.first.as_ref()?, self.last.as_ref()?);
        let mut r = CpuReport {
            cpu_seconds: self.run_s,
            user_seconds: self.user_s,
            system_seconds: self.system_s,
            runqueue_wait_seconds: self.wait_s,
            context_switches: self.ctx_switches,
            restarted: self.restarted,
            samples: self.samples,
            ..CpuReport::default()
        };
        for p in &last.procs {
            r.rss_bytes += p.rss_bytes;
            r.threads += p.threads;
        }
        r.vcpu_per_1k_rps = (requests > 0).then(|| r.cpu_seconds * 1000.0 / requests as f64);
        let mut threads: Vec<ThreadCpu> = self
            .threads
            .iter()
            .map(|a| ThreadCpu {
                pid: a.pid,
                tid: a.tid,
                name: a.name.clone(),
                cpu_seconds: a.run_s,
                user_seconds: a.user_s,
                system_seconds: a.system_s,
                runqueue_wait_seconds: a.wait_s,
            })
            .collect();
        threads.sort_by(|a, b| b.cpu_seconds.total_cmp(&a.cpu_seconds));
        threads.truncate(THREADS_LISTED);
        r.per_thread = threads;
        if let (Some(a), Some(b)) = (&first.cgroup, &last.cgroup) {
            r.throttled_seconds = Some(b.throttled_ns.saturating_sub(a.throttled_ns) as f64 / 1e9);
            r.throttled_periods = Some(b.throttled_periods.saturating_sub(a.throttled_periods));
            r.limit_cores = b.limit_cores;
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::cgroup::CgroupCpu;

    fn proc(pid: u32, run_ms: u64, u: u64, s: u64) -> ProcSample {
        ProcSample {
            pid,
            start_time: 100 + u64::from(pid),
            run_ns: run_ms * 1_000_000,
            wait_ns: run_ms * 100_000,
            utime_ticks: u,
            stime_ticks: s,
            threads: 2,
            rss_bytes: 1 << 20,
            ctx_switches: run_ms,
        }
    }

    fn sample(procs: Vec<ProcSample>, throttled_ms: u64) -> Sample {
        let tasks = procs
            .iter()
            .map(|p| crate::cpu::sample::TaskSample {
                pid: p.pid,
                tid: p.pid,
                name: format!("t{}", p.pid),
                run_ns: p.run_ns,
                wait_ns: p.wait_ns,
                utime_ticks: p.utime_ticks,
                stime_ticks: p.stime_ticks,
            })
            .collect();
        Sample {
            at_ns: 0,
            tasks,
            procs,
            cgroup: Some(CgroupCpu {
                throttled_ns: throttled_ms * 1_000_000,
                throttled_periods: throttled_ms / 10,
                limit_cores: Some(0.1),
            }),
        }
    }

    #[test]
    fn run_time_split_by_ticks_and_per_1k_requests() {
        let mut w = Window::default();
        assert_eq!(w.add(sample(vec![proc(10, 1000, 50, 10)], 0)), None);
        w.add(sample(vec![proc(10, 1400, 80, 20)], 0));
        let last = Sample {
            at_ns: 7,
            ..sample(vec![proc(10, 1600, 90, 30)], 300)
        };
        // The interval the last sample ends: its run time and throttling.
        let step = w.add(last).expect("an interval");
        assert!((step.run_s - 0.2).abs() < 1e-9, "{step:?}");
        assert_eq!((step.to_ns, step.throttled_s), (7, Some(0.3)));
        let r = w.report(2000).expect("a report");
        assert!((r.cpu_seconds - 0.6).abs() < 1e-9, "{r:?}");
        assert!((r.user_seconds - 0.4).abs() < 1e-9, "{r:?}");
        assert!((r.system_seconds - 0.2).abs() < 1e-9, "{r:?}");
        assert!(
            r.vcpu_per_1k_rps.is_some_and(|v| (v - 0.3).abs() < 1e-9),
            "{r:?}"
        );
        assert_eq!(r.throttled_seconds, Some(0.3));
        assert_eq!(r.throttled_periods, Some(30));
        assert_eq!(r.limit_cores, Some(0.1));
        assert!(!r.restarted);
        assert_eq!(r.samples, 3);
        // Per thread, from the same ns figures.
        assert_eq!(r.per_thread.len(), 1);
        let t = &r.per_thread[0];
        assert_eq!((t.tid, t.name.as_str()), (10, "t10"));
        assert!(
            (t.cpu_seconds - 0.6).abs() < 1e-9 && (t.runqueue_wait_seconds - 0.06).abs() < 1e-9,
            "{t:?}"
        );
        // ... split by the thread's own ticks: 0.4 s (30 user, 10 system
        // ticks) then 0.2 s (10 and 10).
        assert!(
            (t.user_seconds - 0.4).abs() < 1e-9 && (t.system_seconds - 0.2).abs() < 1e-9,
            "{t:?}"
        );
    }

    #[test]
    fn a_thread_is_split_by_its_own_ticks_not_its_process() {
        // One process of two threads: the process's ticks are mostly user,
        // thread 11's all system.
        let at = |run_ms: u64, u: u64, k: u64, t11: (u64, u64)| {
            let mut s = sample(vec![proc(10, run_ms, u, k)], 0);
            s.tasks.push(crate::cpu::sample::TaskSample {
                pid: 10,
                tid: 11,
                name: "worker".into(),
                run_ns: run_ms * 500_000,
                wait_ns: 0,
                utime_ticks: t11.0,
                stime_ticks: t11.1,
            });
            s
        };
        let mut w = Window::default();
        w.add(at(1000, 50, 10, (5, 5)));
        w.add(at(1400, 90, 14, (5, 9)));
        let r = w.report(0).expect("a report");
        let t = r
            .per_thread
            .iter()
            .find(|t| t.tid == 11)
            .expect("thread 11");
        // Its 0.2 s of run time, all system by its ticks (the process's
        // would have made it 91% user).
        assert!(
            (t.cpu_seconds - 0.2).abs() < 1e-9 && t.user_seconds.abs() < 1e-9,
            "{t:?}"
        );
        assert!((t.system_seconds - 0.2).abs() < 1e-9, "{t:?}");
    }

    #[test]
    fn a_restart_is_followed_and_counted_once() {
        let mut w = Window::default();
        // The proxy (pid 20) is killed and a new one (pid 21) starts.
        w.add(sample(vec![proc(20, 1000, 10, 0)], 0));
        w.add(sample(vec![proc(20, 1300, 13, 0)], 0));
        w.add(sample(vec![proc(21, 50, 1, 0)], 0));
        w.add(sample(vec![proc(21, 250, 3, 0)], 0));
        let r = w.report(0).expect("a report");
        // 300 ms of the old process and 200 ms of the new one; nothing twice.
        assert!((r.cpu_seconds - 0.5).abs() < 1e-9, "{r:?}");
        assert!(r.restarted);
        assert_eq!(r.vcpu_per_1k_rps, None);
        // Every figure only grows from one sample to the next (counters).
        let mut w = Window::default();
        let mut seen = 0.0;
        for (run, u, s) in [(100, 10, 0), (200, 10, 10), (250, 20, 10), (900, 20, 90)] {
            w.add(sample(vec![proc(30, run, u, s)], 0));
            let r = w.report(0).expect("a report");
            assert!(r.user_seconds >= seen, "{r:?}");
            seen = r.user_seconds;
        }
        assert_eq!(Window::default().report(1), None);
    }
}
