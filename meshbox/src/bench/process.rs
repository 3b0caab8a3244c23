//! CPU time and memory: the profiler's own, and another process's.
use procfs::process::Process;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// User + system CPU seconds of this process (all threads) so far, in ns
/// resolution (/proc's clock ticks are 10 ms: 0.2% of a 5 s phase).
pub fn cpu_seconds() -> Result<f64, BoxError> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes one timespec we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } != 0 {
        return Err(format!(
            "clock_gettime(CLOCK_PROCESS_CPUTIME_ID): {}",
            std::io::Error::last_os_error()
        )
        .into());
    }
    Ok(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
}

/// On-CPU ns so far of process `pid`'s threads, from
/// /proc/<pid>/task/*/schedstat (utime and stime tick at 10 ms, too coarse
/// for a few seconds of a process using a fraction of a core).
pub fn threads_on_cpu_ns(pid: u32) -> Result<u64, BoxError> {
    Ok(Process::new(pid as i32)?
        .tasks()?
        .flatten()
        .filter_map(|t| t.schedstat().ok())
        .map(|s| s.sum_exec_runtime)
        .sum())
}

pub fn rss_kb() -> Result<u64, BoxError> {
    Ok(Process::myself()?.status()?.vmrss.unwrap_or(0))
}

/// Peak resident set size.
pub fn hwm_kb() -> Result<u64, BoxError> {
    Ok(Process::myself()?.status()?.vmhwm.unwrap_or(0))
}
