//! The ground-truth proxy on loopback, with nothing around it: the app and
//! the delay fixture as processes of their own (so the profiler tracks only
//! the proxy), the fixture listening on 15006 and forwarding to the app.
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
    delay_proxy::{self, ProxyMode, Stats},
    http::free_loopback,
    intercept::INBOUND_PORT,
};

pub struct Fixture {
    app: Child,
    proxy: Child,
    stats: PathBuf,
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

impl Fixture {
    /// Start the app and the fixture (as `meshbox testbed ...`) in `mode`
    /// (`delay`: the threads mode's hold), and wait until both listen.
    pub fn start(meshbox: &Path, mode: ProxyMode, delay: Duration) -> Result<Fixture, String> {
        if TcpStream::connect_timeout(&inbound(), Duration::from_millis(200)).is_ok() {
            return Err(format!(
                "port {INBOUND_PORT} on loopback is taken by another process; the fixture needs it"
            ));
        }
        let dir = std::env::temp_dir().join(format!("meshbox-matrix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let stats = dir.join("proxy-stats.json");
        let app_addr = free_loopback().map_err(|e| format!("finding a free port: {e}"))?;
        let spawn = |args: Vec<String>, what: &str, cpu: Option<usize>| {
            let mut cmd = Command::new(meshbox);
            cmd.arg("testbed")
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null());
            if let Some(cpu) = cpu {
                // SAFETY: sched_setaffinity is async-signal-safe; the set is
                // built before fork.
                let set = cpu_set(cpu);
                unsafe {
                    cmd.pre_exec(move || {
                        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
            }
            cmd.spawn().map_err(|e| format!("starting the {what}: {e}"))
        };
        let cpus = split_cpus();
        let mut app = spawn(
            vec!["app".into(), "--port".into(), app_addr.port().to_string()],
            "app",
            cpus.map(|(_, rest)| rest),
        )?;
        let mut args = vec![
            "delay-proxy".to_string(),
            "--inbound-to".into(),
            app_addr.to_string(),
            "--outbound-to".into(),
            app_addr.to_string(),
            "--delay-us".into(),
            delay.as_micros().to_string(),
            "--stats".into(),
            stats.display().to_string(),
        ];
        args.extend(mode.args());
        let proxy = match spawn(args, "delay fixture", cpus.map(|(proxy, _)| proxy)) {
            Ok(p) => p,
            Err(e) => {
                let _ = app.kill();
                let _ = app.wait();
                return Err(e);
            }
        };
        let mut f = Fixture {
            app,
            proxy,
            stats,
            dir,
        };
        wait_listening(app_addr, &mut f.app, "the app")?;
        wait_listening(inbound(), &mut f.proxy, "the delay fixture")?;
        Ok(f)
    }

    pub fn proxy_pid(&self) -> u32 {
        self.proxy.id()
    }

    /// The fixture's own account (it publishes every 100 ms).
    pub fn stats(&self) -> Result<Stats, String> {
        std::thread::sleep(Duration::from_millis(300));
        delay_proxy::read_stats(&self.stats).map_err(|e| {
            format!(
                "reading the fixture's account {}: {e}",
                self.stats.display()
            )
        })
    }
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
