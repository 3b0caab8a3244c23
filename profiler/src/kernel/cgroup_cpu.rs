//! Where per-cgroup CPU accounting lives on this node: cgroup v1 cpu/cpuacct
//! controllers, or v2 with the cpu controller enabled (cpu.stat, cpu.max).
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuAccounting {
    /// v1 `cpu` controller mount (cpu.cfs_quota_us, cpu.stat), if any.
    pub v1_cpu: Option<PathBuf>,
    /// v1 `cpuacct` controller mount (cpuacct.usage), if any.
    pub v1_cpuacct: Option<PathBuf>,
    /// v2 root, if mounted, and whether its cpu controller is available.
    pub v2_root: Option<PathBuf>,
    pub v2_cpu: bool,
}

/// Find cgroup mounts from the text of /proc/self/mounts; `controllers` reads
/// a v2 root's cgroup.controllers.
pub fn from_mounts(mounts: &str, controllers: impl Fn(&Path) -> Option<String>) -> CpuAccounting {
    let mut acc = CpuAccounting {
        v1_cpu: None,
        v1_cpuacct: None,
        v2_root: None,
        v2_cpu: false,
    };
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        let (target, fstype, opts) = (Path::new(f[1]), f[2], f[3]);
        match fstype {
            "cgroup" => {
                let opts: Vec<&str> = opts.split(',').collect();
                if opts.contains(&"cpu") && acc.v1_cpu.is_none() {
                    acc.v1_cpu = Some(target.to_path_buf());
                }
                if opts.contains(&"cpuacct") && acc.v1_cpuacct.is_none() {
                    acc.v1_cpuacct = Some(target.to_path_buf());
                }
            }
            "cgroup2" if acc.v2_root.is_none() => {
                acc.v2_cpu =
                    controllers(target).is_some_and(|c| c.split_whitespace().any(|x| x == "cpu"));
                acc.v2_root = Some(target.to_path_buf());
            }
            _ => {}
        }
    }
    acc
}

pub fn detect() -> std::io::Result<CpuAccounting> {
    let mounts = std::fs::read_to_string("/proc/self/mounts")?;
    Ok(from_mounts(&mounts, |root| {
        std::fs::read_to_string(root.join("cgroup.controllers")).ok()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_layout_of_this_machine() {
        let m = "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid 0 0\n\
                 cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n\
                 cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n";
        let acc = from_mounts(m, |_| Some(String::new()));
        assert_eq!(
            acc.v1_cpu.as_deref(),
            Some(Path::new("/sys/fs/cgroup/cpu,cpuacct"))
        );
        assert_eq!(acc.v1_cpuacct, acc.v1_cpu);
        assert_eq!(
            acc.v2_root.as_deref(),
            Some(Path::new("/sys/fs/cgroup/unified"))
        );
        assert!(!acc.v2_cpu);
    }

    #[test]
    fn unified_layout_of_a_production_node() {
        let m = "cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n";
        let acc = from_mounts(m, |_| Some("cpuset cpu io memory pids\n".into()));
        assert!(acc.v2_cpu);
        assert_eq!(acc.v1_cpu, None);
    }
}
