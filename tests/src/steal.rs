//! Time the hypervisor took this VM's CPUs (steal), summed over CPUs, from
//! /proc/stat: what the profiler's on-CPU clock counts and a thread's CPU
//! time leaves out, named in an on-CPU check's failure so a busy host is
//! told from a wrong split.
use std::sync::atomic::{AtomicU64, Ordering};

/// Steal over all CPUs since boot, in ms (None: not readable).
pub fn total_ms() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks = parse_total_ticks(&text)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks as f64 * 1000.0 / hz as f64)
}

/// The `cpu` line's eighth value (steal), in ticks.
pub fn parse_total_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    line.split_whitespace().nth(8)?.parse().ok()
}

/// Steal since `before_ms` (a [`total_ms`] reading), in ms (None: either
/// reading failed).
pub fn since(before_ms: Option<f64>) -> Option<f64> {
    Some(total_ms()? - before_ms?)
}

/// Steal during the last capture, in ms (f64 bits; NaN: none measured).
static LAST_CAPTURE: AtomicU64 = AtomicU64::new(f64::NAN.to_bits());

/// Keep the steal measured over a capture that began at `before_ms`.
pub fn record_capture(before_ms: Option<f64>) {
    let during = since(before_ms).unwrap_or(f64::NAN);
    LAST_CAPTURE.store(during.to_bits(), Ordering::Relaxed);
}

/// The steal of the last capture, as a failure message's clause.
pub fn last_capture_said() -> String {
    let ms = f64::from_bits(LAST_CAPTURE.load(Ordering::Relaxed));
    if ms.is_nan() {
        "the host's steal over the capture was not measured".into()
    } else {
        format!(
            "the host took {ms:.0} ms of this machine's CPUs over the capture (steal, /proc/stat), \
             which our on-CPU counts and the thread's CPU time does not"
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn steal_is_the_cpu_lines_eighth_value() {
        let stat = "cpu  10 0 20 300 4 0 1 77 0 0\ncpu0 5 0 10 150 2 0 1 40 0 0\n";
        assert_eq!(super::parse_total_ticks(stat), Some(77));
        assert_eq!(super::parse_total_ticks("intr 1 2\n"), None);
    }
}
