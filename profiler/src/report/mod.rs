//! The snapshot report: the JSON contract other tools parse (fields may be
//! added, never renamed) and the table a person reads.
use serde::Serialize;

use crate::{
    classify::{Direction, Leg},
    collect::Session,
    cpu::CpuReport,
    histogram::Percentiles,
};

#[derive(Clone, Debug, Serialize)]
pub struct Hop {
    pub direction: Direction,
    pub leg: Leg,
    pub forwards: u64,
    /// Of `forwards`, those whose source pairing could not decide.
    pub ambiguous: u64,
    pub bytes: u64,
    pub total_us: Percentiles,
    pub queue_us: Percentiles,
    pub process_us: Percentiles,
    /// Of `forwards`, those whose process time is split (one thread read
    /// and wrote, followed by the scheduler hooks throughout); the four
    /// parts below are over these.
    pub split_forwards: u64,
    /// Process time the thread ran, waited runnable (preempted, throttled,
    /// woken and not yet run) and slept; they sum to `process` per forward.
    pub on_cpu_us: Percentiles,
    pub runqueue_us: Percentiles,
    pub blocked_us: Percentiles,
    /// Queue time the reading thread spent runnable.
    pub queue_runqueue_us: Percentiles,
    /// Of `forwards`, those whose data came in through a watched pod edge
    /// with a stamp (`--pod-edge`); `kernel_in_us` is over these: the last
    /// packet passed the pod edge -> its data readable at the proxy socket.
    pub kernel_in_forwards: u64,
    pub kernel_in_us: Percentiles,
    /// Of `forwards`, those whose write left through a watched pod edge
    /// with a stamp; `kernel_out_us` is over these: TCP sent the write's
    /// last packet -> it left the pod edge.
    pub kernel_out_forwards: u64,
    pub kernel_out_us: Percentiles,
    /// Of `forwards`, those with a pod edge stamp at either end;
    /// `sidecar_total_us` is over these: the data's whole way through the
    /// sidecar as stamped, from kernel_in's start to where the data left
    /// (kernel_out's stop, else the write's return).
    pub sidecar_total_forwards: u64,
    pub sidecar_total_us: Percentiles,
}

#[derive(Clone, Debug, Serialize)]
pub struct SidecarReport {
    pub pid: u32,
    pub comm: String,
    pub pod: Option<String>,
    pub namespace: Option<String>,
    pub hops: Vec<Hop>,
    /// CPU and memory over the capture (see README).
    pub cpu: Option<CpuReport>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    pub duration_s: f64,
    pub lost_events: u64,
    pub sidecars: Vec<SidecarReport>,
    pub hook_set: &'static str,
    /// Whether process time is split (the scheduler hooks attached).
    pub sched_split: bool,
    /// Which scheduler hooks: "btf_tracepoint" or "tracepoint" (null:
    /// none attached).
    pub sched_hooks: Option<&'static str>,
    /// Times a followed thread's account showed a missed switch and its
    /// following started over (the forwards across it are not split).
    pub sched_resyncs: u64,
    /// Runs of the attached programs the kernel skipped (another program
    /// was running on that CPU): events never seen.
    pub skipped_program_runs: u64,
    pub excluded_forwards: u64,
    pub unclassified_forwards: u64,
    pub ambiguous_forwards: u64,
    pub local_replies: u64,
    pub unforwarded_reads_dropped: u64,
    pub reads_without_arrival: u64,
}

/// One line of a sidecar's CPU and memory for the table.
fn cpu_line(c: &CpuReport) -> String {
    let per_1k = c
        .vcpu_per_1k_rps
        .map_or("-".to_string(), |v| format!("{v:.3}"));
    let throttled = match (c.throttled_seconds, c.limit_cores) {
        (Some(t), Some(l)) => format!(", limit {l:.2} cores, throttled {t:.3} s"),
        (Some(t), None) => format!(", throttled {t:.3} s"),
        _ => String::new(),
    };
    format!(
        "  cpu {:.3} s (user {:.3}, system {:.3}), {per_1k} vCPU per 1k requests/s, \
         run-queue wait {:.3} s, rss {:.1} MB, {} threads, {} context switches{throttled}{}\n",
        c.cpu_seconds,
        c.user_seconds,
        c.system_seconds,
        c.runqueue_wait_seconds,
        c.rss_bytes as f64 / 1e6,
        c.threads,
        c.context_switches,
        if c.restarted { " (restarted)" } else { "" }
    )
}

/// Its busiest threads (at most four): run time, its user/system split,
/// and run-queue wait.
fn threads_line(c: &CpuReport) -> String {
    if c.per_thread.is_empty() {
        return String::new();
    }
    let busiest: Vec<String> = c
        .per_thread
        .iter()
        .take(4)
        .map(|t| {
            format!(
                "{} {:.3} s (user {:.3}, sys {:.3}, wait {:.3})",
                if t.name.is_empty() {
                    t.tid.to_string()
                } else {
                    t.name.clone()
                },
                t.cpu_seconds,
                t.user_seconds,
                t.system_seconds,
                t.runqueue_wait_seconds
            )
        })
        .collect();
    format!("  busiest threads: {}\n", busiest.join(", "))
}

/// The series in brief: how total p99 moved with each CPU signal, and the
/// flagged intervals (at most five listed).
fn intervals_lines(c: &CpuReport) -> String {
    if c.intervals.is_empty() {
        return String::new();
    }
    let r = |v: Option<f64>| v.map_or("-".to_string(), |r| format!("{r:+.2}"));
    let corr = c.latency_vs_cpu.clone().unwrap_or_default();
    let mut out = format!(
        "  {} intervals; hop p99 against CPU %: r {}, throttled time: r {}, run-queue wait \
         p99: r {}; flagged (a tail of 1 ms or more with throttling or run-queue wait): {}\n",
        c.intervals.len(),
        r(corr.cpu_percent),
        r(corr.throttled_seconds),
        r(corr.runqueue_wait_p99_us),
        c.flagged_intervals
    );
    let us = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    for i in c.intervals.iter().filter(|i| !i.flags.is_empty()).take(5) {
        out.push_str(&format!(
            "    at {:.1} s: {} — hop p99 {} µs (queue {}, process {}), {:.0} forwards/s, CPU \
             {:.1}%, throttled {} s, run-queue wait p99 {} µs\n",
            i.start_s,
            i.flags.join(", "),
            us(i.total_p99_us),
            us(i.queue_p99_us),
            us(i.process_p99_us),
            i.forwards_per_s,
            i.cpu_percent,
            i.throttled_seconds
                .map_or("-".to_string(), |t| format!("{t:.3}")),
            us(i.runqueue_wait_p99_us)
        ));
    }
    out
}

impl Snapshot {
    pub fn from_session(s: &Session, duration_s: f64) -> Snapshot {
        let pairing = s.agg.pairing.counts();
        let sidecars = s
            .agg
            .sidecars
            .iter()
            .enumerate()
            .map(|(i, sc)| SidecarReport {
                pid: sc.pid,
                comm: sc.comm.clone(),
                pod: sc.pod.clone(),
                namespace: sc.namespace.clone(),
                cpu: s.agg.cpu.get(i).and_then(|w| {
                    let forwards = |leg: Option<Leg>| -> u64 {
                        s.agg
                            .hops
                            .by_key
                            .iter()
                            .filter(|((idx, _, l), _)| {
                                *idx == i as u32 && leg.is_none_or(|want| *l == want)
                            })
                            .map(|(_, h)| h.forwards)
                            .sum()
                    };
                    let mut r = w.report(forwards(Some(Leg::Request)))?;
                    r.runqueue_wait_us = s.agg.waits.get(i).and_then(|w| w.percentiles());
                    let all = forwards(None);
                    r.cpu_us_per_forward = (all > 0).then(|| r.cpu_seconds * 1e6 / all as f64);
                    if let Some(series) = s.agg.intervals.get(i) {
                        r.intervals = series.list.clone();
                        r.latency_vs_cpu = Some(series.correlation());
                        r.flagged_intervals =
                            series.list.iter().filter(|i| !i.flags.is_empty()).count() as u32;
                    }
                    Some(r)
                }),
                hops: s
                    .agg
                    .hops
                    .by_key
                    .iter()
                    .filter(|((idx, _, _), _)| *idx == i as u32)
                    .map(|((_, d, l), h)| {
                        let [
                            total_us,
                            queue_us,
                            process_us,
                            on_cpu_us,
                            runqueue_us,
                            blocked_us,
                            queue_runqueue_us,
                            kernel_in_us,
                            kernel_out_us,
                            sidecar_total_us,
                        ] = h.percentiles();
                        Hop {
                            direction: *d,
                            leg: *l,
                            forwards: h.forwards,
                            ambiguous: h.ambiguous,
                            bytes: h.bytes,
                            total_us,
                            queue_us,
                            process_us,
                            split_forwards: h.split,
                            on_cpu_us,
                            runqueue_us,
                            blocked_us,
                            queue_runqueue_us,
                            kernel_in_forwards: h.exported[crate::histogram::KERNEL_IN].count,
                            kernel_in_us,
                            kernel_out_forwards: h.exported[crate::histogram::KERNEL_OUT].count,
                            kernel_out_us,
                            sidecar_total_forwards: h.exported[crate::histogram::SIDECAR_TOTAL]
                                .count,
                            sidecar_total_us,
                        }
                    })
                    .collect(),
            })
            .collect();
        Snapshot {
            duration_s,
            lost_events: s.lost_events(),
            sidecars,
            hook_set: s.hook_set().name(),
            sched_split: s.sched().is_ok(),
            sched_hooks: s
                .sched()
                .ok()
                .and_then(|h| h.first())
                .map(|h| match h.attach {
                    crate::ebpf::Attach::BtfTracepoint { .. } => "btf_tracepoint",
                    _ => "tracepoint",
                }),
            sched_resyncs: s.counter(profiler_common::maps::Counter::SchedResync),
            skipped_program_runs: s.skipped_runs().iter().map(|(_, n)| n).sum(),
            excluded_forwards: s.agg.tally.excluded,
            unclassified_forwards: s.agg.tally.unclassified,
            ambiguous_forwards: pairing.ambiguous,
            local_replies: pairing.local_replies,
            unforwarded_reads_dropped: pairing.evicted,
            reads_without_arrival: pairing.reads_without_arrival,
        }
    }

    pub fn sidecar(&self, pod_prefix: &str) -> Option<&SidecarReport> {
        self.sidecars
            .iter()
            .find(|s| s.pod.as_deref().is_some_and(|p| p.starts_with(pod_prefix)))
    }

    pub fn to_table(&self) -> String {
        let mut out = format!(
            "{:.1} s, hook set {}, lost events {}, excluded {}, unclassified {}, ambiguous {}, \
             program runs skipped {}\n",
            self.duration_s,
            self.hook_set,
            self.lost_events,
            self.excluded_forwards,
            self.unclassified_forwards,
            self.ambiguous_forwards,
            self.skipped_program_runs
        );
        for sc in &self.sidecars {
            let who = match (&sc.pod, &sc.namespace) {
                (Some(p), Some(n)) => format!("{n}/{p}"),
                _ => "(no pod)".into(),
            };
            out.push_str(&format!("\n{who}  pid {} {}\n", sc.pid, sc.comm));
            if let Some(c) = &sc.cpu {
                out.push_str(&cpu_line(c));
                out.push_str(&threads_line(c));
                out.push_str(&intervals_lines(c));
            }
            if sc.hops.is_empty() {
                out.push_str("  no forwards\n");
                continue;
            }
            out.push_str(&format!(
                "  {:<8} {:<8} {:>9} {:>9} {:>8} {:>10}  {:<10} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
                "dir",
                "leg",
                "forwards",
                "ambiguous",
                "rate/s",
                "bytes",
                "(us)",
                "p50",
                "p90",
                "p99",
                "p99.9",
                "max"
            ));
            for h in &sc.hops {
                let rate = h.forwards as f64 / self.duration_s.max(1e-9);
                let mut rows = vec![
                    ("total", &h.total_us),
                    ("queue", &h.queue_us),
                    ("process", &h.process_us),
                ];
                if h.split_forwards > 0 {
                    rows.extend([
                        (" on cpu", &h.on_cpu_us),
                        (" runqueue", &h.runqueue_us),
                        (" blocked", &h.blocked_us),
                        ("q runqueue", &h.queue_runqueue_us),
                    ]);
                }
                if h.kernel_in_forwards > 0 {
                    rows.push(("kernel in", &h.kernel_in_us));
                }
                if h.kernel_out_forwards > 0 {
                    rows.push(("kernel out", &h.kernel_out_us));
                }
                if h.sidecar_total_forwards > 0 {
                    rows.push(("sidecar", &h.sidecar_total_us));
                }
                for (i, (name, p)) in rows.into_iter().enumerate() {
                    let lead = if i == 0 {
                        format!(
                            "  {:<8} {:<8} {:>9} {:>9} {:>8.0} {:>10}",
                            format!("{:?}", h.direction).to_lowercase(),
                            format!("{:?}", h.leg).to_lowercase(),
                            h.forwards,
                            h.ambiguous,
                            rate,
                            h.bytes
                        )
                    } else {
                        format!(
                            "  {:<8} {:<8} {:>9} {:>9} {:>8} {:>10}",
                            "", "", "", "", "", ""
                        )
                    };
                    out.push_str(&format!(
                        "{lead}  {name:<10} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}\n",
                        p.p50, p.p90, p.p99, p.p999, p.max
                    ));
                }
            }
        }
        out
    }
}
