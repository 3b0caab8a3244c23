//! `profiler run` and a Prometheus server as child processes of a test,
//! each ended by its PID when dropped (also when the test fails).
use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::http;

/// A child process ended (SIGTERM, then SIGKILL after 5 s) when dropped.
pub struct Guarded {
    pub child: Child,
}

impl Guarded {
    /// SIGTERM and wait; the exit status and how long it took.
    pub fn terminate(&mut self) -> (Option<std::process::ExitStatus>, Duration) {
        let t0 = Instant::now();
        // SAFETY: the pid is our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(st)) = self.child.try_wait() {
                return (Some(st), t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        (None, t0.elapsed())
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// `profiler run --listen addr` plus `args`, logs to `log`.
pub fn start_daemon(addr: SocketAddr, args: &[&str], log: &std::path::Path) -> Guarded {
    let log = std::fs::File::create(log).expect("daemon log file");
    let child = Command::new(crate::profiler_bin())
        .args(["run", "--listen", &addr.to_string()])
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start profiler run");
    Guarded { child }
}

/// Poll `path` until it answers 200, or panic after `within`.
pub fn wait_ok(addr: SocketAddr, path: &str, within: Duration, what: &str) {
    let t0 = Instant::now();
    loop {
        if let Ok(r) = http::get(addr, path, None)
            && r.status == 200
        {
            return;
        }
        assert!(
            t0.elapsed() < within,
            "{what}: {path} on {addr} not 200 within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Debian's Prometheus on loopback, scraping `target` every second.
pub struct Prometheus {
    pub addr: SocketAddr,
    pub proc: Guarded,
    dir: PathBuf,
}

impl Prometheus {
    /// With `rules` (rule files) loaded, evaluated every second.
    pub fn start(target: SocketAddr, rules: &[PathBuf]) -> Prometheus {
        let bin = "/usr/bin/prometheus";
        assert!(
            std::path::Path::new(bin).exists(),
            "{bin} is missing: `cargo xtask setup` installs Debian's prometheus"
        );
        let dir = std::env::temp_dir().join(format!("profiler-prom-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("prometheus dir");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
                 rule_files: [{}]\n\
                 scrape_configs:\n  - job_name: profiler\n    static_configs:\n      - targets: ['{target}']\n",
                rules
                    .iter()
                    .map(|r| format!("'{}'", r.display()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .expect("prometheus config");
        let addr = http::free_loopback().expect("a free loopback port");
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            addr,
            proc: Guarded { child },
            dir,
        };
        wait_ok(addr, "/-/ready", Duration::from_secs(30), "prometheus");
        p
    }

    /// An instant query's result vector (the API's `data.result`).
    pub fn query(&self, q: &str) -> Vec<serde_json::Value> {
        self.api(&format!("/api/v1/query?query={}", http::encode(q)))["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The `data` of an API answer; panics unless it says success.
    pub fn api(&self, path: &str) -> serde_json::Value {
        let r = http::get(self.addr, path, None).expect("prometheus API");
        let v: serde_json::Value = serde_json::from_str(&r.body)
            .unwrap_or_else(|e| panic!("prometheus answered {} {:?}: {e}", r.status, r.body));
        assert_eq!(v["status"], "success", "{path}: {v}");
        v["data"].clone()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.proc.terminate();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
