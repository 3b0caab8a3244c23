//! Direction and leg of a forward, from the endpoints of its two sockets.
//!
//! Leg: `request` goes from an accepted socket to a connected one,
//! `response` the other way. Direction: `inbound` when the connected
//! (upstream) socket's peer is inside the pod (loopback or the pod's own
//! address: the proxy calls its app), `outbound` when the accepted
//! (downstream) socket's peer is inside the pod (the app called out).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use profiler_common::{
    pairing::Role,
    sock::{AF_INET, AF_INET6, ROLE_ACCEPTED, ROLE_CONNECTED, ROLE_UNKNOWN, SockInfo},
};
use serde::Serialize;

/// Envoy's admin, agent, health and stats ports: not data-plane hops.
pub const DEFAULT_EXCLUDED_PORTS: [u16; 4] = [15000, 15020, 15021, 15090];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Leg {
    Request,
    Response,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Hop(Direction, Leg),
    /// On an excluded (control) port.
    Excluded,
    /// Neither socket's peer is inside the pod, or roles are unknown.
    Unclassified,
}

/// What classification needs to know of a sidecar.
pub struct PodView<'a> {
    pub local_addrs: &'a [IpAddr],
    pub listen_ports: &'a [u16],
    pub excluded_ports: &'a [u16],
}

pub fn addr(family: u16, raw: &[u8; 16]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
        AF_INET6 => {
            let v6 = Ipv6Addr::from(*raw);
            Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
        }
        _ => None,
    }
}

impl PodView<'_> {
    fn inside(&self, ip: Option<IpAddr>) -> bool {
        ip.is_some_and(|ip| ip.is_loopback() || self.local_addrs.contains(&ip))
    }

    /// A socket's role: from its connection's opening when the kernel saw
    /// it, else accepted when its local port is one the pod listens on.
    fn role_of(&self, s: &SockInfo) -> u8 {
        if s.role != ROLE_UNKNOWN {
            return s.role;
        }
        if s.family == 0 {
            return ROLE_UNKNOWN;
        }
        if self.listen_ports.contains(&s.local_port) {
            ROLE_ACCEPTED
        } else {
            ROLE_CONNECTED
        }
    }

    /// A socket's role, as pairing uses it.
    pub fn role(&self, s: &SockInfo) -> Role {
        match self.role_of(s) {
            ROLE_ACCEPTED => Role::Accepted,
            ROLE_CONNECTED => Role::Connected,
            _ => Role::Unknown,
        }
    }

    pub fn classify(&self, src: &SockInfo, dst: &SockInfo) -> Verdict {
        let ports = [src.local_port, src.peer_port, dst.local_port, dst.peer_port];
        if ports.iter().any(|p| self.excluded_ports.contains(p)) {
            return Verdict::Excluded;
        }
        let (down, up, leg) = match (self.role_of(src), self.role_of(dst)) {
            (ROLE_ACCEPTED, ROLE_CONNECTED) => (src, dst, Leg::Request),
            (ROLE_CONNECTED, ROLE_ACCEPTED) => (dst, src, Leg::Response),
            _ => return Verdict::Unclassified,
        };
        if self.inside(addr(up.family, &up.peer_addr)) {
            Verdict::Hop(Direction::Inbound, leg)
        } else if self.inside(addr(down.family, &down.peer_addr)) {
            Verdict::Hop(Direction::Outbound, leg)
        } else {
            Verdict::Unclassified
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
