//! Working in the node's network namespace for a while. A DaemonSet with
//! hostNetwork is already there and enters nothing (no CAP_SYS_ADMIN); a
//! node that is itself a namespace (the test mesh's) is entered by the
//! calling thread only, and left when the guard drops.
use std::{
    fs::File,
    io,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

/// The calling thread is in the node's namespace while this lives.
pub struct Entered {
    back: Option<File>,
}

/// Enter `node` (None: the namespace the profiler runs in, nothing to do).
pub fn enter(node: Option<&Path>) -> io::Result<Entered> {
    let Some(node) = node else {
        return Ok(Entered { back: None });
    };
    let back = File::open("/proc/thread-self/ns/net")?;
    let target = File::open(node).map_err(|e| with_path(e, node))?;
    set(&target).map_err(|e| with_path(e, node))?;
    Ok(Entered { back: Some(back) })
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", PathBuf::from(path).display()))
}

fn set(ns: &File) -> io::Result<()> {
    // SAFETY: a valid fd of a network namespace; affects this thread only.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for Entered {
    fn drop(&mut self) {
        if let Some(back) = &self.back
            && let Err(e) = set(back)
        {
            // A thread left in another namespace would make later socket
            // work of this thread wrong in ways hard to trace: stop here.
            panic!("returning to the profiler's own network namespace: {e}");
        }
    }
}
