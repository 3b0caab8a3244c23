//! Starting a pod's process: in the pod's network namespace, in its container
//! cgroups, as a given user, with a given environment. The child moves itself
//! before exec, so it never runs a single instruction outside the pod.
use std::{
    fs::File,
    os::{fd::AsRawFd, unix::process::CommandExt},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::TestbedError;

pub struct Spec {
    pub netns: String,
    pub cgroup_procs: Vec<PathBuf>,
    pub uid: Option<u32>,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
}

pub fn spawn(mut cmd: Command, spec: &Spec) -> Result<Child, TestbedError> {
    let io = |what: String| move |e: std::io::Error| TestbedError::Io { what, source: e };
    let ns_path = format!("/run/netns/{}", spec.netns);
    let ns = File::open(&ns_path).map_err(io(format!("opening {ns_path}")))?;
    let procs: Vec<File> = spec
        .cgroup_procs
        .iter()
        .map(|p| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .map_err(io(format!("opening {}", p.display())))
        })
        .collect::<Result<_, _>>()?;
    let log = File::create(&spec.log).map_err(io(format!("creating {}", spec.log.display())))?;
    let log2 = log.try_clone().map_err(io("dup log".into()))?;
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    let uid = spec.uid;
    let ns_fd = ns.as_raw_fd();
    let proc_fds: Vec<i32> = procs.iter().map(|f| f.as_raw_fd()).collect();
    // SAFETY: the closure only makes async-signal-safe calls (setns, getpid,
    // write, setgid, setuid) on fds opened before fork, formatting the pid
    // into a stack buffer.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(ns_fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut buf = [0u8; 12];
            let mut n = libc::getpid() as u32;
            let mut i = buf.len();
            loop {
                i -= 1;
                buf[i] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            for fd in &proc_fds {
                let len = buf.len() - i;
                if libc::write(*fd, buf[i..].as_ptr().cast(), len) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some(uid) = uid
                && (libc::setgid(uid) != 0 || libc::setuid(uid) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| TestbedError::Command {
        cmd: format!("{cmd:?}"),
        detail: e.to_string(),
    })?;
    drop(ns);
    drop(procs);
    Ok(child)
}

/// Wait until a TCP port accepts connections inside a namespace.
pub fn wait_listening(netns: &str, port: u16, timeout: Duration) -> Result<(), TestbedError> {
    let deadline = Instant::now() + timeout;
    loop {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                netns,
                "ss",
                "-Hltn",
                &format!("sport = :{port}"),
            ])
            .output();
        if let Ok(o) = out
            && !o.stdout.is_empty()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(TestbedError::NotReady(format!(
                "nothing listens on port {port} in {netns} after {timeout:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// End a process we started: SIGTERM, then SIGKILL after a grace period.
pub fn stop(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    // SAFETY: signalling a child we own by its PID.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}
