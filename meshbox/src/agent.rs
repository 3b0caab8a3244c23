//! The sidecar's parent process, shaped like Istio's pilot-agent (same
//! process name, same environment), so discovery sees the same tree.
use std::{
    process::Command,
    sync::atomic::{AtomicI32, Ordering},
};

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe; the pid is our own child.
        unsafe { libc::kill(pid, sig) };
    }
}

pub fn run(command: &[String]) -> std::io::Result<()> {
    let name = c"pilot-agent";
    // SAFETY: PR_SET_NAME with a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
    let (prog, args) = command
        .split_first()
        .ok_or_else(|| std::io::Error::other("agent: no command"))?;
    // SAFETY: the handler only reads an atomic and calls kill.
    unsafe {
        libc::signal(libc::SIGTERM, forward as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, forward as *const () as libc::sighandler_t);
    }
    // A proxy that crashes (killed by a signal other than the ones the agent
    // forwards) is started again, as pilot-agent and the kubelet do: the
    // same pod with a new proxy process. Bounded, so a proxy that cannot
    // start does not spin.
    let mut restarts = 0;
    loop {
        let mut child = Command::new(prog).args(args).spawn()?;
        CHILD.store(child.id() as i32, Ordering::SeqCst);
        let status = child.wait()?;
        use std::os::unix::process::ExitStatusExt;
        let crashed = matches!(
            status.signal(),
            Some(s) if s != libc::SIGTERM && s != libc::SIGINT
        );
        if crashed && restarts < MAX_RESTARTS {
            restarts += 1;
            std::thread::sleep(std::time::Duration::from_millis(100));
            continue;
        }
        return if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!("proxy exited: {status}")))
        };
    }
}

const MAX_RESTARTS: u32 = 5;
