//! Socket identity as the kernel reports it, and the constants of the
//! tracepoint records the programs read.

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
pub const IPPROTO_TCP: u16 = 6;
/// Read-only global: where `sock` keeps `sk_protocol` on this kernel (from
/// its BTF; 0: unknown, and the raw send/receive tracepoints are not used).
pub const SK_PROTOCOL_OFFSET: &str = "SK_PROTOCOL_OFFSET";
/// Read-only global: where `sock` keeps its receive queue's length
/// (`sk_receive_queue.qlen`) on this kernel (from its BTF; 0: unknown).
pub const SK_RECEIVE_QUEUE_LEN_OFFSET: &str = "SK_RECEIVE_QUEUE_LEN_OFFSET";

// TCP states (include/net/tcp_states.h).
pub const TCP_ESTABLISHED: i32 = 1;
pub const TCP_SYN_SENT: i32 = 2;
pub const TCP_SYN_RECV: i32 = 3;
pub const TCP_CLOSE: i32 = 7;

/// How a socket came to be connected: this decides the leg of a forward.
pub const ROLE_UNKNOWN: u8 = 0;
/// Passive open: the proxy accepted it (downstream side).
pub const ROLE_ACCEPTED: u8 = 1;
/// Active open: the proxy connected it (upstream side).
pub const ROLE_CONNECTED: u8 = 2;

/// A TCP socket's endpoints. Addresses are in network byte order as the
/// kernel stores them; IPv4 uses the first four bytes. Ports are host order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockInfo {
    pub local_addr: [u8; 16],
    pub peer_addr: [u8; 16],
    pub local_port: u16,
    pub peer_port: u16,
    pub family: u16,
    pub role: u8,
    pub _pad: u8,
}

/// The role a state transition reveals, if any: SYN_SENT -> ESTABLISHED is an
/// active open, SYN_RECV -> ESTABLISHED a passive one.
pub const fn role_from_transition(old: i32, new: i32) -> Option<u8> {
    if new != TCP_ESTABLISHED {
        return None;
    }
    match old {
        TCP_SYN_SENT => Some(ROLE_CONNECTED),
        TCP_SYN_RECV => Some(ROLE_ACCEPTED),
        _ => None,
    }
}

/// Offsets inside `struct sock_common` that have not moved since Linux 2.6
/// (the IPv4 address pair, port pair and family lead the struct). Used only
/// for sockets established before the profiler started.
pub mod sock_common {
    pub const DADDR: usize = 0;
    pub const RCV_SADDR: usize = 4;
    pub const DPORT: usize = 12;
    pub const NUM: usize = 14;
    pub const FAMILY: usize = 16;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_come_only_from_opening_transitions() {
        assert_eq!(
            role_from_transition(TCP_SYN_SENT, TCP_ESTABLISHED),
            Some(ROLE_CONNECTED)
        );
        assert_eq!(
            role_from_transition(TCP_SYN_RECV, TCP_ESTABLISHED),
            Some(ROLE_ACCEPTED)
        );
        assert_eq!(role_from_transition(TCP_ESTABLISHED, TCP_CLOSE), None);
        assert_eq!(role_from_transition(7, TCP_SYN_SENT), None);
    }
}
