//! Where the machine's CPU went in a user's-view round at the highest rate,
//! per request completed: the pods' processes (sidecars and apps, with the
//! programs that run in their syscalls and switches and the softirq work
//! done in their context), the daemon, and the rest (the load generator,
//! kernel threads, softirq work in other tasks). With every CPU busy, what
//! an arm adds per request here is what its max rate loses.
use serde::Serialize;

use super::{BoxError, process::threads_on_cpu_ns, ratios::Spread};

/// CPU ns used so far: by all CPUs (busy: /proc/stat less idle, iowait and
/// steal), by the pods' processes, by the daemon.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuMark {
    pub busy_ns: u64,
    pub pods_ns: u64,
    pub daemon_ns: u64,
}

/// µs of CPU per request completed between two marks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct CpuPerRequest {
    pub machine_us: f64,
    pub pods_us: f64,
    pub daemon_us: f64,
    /// machine - pods - daemon.
    pub rest_us: f64,
}

impl CpuPerRequest {
    /// Part by part, `self - o` (an arm's round less unprofiled's).
    pub fn less(&self, o: &CpuPerRequest) -> CpuPerRequest {
        CpuPerRequest {
            machine_us: self.machine_us - o.machine_us,
            pods_us: self.pods_us - o.pods_us,
            daemon_us: self.daemon_us - o.daemon_us,
            rest_us: self.rest_us - o.rest_us,
        }
    }

    /// Part by part, the median over `rounds` (NaN without one).
    pub fn median_of(rounds: &[CpuPerRequest]) -> CpuPerRequest {
        let med = |g: fn(&CpuPerRequest) -> f64| {
            let v: Vec<f64> = rounds.iter().map(g).collect();
            Spread::of(&v).map_or(f64::NAN, |s| s.median)
        };
        CpuPerRequest {
            machine_us: med(|c| c.machine_us),
            pods_us: med(|c| c.pods_us),
            daemon_us: med(|c| c.daemon_us),
            rest_us: med(|c| c.rest_us),
        }
    }
}

fn busy_ns() -> Result<u64, BoxError> {
    use procfs::CurrentSI;
    let t = procfs::KernelStats::current()?.total;
    let ticks = t.user + t.nice + t.system + t.irq.unwrap_or(0) + t.softirq.unwrap_or(0);
    Ok(ticks * (1_000_000_000 / procfs::ticks_per_second()))
}

impl CpuMark {
    /// `pods`: every process of the pods (the same list at both marks);
    /// `daemon`: the daemon's pid, when its arm runs one.
    pub fn read(pods: &[u32], daemon: Option<u32>) -> Result<CpuMark, BoxError> {
        Ok(CpuMark {
            busy_ns: busy_ns()?,
            // A process gone between the marks is left out of both.
            pods_ns: pods.iter().filter_map(|&p| threads_on_cpu_ns(p).ok()).sum(),
            daemon_ns: match daemon {
                Some(p) => threads_on_cpu_ns(p)?,
                None => 0,
            },
        })
    }
}

/// From `a` to `b` over `requests` completed; None without a request.
pub fn per_request(a: &CpuMark, b: &CpuMark, requests: u64) -> Option<CpuPerRequest> {
    if requests == 0 {
        return None;
    }
    let us = |x: u64, y: u64| y.saturating_sub(x) as f64 / 1e3 / requests as f64;
    let machine_us = us(a.busy_ns, b.busy_ns);
    let pods_us = us(a.pods_ns, b.pods_ns);
    let daemon_us = us(a.daemon_ns, b.daemon_ns);
    Some(CpuPerRequest {
        machine_us,
        pods_us,
        daemon_us,
        rest_us: machine_us - pods_us - daemon_us,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_per_request_and_the_rest_is_what_is_left() {
        let a = CpuMark {
            busy_ns: 1_000_000_000,
            pods_ns: 400_000_000,
            daemon_ns: 10_000_000,
        };
        // 10 s of two CPUs' busy time over 100000 requests: 100 µs each.
        let b = CpuMark {
            busy_ns: 11_000_000_000,
            pods_ns: 7_400_000_000,
            daemon_ns: 210_000_000,
        };
        let c = per_request(&a, &b, 100_000).expect("requests");
        assert_eq!((c.machine_us, c.pods_us, c.daemon_us), (100.0, 70.0, 2.0));
        assert!((c.rest_us - 28.0).abs() < 1e-9);
        assert_eq!(per_request(&a, &b, 0), None);
    }

    #[test]
    fn medians_and_differences_go_part_by_part() {
        let c = |m: f64, p: f64, d: f64| CpuPerRequest {
            machine_us: m,
            pods_us: p,
            daemon_us: d,
            rest_us: m - p - d,
        };
        let rounds = [c(100.0, 60.0, 1.0), c(90.0, 70.0, 2.0), c(120.0, 65.0, 0.5)];
        // Each part its own median: the rest's (39, 18, 54.5) is 39, not
        // the medians' 100 - 65 - 1.
        assert_eq!(
            CpuPerRequest::median_of(&rounds),
            CpuPerRequest {
                rest_us: 39.0,
                ..c(100.0, 65.0, 1.0)
            }
        );
        assert!(CpuPerRequest::median_of(&[]).machine_us.is_nan());
        assert_eq!(
            c(110.0, 66.0, 1.5).less(&c(100.0, 60.0, 0.0)),
            c(10.0, 6.0, 1.5)
        );
    }

    #[test]
    fn this_machine_and_a_spinning_process_can_be_read() {
        // A child that only spins: one thread, which no other test starts or
        // ends between the marks (a thread that ends leaves the sum).
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("spawn sh");
        let pid = child.id();
        let a = CpuMark::read(&[pid], Some(pid));
        // Its run time is brought up to date at every tick of its CPU.
        std::thread::sleep(std::time::Duration::from_millis(200));
        let b = CpuMark::read(&[pid], Some(pid));
        let _ = child.kill();
        let _ = child.wait();
        let (a, b) = (a.expect("/proc"), b.expect("/proc"));
        assert!(
            b.pods_ns > a.pods_ns && b.daemon_ns > a.daemon_ns,
            "{a:?} {b:?}"
        );
        assert!(b.busy_ns > a.busy_ns, "{a:?} {b:?}");
    }
}
