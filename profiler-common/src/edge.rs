//! The pod edge: which proxy socket a packet at the edge belongs to, from
//! the socket's side. A flow is keyed by the pod's address and the peer's
//! address and port, plus the pod's port; for a socket the proxy accepted
//! the pod's port is left out (0), because interception (iptables REDIRECT)
//! changed it: the packet at the edge still carries the port the client
//! dialled (8080), the socket has the proxy's (15006). The client's address
//! and port are unchanged, and unique per connection. A socket the proxy
//! connected keeps its own ephemeral port, which is what tells its
//! connections to one upstream apart.
use crate::sock::{AF_INET, AF_INET6, ROLE_ACCEPTED, ROLE_CONNECTED, SockInfo};

pub const EDGE_FLOWS: &str = "EDGE_FLOWS";
/// Proxy connections whose packets the classifiers can place at once (an
/// LRU map: the least recently used flow makes room).
pub const EDGE_FLOWS_MAX: u32 = 65536;
/// Per watched socket, beside SOCK_ARRIVALS: its [`SockEdge`].
pub const SOCK_EDGE: &str = "SOCK_EDGE";
/// The [`SockEdge`] of a watched socket whose slot another socket holds
/// (its arrival is then in ARRIVALS), by socket. Slots are a hash of the
/// socket's address: among a few hundred proxy sockets, two sharing one is
/// not rare (a quarter of 64-connection runs of the mesh), and such a
/// socket must still be stamped.
pub const SOCK_EDGE_SPILL: &str = "SOCK_EDGE_SPILL";
/// Sockets out of their slot at once (a few thousand when 20 000 are watched).
pub const SOCK_EDGE_SPILL_MAX: u32 = 8192;

/// What the pod edge keeps of a watched socket, in one place: a read, a
/// write, a packet and an arrival each touch one cache line (kept in
/// separate arrays, a write touched three).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockEdge {
    /// Data in: when its last packet passed the edge, or, from the app over
    /// loopback, when the app's TCP sent it (0: none; a read clears it).
    pub stamp_in: u64,
    /// Data out: when its last packet passed the edge (0: none; a write
    /// clears it), or the last arrival at the app's socket a write took.
    pub stamp_out: u64,
    /// The other end over the pod's loopback (see
    /// [`crate::loopback::APP_SIDE`] and [`crate::loopback::SEEKING`]).
    pub peer: u64,
    /// For a socket the proxy accepted: the port its client dialled, once
    /// a packet showed it (its flow is then entered under it too, so the
    /// next packets find the socket with one lookup; removed at close).
    pub dialled_port: u32,
    pub _pad: u32,
}
/// Read-only global: where `tcp_sock` keeps `tcp_wstamp_ns` on this
/// kernel (from its BTF; 0: unknown, and no kernel_out is taken).
pub const TCP_WSTAMP_OFFSET: &str = "TCP_WSTAMP_OFFSET";
/// Read-only global: 1 when the classifiers run (the maps above are then
/// sized in full and sockets are entered in EDGE_FLOWS), else 0.
pub const EDGE_ON: &str = "EDGE_ON";

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// The pod's address and the peer's; IPv4 (also IPv4-mapped IPv6) in
    /// the first four bytes, network order.
    pub local: [u8; 16],
    pub peer: [u8; 16],
    /// Host order; `local_port` 0 for an accepted socket.
    pub local_port: u16,
    pub peer_port: u16,
    pub family: u16,
    pub _pad: u16,
}

const V4_MAPPED: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

impl FlowKey {
    /// A flow from addresses as a socket or an IP header has them.
    pub fn new(
        family: u16,
        local: &[u8; 16],
        peer: &[u8; 16],
        local_port: u16,
        peer_port: u16,
    ) -> FlowKey {
        let mut k = FlowKey {
            local: *local,
            peer: *peer,
            local_port,
            peer_port,
            family,
            _pad: 0,
        };
        // A dual-stack socket (nginx, Envoy on [::]) speaks IPv4 under
        // IPv4-mapped addresses; its packets are plain IPv4.
        if family == AF_INET6 && is_v4_mapped(local) && is_v4_mapped(peer) {
            (k.family, k.local) = normalize(family, local);
            (_, k.peer) = normalize(family, peer);
        }
        k
    }

    /// The key a socket is found by: its own ports, except an accepted
    /// socket's local one. None for a socket of unknown role (one the proxy
    /// had before the profiler started); see [`FlowKey::of_socket_any`].
    pub fn of_socket(info: &SockInfo) -> Option<FlowKey> {
        let local_port = match info.role {
            ROLE_ACCEPTED => 0,
            ROLE_CONNECTED => info.local_port,
            _ => return None,
        };
        Some(FlowKey::new(
            info.family,
            &info.local_addr,
            &info.peer_addr,
            local_port,
            info.peer_port,
        ))
    }

    /// Both keys a socket of unknown role may be found by.
    pub fn of_socket_any(info: &SockInfo) -> [FlowKey; 2] {
        let exact = FlowKey::new(
            info.family,
            &info.local_addr,
            &info.peer_addr,
            info.local_port,
            info.peer_port,
        );
        let mut accepted = exact;
        accepted.local_port = 0;
        [exact, accepted]
    }

    /// The same flow with the pod's port left out: how a packet finds a
    /// socket the proxy accepted, once the exact key missed.
    pub const fn accepted(mut self) -> FlowKey {
        self.local_port = 0;
        self
    }

    /// The same flow with the pod's port `port`: for a socket the proxy
    /// accepted, the key its packets carry (the port the client dialled).
    pub const fn with_local_port(mut self, port: u16) -> FlowKey {
        self.local_port = port;
        self
    }
}

/// An address as IPv4 where it is an IPv4-mapped IPv6 one (a dual-stack
/// socket's view of an IPv4 peer), else as given.
#[inline(always)]
pub fn normalize(family: u16, a: &[u8; 16]) -> (u16, [u8; 16]) {
    if family == AF_INET6 && is_v4_mapped(a) {
        let mut v4 = [0; 16];
        v4[..4].copy_from_slice(&a[12..]);
        (AF_INET, v4)
    } else {
        (family, *a)
    }
}

fn is_v4_mapped(a: &[u8; 16]) -> bool {
    let mut i = 0;
    while i < 12 {
        if a[i] != V4_MAPPED[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Data entering the pod passed the edge (the last packet with payload
/// before the read that took it; a read emits it just before itself, with
/// its own time, so the two stay together in the merge).
pub const KIND_EDGE_IN: u32 = 8;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EdgeIn {
    pub kind: u32,
    pub _pad: u32,
    pub sk: u64,
    /// The read's time (ordering only).
    pub at_ns: u64,
    /// When the packet passed the edge (CLOCK_MONOTONIC ns).
    pub edge_ns: u64,
    /// When that packet's data became readable: the newest data the read
    /// took (the read itself is timed from its oldest).
    pub arrival_ns: u64,
}

impl EdgeIn {
    /// Where kernel_in starts for a read whose oldest data became readable
    /// at `oldest_ns`: the stamp is of the newest data's packet, so the
    /// kernel's time for that packet is taken for the oldest data too (0:
    /// no stamp fits).
    pub const fn start_for(&self, oldest_ns: u64) -> u64 {
        if self.edge_ns == 0 || self.edge_ns > self.arrival_ns || oldest_ns > self.arrival_ns {
            return 0;
        }
        oldest_ns.saturating_sub(self.arrival_ns - self.edge_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_addr::{mapped, v4};

    #[test]
    fn kernel_in_starts_as_far_before_the_oldest_data_as_the_stamped_took() {
        let e = |edge_ns, arrival_ns| EdgeIn {
            edge_ns,
            arrival_ns,
            ..EdgeIn::default()
        };
        // One packet read alone: its own stamp.
        assert_eq!(e(1_000, 1_006).start_for(1_006), 1_000);
        // Three packets read at once, the last stamped 6 ns before readable.
        assert_eq!(e(1_500, 1_506).start_for(1_100), 1_094);
        assert_eq!(e(0, 1_506).start_for(1_100), 0, "no stamp");
        assert_eq!(
            e(1_600, 1_506).start_for(1_100),
            0,
            "a packet still on its way"
        );
        assert_eq!(e(1_500, 1_506).start_for(1_700), 0, "not this read's data");
        assert_eq!(e(1, 9).start_for(5), 0, "before the clock began: none");
    }

    fn sock(role: u8, family: u16, local: [u8; 16], peer: [u8; 16]) -> SockInfo {
        SockInfo {
            local_addr: local,
            peer_addr: peer,
            local_port: 15006,
            peer_port: 40000,
            family,
            role,
            _pad: 0,
        }
    }

    #[test]
    fn an_accepted_socket_is_found_by_the_port_the_client_dialled() {
        let s = sock(ROLE_ACCEPTED, AF_INET, v4([10, 0, 0, 2]), v4([10, 0, 0, 1]));
        // The packet entering the pod: to 10.0.0.2:8080 from 10.0.0.1:40000.
        let packet = FlowKey::new(AF_INET, &v4([10, 0, 0, 2]), &v4([10, 0, 0, 1]), 8080, 40000);
        assert_ne!(Some(packet), FlowKey::of_socket(&s));
        assert_eq!(Some(packet.accepted()), FlowKey::of_socket(&s));
    }

    #[test]
    fn a_connected_socket_keeps_its_own_port() {
        let mut s = sock(
            ROLE_CONNECTED,
            AF_INET,
            v4([10, 0, 0, 1]),
            v4([10, 0, 0, 2]),
        );
        s.local_port = 40000;
        s.peer_port = 8080;
        let packet = FlowKey::new(AF_INET, &v4([10, 0, 0, 1]), &v4([10, 0, 0, 2]), 40000, 8080);
        assert_eq!(Some(packet), FlowKey::of_socket(&s));
    }

    #[test]
    fn a_dual_stack_socket_matches_plain_ipv4_packets() {
        let s = sock(
            ROLE_ACCEPTED,
            AF_INET6,
            mapped([10, 0, 0, 2]),
            mapped([10, 0, 0, 1]),
        );
        let packet = FlowKey::new(AF_INET, &v4([10, 0, 0, 2]), &v4([10, 0, 0, 1]), 8080, 40000);
        assert_eq!(Some(packet.accepted()), FlowKey::of_socket(&s));
        // Real IPv6 stays IPv6.
        let mut six = [0u8; 16];
        six[0] = 0xfd;
        let s6 = sock(ROLE_ACCEPTED, AF_INET6, six, six);
        assert_eq!(FlowKey::of_socket(&s6).map(|k| k.family), Some(AF_INET6));
    }

    #[test]
    fn an_accepted_socket_is_found_again_by_the_port_its_client_dialled() {
        let s = sock(ROLE_ACCEPTED, AF_INET, v4([10, 0, 0, 2]), v4([10, 0, 0, 1]));
        let packet = FlowKey::new(AF_INET, &v4([10, 0, 0, 2]), &v4([10, 0, 0, 1]), 8080, 40000);
        let [exact, accepted] = FlowKey::of_socket_any(&s);
        assert_eq!(accepted, packet.accepted());
        // What the socket learnt from its packets, rebuilt at its close.
        assert_eq!(exact.with_local_port(8080), packet);
    }

    #[test]
    fn a_socket_of_unknown_role_has_both_keys() {
        let s = sock(0, AF_INET, v4([10, 0, 0, 2]), v4([10, 0, 0, 1]));
        assert_eq!(FlowKey::of_socket(&s), None);
        let [exact, accepted] = FlowKey::of_socket_any(&s);
        assert_eq!(exact.local_port, 15006);
        assert_eq!(accepted, exact.accepted());
    }
}
