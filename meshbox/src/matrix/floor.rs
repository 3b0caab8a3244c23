//! How far a user-space clock around a syscall sits from the kernel's
//! clock inside it, on this machine. The fixture stamps a chunk after its
//! read() returns and after its write() returns; the profiler stamps inside
//! both syscalls. Their accounts of the same chunk can therefore differ by
//! up to one read's return path and one write's tail (its loopback
//! delivery, return to user, and a preemption by the reader it woke). On
//! real hardware that is a few µs; under software emulation, hundreds.
//! Measured as what a proxy sees: a blocking read() of data already
//! queued, and a write() to a loopback socket whose peer blocks in read.
use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    time::Duration,
};

use serde::Serialize;

use crate::delay_proxy::monotonic_ns;

#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Floor {
    pub read_p50_us: f64,
    pub read_p99_us: f64,
    pub write_p50_us: f64,
    pub write_p99_us: f64,
}

impl Floor {
    /// The most one forward's two clocks can be displaced by, at the
    /// median and at the tail.
    pub fn p50_us(&self) -> f64 {
        self.read_p50_us.max(self.write_p50_us)
    }

    pub fn p99_us(&self) -> f64 {
        self.read_p99_us.max(self.write_p99_us)
    }
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// `rounds` round trips through an echo thread on loopback, each timing
/// the write of a 128-byte chunk and the read of the echo, both from the
/// caller's side of the syscall.
pub fn measure(rounds: usize) -> std::io::Result<Floor> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; 128];
        loop {
            match s.read(&mut buf)? {
                0 => return Ok(()),
                n => s.write_all(&buf[..n])?,
            }
        }
    });
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let chunk = [7u8; 128];
    let mut back = [0u8; 128];
    let (mut writes, mut reads) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for _ in 0..rounds {
        let t0 = monotonic_ns();
        s.write_all(&chunk)?;
        writes.push(monotonic_ns() - t0);
        // Let the echo land first: the read then only returns data queued.
        std::thread::sleep(Duration::from_micros(200));
        let t1 = monotonic_ns();
        s.read_exact(&mut back)?;
        reads.push(monotonic_ns() - t1);
    }
    drop(s);
    echo.join()
        .map_err(|_| std::io::Error::other("the echo thread panicked"))??;
    writes.sort_unstable();
    reads.sort_unstable();
    Ok(Floor {
        read_p50_us: percentile(&reads, 0.5),
        read_p99_us: percentile(&reads, 0.99),
        write_p50_us: percentile(&writes, 0.5),
        write_p99_us: percentile(&writes, 0.99),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_sorted_ns_in_us() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile(&v, 0.5), 51.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn a_loopback_floor_is_measured() {
        let f = measure(50).expect("loopback round trips");
        assert!(f.write_p50_us > 0.0 && f.read_p50_us > 0.0, "{f:?}");
        assert!(f.p99_us() >= f.p50_us(), "{f:?}");
    }
}
