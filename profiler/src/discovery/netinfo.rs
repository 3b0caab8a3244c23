//! A sidecar's network view, from /proc/<pid>/net (its namespace): the
//! pod's own addresses and its listening ports.
use std::net::IpAddr;

/// Local (own) addresses from /proc/<pid>/net/fib_trie: an address line
/// followed by a "/32 host LOCAL" line.
pub fn parse_fib_trie_local(text: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut last: Option<IpAddr> = None;
    for line in text.lines() {
        let t = line.trim_start_matches([' ', '|', '+', '-']).trim();
        if let Ok(ip) = t.parse::<IpAddr>() {
            last = Some(ip);
        } else if t.starts_with("/32 host LOCAL")
            && let Some(ip) = last
            && !out.contains(&ip)
        {
            out.push(ip);
        }
    }
    out
}

/// Listening sockets from /proc/<pid>/net/tcp or tcp6 (state 0A), as
/// (port, socket inode).
pub fn parse_listen_ports(text: &str) -> Vec<(u16, u64)> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.get(3) != Some(&"0A") {
                return None;
            }
            let port = f.get(1)?.rsplit(':').next()?;
            Some((u16::from_str_radix(port, 16).ok()?, f.get(9)?.parse().ok()?))
        })
        .collect()
}

/// Socket inodes a process holds open (its fds that read `socket:[N]`).
pub fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let link = std::fs::read_link(e.path()).ok()?;
            let s = link.to_str()?;
            s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// (pod-local addresses, ports the sidecar itself listens on) for a sidecar
/// whose processes are `pids`, in the namespace of `pid`. Other listeners
/// of the pod (the app) are left out: their connections are not the proxy's.
pub fn read(pid: u32, pids: &[u32]) -> (Vec<IpAddr>, Vec<u16>) {
    let base = format!("/proc/{pid}/net");
    let addrs = std::fs::read_to_string(format!("{base}/fib_trie"))
        .map(|t| parse_fib_trie_local(&t))
        .unwrap_or_default();
    let own: std::collections::HashSet<u64> = pids.iter().flat_map(|p| socket_inodes(*p)).collect();
    let mut ports = Vec::new();
    for f in ["tcp", "tcp6"] {
        if let Ok(t) = std::fs::read_to_string(format!("{base}/{f}")) {
            ports.extend(
                parse_listen_ports(&t)
                    .into_iter()
                    .filter(|(_, inode)| own.contains(inode))
                    .map(|(port, _)| port),
            );
        }
    }
    ports.sort_unstable();
    ports.dedup();
    (addrs, ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_addresses_from_fib_trie() {
        let t = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     +-- 10.244.0.0/24 2 0 2\n        |-- 10.244.0.0\n           /24 link UNICAST\n        |-- 10.244.0.11\n           /32 host LOCAL\n        |-- 10.244.0.255\n           /32 link BROADCAST\n     +-- 127.0.0.0/8 2 0 2\n        |-- 127.0.0.1\n           /32 host LOCAL\nLocal:\n        |-- 10.244.0.11\n           /32 host LOCAL\n";
        let a = parse_fib_trie_local(t);
        assert_eq!(
            a,
            vec![
                "10.244.0.11".parse::<IpAddr>().expect("ip"),
                "127.0.0.1".parse().expect("ip")
            ]
        );
    }

    #[test]
    fn listening_ports() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 00000000:3A9E 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1337        0 1\n\
           1: 00000000:3A99 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1337        0 2\n\
           2: 0B00F40A:3A9E 0A00F40A:9C40 01 00000000:00000000 00:00000000 00000000  1337        0 3\n";
        assert_eq!(parse_listen_ports(t), vec![(15006, 1), (15001, 2)]);
    }
}
