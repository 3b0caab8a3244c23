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
pub fn parse_listen_ports(text: &str) -> Vec<Listener> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.get(3) != Some(&"0A") {
                return None;
            }
            let port = f.get(1)?.rsplit(':').next()?;
            Some(Listener {
                port: u16::from_str_radix(port, 16).ok()?,
                uid: f.get(7)?.parse().ok()?,
                inode: f.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// A listening socket of a network namespace (/proc/<pid>/net/tcp).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listener {
    pub port: u16,
    pub uid: u32,
    pub inode: u64,
}

/// Which listeners are the proxy's: those among its open sockets when its
/// file descriptors could be read (`inodes`); otherwise (without
/// CAP_DAC_READ_SEARCH: /proc/<pid>/fd is the proxy's, mode 0500), those
/// owned by its uids (Istio's proxy runs as 1337, the app as another uid).
pub fn proxy_ports(listeners: &[Listener], inodes: Option<&[u64]>, uids: &[u32]) -> Vec<u16> {
    let mut ports: Vec<u16> = listeners
        .iter()
        .filter(|l| match inodes {
            Some(own) => own.contains(&l.inode),
            None => uids.contains(&l.uid),
        })
        .map(|l| l.port)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Inodes of the sockets `pid` holds open; None when its file descriptors
/// cannot be read (permission).
pub fn socket_inodes(pid: u32) -> Option<Vec<u64>> {
    let dir = match std::fs::read_dir(format!("/proc/{pid}/fd")) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return None,
        // Gone: no sockets.
        Err(_) => return Some(Vec::new()),
    };
    Some(
        dir.flatten()
            .filter_map(|e| {
                let link = std::fs::read_link(e.path()).ok()?;
                let s = link.to_str()?;
                s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
            })
            .collect(),
    )
}

/// The pod's local addresses and the ports the proxy (processes `pids`,
/// running as `uids`) listens on, seen from `pid`'s network namespace.
pub fn read(pid: u32, pids: &[u32], uids: &[u32]) -> (Vec<IpAddr>, Vec<u16>) {
    let base = format!("/proc/{pid}/net");
    let addrs = std::fs::read_to_string(format!("{base}/fib_trie"))
        .map(|t| parse_fib_trie_local(&t))
        .unwrap_or_default();
    let inodes: Option<Vec<u64>> = pids
        .iter()
        .map(|p| socket_inodes(*p))
        .collect::<Option<Vec<_>>>()
        .map(|v| v.concat());
    let mut listeners = Vec::new();
    for f in ["tcp", "tcp6"] {
        if let Ok(t) = std::fs::read_to_string(format!("{base}/{f}")) {
            listeners.extend(parse_listen_ports(&t));
        }
    }
    (addrs, proxy_ports(&listeners, inodes.as_deref(), uids))
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
        let l = parse_listen_ports(t);
        assert_eq!(
            l.iter().map(|l| (l.port, l.inode)).collect::<Vec<_>>(),
            [(15006, 1), (15001, 2)]
        );
        assert!(l.iter().all(|l| l.uid == 1337), "{l:?}");
    }

    #[test]
    fn the_proxys_listeners_by_socket_or_else_by_uid() {
        let l = |port, uid, inode| Listener { port, uid, inode };
        // The proxy on 15006/15001 as 1337, the app on 8080 as 1000.
        let all = [l(15006, 1337, 1), l(15001, 1337, 2), l(8080, 1000, 3)];
        assert_eq!(proxy_ports(&all, Some(&[2, 1]), &[1337]), [15001, 15006]);
        // Its fds unreadable: its uid decides.
        assert_eq!(proxy_ports(&all, None, &[1337]), [15001, 15006]);
        // Readable fds win over uid (an app running as the proxy's uid).
        assert_eq!(proxy_ports(&all, Some(&[3]), &[1337]), [8080]);
    }
}
