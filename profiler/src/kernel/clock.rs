//! CLOCK_MONOTONIC in ns: the clock every kernel timestamp is read from
//! (bpf_ktime_get_ns), so userspace can compare its own time with them.
pub fn monotonic_ns() -> u64 {
    now_ns(libc::CLOCK_MONOTONIC)
}

/// Now in the unit and on the clock of /proc/<pid>/stat's start time:
/// clock ticks (USER_HZ) since boot, suspend included (CLOCK_BOOTTIME).
pub fn boot_ticks() -> u64 {
    now_ns(libc::CLOCK_BOOTTIME) / (1_000_000_000 / ticks_per_second())
}

/// USER_HZ, the unit of /proc's tick counts.
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as u64 } else { 100 }
}

/// `clock` now, in ns; CLOCK_MONOTONIC and CLOCK_BOOTTIME always exist
/// (BOOTTIME since 2.6.39).
fn now_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
