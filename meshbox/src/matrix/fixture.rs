//! A proxy on loopback, with nothing around it: the app and the proxy (the
//! ground-truth delay fixture, or haproxy) as processes of their own (so the
//! profiler tracks only the proxy), the proxy listening on 15006 and
//! forwarding to the app.
//! Needs no namespaces, iptables or cgroups, so it runs in a bare VM.
//!
//! With two CPUs or more the proxy runs alone on CPU 0 and everything else
//! (app, clients, profiler) on CPU 1: a task the proxy wakes then cannot
//! preempt it between the kernel's clock (inside its syscall) and its own
//! (after the syscall returns). Under software emulation such a preemption
//! runs the woken task's whole turn in between, hundreds of µs that the
//! fixture would count and the profiler rightly would not.
use std::{
    net::{SocketAddr, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    SidecarKind,
    delay_proxy::{self, ProxyMode, Stats},
    http::free_loopback,
    intercept::INBOUND_PORT,
    sidecar::{self, Routes},
};

pub struct Fixture {
    app: Child,
    proxy: Child,
    stats: Option<PathBuf>,
    dir: PathBuf,
}

/// Where clients connect: the fixture's inbound listener.
pub fn inbound() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], INBOUND_PORT))
}

fn wait_listening(addr: SocketAddr, child: &mut Child, what: &str) -> Result<(), String> {
    // A slow machine (a VM under software emulation) takes seconds to exec.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "{what} exited ({status}) before listening on {addr}"
            ));
        }
        if Instant::now() > deadline {
            return Err(format!("{what} did not listen on {addr} within 20 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The proxy between the clients and the app.
#[derive(Clone, Copy, Debug)]
pub enum Proxy {
    /// The delay fixture, which keeps its own account (`delay`: the
    /// threads mode's hold).
    Fixture { mode: ProxyMode, delay: Duration },
    /// Debian's haproxy (HTTP mode, keepalive to the app): a real
    /// non-blocking event-loop proxy, with no account of its own.
    Haproxy,
}

impl Fixture {
    /// Start the app (as `meshbox testbed app`) and `proxy`, and wait until
    /// both listen.
    pub fn start(meshbox: &Path, proxy: Proxy) -> Result<Fixture, String> {
        if TcpStream::connect_timeout(&inbound(), Duration::from_millis(200)).is_ok() {
            return Err(format!(
                "port {INBOUND_PORT} on loopback is taken by another process; the fixture needs it"
            ));
        }
        let dir = std::env::temp_dir().join(format!("meshbox-matrix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let app_addr = free_loopback().map_err(|e| format!("finding a free port: {e}"))?;
        let cpus = split_cpus();
        let mut app = Command::new(meshbox);
        app.args(["testbed", "app", "--port", &app_addr.port().to_string()]);
        let mut app = spawn(app, "app", cpus.map(|(_, rest)| rest))?;
        let routes = Routes {
            inbound: app_addr,
            outbound: app_addr,
            tls: None,
            peer_identity: String::new(),
            http2: false,
        };
        let (kind, delay, mode) = match proxy {
            Proxy::Fixture { mode, delay } => (SidecarKind::DelayProxy, delay, Some(mode)),
            Proxy::Haproxy => (SidecarKind::Haproxy, Duration::ZERO, None),
        };
        let started = sidecar::command(kind, &dir, &routes, meshbox, delay)
            .map_err(|e| format!("configuring {kind:?}: {e}"))
            .and_then(|mut cmd| {
                if let Some(mode) = mode {
                    cmd.args(mode.args());
                }
                spawn(cmd, kind.comm(), cpus.map(|(proxy, _)| proxy))
            });
        let proxy = match started {
            Ok(p) => p,
            Err(e) => {
                let _ = app.kill();
                let _ = app.wait();
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let mut f = Fixture {
            app,
            proxy,
            stats: mode.map(|_| dir.join("delay-proxy-stats.json")),
            dir,
        };
        wait_listening(app_addr, &mut f.app, "the app")?;
        wait_listening(inbound(), &mut f.proxy, "the proxy")?;
        Ok(f)
    }

    pub fn proxy_pid(&self) -> u32 {
        self.proxy.id()
    }

    /// The fixture's own account (it publishes every 100 ms); None for a
    /// proxy that keeps none.
    pub fn stats(&self) -> Result<Option<Stats>, String> {
        let Some(path) = &self.stats else {
            return Ok(None);
        };
        std::thread::sleep(Duration::from_millis(300));
        delay_proxy::read_stats(path)
            .map(Some)
            .map_err(|e| format!("reading the fixture's account {}: {e}", path.display()))
    }
}

/// Start `cmd` quietly, on `cpu` when given.
fn spawn(mut cmd: Command, what: &str, cpu: Option<usize>) -> Result<Child, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(cpu) = cpu {
        let set = cpu_set(cpu);
        // SAFETY: sched_setaffinity is async-signal-safe; the set is built
        // before fork.
        unsafe {
            cmd.pre_exec(move || {
                if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd.spawn()
        .map_err(|e| format!("starting the {what} ({:?}): {e}", cmd.get_program()))
}

fn cpu_set(cpu: usize) -> libc::cpu_set_t {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes one bit
    // of it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        set
    }
}

/// (the proxy's CPU, everyone else's), when there are two.
fn split_cpus() -> Option<(usize, usize)> {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    (n >= 2).then_some((0, 1))
}

/// The calling thread (and the threads it starts) off the proxy's CPU
/// until dropped.
pub struct OffProxyCpu(Option<libc::cpu_set_t>);

impl OffProxyCpu {
    pub fn enter() -> OffProxyCpu {
        let Some((_, rest)) = split_cpus() else {
            return OffProxyCpu(None);
        };
        // SAFETY: plain cpu_set_t values for the calling thread (tid 0).
        unsafe {
            let mut old: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut old) != 0 {
                return OffProxyCpu(None);
            }
            let set = cpu_set(rest);
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
            OffProxyCpu(Some(old))
        }
    }
}

impl Drop for OffProxyCpu {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            // SAFETY: restores the set read in enter().
            unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), old) };
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Only the processes started here, by their handles.
        for c in [&mut self.proxy, &mut self.app] {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
