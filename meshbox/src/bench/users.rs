//! The profiler's cost as a user sees it: how much slower the mesh is with
//! the node daemon on. Four arms through the same mesh (nginx sidecars,
//! interception on): nothing attached; empty programs on every hook the
//! daemon attaches here (the floor any design with these hooks pays);
//! `profiler run` itself; and `profiler run --pod-edge` (its classifiers on
//! both pods' veths too). Each round measures every arm once, in a turning
//! order: the highest rate wrk drives, then client latency at a fixed rate
//! (oha). Ratios are taken within a round (see `ratios`).
use std::{path::Path, time::Duration};

use aya::Ebpf;
use profiler::ebpf::{self, HookSet, hookset};
use serde::Serialize;

use super::{
    BoxError,
    daemon::Daemon,
    mesh, oha_at,
    ratios::{self, Spread},
    scrape, wrk_over,
};
use crate::{self as testbed, Mesh, http};

pub struct UsersOptions {
    pub rounds: usize,
    /// Seconds of each load generator, per arm and round.
    pub seconds: u64,
    /// The fixed request rate of the latency measurement.
    pub rate: u32,
    /// wrk's connections for the highest rate.
    pub connections: u32,
    /// More `profiler run` flags for the profiler arm.
    pub daemon_args: Vec<String>,
}

/// The arms, in their index order.
pub const ARMS: [&str; 4] = [
    "unprofiled",
    "empty programs",
    "profiler",
    "profiler + edge",
];
const OFF: usize = 0;
const EMPTY: usize = 1;
const PROFILER: usize = 2;
const EDGE: usize = 3;

/// The goals of the issue: the profiler's throughput loss at most 1.5
/// times the empty programs', and fixed-rate client p99 within 5%.
pub const LOSS_FACTOR: f64 = 1.5;
pub const P99_RATIO: f64 = 1.05;
/// #12's: proxy throughput with the pod edge's classifiers within 2 points
/// of without.
pub const EDGE_POINTS: f64 = 0.02;

/// One arm's measurements, one entry per round.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ArmRounds {
    pub arm: &'static str,
    /// wrk's completed requests per second.
    pub max_rps: Vec<f64>,
    /// oha's client latency at the fixed rate, µs.
    pub p50_us: Vec<f64>,
    pub p99_us: Vec<f64>,
    /// Load generator errors, explained, per round that had any.
    pub errors: Vec<String>,
}

/// An arm against the unprofiled one.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Versus {
    /// Max rate ratio.
    pub throughput: Spread,
    /// 1 - the median throughput ratio.
    pub throughput_loss: f64,
    pub p50: Spread,
    pub p99: Spread,
}

#[derive(Clone, Debug, Serialize)]
pub struct Goal {
    pub goal: String,
    pub measured: String,
    pub verdict: ratios::Verdict,
}

#[derive(Clone, Debug, Serialize)]
pub struct UsersFigures {
    pub cpus: usize,
    pub kernel: String,
    pub hook_set: &'static str,
    /// Where the empty programs were attached.
    pub empty_hooks: Vec<String>,
    pub rounds: usize,
    pub seconds: u64,
    pub rate: u32,
    pub wrk_connections: u32,
    pub arms: Vec<ArmRounds>,
    pub empty: Option<Versus>,
    pub profiler: Option<Versus>,
    /// The profiler with the pod edge's classifiers against the profiler
    /// without them (not against unprofiled).
    pub edge: Option<Versus>,
    /// What the daemon recorded over all its rounds (it was measuring).
    pub profiler_forwards: f64,
    /// profiler_events_lost_total over its rounds, by reason.
    pub profiler_events_lost: Vec<(String, f64)>,
    pub goals: Vec<Goal>,
}

/// Empty programs where the daemon's hooks go (the set `profiler check`
/// chooses, and the scheduler's): one object per hook, since a program
/// is loaded for one attachment.
struct EmptyHooks(#[allow(dead_code)] Vec<Ebpf>);

impl EmptyHooks {
    fn attach(hooks: &[hookset::Hook]) -> Result<EmptyHooks, BoxError> {
        Ok(EmptyHooks(super::attach_each(
            hooks.iter().map(hookset::Hook::trivial),
        )?))
    }
}

/// The set's hooks and the scheduler's the daemon prefers here.
fn daemon_hooks(set: HookSet) -> Vec<hookset::Hook> {
    set.hooks()
        .iter()
        .chain(ebpf::loader::preferred_sched_hooks())
        .copied()
        .collect()
}

/// Max rate, then latency at the fixed rate, into `arm`.
fn measure(m: &Mesh, o: &UsersOptions, arm: &mut ArmRounds) -> Result<(), BoxError> {
    let secs = Duration::from_secs(o.seconds);
    let url = m.url();
    let wrk = testbed::load::run(&m.client.netns, &url, &wrk_over(o.connections, secs))?;
    let fixed = testbed::load::run(&m.client.netns, &url, &oha_at(o.rate, secs))?;
    arm.max_rps.push(wrk.completed as f64 / secs.as_secs_f64());
    arm.p50_us.push(fixed.p50_us);
    arm.p99_us.push(fixed.p99_us);
    let round = arm.max_rps.len();
    for (what, r) in [("wrk", &wrk), ("oha", &fixed)] {
        if r.errors > 0 {
            arm.errors
                .push(format!("round {round}, {what}: {}", r.errors_explained()));
        }
    }
    Ok(())
}

fn versus(arm: &ArmRounds, off: &ArmRounds) -> Option<Versus> {
    let throughput = Spread::of(&ratios::per_round(&arm.max_rps, &off.max_rps))?;
    Some(Versus {
        throughput,
        throughput_loss: ratios::loss(&throughput),
        p50: Spread::of(&ratios::per_round(&arm.p50_us, &off.p50_us))?,
        p99: Spread::of(&ratios::per_round(&arm.p99_us, &off.p99_us))?,
    })
}

/// "0.991 x (median; 95% interval [0.950, 1.020])" with `digits`
/// decimals, or "... (median; too few rounds for an interval)".
fn with_interval(median: f64, rounds: &[f64], unit: &str, digits: usize) -> String {
    let d = digits;
    match ratios::median_interval(rounds, ratios::CONFIDENCE) {
        Some((lo, hi)) => format!(
            "{median:.d$}{unit} (median; {:.0}% interval [{lo:.d$}, {hi:.d$}])",
            100.0 * ratios::CONFIDENCE
        ),
        None => format!("{median:.d$}{unit} (median; too few rounds for an interval)"),
    }
}

/// The goals, each judged by the interval of its per-round figure's
/// median ([`ratios::Verdict`]).
fn goals(
    arms: &[ArmRounds],
    empty: Option<&Versus>,
    profiler: Option<&Versus>,
    edge: Option<&Versus>,
) -> Vec<Goal> {
    let (Some(e), Some(p)) = (empty, profiler) else {
        return Vec::new();
    };
    let off = &arms[OFF];
    let ratio = |a: usize, b: &ArmRounds| ratios::per_round(&arms[a].max_rps, &b.max_rps);
    let margin = ratios::loss_margin(&ratio(PROFILER, off), &ratio(EMPTY, off), LOSS_FACTOR);
    let margin_points: Vec<f64> = margin.iter().map(|m| 100.0 * m).collect();
    let room = Spread::of(&margin_points).map_or(f64::NAN, |s| s.median);
    let p99 = ratios::per_round(&arms[PROFILER].p99_us, &off.p99_us);
    let mut goals = vec![
        Goal {
            goal: format!("throughput loss <= {LOSS_FACTOR} x the empty programs' loss"),
            measured: format!(
                "{:.1}% vs {:.1}%; per round, {LOSS_FACTOR} x the empty programs' loss less the profiler's: {}",
                100.0 * p.throughput_loss,
                100.0 * e.throughput_loss,
                with_interval(room, &margin_points, " points", 1)
            ),
            verdict: ratios::Verdict::at_least(&margin, 0.0),
        },
        Goal {
            goal: format!(
                "fixed-rate client p99 within {:.0}% of unprofiled",
                100.0 * (P99_RATIO - 1.0)
            ),
            measured: with_interval(p.p99.median, &p99, " x", 3),
            verdict: ratios::Verdict::at_most(&p99, P99_RATIO),
        },
    ];
    if let Some(x) = edge {
        let rounds = ratio(EDGE, &arms[PROFILER]);
        goals.push(Goal {
            goal: format!(
                "throughput with the pod edge's classifiers within {:.0} points of without",
                100.0 * EDGE_POINTS
            ),
            measured: with_interval(
                x.throughput.median,
                &rounds,
                " x the profiler without them",
                3,
            ),
            verdict: ratios::Verdict::at_least(&rounds, 1.0 - EDGE_POINTS),
        });
    }
    goals
}

pub fn run(helper: &Path, profiler: &Path, o: &UsersOptions) -> Result<UsersFigures, BoxError> {
    if o.rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    let check = profiler::check::run();
    let set = check
        .hook_set
        .ok_or("no hook set works on this kernel (`profiler check` says why)")?;
    let hooks = daemon_hooks(set);
    let m = mesh(helper, true)?;
    let mut arms: Vec<ArmRounds> = ARMS
        .iter()
        .map(|&arm| ArmRounds {
            arm,
            ..ArmRounds::default()
        })
        .collect();
    let mut forwards = 0.0;
    let mut lost = Vec::new();
    for round in 0..o.rounds {
        for a in ratios::order(round, ARMS.len()) {
            eprintln!("bench users: round {}/{}, {}", round + 1, o.rounds, ARMS[a]);
            match a {
                OFF => measure(&m, o, &mut arms[a])?,
                EMPTY => {
                    let _empty = EmptyHooks::attach(&hooks)?;
                    measure(&m, o, &mut arms[a])?;
                }
                _ => {
                    // The daemon as a DaemonSet runs it: its own process,
                    // every sidecar on the node selected.
                    let mut args = o.daemon_args.clone();
                    if a == EDGE {
                        args.push("--pod-edge".into());
                        args.push("--node-netns".into());
                        args.push(format!("/run/netns/{}", m.node_netns));
                    }
                    let d = Daemon::start(profiler, &args)?;
                    d.wait_tracked(2)?;
                    let before = http::get(d.addr, "/metrics", None)?;
                    measure(&m, o, &mut arms[a])?;
                    let after = http::get(d.addr, "/metrics", None)?;
                    let delta = |name| {
                        scrape::sum_of(&after.body, name) - scrape::sum_of(&before.body, name)
                    };
                    if a == PROFILER {
                        forwards += delta("sidecar_forwards_total");
                    }
                    let reasons =
                        |t: &str| scrape::by_label(t, "profiler_events_lost_total", "reason");
                    if a == PROFILER {
                        scrape::accumulate(&mut lost, &reasons(&after.body), 1.0);
                        scrape::accumulate(&mut lost, &reasons(&before.body), -1.0);
                    }
                }
            }
        }
    }
    drop(m);
    let empty = versus(&arms[EMPTY], &arms[OFF]);
    let prof = versus(&arms[PROFILER], &arms[OFF]);
    let edge = versus(&arms[EDGE], &arms[PROFILER]);
    Ok(UsersFigures {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel: profiler::kernel::release().unwrap_or_default(),
        hook_set: set.name(),
        empty_hooks: hooks.iter().map(|h| h.describe()).collect(),
        rounds: o.rounds,
        seconds: o.seconds,
        rate: o.rate,
        wrk_connections: o.connections,
        goals: goals(&arms, empty.as_ref(), prof.as_ref(), edge.as_ref()),
        arms,
        empty,
        profiler: prof,
        edge,
        profiler_forwards: forwards,
        profiler_events_lost: lost,
    })
}

pub fn report(f: &UsersFigures) -> String {
    let mut out = format!(
        "user's view ({} CPUs, kernel {}, hook set {}; {} rounds of wrk {} conns then oha {} req/s, {} s each, per arm):\n",
        f.cpus, f.kernel, f.hook_set, f.rounds, f.wrk_connections, f.rate, f.seconds
    );
    out.push_str(&format!(
        "{:<16} {:>12} {:>10} {:>10}\n",
        "arm", "max req/s", "p50 µs", "p99 µs"
    ));
    for a in &f.arms {
        let med = |v: &[f64]| Spread::of(v).map_or(0.0, |s| s.median);
        out.push_str(&format!(
            "{:<16} {:>12.0} {:>10.1} {:>10.1}   (medians over rounds)\n",
            a.arm,
            med(&a.max_rps),
            med(&a.p50_us),
            med(&a.p99_us)
        ));
    }
    out.push_str("against unprofiled, per round: median [min, max]\n");
    for (name, v) in [
        ("empty programs", &f.empty),
        ("profiler", &f.profiler),
        ("edge vs profiler", &f.edge),
    ] {
        if let Some(v) = v {
            let s = |x: &Spread| format!("{:.3} [{:.3}, {:.3}]", x.median, x.min, x.max);
            out.push_str(&format!(
                "{name:<16} throughput {} (loss {:.1}%)  p50 {}  p99 {}\n",
                s(&v.throughput),
                100.0 * v.throughput_loss,
                s(&v.p50),
                s(&v.p99)
            ));
        }
    }
    out.push_str(&format!(
        "the daemon (profiler arm) recorded {:.0} forwards over its rounds; events lost, by reason: {}\n",
        f.profiler_forwards,
        super::daemon::by_reason(&f.profiler_events_lost)
    ));
    for a in &f.arms {
        for e in &a.errors {
            out.push_str(&format!("{}: {e}\n", a.arm));
        }
    }
    for g in &f.goals {
        out.push_str(&format!(
            "goal: {}: {} {}\n",
            g.goal,
            g.measured,
            g.verdict.word()
        ));
    }
    out
}
