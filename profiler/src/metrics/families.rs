//! The metric families and their help text: the contract README lists.
//! Encoding goes through prometheus-client, which writes both Prometheus
//! text and OpenMetrics; the hop-duration histograms, the bulk of a
//! scrape, are written ahead of these by `hop_family`.
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, NoLabelSet},
    metrics::MetricType,
    registry::Unit,
};

use super::exposition::{Exposition, HopSeries};

pub(super) fn dir(h: &HopSeries) -> &'static str {
    match h.direction {
        crate::classify::Direction::Inbound => "inbound",
        crate::classify::Direction::Outbound => "outbound",
    }
}

pub(super) fn leg(h: &HopSeries) -> &'static str {
    match h.leg {
        crate::classify::Leg::Request => "request",
        crate::classify::Leg::Response => "response",
    }
}

impl Exposition {
    /// namespace, pod, workload, direction, leg of a hop series.
    fn hop_labels<'a>(&'a self, h: &'a HopSeries) -> Vec<(&'static str, &'a str)> {
        let s = &self.sidecars[h.sidecar];
        vec![
            ("namespace", s.namespace.as_str()),
            ("pod", s.pod.as_str()),
            ("workload", s.workload.as_str()),
            ("direction", dir(h)),
            ("leg", leg(h)),
        ]
    }
}

impl Exposition {
    /// namespace, pod, workload of a sidecar.
    fn sidecar_labels(&self, i: usize) -> Vec<(&'static str, &str)> {
        let s = &self.sidecars[i];
        vec![
            ("namespace", s.namespace.as_str()),
            ("pod", s.pod.as_str()),
            ("workload", s.workload.as_str()),
        ]
    }

    /// The sidecars' CPU, memory and throttling (sampled every second).
    fn encode_cpu(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let cpu: Vec<(usize, &crate::cpu::CpuReport)> = self
            .cpu
            .iter()
            .enumerate()
            .filter(|(i, _)| *i < self.sidecars.len())
            .filter_map(|(i, c)| Some((i, c.as_ref()?)))
            .collect();
        {
            let mut m = enc.encode_descriptor(
                "sidecar_cpu",
                "CPU time of the sidecar's processes since tracked (schedstat run time, split into user and system by their ticks)",
                Some(&Unit::Seconds),
                MetricType::Counter,
            )?;
            for (i, c) in &cpu {
                for (mode, v) in [("user", c.user_seconds), ("system", c.system_seconds)] {
                    let mut labels = self.sidecar_labels(*i);
                    labels.push(("mode", mode));
                    m.encode_family(&labels)?
                        .encode_counter::<NoLabelSet, _, f64>(&v, None)?;
                }
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "sidecar_memory_rss",
                "Resident memory of the sidecar's processes at the last sample",
                Some(&Unit::Bytes),
                MetricType::Gauge,
            )?;
            for (i, c) in &cpu {
                m.encode_family(&self.sidecar_labels(*i))?
                    .encode_gauge(&(c.rss_bytes as i64))?;
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "sidecar_cpu_throttled",
                "Time the sidecar's container was throttled by its CPU limit since tracked (CFS, summed over CPUs as the kernel counts it)",
                Some(&Unit::Seconds),
                MetricType::Counter,
            )?;
            for (i, c) in &cpu {
                if let Some(t) = c.throttled_seconds {
                    m.encode_family(&self.sidecar_labels(*i))?
                        .encode_counter::<NoLabelSet, _, f64>(&t, None)?;
                }
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "sidecar_runqueue_wait",
                "Waits of the sidecar's threads on a run queue: from woken, preempted or throttled to running again (scheduler hooks)",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for (i, b) in self.waits.iter().enumerate() {
                if i < self.sidecars.len() && b.count > 0 {
                    m.encode_family(&self.sidecar_labels(i))?
                        .encode_histogram::<NoLabelSet>(
                            b.sum_ns as f64 / 1e9,
                            b.count,
                            &b.in_seconds(),
                            None,
                        )?;
                }
            }
        }
        Ok(())
    }
}

impl Collector for Exposition {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let hops: Vec<&HopSeries> = self.listed_hops().collect();
        for (name, help, unit, value) in [
            (
                "sidecar_forwards",
                "Forwards recorded (a proxy's write of data it read), per hop",
                None,
                (|h: &HopSeries| h.forwards) as fn(&HopSeries) -> u64,
            ),
            (
                "sidecar_forwarded",
                "Bytes the sidecar read from the source of recorded forwards, per hop",
                Some(Unit::Bytes),
                |h: &HopSeries| h.bytes,
            ),
            (
                "sidecar_split_forwards",
                "Forwards whose process time is split into on_cpu, runqueue and blocked (one thread read and wrote, followed by the scheduler hooks), per hop",
                None,
                |h: &HopSeries| h.split,
            ),
        ] {
            let mut m = enc.encode_descriptor(name, help, unit.as_ref(), MetricType::Counter)?;
            for h in &hops {
                m.encode_family(&self.hop_labels(h))?
                    .encode_counter::<NoLabelSet, _, u64>(&value(h), None)?;
            }
        }
        self.encode_cpu(&mut enc)?;
        let hl = &self.health;
        {
            let mut m = enc.encode_descriptor(
                "profiler_events_lost",
                "Records or sockets the profiler could not account for, by reason",
                None,
                MetricType::Counter,
            )?;
            for (reason, n) in &hl.events_lost {
                m.encode_family(&[("reason", *reason)])?
                    .encode_counter::<NoLabelSet, _, u64>(n, None)?;
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "profiler_program_runs_skipped",
                "Times the kernel skipped an attached program instead of running it (another \
                 program was running on that CPU): events the profiler never saw, per hook",
                None,
                MetricType::Counter,
            )?;
            for (hook, n) in &hl.skipped_runs {
                m.encode_family(&[("hook", hook.as_str())])?
                    .encode_counter::<NoLabelSet, _, u64>(n, None)?;
            }
        }
        enc.encode_descriptor(
            "profiler_ambiguous_forwards",
            "Forwards whose source pairing could not decide (the oldest pending read was taken)",
            None,
            MetricType::Counter,
        )?
        .encode_counter::<NoLabelSet, _, u64>(&hl.ambiguous_forwards, None)?;
        for (name, help, value) in [
            (
                "profiler_map_entries",
                "Entries in a kernel map or userspace table",
                (|f: &super::MapFill| f.entries) as fn(&super::MapFill) -> u64,
            ),
            (
                "profiler_map_capacity",
                "Capacity of a kernel map or userspace table",
                |f: &super::MapFill| f.capacity,
            ),
        ] {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for f in &hl.maps {
                m.encode_family(&[("map", f.map)])?
                    .encode_gauge(&(value(f) as i64))?;
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "profiler_programs_attached",
                "eBPF programs attached, per hook",
                None,
                MetricType::Gauge,
            )?;
            for hook in &hl.hooks {
                m.encode_family(&[("hook", hook.as_str())])?
                    .encode_gauge(&1i64)?;
            }
        }
        enc.encode_descriptor(
            "profiler_sidecars_tracked",
            "Sidecars whose processes are alive and tracked",
            None,
            MetricType::Gauge,
        )?
        .encode_gauge(&(hl.sidecars_tracked as i64))?;
        enc.encode_descriptor(
            "profiler_sidecars_over_cap",
            "Sidecars discovery found beyond --max-sidecars, not tracked",
            None,
            MetricType::Gauge,
        )?
        .encode_gauge(&(hl.sidecars_over_cap as i64))?;
        enc.encode_descriptor(
            "profiler_build",
            "Version, hook set in use and kernel release",
            None,
            MetricType::Info,
        )?
        .encode_info(&[
            ("version", hl.version.as_str()),
            ("hook_set", hl.hook_set.as_str()),
            ("kernel", hl.kernel.as_str()),
        ])?;
        Ok(())
    }
}
