//! `meshbox bench`: the speed and memory figures, measured in one run on
//! the mesh in a box and printed beside their targets. No figure here is
//! asserted by a unit test: machines are noisy, so this prints, and the
//! closing notes of issues quote it.
mod cpu_share;
pub mod daemon;
mod dispatch;
mod figures;
mod process;
mod ratios;
mod scrape;
pub mod users;

use std::{path::PathBuf, time::Duration};

pub use figures::{Figures, ProgramDelta};

use profiler::{
    classify::DEFAULT_EXCLUDED_PORTS,
    discovery::Selector,
    ebpf::{self, Attach, Hook},
    snapshot::{self, Options},
};

use crate::{self as testbed, LoadGen, LoadSpec, Mesh, MeshConfig, SidecarKind};

pub struct BenchOptions {
    pub seconds: u64,
    /// Rounds of the send and receive dispatch figure.
    pub rounds: usize,
    /// Requests per second for the CPU figure; each request is four forwards
    /// (two hops, two legs).
    pub rate: u32,
    pub helper: PathBuf,
}

/// oha at a fixed request rate over 8 connections.
fn oha_at(rate: u32, duration: Duration) -> LoadSpec {
    LoadSpec {
        generator: LoadGen::Oha,
        duration,
        connections: 8,
        rate: Some(rate),
        streams: 1,
    }
}

/// wrk unthrottled over `connections`: the highest rate the mesh carries.
fn wrk_over(connections: u32, duration: Duration) -> LoadSpec {
    LoadSpec {
        generator: LoadGen::Wrk,
        duration,
        connections,
        rate: None,
        streams: 1,
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The reference programs (profiler-ebpf/src/hooks/probe.rs).
const REF_EMPTY: &str = "probe_tracepoint";
const REF_CLOCK: &str = "probe_clock";
const REF_SWITCH: &str = "probe_sched_switch";
const REF_BTF_SWITCH: &str = "probe_btf_tracepoint";
const REF_FILTER: &str = "probe_sched_filter";
const REF_BTF_FILTER: &str = "probe_btf_filter";

/// Each of `hooks` loaded and attached in an object of its own (a program
/// is loaded for one attachment), held until the objects are dropped.
fn attach_each(hooks: impl IntoIterator<Item = Hook>) -> Result<Vec<aya::Ebpf>, BoxError> {
    let mut objects = Vec::new();
    for h in hooks {
        let mut e = ebpf::open()?;
        ebpf::loader::attach(&mut e, &h, None)?;
        objects.push(e);
    }
    Ok(objects)
}

fn mesh(helper: &std::path::Path, intercept: bool) -> Result<Mesh, BoxError> {
    mesh_of(helper, intercept, SidecarKind::Nginx)
}

fn mesh_of(
    helper: &std::path::Path,
    intercept: bool,
    sidecar: SidecarKind,
) -> Result<Mesh, BoxError> {
    Ok(Mesh::up(&MeshConfig {
        sidecar,
        intercept,
        app_delay: Duration::ZERO,
        app_size: 128,
        proxy_delay: Duration::ZERO,
        proxy_mode: testbed::delay_proxy::ProxyMode::Threads,
        app_response: testbed::app::AppResponse::OneWrite,
        mtls: false,
        http2: false,
        helper: helper.to_path_buf(),
    })?)
}

/// One measured phase: load `spec` through `m` while a session captures.
pub struct Phase {
    pub forwards: u64,
    pub lost: u64,
    pub seconds: f64,
    /// How long the load generator ran (rates are per this).
    pub load_seconds: f64,
    pub cpu_s: f64,
    pub programs: Vec<ProgramDelta>,
    pub load: testbed::LoadResult,
}

fn phase(m: &Mesh, spec: LoadSpec, hooks: ebpf::Hooks) -> Result<Phase, BoxError> {
    let load_seconds = spec.duration.as_secs_f64();
    let opts = Options {
        duration: spec.duration + Duration::from_millis(300),
        selectors: vec![Selector::Istio],
        excluded_ports: DEFAULT_EXCLUDED_PORTS.to_vec(),
        progress: false,
        hooks,
    };
    let mut capture = snapshot::start(&opts)?;
    let before = capture.session.program_stats();
    let cpu0 = process::cpu_seconds()?;
    let (seconds, load) = std::thread::scope(|s| {
        let url = m.url();
        let ns = m.client.netns.clone();
        let load = s.spawn(move || testbed::load::run(&ns, &url, &spec));
        let secs = snapshot::capture(&mut capture, &opts);
        (secs, load.join())
    });
    let cpu_s = process::cpu_seconds()? - cpu0;
    let load = load.map_err(|_| "load thread panicked")??;
    let seconds = seconds?;
    let session = &capture.session;
    let programs = figures::deltas(&before, &session.program_stats());
    Ok(Phase {
        forwards: session.agg.hops.by_key.values().map(|h| h.forwards).sum(),
        lost: session.lost_events(),
        seconds,
        load_seconds,
        cpu_s,
        programs,
        load,
    })
}

pub fn run(o: &BenchOptions) -> Result<Figures, BoxError> {
    // Counting run time costs a little per invocation, so it is on only
    // while the benchmark holds this descriptor.
    let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map_err(|e| format!("enabling BPF run-time stats: {e}"))?;
    let secs = Duration::from_secs(o.seconds);

    eprintln!(
        "bench 1/6: untracked traffic (interception off, sidecars idle), oha {} req/s",
        o.rate
    );
    let m = mesh(&o.helper, false)?;
    // Reference programs on the same tracepoint give the floors: what any
    // program costs here (stats bookkeeping included), and what one that
    // only reads the clock costs.
    let mut reference = ebpf::open()?;
    // The switch floors are an empty program where the preferred scheduler
    // hooks put theirs on sched_switch, of the same kind, and one that only
    // tests whether the incoming task is followed.
    let sched_switch = ebpf::loader::preferred_sched_hooks()[0].attach;
    let btf = matches!(sched_switch, Attach::BtfTracepoint { .. });
    let switch_ref = Hook {
        program: if btf { REF_BTF_SWITCH } else { REF_SWITCH },
        attach: sched_switch,
    };
    let filter_ref = Hook {
        program: if btf { REF_BTF_FILTER } else { REF_FILTER },
        attach: sched_switch,
    };
    for hook in [
        (REF_EMPTY, "sock", "sock_send_length"),
        (REF_CLOCK, "sock", "sock_send_length"),
    ]
    .map(|(program, category, name)| Hook {
        program,
        attach: Attach::Tracepoint { category, name },
    })
    .into_iter()
    .chain([switch_ref, filter_ref])
    {
        ebpf::loader::attach(&mut reference, &hook, None)?;
    }
    let untracked = phase(&m, oha_at(o.rate, secs), ebpf::Hooks::default())?;
    let measured = |program: &str| {
        reference
            .program(program)
            .and_then(|p| p.info().ok())
            .map(|i| ProgramDelta {
                name: program.into(),
                runs: i.run_count(),
                run_ns: i.run_time().as_nanos() as u64,
            })
    };
    let floor = measured(REF_EMPTY);
    let clock_floor = measured(REF_CLOCK);
    let switch_floor = measured(switch_ref.program);
    let filter_floor = measured(filter_ref.program);
    drop(reference);
    drop(m);

    let m = mesh(&o.helper, true)?;
    eprintln!(
        "bench 2/6: {} req/s through both sidecars (target {} forwards/s)",
        o.rate,
        o.rate * 4
    );
    let tracked = phase(&m, oha_at(o.rate, secs), ebpf::Hooks::default())?;
    eprintln!("bench 3/6: the same without the scheduler hooks (--no-sched-split)");
    let unsplit = phase(
        &m,
        oha_at(o.rate, secs),
        ebpf::Hooks {
            set: None,
            sched: ebpf::SchedHooks::Off,
            ..ebpf::Hooks::default()
        },
    )?;
    eprintln!("bench 4/6: unthrottled load (wrk, 32 connections): the highest forward rate here");
    let max = phase(&m, wrk_over(32, secs), ebpf::Hooks::default())?;
    eprintln!("bench 5/6: as 2/6, with the pod edge's classifiers (--pod-edge)");
    let edge = phase(
        &m,
        oha_at(o.rate, secs),
        ebpf::Hooks {
            pod_edge: Some(m.pod_edge()),
            ..ebpf::Hooks::default()
        },
    )?;
    drop(m);
    let (rss_kb, hwm_kb) = (process::rss_kb()?, process::hwm_kb()?);

    // After the memory figures (its loads of the object, one per hook, arm
    // and round, are the harness's, not the profiler's), and with run-time
    // stats off: they add to every call, and a node runs without them.
    drop(_stats);
    eprintln!(
        "bench 6/6: what an untracked process's send and receive pay ({} rounds)",
        o.rounds
    );
    // About a second a round and arm at 5 s phases; shorter with shorter.
    let dispatch = dispatch::measure(20_000 * o.seconds.clamp(1, 10) as usize, o.rounds)?;

    Ok(Figures {
        dispatch,
        floor,
        clock_floor,
        switch_floor,
        filter_floor,
        untracked,
        tracked,
        unsplit,
        max,
        edge,
        rss_kb,
        hwm_kb,
    })
}
