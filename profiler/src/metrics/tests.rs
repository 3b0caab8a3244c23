use super::{labels::SidecarLabels, *};
use crate::{
    classify::{Direction, Leg},
    histogram::Buckets,
};

fn expo() -> Exposition {
    let mut total = Buckets::default();
    for ns in [4_000, 40_000, 40_000, 2_000_000] {
        total.record(ns);
    }
    let mut queue = Buckets::default();
    queue.record(1_000);
    let mut runqueue = Buckets::default();
    runqueue.record(700_000);
    let mut waits = Buckets::default();
    waits.record(3_000);
    waits.record(1_500_000);
    Exposition {
        sidecars: vec![SidecarLabels {
            namespace: "bookinfo".into(),
            pod: "reviews-v2-7c9f".into(),
            workload: "reviews-v2".into(),
        }],
        cpu: vec![Some(crate::cpu::CpuReport {
            cpu_seconds: 1.5,
            user_seconds: 1.0,
            system_seconds: 0.5,
            rss_bytes: 52_428_800,
            throttled_seconds: Some(0.25),
            ..crate::cpu::CpuReport::default()
        })],
        waits: vec![waits],
        hops: vec![HopSeries {
            sidecar: 0,
            direction: Direction::Inbound,
            leg: Leg::Request,
            forwards: 4,
            bytes: 400,
            split: 1,
            components: [
                total,
                queue,
                Buckets::default(),
                Buckets::default(),
                runqueue,
                Buckets::default(),
                Buckets::default(),
                Buckets::default(),
                Buckets::default(),
                Buckets::default(),
            ],
        }],
        health: Health {
            events_lost: vec![("ring_full", 3), ("map_full", 0)],
            ambiguous_forwards: 2,
            maps: vec![MapFill {
                map: "tracked",
                entries: 2,
                capacity: 4096,
            }],
            hooks: vec!["raw tracepoint sk_data_ready".into()],
            skipped_runs: vec![("tracepoint sched:sched_switch".into(), 4)],
            sidecars_tracked: 1,
            sidecars_over_cap: 0,
            version: "0.1.0".into(),
            hook_set: "tracepoints".into(),
            kernel: "6.12.0".into(),
        },
    }
}

const HOP: &str = r#"namespace="bookinfo",pod="reviews-v2-7c9f",workload="reviews-v2",direction="inbound",leg="request""#;

#[test]
fn prometheus_text_has_cumulative_buckets_sum_and_count_in_seconds() {
    let text = render(expo(), Format::Prometheus).expect("render");
    let line = |suffix: &str| format!("sidecar_hop_duration_seconds_{suffix}");
    let total = format!("{HOP},component=\"total\"");
    for want in [
        "# TYPE sidecar_hop_duration_seconds histogram".to_string(),
        format!("{}{{{total},le=\"5e-06\"}} 1", line("bucket")),
        format!("{}{{{total},le=\"5e-05\"}} 3", line("bucket")),
        format!("{}{{{total},le=\"0.002\"}} 4", line("bucket")),
        format!("{}{{{total},le=\"+Inf\"}} 4", line("bucket")),
        format!("{}{{{total}}} 4", line("count")),
        format!("{}{{{total}}} 0.002084", line("sum")),
        format!("sidecar_forwards_total{{{HOP}}} 4"),
        format!("sidecar_forwarded_bytes_total{{{HOP}}} 400"),
        format!("sidecar_split_forwards_total{{{HOP}}} 1"),
        format!("{}{{{HOP},component=\"runqueue\",le=\"0.001\"}} 1", line("bucket")),
        format!("{}{{{HOP},component=\"runqueue\"}} 0.0007", line("sum")),
        "# TYPE sidecar_runqueue_wait_seconds histogram".to_string(),
        r#"sidecar_runqueue_wait_seconds_bucket{namespace="bookinfo",pod="reviews-v2-7c9f",workload="reviews-v2",le="5e-06"} 1"#.to_string(),
        r#"sidecar_runqueue_wait_seconds_count{namespace="bookinfo",pod="reviews-v2-7c9f",workload="reviews-v2"} 2"#.to_string(),
        "profiler_events_lost_total{reason=\"ring_full\"} 3".to_string(),
        "profiler_program_runs_skipped_total{hook=\"tracepoint sched:sched_switch\"} 4".to_string(),
        "profiler_ambiguous_forwards_total 2".to_string(),
        "profiler_map_capacity{map=\"tracked\"} 4096".to_string(),
        "profiler_programs_attached{hook=\"raw tracepoint sk_data_ready\"} 1".to_string(),
        "profiler_sidecars_tracked 1".to_string(),
        r#"sidecar_cpu_seconds_total{namespace="bookinfo",pod="reviews-v2-7c9f",workload="reviews-v2",mode="user"} 1.0"#.to_string(),
        r#"sidecar_cpu_seconds_total{namespace="bookinfo",pod="reviews-v2-7c9f",workload="reviews-v2",mode="system"} 0.5"#.to_string(),
        r#"sidecar_memory_rss_bytes{namespace="bookinfo",pod="reviews-v2-7c9f",workload="reviews-v2"} 52428800"#.to_string(),
        r#"sidecar_cpu_throttled_seconds_total{namespace="bookinfo",pod="reviews-v2-7c9f",workload="reviews-v2"} 0.25"#.to_string(),
        "profiler_build_info{version=\"0.1.0\",hook_set=\"tracepoints\",kernel=\"6.12.0\"} 1"
            .to_string(),
    ] {
        assert!(text.contains(&want), "missing {want:?} in:\n{text}");
    }
    assert!(!text.contains("# EOF"), "{text}");
    // All three components of the hop, each with 27 buckets.
    for c in ["total", "queue", "process"] {
        let n = text
            .lines()
            .filter(|l| l.starts_with("sidecar_hop_duration_seconds_bucket"))
            .filter(|l| l.contains(&format!("component=\"{c}\"")))
            .count();
        assert_eq!(n, 27, "{c}");
    }
}

#[test]
fn openmetrics_ends_with_eof_and_declares_units() {
    let text = render(expo(), Format::OpenMetrics).expect("render");
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(
        text.contains("# UNIT sidecar_hop_duration_seconds seconds"),
        "{text}"
    );
    assert!(text.contains("# TYPE profiler_build info"), "{text}");
}

#[test]
fn a_hop_of_a_sidecar_not_listed_is_left_out_not_a_panic() {
    let mut e = expo();
    e.hops[0].sidecar = 5;
    let text = render(e, Format::Prometheus).expect("render");
    assert!(!text.contains("sidecar_forwards_total{"), "{text}");
}

#[test]
fn negotiation_prefers_openmetrics_when_offered() {
    // What Prometheus 2.x/3.x sends.
    let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_eq!(Format::negotiate(Some(prom)), Format::OpenMetrics);
    assert_eq!(Format::negotiate(Some("*/*")), Format::Prometheus);
    assert_eq!(Format::negotiate(None), Format::Prometheus);
    assert_eq!(
        Format::negotiate(Some("application/openmetrics-text; q=0, text/plain")),
        Format::Prometheus
    );
    assert!(
        Format::OpenMetrics
            .content_type()
            .starts_with("application/openmetrics-text")
    );
    assert!(
        Format::Prometheus
            .content_type()
            .starts_with("text/plain; version=0.0.4")
    );
}

#[test]
fn pod_edge_components_appear_once_observed() {
    let text = render(expo(), Format::Prometheus).expect("render");
    for c in ["kernel_in", "kernel_out", "sidecar_total"] {
        assert!(
            !text.contains(&format!("component=\"{c}\"")),
            "{c} without an observation:\n{text}"
        );
    }
    let mut e = expo();
    e.hops[0].components[crate::histogram::KERNEL_IN].record(4_000);
    let text = render(e, Format::Prometheus).expect("render");
    assert!(
        text.contains(&format!(
            "sidecar_hop_duration_seconds_count{{{HOP},component=\"kernel_in\"}} 1"
        )),
        "{text}"
    );
    assert!(!text.contains("component=\"kernel_out\""), "{text}");
}

/// The hop-duration family as prometheus-client encodes it: what
/// `hop_family` writes by hand must be these bytes.
#[derive(Debug)]
struct ByLibrary(Exposition);

impl prometheus_client::collector::Collector for ByLibrary {
    fn encode(
        &self,
        mut enc: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use crate::histogram::{COMPONENTS, EXPORTED, POD_EDGE};
        use prometheus_client::{encoding::NoLabelSet, metrics::MetricType, registry::Unit};
        let e = &self.0;
        let mut m = enc.encode_descriptor(
            "sidecar_hop_duration",
            hop_family::HELP,
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for h in e.listed_hops() {
            let s = &e.sidecars[h.sidecar];
            for i in EXPORTED {
                let b = &h.components[i];
                if POD_EDGE.contains(&i) && b.count == 0 {
                    continue;
                }
                let labels = [
                    ("namespace", s.namespace.as_str()),
                    ("pod", s.pod.as_str()),
                    ("workload", s.workload.as_str()),
                    ("direction", families::dir(h)),
                    ("leg", families::leg(h)),
                    ("component", COMPONENTS[i]),
                ];
                m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                    b.sum_ns as f64 / 1e9,
                    b.count,
                    &b.in_seconds(),
                    None,
                )?;
            }
        }
        Ok(())
    }
}

#[test]
fn the_hand_written_hop_histograms_are_prometheus_clients_bytes() {
    let mut e = expo();
    // Label values to escape, a second sidecar, every bucket and +Inf
    // filled, a pod edge component, and a hop of a sidecar not listed.
    e.sidecars.push(SidecarLabels {
        namespace: "q\"uote".into(),
        pod: "back\\slash\nnewline".into(),
        workload: "é-ü".into(),
    });
    let mut every = Buckets::default();
    for b in crate::histogram::buckets::BOUNDS_NS {
        every.record(b);
        every.record(b + 1);
    }
    every.record(123_456_789_012);
    let mut second = e.hops[0].clone();
    second.sidecar = 1;
    second.direction = Direction::Outbound;
    second.leg = Leg::Response;
    second.components[crate::histogram::PROCESS] = every.clone();
    second.components[crate::histogram::SIDECAR_TOTAL] = every;
    e.hops.push(second);
    let mut orphan = e.hops[0].clone();
    orphan.sidecar = 7;
    e.hops.push(orphan);
    for format in [Format::Prometheus, Format::OpenMetrics] {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(ByLibrary(e.clone())));
        let mut want = String::new();
        match format {
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut want, &registry)
            }
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut want, &registry),
        }
        .expect("encode");
        let want = want.strip_suffix("# EOF\n").unwrap_or(&want);
        let mut got = String::new();
        hop_family::write(&e, format, &mut got);
        // Five components of the first hop, six of the second.
        assert!(got.lines().count() >= 11 * 29, "{format:?}: {got}");
        for (n, (g, w)) in got.lines().zip(want.lines()).enumerate() {
            assert_eq!(g, w, "{format:?}, line {n}");
        }
        assert_eq!(got, want, "{format:?}");
        // And the whole render carries them once, first.
        let all = render(e.clone(), format).expect("render");
        assert!(all.starts_with(&got), "{format:?}");
        assert_eq!(
            all.matches("# TYPE sidecar_hop_duration_seconds ").count(),
            1
        );
    }
}
