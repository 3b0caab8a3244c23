//! One process as /proc shows it, identified by pid and start time so a
//! recycled pid is never taken for the proxy it replaced.
use std::path::Path;

use super::cgroup_path::{self, PodCgroup};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    /// Clock ticks since boot (field 22 of /proc/<pid>/stat).
    pub start_time: u64,
    pub comm: String,
    pub uid: u32,
    pub cgroup: String,
    pub pod: Option<PodCgroup>,
    pub env_pod_name: Option<String>,
    pub env_pod_namespace: Option<String>,
    /// The workload Istio's injector names (Deployment, StatefulSet, ...).
    pub env_workload: Option<String>,
}

/// Field `n` (numbered from 1, as proc(5) does) of the text of
/// /proc/<pid>/stat, as a number. comm (field 2) may hold spaces and
/// parentheses, so fields are counted after the last ')'.
pub fn stat_field<T: std::str::FromStr>(stat: &str, n: usize) -> Option<T> {
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    // rest starts at field 3 (state).
    rest.split_whitespace().nth(n.checked_sub(3)?)?.parse().ok()
}

/// (ppid, start_time) from the text of /proc/<pid>/stat (fields 4 and 22).
pub fn parse_stat(stat: &str) -> Option<(u32, u64)> {
    Some((stat_field(stat, 4)?, stat_field(stat, 22)?))
}

/// What a later look at /proc/<pid>/stat says of a process read before.
#[derive(Debug, PartialEq, Eq)]
pub enum Recheck {
    /// The same process (start time and name unchanged); its parent now.
    Same { ppid: u32 },
    /// The pid is another process's now, or this one exec'd another
    /// program: read it whole again.
    Changed,
}

pub fn parse_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find(|l| l.starts_with("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub fn env_var(environ: &[u8], key: &str) -> Option<String> {
    environ.split(|b| *b == 0).find_map(|kv| {
        let kv = std::str::from_utf8(kv).ok()?;
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

impl ProcInfo {
    pub fn read(pid: u32) -> Option<ProcInfo> {
        let dir = Path::new("/proc").join(pid.to_string());
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        let (ppid, start_time) = parse_stat(&stat)?;
        let comm = std::fs::read_to_string(dir.join("comm"))
            .ok()?
            .trim_end()
            .to_string();
        let uid = parse_uid(&std::fs::read_to_string(dir.join("status")).ok()?)?;
        let cgroup = std::fs::read_to_string(dir.join("cgroup")).unwrap_or_default();
        let environ = std::fs::read(dir.join("environ")).unwrap_or_default();
        Some(ProcInfo {
            pid,
            ppid,
            start_time,
            pod: cgroup_path::parse(&cgroup),
            comm,
            uid,
            cgroup,
            env_pod_name: env_var(&environ, "POD_NAME"),
            env_pod_namespace: env_var(&environ, "POD_NAMESPACE"),
            env_workload: env_var(&environ, "ISTIO_META_WORKLOAD_NAME"),
        })
    }

    /// Compare with the text of /proc/<pid>/stat read now: comm (field 2,
    /// between the first '(' and the last ')') and the start time tell a
    /// recycled pid or an exec in place; the parent may change any time (a
    /// parent's exit reparents).
    pub fn recheck(&self, stat: &str) -> Recheck {
        let comm = stat
            .find('(')
            .zip(stat.rfind(')'))
            .and_then(|(a, b)| stat.get(a + 1..b));
        match (parse_stat(stat), comm) {
            (Some((ppid, start)), Some(c)) if start == self.start_time && c == self.comm => {
                Recheck::Same { ppid }
            }
            _ => Recheck::Changed,
        }
    }

    /// Still the same process (pid not recycled)?
    pub fn is_alive(pid: u32, start_time: u64) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| parse_stat(&s))
            .is_some_and(|(_, st)| st == start_time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_awkward_comm() {
        let s = "4242 (wrk:worker_0) S 4200 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 9 0 987654 1000000 500 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";
        assert_eq!(parse_stat(s), Some((4200, 987654)));
        let s = "7 (a) b) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0\n";
        assert_eq!(parse_stat(s), Some((1, 55)));
    }

    #[test]
    fn a_recheck_tells_the_same_process_from_a_recycled_pid_or_an_exec() {
        let read = ProcInfo {
            pid: 4242,
            ppid: 4200,
            start_time: 987654,
            comm: "wrk:worker_0 (x)".into(),
            uid: 1337,
            cgroup: String::new(),
            pod: None,
            env_pod_name: None,
            env_pod_namespace: None,
            env_workload: None,
        };
        let stat = |comm: &str, ppid: u32, start: u64| {
            format!(
                "4242 ({comm}) S {ppid} 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 9 0 {start} 1000000 500 1\n"
            )
        };
        assert_eq!(
            read.recheck(&stat("wrk:worker_0 (x)", 4200, 987654)),
            Recheck::Same { ppid: 4200 }
        );
        // Its parent exited: reparented, still the same process.
        assert_eq!(
            read.recheck(&stat("wrk:worker_0 (x)", 1, 987654)),
            Recheck::Same { ppid: 1 }
        );
        // exec in place: same pid and start time, another program.
        assert_eq!(read.recheck(&stat("envoy", 4200, 987654)), Recheck::Changed);
        // The pid was recycled.
        assert_eq!(
            read.recheck(&stat("wrk:worker_0 (x)", 4200, 987655)),
            Recheck::Changed
        );
        assert_eq!(read.recheck("4242 (trunc"), Recheck::Changed);
    }

    #[test]
    fn env_and_uid() {
        let env = b"PATH=/usr/bin\0POD_NAME=productpage-v1-6b7f\0POD_NAMESPACE=bookinfo\0";
        assert_eq!(
            env_var(env, "POD_NAME").as_deref(),
            Some("productpage-v1-6b7f")
        );
        assert_eq!(env_var(env, "POD_NAMESPACE").as_deref(), Some("bookinfo"));
        assert_eq!(env_var(env, "INSTANCE_IP"), None);
        assert_eq!(
            parse_uid("Name:\tenvoy\nUid:\t1337\t1337\t1337\t1337\n"),
            Some(1337)
        );
    }
}
