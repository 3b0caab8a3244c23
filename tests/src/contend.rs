//! Contention the tests create on purpose, and undo: a real-time CPU hog
//! pinned to one CPU (src/bin/cpu-hog.rs), and CPU affinity for this
//! process's threads and for processes the tests started.
use std::{thread, time::Duration};

/// A CPU hog pinned to one CPU (see src/bin/cpu-hog.rs), ended by PID when dropped.
pub struct Hogs(Vec<std::process::Child>);

impl Hogs {
    /// Real-time bursts of `spin_ms` every `spin_ms + sleep_ms` (plus up
    /// to `jitter_ms`): a proxy thread woken during a burst waits for its
    /// end, one running is preempted for it.
    pub fn start(cpu: usize, spin_ms: u64, sleep_ms: u64, jitter_ms: u64) -> Hogs {
        let child = std::process::Command::new(super::built_bin("cpu-hog"))
            .args([cpu as u64, spin_ms, sleep_ms, jitter_ms].map(|v| v.to_string()))
            .spawn()
            .expect("start the CPU hog");
        Hogs(vec![child])
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            // Bounded: a test never hangs on its own helper.
            for _ in 0..500 {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// This thread (and what it starts) on one CPU until dropped.
pub struct PinSelf(libc::cpu_set_t);

impl PinSelf {
    pub fn to(cpu: usize) -> PinSelf {
        // SAFETY: plain cpu_set_t values for the calling thread (tid 0).
        unsafe {
            let mut old: libc::cpu_set_t = std::mem::zeroed();
            libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut old);
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
            PinSelf(old)
        }
    }
}

impl Drop for PinSelf {
    fn drop(&mut self) {
        // SAFETY: restores the set read in to().
        unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &self.0) };
    }
}

/// Pin every thread of `pids` to `cpu`.
pub fn pin(pids: &[u32], cpu: usize) {
    for pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let tid: i32 = t.file_name().to_string_lossy().parse().expect("tid");
            // SAFETY: a zeroed cpu_set_t with one bit set, for a thread of a
            // process this test started.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                libc::sched_setaffinity(tid, size_of::<libc::cpu_set_t>(), &set);
            }
        }
    }
}
