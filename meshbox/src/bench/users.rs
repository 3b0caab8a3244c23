//! The profiler's cost as a user sees it: how much slower the mesh is with
//! the node daemon on. Four arms through the same mesh (nginx sidecars,
//! interception on): nothing attached; empty programs on every hook the
//! daemon attaches here (the floor any design with these hooks pays);
//! `profiler run` itself; and `profiler run --pod-edge` (its classifiers on
//! both pods' veths too). Each round measures every arm once, in a turning
//! order: the highest rate wrk drives (and where the CPU went per request,
//! see `cpu_share`), then client latency at a fixed rate (oha). Ratios are
//! taken within a round (see `ratios`).
use std::{path::Path, time::Duration};

use aya::Ebpf;
use profiler::ebpf::{self, HookSet, hookset};
use serde::Serialize;

use super::{
    BoxError,
    cpu_share::{CpuMark, CpuPerRequest},
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
    /// The arms measured ([`ARMS`] indices, ascending): all four, or the
    /// two a goal compares when only that goal is wanted (a run of half the
    /// time, so more rounds fit).
    pub arms: Vec<usize>,
}

/// The arms, in their index order.
pub const ARMS: [&str; 4] = [
    "unprofiled",
    "empty programs",
    "profiler",
    "profiler + edge",
];
pub const OFF: usize = 0;
pub const EMPTY: usize = 1;
pub const PROFILER: usize = 2;
pub const EDGE: usize = 3;

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
    /// Where the CPU went per request in each round's max-rate phase.
    pub cpu_per_request: Vec<CpuPerRequest>,
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
    /// The arms measured (`--arms`), in [`ARMS`] order.
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

/// Max rate (and where the CPU went), then latency at the fixed rate, into
/// `arm`; `daemon`: the pid of the arm's daemon.
fn measure(
    m: &Mesh,
    o: &UsersOptions,
    arm: &mut ArmRounds,
    daemon: Option<u32>,
) -> Result<(), BoxError> {
    let secs = Duration::from_secs(o.seconds);
    let url = m.url();
    let pods: Vec<u32> = m.client.pids().into_iter().chain(m.server.pids()).collect();
    let cpu0 = CpuMark::read(&pods, daemon)?;
    let wrk = testbed::load::run(&m.client.netns, &url, &wrk_over(o.connections, secs))?;
    let cpu1 = CpuMark::read(&pods, daemon)?;
    let fixed = testbed::load::run(&m.client.netns, &url, &oha_at(o.rate, secs))?;
    arm.max_rps.push(wrk.completed as f64 / secs.as_secs_f64());
    arm.cpu_per_request
        .extend(super::cpu_share::per_request(&cpu0, &cpu1, wrk.completed));
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

/// A goal whose arms were not all measured: named, not judged.
fn not_measured(goal: String, needs: &[usize], arms: &[ArmRounds]) -> Goal {
    let missing: Vec<&str> = needs
        .iter()
        .filter(|&&a| arms[a].max_rps.is_empty())
        .map(|&a| ARMS[a])
        .collect();
    Goal {
        goal,
        measured: format!(
            "needs the arm(s) left out of this run: {}",
            missing.join(", ")
        ),
        verdict: ratios::Verdict::NotMeasured,
    }
}

/// The goals, each judged by the interval of its per-round figure's
/// median ([`ratios::Verdict`]); `arms` holds all four, empty where an
/// arm was not measured.
fn goals(
    arms: &[ArmRounds],
    empty: Option<&Versus>,
    profiler: Option<&Versus>,
    edge: Option<&Versus>,
) -> Vec<Goal> {
    let off = &arms[OFF];
    let ratio = |a: usize, b: &ArmRounds| ratios::per_round(&arms[a].max_rps, &b.max_rps);
    let loss_goal = format!("throughput loss <= {LOSS_FACTOR} x the empty programs' loss");
    let p99_goal = format!(
        "fixed-rate client p99 within {:.0}% of unprofiled",
        100.0 * (P99_RATIO - 1.0)
    );
    let edge_goal = format!(
        "throughput with the pod edge's classifiers within {:.0} points of without",
        100.0 * EDGE_POINTS
    );
    let mut goals = Vec::new();
    match (empty, profiler) {
        (Some(e), Some(p)) => {
            let margin =
                ratios::loss_margin(&ratio(PROFILER, off), &ratio(EMPTY, off), LOSS_FACTOR);
            let margin_points: Vec<f64> = margin.iter().map(|m| 100.0 * m).collect();
            let room = Spread::of(&margin_points).map_or(f64::NAN, |s| s.median);
            goals.push(Goal {
                goal: loss_goal,
                measured: format!(
                    "{:.1}% vs {:.1}%; per round, {LOSS_FACTOR} x the empty programs' loss less the profiler's: {}",
                    100.0 * p.throughput_loss,
                    100.0 * e.throughput_loss,
                    with_interval(room, &margin_points, " points", 1)
                ),
                verdict: ratios::Verdict::at_least(&margin, 0.0),
            });
        }
        _ => goals.push(not_measured(loss_goal, &[OFF, EMPTY, PROFILER], arms)),
    }
    match profiler {
        Some(p) => {
            let p99 = ratios::per_round(&arms[PROFILER].p99_us, &off.p99_us);
            goals.push(Goal {
                goal: p99_goal,
                measured: with_interval(p.p99.median, &p99, " x", 3),
                verdict: ratios::Verdict::at_most(&p99, P99_RATIO),
            });
        }
        None => goals.push(not_measured(p99_goal, &[OFF, PROFILER], arms)),
    }
    match edge {
        Some(x) => {
            let rounds = ratio(EDGE, &arms[PROFILER]);
            goals.push(Goal {
                goal: edge_goal,
                measured: with_interval(
                    x.throughput.median,
                    &rounds,
                    " x the profiler without them",
                    3,
                ),
                verdict: ratios::Verdict::at_least(&rounds, 1.0 - EDGE_POINTS),
            });
        }
        None => goals.push(not_measured(edge_goal, &[PROFILER, EDGE], arms)),
    }
    goals
}

pub fn run(helper: &Path, profiler: &Path, o: &UsersOptions) -> Result<UsersFigures, BoxError> {
    if o.rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    if o.arms.len() < 2 || o.arms.iter().any(|&a| a >= ARMS.len()) {
        return Err("--arms takes two arms or more: a ratio compares two".into());
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
        for slot in ratios::order(round, o.arms.len()) {
            let a = o.arms[slot];
            eprintln!("bench users: round {}/{}, {}", round + 1, o.rounds, ARMS[a]);
            match a {
                OFF => measure(&m, o, &mut arms[a], None)?,
                EMPTY => {
                    let _empty = EmptyHooks::attach(&hooks)?;
                    measure(&m, o, &mut arms[a], None)?;
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
                    measure(&m, o, &mut arms[a], Some(d.pid()))?;
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
        empty_hooks: if o.arms.contains(&EMPTY) {
            hooks.iter().map(|h| h.describe()).collect()
        } else {
            Vec::new()
        },
        rounds: o.rounds,
        seconds: o.seconds,
        rate: o.rate,
        wrk_connections: o.connections,
        goals: goals(&arms, empty.as_ref(), prof.as_ref(), edge.as_ref()),
        arms: arms.into_iter().filter(|a| !a.max_rps.is_empty()).collect(),
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
    out.push_str(&format!(
        "CPU per request at the highest rate, µs (medians over rounds; all CPUs busy):\n{:<16} {:>10} {:>10} {:>10} {:>10}\n",
        "arm", "machine", "pods", "daemon", "rest"
    ));
    // One row per arm; `signed` for an addition over unprofiled.
    let row = |arm: &str, c: &CpuPerRequest, signed: bool| {
        let n = |v: f64, d: usize| {
            if signed {
                format!("{v:+.d$}")
            } else {
                format!("{v:.d$}")
            }
        };
        format!(
            "{:<16} {:>10} {:>10} {:>10} {:>10}",
            arm,
            n(c.machine_us, 1),
            n(c.pods_us, 1),
            n(c.daemon_us, 2),
            n(c.rest_us, 1)
        )
    };
    for a in &f.arms {
        let c = CpuPerRequest::median_of(&a.cpu_per_request);
        out.push_str(&format!("{}\n", row(a.arm, &c, false)));
    }
    // What each arm added per request over unprofiled in the same round.
    if let Some(off) = f.arms.iter().find(|a| a.arm == ARMS[OFF]) {
        for a in f.arms.iter().filter(|a| a.arm != ARMS[OFF]) {
            let added: Vec<CpuPerRequest> = a
                .cpu_per_request
                .iter()
                .zip(&off.cpu_per_request)
                .map(|(x, o)| x.less(o))
                .collect();
            let c = CpuPerRequest::median_of(&added);
            out.push_str(&format!(
                "{}   (added over unprofiled, per round)\n",
                row(a.arm, &c, true)
            ));
        }
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
    if f.arms.iter().any(|a| a.arm == ARMS[PROFILER]) {
        out.push_str(&format!(
            "the daemon (profiler arm) recorded {:.0} forwards over its rounds; events lost, by reason: {}\n",
            f.profiler_forwards,
            super::daemon::by_reason(&f.profiler_events_lost)
        ));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(i: usize, max_rps: &[f64]) -> ArmRounds {
        ArmRounds {
            arm: ARMS[i],
            max_rps: max_rps.to_vec(),
            p50_us: max_rps.iter().map(|_| 100.0).collect(),
            p99_us: max_rps.iter().map(|_| 300.0).collect(),
            cpu_per_request: Vec::new(),
            errors: Vec::new(),
        }
    }

    #[test]
    fn two_arms_judge_their_goal_and_name_the_others_not_measured() {
        // `--arms profiler,edge`: the pod edge's goal is judged, the loss
        // and p99 goals are named with the arms they lacked.
        let prof = [1000.0, 1010.0, 990.0, 1005.0, 995.0, 1000.0, 1002.0];
        let edge: Vec<f64> = prof.iter().map(|p| p * 0.995).collect();
        let arms = vec![
            arm(OFF, &[]),
            arm(EMPTY, &[]),
            arm(PROFILER, &prof),
            arm(EDGE, &edge),
        ];
        let e = versus(&arms[EDGE], &arms[PROFILER]);
        assert!(versus(&arms[PROFILER], &arms[OFF]).is_none());
        let g = goals(&arms, None, None, e.as_ref());
        let verdicts: Vec<ratios::Verdict> = g.iter().map(|g| g.verdict).collect();
        assert_eq!(
            verdicts,
            [
                ratios::Verdict::NotMeasured,
                ratios::Verdict::NotMeasured,
                ratios::Verdict::Met
            ]
        );
        assert!(
            g[0].measured.contains("unprofiled, empty programs")
                && !g[0].measured.contains("profiler +"),
            "{}",
            g[0].measured
        );
        // The same edge rounds 3 points down: missed, not hidden.
        let slow: Vec<f64> = prof.iter().map(|p| p * 0.97).collect();
        let arms = vec![
            arm(OFF, &[]),
            arm(EMPTY, &[]),
            arm(PROFILER, &prof),
            arm(EDGE, &slow),
        ];
        let e = versus(&arms[EDGE], &arms[PROFILER]);
        assert_eq!(
            goals(&arms, None, None, e.as_ref())[2].verdict,
            ratios::Verdict::Missed
        );
    }

    #[test]
    fn all_four_arms_judge_every_goal() {
        let r = [1000.0; 7];
        let arms: Vec<ArmRounds> = (0..ARMS.len()).map(|i| arm(i, &r)).collect();
        let v = |a: usize, b: usize| versus(&arms[a], &arms[b]);
        let g = goals(
            &arms,
            v(EMPTY, OFF).as_ref(),
            v(PROFILER, OFF).as_ref(),
            v(EDGE, PROFILER).as_ref(),
        );
        assert_eq!(g.len(), 3);
        assert!(g.iter().all(|g| g.verdict == ratios::Verdict::Met), "{g:?}");
    }
}
