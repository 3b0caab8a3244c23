//! Turning raw counts into the figures the targets name, and the
//! printed report.
use super::Phase;

#[derive(Clone, Debug, PartialEq)]
pub struct ProgramDelta {
    pub name: String,
    pub runs: u64,
    pub run_ns: u64,
}

impl ProgramDelta {
    pub fn mean_ns(&self) -> f64 {
        if self.runs == 0 {
            0.0
        } else {
            self.run_ns as f64 / self.runs as f64
        }
    }
}

/// Per program, what happened between two readings.
pub fn deltas(before: &[(String, u64, u64)], after: &[(String, u64, u64)]) -> Vec<ProgramDelta> {
    after
        .iter()
        .map(|(name, runs, ns)| {
            let (r0, n0) = before
                .iter()
                .find(|(b, _, _)| b == name)
                .map_or((0, 0), |(_, r, n)| (*r, *n));
            ProgramDelta {
                name: name.clone(),
                runs: runs.saturating_sub(r0),
                run_ns: ns.saturating_sub(n0),
            }
        })
        .filter(|d| d.runs > 0)
        .collect()
}

pub struct Figures {
    /// What an untracked process's send and receive pay, as it sees it.
    pub dispatch: super::dispatch::Dispatch,
    /// An empty program on sock_send_length during the untracked phase.
    pub floor: Option<ProgramDelta>,
    /// A program that only reads the clock, beside it.
    pub clock_floor: Option<ProgramDelta>,
    /// An empty program on sched_switch during the untracked phase.
    pub switch_floor: Option<ProgramDelta>,
    /// A program on sched_switch that only tests whether the incoming task
    /// is followed, beside it: the least a filtering program pays there.
    pub filter_floor: Option<ProgramDelta>,
    pub untracked: Phase,
    pub tracked: Phase,
    /// As `tracked`, without the scheduler hooks.
    pub unsplit: Phase,
    pub max: Phase,
    /// As `tracked`, with the pod edge's classifiers.
    pub edge: Phase,
    pub rss_kb: u64,
    pub hwm_kb: u64,
}

/// Mean run time of the programs that see untracked tasks (read and
/// write hooks: one TRACKED lookup, then out).
pub fn untracked_ns(p: &Phase) -> f64 {
    let (runs, ns) = p
        .programs
        .iter()
        .filter(|d| d.name.contains("recv") || d.name.contains("send"))
        .fold((0u64, 0u64), |(r, n), d| (r + d.runs, n + d.run_ns));
    if runs == 0 {
        0.0
    } else {
        ns as f64 / runs as f64
    }
}

/// What the sidecars' forwarding added to a per-program quantity: tracked
/// phase minus the untracked phase (same requests, same rate, no sidecars
/// in the path, scaled to the tracked phase's request count), per forward.
/// The A/B way, as the Istio benchmark measures overhead.
fn ab_per_forward(tracked: &Phase, untracked: &Phase, of: fn(&ProgramDelta) -> u64) -> f64 {
    let sum = |p: &Phase| p.programs.iter().map(of).sum::<u64>() as f64;
    if tracked.forwards == 0 {
        return f64::NAN;
    }
    let scale = if untracked.load.completed == 0 {
        1.0
    } else {
        tracked.load.completed as f64 / untracked.load.completed as f64
    };
    (sum(tracked) - scale * sum(untracked)) / tracked.forwards as f64
}

/// Program time per forward, A/B.
pub fn ns_per_forward_ab(tracked: &Phase, untracked: &Phase) -> f64 {
    ab_per_forward(tracked, untracked, |d| d.run_ns)
}

/// Hook invocations per forward, A/B.
pub fn invocations_per_forward_ab(tracked: &Phase, untracked: &Phase) -> f64 {
    ab_per_forward(tracked, untracked, |d| d.runs)
}

/// All program run time during the phase divided by forwards: an upper
/// bound on what one forward costs, since it also carries the invocations
/// of untracked processes (load generator, app) and softirq arrivals.
pub fn ns_per_forward(p: &Phase) -> f64 {
    let total: u64 = p.programs.iter().map(|d| d.run_ns).sum();
    if p.forwards == 0 {
        f64::NAN
    } else {
        total as f64 / p.forwards as f64
    }
}

/// What the scheduler hooks add per forward: program time per forward
/// with them (sched programs and the marks the read and write hooks take)
/// minus without, at the same load.
pub fn sched_per_forward(with: &Phase, without: &Phase) -> f64 {
    ns_per_forward(with) - ns_per_forward(without)
}

/// Whether `d` is one of the scheduler's programs.
fn is_sched(d: &ProgramDelta) -> bool {
    d.name.starts_with("tp_sched_") || d.name.starts_with("tpb_sched_")
}

/// What the scheduler's programs cost the node in a phase, all told:
/// (their run time in µs per second of the phase, their runs per second).
/// For untracked tasks this is what every switch (and, in a design that
/// hooks them, every wake-up) of the node pays together.
pub fn sched_us_per_second(p: &Phase) -> (f64, f64) {
    let (runs, ns) = p
        .programs
        .iter()
        .filter(|d| is_sched(d))
        .fold((0, 0), |(r, n), d| (r + d.runs, n + d.run_ns));
    (ns as f64 / 1e3 / p.seconds, runs as f64 / p.seconds)
}

/// The scheduler hooks' runs per forward in a phase (all of them: the
/// followed threads' switches and every other task's).
fn sched_runs_per_forward(p: &Phase) -> f64 {
    let runs: u64 = p
        .programs
        .iter()
        .filter(|d| is_sched(d))
        .map(|d| d.runs)
        .sum();
    runs as f64 / p.forwards.max(1) as f64
}

/// The least the scheduler hooks can cost per forward in a design that
/// follows threads through sched_switch: every switch of the tracked phase
/// tests its task (`filter_ns`, a program that does only that), and each
/// switch the sidecars' threads added (tracked phase minus the untracked
/// one, scaled to the same requests) also reads the clock (`clock_ns`, what
/// reading it adds to a program). Returns (switches per forward, the
/// sidecars' part of them, the floor in ns per forward).
pub fn sched_floor_per_forward(
    tracked: &Phase,
    untracked: &Phase,
    filter_ns: f64,
    clock_ns: f64,
) -> (f64, f64, f64) {
    let per = sched_runs_per_forward(tracked);
    let added = ab_per_forward(tracked, untracked, |d| if is_sched(d) { d.runs } else { 0 })
        .clamp(0.0, per);
    (per, added, per * filter_ns + added * clock_ns)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

impl Figures {
    pub fn report(&self) -> String {
        let mut out = String::new();
        let line = |out: &mut String, s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        for (label, p) in [
            ("untracked", &self.untracked),
            ("tracked", &self.tracked),
            ("tracked, no scheduler hooks", &self.unsplit),
            ("max rate", &self.max),
            ("tracked, pod edge classifiers", &self.edge),
        ] {
            line(
                &mut out,
                format!(
                    "{label}: {:.1} s, {} forwards ({:.0}/s), {} completed requests, {} lost events, profiler CPU {:.2}% of one core",
                    p.seconds,
                    p.forwards,
                    p.forwards as f64 / p.load_seconds,
                    p.load.completed,
                    p.lost,
                    100.0 * p.cpu_s / p.seconds
                ),
            );
            for d in &p.programs {
                line(
                    &mut out,
                    format!(
                        "    {:<24} {:>10} runs  {:>8.1} ns/run",
                        d.name,
                        d.runs,
                        d.mean_ns()
                    ),
                );
            }
        }
        let d = &self.dispatch;
        line(
            &mut out,
            format!(
                "an untracked process's send or receive ({} loopback round trips of 32 bytes, \
                 {} rounds, median [min, max] ns per round trip; the profiler's hooks there: {}):",
                d.round_trips,
                d.rounds,
                d.hooks.join(", ")
            ),
        );
        for (i, (arm, s)) in super::dispatch::ARMS
            .iter()
            .zip(&d.per_round_trip)
            .enumerate()
        {
            line(
                &mut out,
                format!(
                    "    {arm:<40} {:>8.1} [{:.1}, {:.1}]{}",
                    s.median,
                    s.min,
                    s.max,
                    d.per_call_ns(i)
                        .filter(|_| i > 0)
                        .map_or(String::new(), |c| format!(": {c:+.1} ns a call"))
                ),
            );
        }
        if let Some(f) = &self.floor {
            line(
                &mut out,
                format!(
                    "floor: an empty program costs {:.1} ns/run here ({} runs), stats bookkeeping included",
                    f.mean_ns(),
                    f.runs
                ),
            );
        }
        if let Some(c) = &self.clock_floor {
            line(
                &mut out,
                format!(
                    "clock floor: a program that only reads the clock costs {:.1} ns/run; a forward \
                     needs three such hooks (arrival, read, write), so no design here costs under {:.0} ns",
                    c.mean_ns(),
                    3.0 * c.mean_ns()
                ),
            );
        }
        let per_fwd = ns_per_forward(&self.tracked);
        let per_fwd_ab = ns_per_forward_ab(&self.tracked, &self.untracked);
        let untracked = untracked_ns(&self.untracked);
        let cpu = 100.0 * self.tracked.cpu_s / self.tracked.seconds;
        let rate = self.tracked.forwards as f64 / self.tracked.load_seconds;
        line(&mut out, String::new());
        line(
            &mut out,
            format!(
                "program time per forward, A/B (tracked minus untracked phase): {per_fwd_ab:.0} ns (target <= 300): {}",
                verdict(per_fwd_ab <= 300.0)
            ),
        );
        line(
            &mut out,
            format!(
                "program time per forward, upper bound (all programs / forwards): {per_fwd:.0} ns"
            ),
        );
        if let Some(f) = &self.floor {
            let calls = invocations_per_forward_ab(&self.tracked, &self.untracked);
            line(
                &mut out,
                format!(
                    "  of which the floor: {calls:.1} hook invocations per forward x {:.1} ns = {:.0} ns; \
                     the programs' own work: {:.0} ns",
                    f.mean_ns(),
                    calls * f.mean_ns(),
                    per_fwd_ab - calls * f.mean_ns()
                ),
            );
        }
        line(
            &mut out,
            format!(
                "per invocation from an untracked process: {untracked:.1} ns (target <= 30): {}",
                verdict(untracked <= 30.0)
            ),
        );
        if let (Some(sw), Some(floor)) = (
            self.untracked
                .programs
                .iter()
                .find(|d| d.name == "tp_sched_switch" || d.name == "tpb_sched_switch"),
            &self.switch_floor,
        ) {
            let above = sw.mean_ns() - floor.mean_ns();
            line(
                &mut out,
                format!(
                    "context switch of untracked tasks: {} {:.1} ns/run, an empty \
                     program on sched_switch ({}) {:.1} ns/run: {above:.1} ns above the floor \
                     (target <= 15): {}",
                    sw.name,
                    sw.mean_ns(),
                    floor.name,
                    floor.mean_ns(),
                    verdict(above <= 15.0)
                ),
            );
            if let Some(f) = &self.filter_floor {
                line(
                    &mut out,
                    format!(
                        "  a program that only tests whether the incoming task is followed ({}): \
                         {:.1} ns/run, {:.1} above the empty one; the profiler's {:.1} above it",
                        f.name,
                        f.mean_ns(),
                        f.mean_ns() - floor.mean_ns(),
                        sw.mean_ns() - f.mean_ns()
                    ),
                );
            }
        }
        let (us, runs) = sched_us_per_second(&self.untracked);
        line(
            &mut out,
            format!(
                "scheduler hooks for untracked tasks, all told: {us:.0} us of program time a \
                 second ({runs:.0} runs a second)"
            ),
        );
        let sched = sched_per_forward(&self.tracked, &self.unsplit);
        line(
            &mut out,
            format!(
                "scheduler hooks per forward (program time per forward with them minus \
                 without, same load): {sched:.0} ns (target <= 100): {}",
                verdict(sched <= 100.0)
            ),
        );
        if let Some(f) = &self.switch_floor {
            let per = sched_runs_per_forward(&self.tracked);
            line(
                &mut out,
                format!(
                    "  of which the floor: {per:.2} scheduler hook invocations per forward x \
                     {:.1} ns = {:.0} ns",
                    f.mean_ns(),
                    per * f.mean_ns()
                ),
            );
        }
        if let (Some(filter), Some(empty), Some(clock)) =
            (&self.filter_floor, &self.floor, &self.clock_floor)
        {
            let clock_ns = clock.mean_ns() - empty.mean_ns();
            let (per, added, floor) =
                sched_floor_per_forward(&self.tracked, &self.untracked, filter.mean_ns(), clock_ns);
            line(
                &mut out,
                format!(
                    "  the floor of following threads through their switches: {per:.2} \
                     invocations per forward x {:.1} ns (a task tested) + {added:.2} of them \
                     the sidecars' threads' (A/B) x {clock_ns:.1} ns (the clock read) = \
                     {floor:.0} ns, before any account is kept{}",
                    filter.mean_ns(),
                    if floor > 100.0 {
                        " (the target is under it)"
                    } else {
                        ""
                    }
                ),
            );
        }
        line(
            &mut out,
            format!(
                "profiler CPU at {rate:.0} forwards/s: {cpu:.2}% of one core (target <= 1% at 20000/s){}: {}",
                if rate < 19_000.0 {
                    " [rate below 20000/s: this machine did not reach it]"
                } else {
                    ""
                },
                verdict(cpu <= 1.0 && rate >= 19_000.0)
            ),
        );
        line(
            &mut out,
            format!(
                "RSS {} kB, peak {} kB (target <= 32768): {}",
                self.rss_kb,
                self.hwm_kb,
                verdict(self.hwm_kb <= 32 * 1024)
            ),
        );
        line(
            &mut out,
            format!(
                "highest forward rate driven: {:.0}/s with {} lost events: {}",
                self.max.forwards as f64 / self.max.load_seconds,
                self.max.lost,
                verdict(self.max.lost == 0)
            ),
        );
        let (packets, edge_ns) = self
            .edge
            .programs
            .iter()
            .filter(|d| d.name == "profiler_in" || d.name == "profiler_out")
            .fold((0u64, 0u64), |(r, n), d| (r + d.runs, n + d.run_ns));
        line(
            &mut out,
            format!(
                "pod edge classifiers (--pod-edge): {:.1} ns per packet, {:.2} packets per \
                 forward; program time per forward, A/B: {:.0} ns with them, {:.0} ns without \
                 (phase 2); profiler CPU {:.2}% of one core",
                if packets == 0 {
                    0.0
                } else {
                    edge_ns as f64 / packets as f64
                },
                packets as f64 / self.edge.forwards.max(1) as f64,
                ns_per_forward_ab(&self.edge, &self.untracked),
                per_fwd_ab,
                100.0 * self.edge.cpu_s / self.edge.seconds
            ),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(forwards: u64, completed: u64, programs: Vec<ProgramDelta>) -> Phase {
        Phase {
            forwards,
            lost: 0,
            seconds: 1.0,
            load_seconds: 1.0,
            cpu_s: 0.0,
            programs,
            load: crate::LoadResult {
                completed,
                ..Default::default()
            },
        }
    }

    fn prog(runs: u64, run_ns: u64) -> ProgramDelta {
        ProgramDelta {
            name: "p".into(),
            runs,
            run_ns,
        }
    }

    fn named(name: &str, runs: u64, run_ns: u64) -> ProgramDelta {
        ProgramDelta {
            name: name.into(),
            runs,
            run_ns,
        }
    }

    #[test]
    fn ab_subtracts_the_baseline_scaled_to_the_same_requests() {
        // Baseline: 100 requests, 200 runs, 10 µs. Tracked: 200 requests
        // (800 forwards), 1200 runs, 100 µs. Added: 100 - 2*10 = 80 µs over
        // 800 forwards; 1200 - 2*200 = 800 runs.
        let base = phase(0, 100, vec![prog(200, 10_000)]);
        let tracked = phase(800, 200, vec![prog(1200, 100_000)]);
        assert_eq!(ns_per_forward_ab(&tracked, &base), 100.0);
        assert_eq!(invocations_per_forward_ab(&tracked, &base), 1.0);
        assert!(ns_per_forward_ab(&phase(0, 1, vec![]), &base).is_nan());
    }

    #[test]
    fn sched_cost_is_the_difference_per_forward() {
        // 1000 forwards: 300 µs with the hooks, 200 µs without.
        let with = phase(1000, 250, vec![prog(5000, 300_000)]);
        let without = phase(1000, 250, vec![prog(3000, 200_000)]);
        assert_eq!(sched_per_forward(&with, &without), 100.0);
        assert!(sched_per_forward(&phase(0, 0, vec![]), &without).is_nan());
    }

    #[test]
    fn sched_floor_counts_a_test_per_switch_and_a_clock_per_added_one() {
        // Untracked: 1000 requests, 2000 switches. Tracked: 1000 requests,
        // 4000 forwards, 5000 switches: 1.25 a forward, 0.75 of them added.
        let untracked = phase(0, 1000, vec![named("tpb_sched_switch", 2000, 0)]);
        let tracked = phase(
            4000,
            1000,
            vec![
                named("tpb_sched_switch", 5000, 0),
                named("rtp_sock_recv_length", 9000, 0),
            ],
        );
        let (per, added, floor) = sched_floor_per_forward(&tracked, &untracked, 80.0, 40.0);
        assert_eq!((per, added), (1.25, 0.75));
        assert_eq!(floor, 1.25 * 80.0 + 0.75 * 40.0);
        // More switches untracked than tracked: none added, never below 0.
        let busy = phase(0, 1000, vec![named("tpb_sched_switch", 9000, 0)]);
        assert_eq!(sched_floor_per_forward(&tracked, &busy, 80.0, 40.0).1, 0.0);
    }

    #[test]
    fn sched_time_a_second_sums_only_the_schedulers_programs() {
        let mut p = phase(
            0,
            0,
            vec![
                named("tpb_sched_switch", 3000, 240_000),
                named("tp_sched_wakeup", 1000, 60_000),
                named("rtp_sock_recv_length", 500, 1_000_000),
            ],
        );
        p.seconds = 2.0;
        assert_eq!(sched_us_per_second(&p), (150.0, 2000.0));
    }

    #[test]
    fn deltas_subtract_and_drop_idle_programs() {
        let before = vec![("a".to_string(), 10, 1000), ("b".to_string(), 5, 50)];
        let after = vec![
            ("a".to_string(), 30, 3000),
            ("b".to_string(), 5, 50),
            ("c".to_string(), 2, 40),
        ];
        let d = deltas(&before, &after);
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].runs, d[0].run_ns, d[0].mean_ns()), (20, 2000, 100.0));
        assert_eq!((d[1].name.as_str(), d[1].runs), ("c", 2));
    }
}
