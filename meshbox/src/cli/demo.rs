//! `meshbox demo`: the mesh in a box, loaded and profiled, then torn down
//! (also on Ctrl-C and on error).
use std::{process::ExitCode, time::Duration};

use crate::{LoadGen, LoadSpec, Mesh, MeshConfig, SidecarKind};

#[derive(clap::Args)]
pub struct Args {
    /// Sidecar proxy to run in each pod.
    #[arg(long, value_enum, default_value_t = SidecarKind::Nginx)]
    sidecar: SidecarKind,
    /// Load generator.
    #[arg(long, value_enum, default_value_t = LoadGen::Oha)]
    load: LoadGen,
    /// How long to drive load, in seconds.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Requests per second (oha).
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// Mutual TLS between the sidecars, as Istio's pod-to-pod leg.
    #[arg(long)]
    mtls: bool,
}

pub fn run(a: Args) -> ExitCode {
    if let Err(msg) = super::require_root() {
        eprintln!("error: {msg}");
        return ExitCode::from(super::EXIT_USAGE);
    }
    match demo(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn demo(a: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let helper = std::env::current_exe()?;
    profiler::signals::install();
    let spec = LoadSpec {
        generator: a.load,
        duration: Duration::from_secs(a.seconds),
        connections: 4,
        rate: Some(a.rate),
        // Several streams per connection only where the mesh speaks HTTP/2
        // (oha would switch to HTTP/2 with more than one).
        streams: if a.load == LoadGen::H2load {
            crate::load::DEFAULT_STREAMS
        } else {
            1
        },
    };
    let cfg = MeshConfig {
        sidecar: a.sidecar,
        intercept: true,
        app_delay: Duration::from_micros(200),
        app_size: 512,
        proxy_delay: Duration::ZERO,
        proxy_mode: crate::delay_proxy::ProxyMode::Threads,
        app_response: crate::app::AppResponse::OneWrite,
        mtls: a.mtls,
        // h2load speaks only HTTP/2: it gets an HTTP/2 mesh (haproxy sidecars).
        http2: a.load == LoadGen::H2load,
        helper,
    };
    // The A/B's baseline first: the same pods and load, no interception,
    // under the same profiler, so that its cost to the client's and the
    // app's own calls is in both arms (README: the mesh in a box).
    println!("demo: baseline, the same two pods without interception");
    let baseline = {
        let mut plain = Mesh::up(&MeshConfig {
            intercept: false,
            ..cfg.clone()
        })?;
        let (r, snap) = profile(&plain, &spec, a.seconds, false);
        plain.teardown()?;
        r?.ok_or_else(|| {
            format!(
                "profiling could not start, so no baseline load was sent: {}",
                snap.err().map(|e| e.to_string()).unwrap_or_default()
            )
        })?
    };
    println!(
        "demo: baseline completed {} requests ({}); client latency p50 {:.0} us",
        baseline.completed,
        baseline.errors_explained(),
        baseline.p50_us
    );
    if profiler::signals::interrupted() {
        return Err("interrupted; the mesh was torn down".into());
    }
    println!(
        "demo: building a two-pod mesh with {:?} sidecars",
        a.sidecar
    );
    let mut mesh = Mesh::up(&cfg)?;
    println!(
        "demo: client pod {} ({}) -> server pod {} ({}), {}",
        mesh.client.name,
        mesh.client.ip,
        mesh.server.name,
        mesh.server.ip,
        mesh.url()
    );
    let (result, snap) = profile(&mesh, &spec, a.seconds, true);
    if profiler::signals::interrupted() {
        mesh.teardown()?;
        return Err("interrupted; the mesh was torn down".into());
    }
    // None: profiling could not start, so no load was sent.
    let result = result?;
    if let Some(result) = &result {
        println!(
            "demo: {:?} completed {} requests ({}); client latency p50 {:.0} us, p90 {:.0} us, p99 {:.0} us",
            a.load,
            result.completed,
            result.errors_explained(),
            result.p50_us,
            result.p90_us,
            result.p99_us
        );
    }
    match snap {
        Ok(snap) => {
            print!("\n{}", snap.to_table());
            if let Some(result) = &result {
                let account = crate::ab::account(&snap);
                println!(
                    "\ndemo: {}",
                    crate::ab::summary(baseline.p50_us, result.p50_us, &account)
                );
                println!(
                    "demo: {}",
                    crate::ab::means(baseline.mean_us, result.mean_us, &account)
                );
            }
        }
        Err(e) => eprintln!("demo: profiling failed: {e}"),
    }
    mesh.teardown()?;
    println!("demo: mesh torn down");
    Ok(())
}

/// Profiles `mesh` while `spec`'s load runs: the load starts once the hooks
/// are in and the sidecars known. The load's result is None when profiling
/// could not start (no load was sent then).
fn profile(
    mesh: &Mesh,
    spec: &LoadSpec,
    seconds: u64,
    progress: bool,
) -> (
    Result<Option<crate::load::LoadResult>, crate::TestbedError>,
    Result<profiler::report::Snapshot, profiler::snapshot::SnapshotError>,
) {
    let opts = profiler::snapshot::Options {
        duration: Duration::from_secs(seconds) + Duration::from_secs(1),
        selectors: vec![profiler::discovery::Selector::Istio],
        excluded_ports: profiler::classify::DEFAULT_EXCLUDED_PORTS.to_vec(),
        progress,
        hooks: profiler::ebpf::Hooks {
            pod_edge: Some(mesh.pod_edge()),
            ..profiler::ebpf::Hooks::default()
        },
    };
    match profiler::snapshot::start(&opts) {
        Err(e) => (Ok(None), Err(e)),
        Ok(mut c) => std::thread::scope(|s| {
            let url = mesh.url();
            let ns = mesh.client.netns.clone();
            let spec = spec.clone();
            let load = s.spawn(move || crate::load::run(&ns, &url, &spec));
            let snap = profiler::snapshot::capture(&mut c, &opts)
                .map(|secs| profiler::report::Snapshot::from_session(&c.session, secs));
            let result = load.join().unwrap_or_else(|_| {
                Err(crate::TestbedError::NotReady("load thread panicked".into()))
            });
            (result.map(Some), snap)
        }),
    }
}
