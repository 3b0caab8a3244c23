//! `meshbox bench`: the profiler's speed and memory figures on the
//! built-in mesh.
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Seconds per phase (hooks), and of each load generator per arm and
    /// round (user's view).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Requests per second through the mesh (4 forwards each): the hooks'
    /// CPU phases, the daemon rows, and the user's view's fixed-rate latency.
    #[arg(long, default_value_t = 5000)]
    rate: u32,
    /// What to measure: the hooks' cost in this process, the node daemon
    /// (`profiler run` as its own process) with several sidecar counts, the
    /// user's view (the mesh's speed with the daemon on vs off), or all.
    #[arg(long, value_enum, default_value_t = Part::All)]
    part: Part,
    /// Sidecars on the node for the daemon figures (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16, 64])]
    sidecars: Vec<usize>,
    /// Seconds of load per daemon measurement (a scrape every 5 s).
    #[arg(long, default_value_t = 15)]
    daemon_seconds: u64,
    /// More `profiler run` flags for the daemon figures and the user's
    /// view's profiler arm (e.g. "--cpu-interval 1s", "--sched-hooks classic").
    #[arg(long, allow_hyphen_values = true, value_delimiter = ' ')]
    daemon_args: Vec<String>,
    /// Rounds of the user's view (each measures every arm once), and of the
    /// hooks' figure of what an untracked send or receive pays. A goal is
    /// judged by a 95% interval for its per-round median: under 6 rounds
    /// none is judgeable; more rounds narrow the interval.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// The user's view's arms (comma-separated; default all four). Two arms
    /// judge only the goal that compares them, in half the time: e.g.
    /// `--arms profiler,edge` for the pod edge's throughput goal.
    #[arg(long, value_enum, value_delimiter = ',')]
    arms: Option<Vec<Arm>>,
    /// wrk's connections for the user's view's highest rate.
    #[arg(long, default_value_t = 16)]
    wrk_connections: u32,
    /// Where to write the user's view as JSON (beside the printed table).
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    All,
    Hooks,
    Daemon,
    /// The user's view: max rate and fixed-rate latency with the daemon on,
    /// with empty programs, and with nothing, alternated over rounds.
    Users,
}

/// An arm of the user's view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Arm {
    /// Nothing attached.
    Unprofiled,
    /// Empty programs on the daemon's hooks.
    Empty,
    /// `profiler run`.
    Profiler,
    /// `profiler run --pod-edge`.
    Edge,
}

impl Arm {
    fn index(self) -> usize {
        use crate::bench::users::{EDGE, EMPTY, OFF, PROFILER};
        match self {
            Arm::Unprofiled => OFF,
            Arm::Empty => EMPTY,
            Arm::Profiler => PROFILER,
            Arm::Edge => EDGE,
        }
    }
}

pub fn run(a: Args) -> ExitCode {
    if let Err(msg) = super::require_root() {
        eprintln!("error: {msg}");
        return ExitCode::from(super::EXIT_USAGE);
    }
    profiler::signals::install();
    let helper = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: locating this binary (meshbox): {e}");
            return ExitCode::FAILURE;
        }
    };
    if a.sidecars.iter().any(|&n| n == 0 || n > 256) {
        eprintln!("error: --sidecars takes counts from 1 to 256");
        return ExitCode::from(super::EXIT_USAGE);
    }
    if a.json.is_some() && !matches!(a.part, Part::All | Part::Users) {
        eprintln!("error: --json writes the user's view: use it with --part users or all");
        return ExitCode::from(super::EXIT_USAGE);
    }
    let arms: Vec<usize> = match &a.arms {
        None => (0..crate::bench::users::ARMS.len()).collect(),
        Some(list) => {
            let mut v: Vec<usize> = list.iter().map(|x| x.index()).collect();
            v.sort_unstable();
            v.dedup();
            v
        }
    };
    if a.arms.is_some() && !matches!(a.part, Part::All | Part::Users) {
        eprintln!("error: --arms chooses the user's view's arms: use it with --part users or all");
        return ExitCode::from(super::EXIT_USAGE);
    }
    if arms.len() < 2 {
        eprintln!("error: --arms takes two arms or more (a ratio compares two)");
        return ExitCode::from(super::EXIT_USAGE);
    }
    if a.rounds == 0 || a.rounds > 100 {
        eprintln!("error: --rounds takes 1 to 100");
        return ExitCode::from(super::EXIT_USAGE);
    }
    // The daemon under test: the profiler built beside this binary.
    let profiler = helper.with_file_name("profiler");
    if matches!(a.part, Part::All | Part::Daemon | Part::Users) && !profiler.exists() {
        eprintln!(
            "error: {} is missing: build it with `cargo build --release -p profiler`",
            profiler.display()
        );
        return ExitCode::from(super::EXIT_USAGE);
    }
    if matches!(a.part, Part::All | Part::Hooks) {
        match crate::bench::run(&crate::bench::BenchOptions {
            seconds: a.seconds,
            rounds: a.rounds,
            rate: a.rate,
            helper: helper.clone(),
        }) {
            Ok(f) => print!("{}", f.report()),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if matches!(a.part, Part::All | Part::Daemon) {
        match crate::bench::daemon::run(
            &helper,
            &profiler,
            &a.sidecars,
            a.rate,
            std::time::Duration::from_secs(a.daemon_seconds),
            &a.daemon_args,
        ) {
            Ok(f) => print!("{}", crate::bench::daemon::report(&f)),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if matches!(a.part, Part::All | Part::Users) {
        let o = crate::bench::users::UsersOptions {
            rounds: a.rounds,
            seconds: a.seconds,
            rate: a.rate,
            connections: a.wrk_connections,
            daemon_args: a.daemon_args.clone(),
            arms,
        };
        match crate::bench::users::run(&helper, &profiler, &o) {
            Ok(f) => {
                print!("{}", crate::bench::users::report(&f));
                if let Some(path) = &a.json {
                    let text = serde_json::to_string_pretty(&f).expect("plain figures");
                    if let Err(e) = std::fs::write(path, text + "\n") {
                        eprintln!("error: writing {}: {e}", path.display());
                        return ExitCode::FAILURE;
                    }
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
