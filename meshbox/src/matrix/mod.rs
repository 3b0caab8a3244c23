//! The kernel matrix, one kernel's row: which hook sets this kernel allows,
//! and for each, whether the profiler's own programs pass the verifier,
//! attach, and measure real forwarding through the delay fixture as the
//! fixture itself does. `cargo xtask vmtest` runs it on this host and in
//! VMs booting other kernels, and prints the rows as a matrix.
mod client;
mod fixture;
pub mod floor;
pub mod verdict;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use profiler::{
    classify::{DEFAULT_EXCLUDED_PORTS, Direction, Leg},
    discovery::Selector,
    ebpf::HookSet,
    report::Snapshot,
    snapshot,
};
use serde::Serialize;

use crate::delay_proxy::ProxyMode;
use fixture::{Fixture, Proxy};
use verdict::LegFigures;

/// The line `cargo xtask vmtest` looks for on a VM's console.
pub const ROW_MARK: &str = "MATRIX-ROW ";

/// A proxy and the traffic through it.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub name: &'static str,
    pub proxy: Proxy,
    pub conns: usize,
    pub per_conn: u64,
}

/// The fixture with a thread per connection direction holding each chunk
/// 1 ms, one connection; the fixture as one thread serving 16 connections, each chunk held
/// 0.5–1.5 ms while it serves the others (Envoy's shape); haproxy, a real
/// non-blocking proxy, over one keepalive connection. (At 8 connections
/// under software emulation, where haproxy is saturated and reuses idle
/// server connections across clients, 1 to 25% of its forwards went
/// unpaired, with every hook set alike: a pairing case of its own, not a
/// hook's.)
pub const SHAPES: [Shape; 3] = [
    // One connection: its two threads seldom want the proxy's CPU at once.
    // At 4 connections, 8 threads on one emulated CPU preempt each other
    // between the kernel's clock and the fixture's (ms under emulation),
    // which put a p99 600 µs above the fixture's own in one run of ten.
    Shape {
        name: "fixture, threads 1 ms, 1 conn",
        proxy: Proxy::Fixture {
            mode: ProxyMode::Threads,
            delay: Duration::from_millis(1),
        },
        conns: 1,
        per_conn: 600,
    },
    Shape {
        name: "fixture, event loop 0.5-1.5 ms, 16 conns",
        proxy: Proxy::Fixture {
            mode: ProxyMode::EventLoop {
                hold_min: Duration::from_micros(500),
                hold_max: Duration::from_micros(1500),
            },
            delay: Duration::ZERO,
        },
        conns: 16,
        per_conn: 40,
    },
    Shape {
        name: "haproxy, 1 conn",
        proxy: Proxy::Haproxy,
        conns: 1,
        per_conn: 400,
    },
];

#[derive(Clone, Debug, Serialize)]
pub struct RunFigures {
    pub shape: &'static str,
    pub requests: u64,
    pub completed: u64,
    pub legs: Vec<LegFigures>,
    pub lost_events: u64,
    pub reads_without_arrival: u64,
    /// Where forwards that are in no hop went (see README, `snapshot`).
    pub unclassified_forwards: u64,
    pub local_replies: u64,
    pub unforwarded_reads_dropped: u64,
    /// Which scheduler hooks split process time ("btf_tracepoint" or
    /// "tracepoint"), as the snapshot says.
    pub sched_hooks: Option<&'static str>,
    /// Followings started over after a missed switch (each may leave
    /// unsplit the forwards the thread held then).
    pub sched_resyncs: u64,
    /// Runs of the attached programs the kernel skipped (another program
    /// ran on that CPU): shown, not held, since the kernel decides them.
    pub skipped_program_runs: u64,
    pub problems: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Allowed, attached and measured right.
    Ok,
    /// The kernel does not allow these attachments (its reason given).
    Refused,
    /// Allowed, but ours failed: the verifier, attach, or the measurement.
    Failed,
}

#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    pub hook_set: HookSet,
    pub status: Status,
    pub reason: Option<String>,
    pub runs: Vec<RunFigures>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub kernel: String,
    /// What `profiler check` would choose here.
    pub auto: Option<HookSet>,
    pub tc: bool,
    /// What `profiler check` said of tc (why not, where it does not attach).
    pub tc_detail: String,
    /// The clock floor of this machine (see `floor`).
    pub floor: floor::Floor,
    pub cells: Vec<Cell>,
    pub programs: Vec<profiler::check::ProgramProbe>,
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

/// This kernel's row: `profiler check`, then each hook set it allows,
/// forced in turn, over every shape (or only `sets`, when given). The
/// fixture's processes are `meshbox` (this binary, or the tests' build).
pub fn row(sets: &[HookSet], meshbox: &Path) -> Row {
    // Progress on stderr: in a VM it is the console, so a run that never
    // ends shows where it stood.
    eprintln!("matrix: probing the kernel (profiler check)");
    let report = profiler::check::run();
    eprintln!("matrix: measuring the clock floor");
    let floor = floor::measure(400).unwrap_or_else(|e| {
        log::warn!("measuring the clock floor failed: {e}");
        floor::Floor::default()
    });
    let mut cells = Vec::new();
    for probe in &report.hook_sets {
        if !sets.is_empty() && !sets.contains(&probe.set) {
            continue;
        }
        cells.push(if !probe.kernel_allows {
            Cell {
                hook_set: probe.set,
                status: Status::Refused,
                reason: probe.refused.clone(),
                runs: Vec::new(),
            }
        } else {
            cell(probe.set, meshbox, floor)
        });
    }
    Row {
        kernel: kernel_release(),
        auto: report.hook_set,
        tc: report.tc,
        tc_detail: report
            .finding("tc clsact")
            .map(|f| f.detail.clone())
            .unwrap_or_default(),
        floor,
        cells,
        programs: report.programs,
    }
}

fn cell(set: HookSet, meshbox: &Path, floor: floor::Floor) -> Cell {
    let mut runs = Vec::new();
    for shape in SHAPES {
        eprintln!("matrix: {} / {}: starting", set.name(), shape.name);
        let t0 = Instant::now();
        let result = run(set, &shape, meshbox, floor);
        eprintln!(
            "matrix: {} / {}: {} in {:.1} s",
            set.name(),
            shape.name,
            if result.is_ok() { "measured" } else { "failed" },
            t0.elapsed().as_secs_f64()
        );
        match result {
            Ok(r) => runs.push(r),
            Err(e) => {
                return Cell {
                    hook_set: set,
                    status: Status::Failed,
                    reason: Some(format!("{}: {e}", shape.name)),
                    runs,
                };
            }
        }
    }
    let problems: Vec<String> = runs
        .iter()
        .flat_map(|r| r.problems.iter().map(move |p| format!("{}: {p}", r.shape)))
        .collect();
    Cell {
        hook_set: set,
        status: if problems.is_empty() {
            Status::Ok
        } else {
            Status::Failed
        },
        reason: (!problems.is_empty()).then(|| problems.join("; ")),
        runs,
    }
}

/// Profile the fixture with `set` forced while the clients run, then
/// compare with the fixture's own account.
fn run(
    set: HookSet,
    shape: &Shape,
    meshbox: &Path,
    floor: floor::Floor,
) -> Result<RunFigures, String> {
    let _off = fixture::OffProxyCpu::enter();
    let fx = Fixture::start(meshbox, shape.proxy)?;
    let opts = snapshot::Options {
        duration: Duration::from_secs(3600),
        selectors: vec![Selector::Pid(fx.proxy_pid())],
        excluded_ports: DEFAULT_EXCLUDED_PORTS.to_vec(),
        progress: false,
        hooks: profiler::ebpf::Hooks {
            set: Some(set),
            sched: profiler::ebpf::SchedHooks::Auto,
            ..profiler::ebpf::Hooks::default()
        },
    };
    let mut c = snapshot::start(&opts).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let requests = shape.conns as u64 * shape.per_conn;
    let completed = std::thread::scope(|s| {
        let load = s.spawn(|| client::run(fixture::inbound(), shape.conns, shape.per_conn));
        while !load.is_finished() {
            std::thread::sleep(Duration::from_millis(10));
            c.step().map_err(|e| e.to_string())?;
        }
        load.join().map_err(|_| "the client panicked".to_string())?
    })?;
    // The last forwards' records settle before the final drain.
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(10));
        c.step().map_err(|e| e.to_string())?;
    }
    c.finish();
    let snap = Snapshot::from_session(&c.session, started.elapsed().as_secs_f64());
    drop(c);
    let truth = fx.stats()?;
    Ok(judge(
        shape,
        requests,
        completed,
        &snap,
        truth.as_ref(),
        floor,
    ))
}

fn judge(
    shape: &Shape,
    requests: u64,
    completed: u64,
    snap: &Snapshot,
    truth: Option<&crate::delay_proxy::Stats>,
    floor: floor::Floor,
) -> RunFigures {
    let mut problems = Vec::new();
    if completed != requests {
        problems.push(format!("{completed} of {requests} requests completed"));
    }
    let hop = |leg: Leg| {
        snap.sidecars.first().and_then(|s| {
            s.hops
                .iter()
                .find(|h| h.direction == Direction::Inbound && h.leg == leg)
        })
    };
    let mut legs = Vec::new();
    for (leg, name, key) in [
        (Leg::Request, "request", "inbound/request"),
        (Leg::Response, "response", "inbound/response"),
    ] {
        // Without the fixture's account, one forward per request each way
        // (one-write requests and responses through an HTTP proxy).
        let reference = match truth {
            Some(t) => verdict::Reference::Fixture(t.get(key), floor),
            None => verdict::Reference::Requests(completed),
        };
        // Each missed switch may leave unsplit what the thread held then.
        let allowed = shape.conns as u64 * snap.sched_resyncs;
        let (f, p) = verdict::judge_leg_with(name, hop(leg), reference, allowed);
        legs.push(f);
        problems.extend(p);
    }
    if snap.lost_events > 0 {
        problems.push(format!("{} events lost", snap.lost_events));
    }
    if snap.sched_hooks.is_none() {
        problems.push("the scheduler hooks did not attach".into());
    }
    RunFigures {
        shape: shape.name,
        requests,
        completed,
        legs,
        lost_events: snap.lost_events,
        reads_without_arrival: snap.reads_without_arrival,
        unclassified_forwards: snap.unclassified_forwards,
        local_replies: snap.local_replies,
        unforwarded_reads_dropped: snap.unforwarded_reads_dropped,
        sched_hooks: snap.sched_hooks,
        skipped_program_runs: snap.skipped_program_runs,
        sched_resyncs: snap.sched_resyncs,
        problems,
    }
}

/// The row for a person: one line per hook set and shape.
pub fn to_text(r: &Row) -> String {
    let mut out = format!(
        "kernel {}: check chooses {}; tc clsact {}; clock floor read p50 {:.1} p99 {:.1}, write p50 {:.1} p99 {:.1} µs\n",
        r.kernel,
        r.auto.map_or("nothing", HookSet::name),
        if r.tc {
            "works".to_string()
        } else {
            format!("does not attach ({})", r.tc_detail)
        },
        r.floor.read_p50_us,
        r.floor.read_p99_us,
        r.floor.write_p50_us,
        r.floor.write_p99_us,
    );
    for c in &r.cells {
        let status = match c.status {
            Status::Ok => "ok",
            Status::Refused => "refused",
            Status::Failed => "FAILED",
        };
        out.push_str(&format!("  {:<12} {status}", c.hook_set.name()));
        // The scheduler hooks, as the runs found them (one kind per kernel).
        if let Some(h) = c.runs.iter().find_map(|r| r.sched_hooks) {
            let skipped: u64 = c.runs.iter().map(|r| r.skipped_program_runs).sum();
            out.push_str(&format!(
                " (scheduler hooks: {h}; program runs the kernel skipped: {skipped})"
            ));
        }
        if let Some(why) = &c.reason {
            out.push_str(&format!(": {why}"));
        }
        out.push('\n');
        for run in &c.runs {
            for l in &run.legs {
                // The fixture's window, [read-to-write-call, read-to-write-return].
                let window = |lo: f64, hi: f64| {
                    if hi > 0.0 {
                        format!(" in [{lo:.1}, {hi:.1}]")
                    } else {
                        String::new()
                    }
                };
                out.push_str(&format!(
                    "    {:<40} {:<8} forwards {}/{} undecided {}  process p50 {:.1}{} p99 {:.1}{} µs  queue p50 {:.1} µs\n",
                    run.shape,
                    l.leg,
                    l.forwards,
                    l.fixture_forwards,
                    l.undecided,
                    l.process_p50_us,
                    window(l.fixture_before_write_p50_us, l.fixture_p50_us),
                    l.process_p99_us,
                    // At p99, the bounds the verdict holds it to (three
                    // forwards from the fixture's p99).
                    window(l.fixture_before_write_p99_below_us, l.fixture_p99_above_us),
                    l.queue_p50_us
                ));
                if l.fixture_forwards > 0 && l.forwards > 0 {
                    let truth = if l.fixture_on_cpu_p50_us > 0.0 {
                        format!(" (fixture's thread CPU {:.1})", l.fixture_on_cpu_p50_us)
                    } else {
                        String::new()
                    };
                    out.push_str(&format!(
                        "    {:<40} {:<8} split {}/{}  on cpu p50 {:.1}{truth}  blocked p50 {:.1} µs\n",
                        "", "", l.split_forwards, l.forwards, l.on_cpu_p50_us, l.blocked_p50_us
                    ));
                }
            }
            out.push_str(&format!(
                "    {:<40} events lost {}, reads without arrival {}, unclassified {}, local replies {}, unforwarded reads dropped {}, sched resyncs {}\n",
                "",
                run.lost_events,
                run.reads_without_arrival,
                run.unclassified_forwards,
                run.local_replies,
                run.unforwarded_reads_dropped,
                run.sched_resyncs
            ));
        }
    }
    let insns: Vec<String> = r
        .programs
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p.program,
                p.verified_insns.map_or("?".into(), |n| n.to_string())
            )
        })
        .collect();
    out.push_str(&format!(
        "  verifier, instructions processed: {}\n",
        insns.join(", ")
    ));
    out
}
