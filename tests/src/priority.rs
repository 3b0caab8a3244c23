//! A thread's CPU priority, raised for as long as a guard lives.
//!
//! A test that drains the rings while wrk saturates both CPUs competes with
//! wrk and the sidecars for them: a drain thread at the default weight was
//! kept off the CPU for longer than a ring lasts (about 200 ms of that load).

/// The calling thread's nice value, restored when dropped.
pub struct Raised {
    tid: libc::id_t,
    old: libc::c_int,
}

/// Run the calling thread at nice `nice` (negative is a larger share of the
/// CPU; needs root) until the guard drops.
pub fn raise_this_thread(nice: libc::c_int) -> Raised {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() } as libc::id_t;
    // getpriority returns -1 both as a value and on error: clear errno to tell.
    // SAFETY: errno is this thread's; the calls take plain integers.
    let old = unsafe {
        *libc::__errno_location() = 0;
        let old = libc::getpriority(libc::PRIO_PROCESS, tid);
        assert!(
            old != -1 || *libc::__errno_location() == 0,
            "getpriority of thread {tid}: {}",
            std::io::Error::last_os_error()
        );
        old
    };
    set(tid, nice);
    Raised { tid, old }
}

fn set(tid: libc::id_t, nice: libc::c_int) {
    // SAFETY: plain integers; PRIO_PROCESS with a tid names one thread.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) };
    assert_eq!(
        rc,
        0,
        "setpriority({tid}, {nice}): {} (needs root)",
        std::io::Error::last_os_error()
    );
}

impl Drop for Raised {
    fn drop(&mut self) {
        set(self.tid, self.old);
    }
}
