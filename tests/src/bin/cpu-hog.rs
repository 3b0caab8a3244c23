//! A CPU hog for the contention tests: pinned to one CPU at real-time
//! priority, it spins for `spin_ms` then sleeps for `sleep_ms` (plus up to
//! `jitter_ms` more, drawn each time, so that its bursts do not lock onto
//! the phase of a load that they delay), forever (the test ends it by
//! PID). While it spins, nothing else runs there.
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| {
            a.parse()
                .expect("usage: cpu-hog CPU SPIN_MS SLEEP_MS [JITTER_MS]")
        })
        .collect();
    let (cpu, spin_ms, sleep_ms, jitter_ms) = match args[..] {
        [c, s, z] => (c, s, z, 0),
        [c, s, z, j] => (c, s, z, j),
        _ => panic!("usage: cpu-hog CPU SPIN_MS SLEEP_MS [JITTER_MS]"),
    };
    // SAFETY: plain syscalls on this process with valid arguments.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set),
            0,
            "affinity"
        );
        let param = libc::sched_param { sched_priority: 1 };
        assert_eq!(
            libc::sched_setscheduler(0, libc::SCHED_FIFO, &param),
            0,
            "SCHED_FIFO"
        );
    }
    loop {
        let until = Instant::now() + Duration::from_millis(spin_ms);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        // The clock's low bits are random enough to spread the phase.
        let jitter_us = match jitter_ms * 1000 {
            0 => 0,
            span => nanos() % span,
        };
        std::thread::sleep(Duration::from_millis(sleep_ms) + Duration::from_micros(jitter_us));
    }
}

fn nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()))
}
