//! The node daemon's budgets, measured on `profiler run` as a separate
//! process (its own CPU time and memory, from /proc) with 1, 16 and 64
//! sidecars on the node: one mesh carries the load, the others are idle
//! pods whose sidecars have served a few requests (so every sidecar has
//! its series), and a scraper asks for /metrics every 5 s.
use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::{BoxError, mesh, mesh_of, oha_at, scrape};
use crate::http::{self, PROMETHEUS_ACCEPT};
use crate::{self as testbed, LoadGen, LoadSpec, Mesh, SidecarKind};

pub struct DaemonFigures {
    pub sidecars: usize,
    pub forwards_per_s: f64,
    /// CPU time of the daemon over the measured window, % of one core.
    pub cpu_pct: f64,
    pub rss_kb: u64,
    pub hwm_kb: u64,
    /// Every timed scrape of the window, ms.
    pub scrapes_ms: Vec<f64>,
    pub series: usize,
    pub bytes: usize,
    /// profiler_events_lost_total since launch, by reason.
    pub lost: Vec<(String, f64)>,
    /// From launch: its programs attached (its first /metrics listing
    /// them), and its first forward recorded, with load already flowing.
    pub attached_s: f64,
    pub first_forward_s: f64,
    /// Entries per kernel map and userspace table at the end.
    pub maps: Vec<(String, f64)>,
}

pub const SCRAPE_EVERY: Duration = Duration::from_secs(5);

/// A mesh of delay-proxy sidecars with no load but a few requests.
fn idle_mesh(helper: &Path) -> Result<Mesh, BoxError> {
    mesh_of(helper, true, SidecarKind::DelayProxy)
}

fn trickle(m: &Mesh) -> Result<(), BoxError> {
    let spec = LoadSpec {
        generator: LoadGen::Oha,
        duration: Duration::from_millis(300),
        connections: 1,
        rate: Some(30),
        streams: 1,
    };
    testbed::load::run(&m.client.netns, &m.url(), &spec)?;
    Ok(())
}

/// `profiler run` on a free loopback port, ended by its PID when dropped.
pub(super) struct Daemon {
    child: Child,
    pub(super) addr: SocketAddr,
}

impl Daemon {
    pub(super) fn start(profiler: &Path, selectors: &[String]) -> Result<Daemon, BoxError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let child = Command::new(profiler)
            .args(["run", "--listen", &addr.to_string()])
            .args(selectors)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Daemon { child, addr })
    }

    /// (CPU seconds, RSS kB, peak RSS kB). CPU is the sum of the
    /// threads' on-CPU ns: utime and stime tick at 10 ms, 0.07% of a core
    /// over 15 s, too coarse here.
    fn stat(&self) -> Result<(f64, u64, u64), BoxError> {
        let ns = super::process::threads_on_cpu_ns(self.child.id())?;
        let status = procfs::process::Process::new(self.child.id() as i32)?.status()?;
        Ok((
            ns as f64 * 1e-9,
            status.vmrss.unwrap_or(0),
            status.vmhwm.unwrap_or(0),
        ))
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Scrape until `tracked` sidecars are reported, or fail after 15 s.
    pub(super) fn wait_tracked(&self, tracked: usize) -> Result<(), BoxError> {
        let t0 = Instant::now();
        loop {
            if let Ok(s) = http::get(self.addr, "/metrics", None)
                && s.status == 200
                && scrape::sum_of(&s.body, "profiler_sidecars_tracked") as usize == tracked
            {
                return Ok(());
            }
            if t0.elapsed() > Duration::from_secs(15) {
                return Err(
                    format!("the daemon did not report {tracked} sidecars within 15 s").into(),
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by its PID.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// The pids of a pod's proxy (the processes named like its sidecar).
fn proxy_pids(m: &Mesh) -> Vec<String> {
    m.server
        .pids()
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "nginx")
        })
        .map(|p| p.to_string())
        .collect()
}

/// Start the daemon while a light load (200 req/s) flows through `m`:
/// (the daemon, seconds from launch to its programs attached, to its first
/// forward recorded). Polls /metrics every 20 ms, for `WITHIN` at most,
/// which the load outlasts.
fn launch(profiler: &Path, selectors: &[String], m: &Mesh) -> Result<(Daemon, f64, f64), BoxError> {
    const WITHIN: Duration = Duration::from_secs(10);
    std::thread::scope(|s| {
        let url = m.url();
        let ns = m.client.netns.clone();
        let load = s.spawn(move || {
            let spec = LoadSpec {
                generator: LoadGen::Oha,
                duration: WITHIN + Duration::from_secs(2),
                connections: 2,
                rate: Some(200),
                streams: 1,
            };
            testbed::load::run(&ns, &url, &spec)
        });
        // The load's first requests are under way before the launch.
        std::thread::sleep(Duration::from_millis(500));
        let t0 = Instant::now();
        let d = Daemon::start(profiler, selectors)?;
        let (mut attached, mut first) = (None, None);
        while first.is_none() && t0.elapsed() < WITHIN {
            if let Ok(r) = http::get(d.addr, "/metrics", None)
                && r.status == 200
            {
                let at = t0.elapsed().as_secs_f64();
                if attached.is_none() && scrape::sum_of(&r.body, "profiler_programs_attached") > 0.0
                {
                    attached = Some(at);
                }
                if scrape::sum_of(&r.body, "sidecar_forwards_total") > 0.0 {
                    first = Some(at);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        load.join().map_err(|_| "load thread panicked")??;
        match (attached, first) {
            (Some(a), Some(f)) => Ok((d, a, f)),
            _ => Err(format!(
                "the daemon did not attach and record a forward within {} s of its launch, \
                 with 200 req/s flowing",
                WITHIN.as_secs()
            )
            .into()),
        }
    })
}

/// `helper`: this binary (the pods' processes); `profiler`: the daemon's;
/// `extra`: more `profiler run` flags (e.g. `--cpu-interval 1s`).
pub fn run(
    helper: &Path,
    profiler: &Path,
    counts: &[usize],
    rate: u32,
    seconds: Duration,
    extra: &[String],
) -> Result<Vec<DaemonFigures>, BoxError> {
    let loaded = mesh(helper, true)?;
    let mut idle: Vec<Mesh> = Vec::new();
    let mut out = Vec::new();
    for &n in counts {
        // 1: the loaded mesh's server sidecar alone (selected by pid);
        // otherwise both of its sidecars and (n - 2) / 2 idle meshes.
        let mut selectors: Vec<String> = if n == 1 {
            proxy_pids(&loaded)
                .into_iter()
                .flat_map(|p| ["--pid".to_string(), p])
                .collect()
        } else {
            while 2 + 2 * idle.len() < n {
                idle.push(idle_mesh(helper)?);
            }
            Vec::new()
        };
        selectors.extend_from_slice(extra);
        let tracked = if n == 1 { 1 } else { 2 + 2 * idle.len() };
        // One sidecar sees two forwards per request, two see four: the
        // same forward rate in every row.
        let rate = if n == 1 { rate * 2 } else { rate };
        eprintln!("bench daemon: {tracked} sidecars, {rate} req/s through one mesh");
        let (d, attached_s, first_forward_s) = launch(profiler, &selectors, &loaded)?;
        d.wait_tracked(tracked)?;
        if n > 1 {
            for m in &idle {
                trickle(m)?;
            }
        }
        trickle(&loaded)?;
        let before = http::get(d.addr, "/metrics", Some(PROMETHEUS_ACCEPT))?;
        let (cpu0, _, _) = d.stat()?;
        let t0 = Instant::now();
        let (load, scrapes) = std::thread::scope(|s| {
            let url = loaded.url();
            let ns = loaded.client.netns.clone();
            let spec = oha_at(rate, seconds);
            let load = s.spawn(move || testbed::load::run(&ns, &url, &spec));
            let mut scrapes = Vec::new();
            while t0.elapsed() < seconds {
                if let Ok(sc) = http::get(d.addr, "/metrics", Some(PROMETHEUS_ACCEPT)) {
                    scrapes.push(sc.took.as_secs_f64() * 1e3);
                }
                let next = SCRAPE_EVERY * scrapes.len() as u32;
                std::thread::sleep(next.saturating_sub(t0.elapsed()).min(seconds));
            }
            (load.join(), scrapes)
        });
        let wall = t0.elapsed().as_secs_f64();
        let (cpu1, rss_kb, hwm_kb) = d.stat()?;
        load.map_err(|_| "load thread panicked")??;
        let after = http::get(d.addr, "/metrics", Some(PROMETHEUS_ACCEPT))?;
        let fwd = |t: &str| scrape::sum_of(t, "sidecar_forwards_total");
        out.push(DaemonFigures {
            sidecars: tracked,
            forwards_per_s: (fwd(&after.body) - fwd(&before.body)) / wall,
            cpu_pct: 100.0 * (cpu1 - cpu0) / wall,
            rss_kb,
            hwm_kb,
            scrapes_ms: scrapes,
            series: scrape::series(&after.body),
            bytes: after.body.len(),
            lost: scrape::by_label(&after.body, "profiler_events_lost_total", "reason"),
            attached_s,
            first_forward_s,
            maps: scrape::by_label(&after.body, "profiler_map_entries", "map"),
        });
    }
    Ok(out)
}

/// "ring_full 3, sched_resync 7", the reasons that counted; "none".
pub fn by_reason(lost: &[(String, f64)]) -> String {
    let counted: Vec<String> = lost
        .iter()
        .filter(|(_, n)| *n > 0.0)
        .map(|(r, n)| format!("{r} {n:.0}"))
        .collect();
    if counted.is_empty() {
        "none".into()
    } else {
        counted.join(", ")
    }
}

pub fn report(figs: &[DaemonFigures]) -> String {
    let mut out = String::from(
        "daemon (`profiler run` as its own process; a scrape every 5 s):\n\
         sidecars  forwards/s  CPU % core  RSS MB  peak MB  scrape ms (max)  series   bytes  lost  attached s  first forward s\n",
    );
    for f in figs {
        let max = f.scrapes_ms.iter().copied().fold(0.0, f64::max);
        out.push_str(&format!(
            "{:>8}  {:>10.0}  {:>10.2}  {:>6.1}  {:>7.1}  {:>15.1}  {:>6}  {:>6}  {:>4}  {:>10.2}  {:>15.2}\n",
            f.sidecars,
            f.forwards_per_s,
            f.cpu_pct,
            f.rss_kb as f64 / 1024.0,
            f.hwm_kb as f64 / 1024.0,
            max,
            f.series,
            f.bytes,
            f.lost.iter().map(|(_, n)| n).sum::<f64>(),
            f.attached_s,
            f.first_forward_s
        ));
    }
    for f in figs {
        let maps: Vec<String> = f.maps.iter().map(|(m, n)| format!("{m} {n:.0}")).collect();
        out.push_str(&format!(
            "map entries at {} sidecars: {}\n",
            f.sidecars,
            maps.join(", ")
        ));
        out.push_str(&format!(
            "events lost at {} sidecars, by reason: {}\n",
            f.sidecars,
            by_reason(&f.lost)
        ));
    }
    out.push_str(
        "targets: CPU <= 1% of a core at 20k forwards/s, RSS <= 48 MB at 64 sidecars, a scrape <= 50 ms\n",
    );
    out
}
