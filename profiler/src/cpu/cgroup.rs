//! A container's CPU limit and throttling from its cgroup, v1 or v2,
//! parsed from the files' text (pure, unit-tested). v2: cpu.stat (usec) and
//! cpu.max; v1: the cpu controller's cpu.stat (throttled_time in ns) and
//! cpu.cfs_quota_us / cpu.cfs_period_us. (Run time comes from the
//! processes' schedstat, not from here.)
use std::path::{Path, PathBuf};

use super::read::Reader;
use crate::kernel::cgroup_cpu::CpuAccounting;

/// Cumulative CFS figures of one cgroup, and its limit.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CgroupCpu {
    pub throttled_periods: u64,
    pub throttled_ns: u64,
    /// The CPU limit in cores (quota / period); None when unlimited.
    pub limit_cores: Option<f64>,
}

/// `key value` lines (cpu.stat), one value.
fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// v2 cpu.stat and cpu.max ("max 100000" or "20000 100000").
pub fn parse_v2(stat: &str, max: Option<&str>) -> Option<CgroupCpu> {
    Some(CgroupCpu {
        throttled_periods: stat_value(stat, "nr_throttled")?,
        throttled_ns: stat_value(stat, "throttled_usec")? * 1000,
        limit_cores: max.and_then(|m| {
            let mut f = m.split_whitespace();
            let quota: f64 = f.next()?.parse().ok()?;
            let period: f64 = f.next()?.parse().ok()?;
            (period > 0.0).then_some(quota / period)
        }),
    })
}

/// v1 cpu.stat, and the CFS quota and period (quota -1: unlimited).
pub fn parse_v1(stat: &str, quota_period: Option<(&str, &str)>) -> Option<CgroupCpu> {
    Some(CgroupCpu {
        throttled_periods: stat_value(stat, "nr_throttled")?,
        throttled_ns: stat_value(stat, "throttled_time")?,
        limit_cores: quota_period.and_then(|(q, p)| {
            let q: i64 = q.trim().parse().ok()?;
            let p: f64 = p.trim().parse().ok()?;
            (q > 0 && p > 0.0).then(|| q as f64 / p)
        }),
    })
}

/// Where a process's CPU cgroup is, from /proc/<pid>/cgroup and the node's
/// mounts: v2's unified path when its cpu controller is on, else v1's cpu
/// hierarchy. The bool says v2.
pub fn dir_of(proc_cgroup: &str, acc: &CpuAccounting) -> Option<(PathBuf, bool)> {
    let mut v1 = None;
    let mut v2 = None;
    for line in proc_cgroup.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        if id == "0" && ctrls.is_empty() {
            v2 = acc
                .v2_root
                .as_ref()
                .filter(|_| acc.v2_cpu)
                .map(|r| r.join(rel));
        } else if ctrls.split(',').any(|c| c == "cpu") {
            v1 = acc.v1_cpu.as_ref().map(|r| r.join(rel));
        }
    }
    v2.map(|d| (d, true)).or(v1.map(|d| (d, false)))
}

/// Read a cgroup's throttling (`v2`: which layout `dir` has), and its
/// limit when `limit` (limits change seldom: a caller re-reads them now and
/// then, not at every sample).
pub fn read(dir: &Path, v2: bool, limit: bool, r: &mut Reader) -> Option<CgroupCpu> {
    let mut rd = |name: &str| r.text(&dir.join(name)).map(str::to_owned);
    if v2 {
        let max = limit.then(|| rd("cpu.max")).flatten();
        return parse_v2(&rd("cpu.stat")?, max.as_deref());
    }
    let quota_period = limit
        .then(|| Some((rd("cpu.cfs_quota_us")?, rd("cpu.cfs_period_us")?)))
        .flatten();
    parse_v1(
        &rd("cpu.stat")?,
        quota_period.as_ref().map(|(q, p)| (q.as_str(), p.as_str())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_usage_throttling_and_limit() {
        let stat = "usage_usec 5000\nuser_usec 3000\nsystem_usec 2000\n\
                    nr_periods 40\nnr_throttled 12\nthrottled_usec 90000\n";
        let c = parse_v2(stat, Some("10000 100000\n")).expect("parsed");
        assert_eq!((c.throttled_periods, c.throttled_ns), (12, 90_000_000));
        assert_eq!(c.limit_cores, Some(0.1));
        assert_eq!(
            parse_v2(stat, Some("max 100000"))
                .expect("parsed")
                .limit_cores,
            None
        );
        assert_eq!(parse_v2("nr_throttled 1\n", None), None);
    }

    #[test]
    fn v1_usage_throttling_and_limit() {
        let stat = "nr_periods 10\nnr_throttled 4\nthrottled_time 25000000\n";
        let c = parse_v1(stat, Some(("20000\n", "100000\n"))).expect("parsed");
        assert_eq!((c.throttled_periods, c.throttled_ns), (4, 25_000_000));
        assert_eq!(c.limit_cores, Some(0.2));
        let unlimited = parse_v1(stat, Some(("-1", "100000"))).expect("parsed");
        assert_eq!(unlimited.limit_cores, None);
        assert_eq!(parse_v1("nr_throttled 1\n", None), None);
    }

    #[test]
    fn the_cgroup_dir_of_a_process_on_either_layout() {
        let hybrid = CpuAccounting {
            v1_cpu: Some("/sys/fs/cgroup/cpu,cpuacct".into()),
            v1_cpuacct: Some("/sys/fs/cgroup/cpu,cpuacct".into()),
            v2_root: Some("/sys/fs/cgroup/unified".into()),
            v2_cpu: false,
        };
        let text = "12:cpu,cpuacct:/kubepods/pod1/c1\n0::/kubepods/pod1/c1\n";
        assert_eq!(
            dir_of(text, &hybrid),
            Some(("/sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/c1".into(), false))
        );
        let v2 = CpuAccounting {
            v1_cpu: None,
            v1_cpuacct: None,
            v2_root: Some("/sys/fs/cgroup".into()),
            v2_cpu: true,
        };
        assert_eq!(
            dir_of("0::/kubepods.slice/c1.scope\n", &v2),
            Some(("/sys/fs/cgroup/kubepods.slice/c1.scope".into(), true))
        );
        assert_eq!(dir_of("", &v2), None);
    }
}
