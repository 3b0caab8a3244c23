//! The profiler's own CPU time and memory, from /proc/self.
use procfs::process::Process;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// User + system CPU seconds of this process (all threads) so far.
pub fn cpu_seconds() -> Result<f64, BoxError> {
    let stat = Process::myself()?.stat()?;
    Ok((stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64)
}

pub fn rss_kb() -> Result<u64, BoxError> {
    Ok(Process::myself()?.status()?.vmrss.unwrap_or(0))
}

/// Peak resident set size.
pub fn hwm_kb() -> Result<u64, BoxError> {
    Ok(Process::myself()?.status()?.vmhwm.unwrap_or(0))
}
