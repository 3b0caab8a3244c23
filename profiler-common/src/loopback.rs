//! The pod's loopback half: a proxy connection whose other end is the app
//! in the same pod (the app's outbound requests, intercepted to the proxy;
//! the proxy's inbound requests to the app) never crosses the pod edge.
//! Its kernel time is taken from the two sockets instead: the sender's
//! transmit time (`tcp_wstamp_ns`) and the receiver's arrival.
//!
//! The two sockets of one such connection are found by their client end:
//! the address and port of the side that connected, in the same network
//! namespace. Interception (iptables REDIRECT) changes the server end the
//! app dialled into the proxy's port, but not the client end. A socket
//! knows which side it is from its opening transition.
use crate::{
    edge::normalize,
    sock::{AF_INET, AF_INET6, ROLE_ACCEPTED, ROLE_CONNECTED, SockInfo},
};

/// Sockets waiting for the other end of their connection: client end ->
/// socket (an LRU map; entries leave when matched or closed).
pub const LOOP_PEERS: &str = "LOOP_PEERS";
pub const LOOP_PEERS_MAX: u32 = 16384;
/// Read-only global: where `sock_common` keeps `skc_net` on this kernel
/// (from its BTF; 0: unknown, and the loopback half is off).
pub const SKC_NET_OFFSET: &str = "SKC_NET_OFFSET";

/// A connection's client end in one network namespace.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LoopKey {
    /// The namespace's `struct net` address (the same for both ends).
    pub net: u64,
    /// IPv4 (also IPv4-mapped IPv6) in the first four bytes, network order.
    pub addr: [u8; 16],
    /// Host order.
    pub port: u16,
    pub family: u16,
    pub _pad: u32,
}

impl LoopKey {
    #[inline(always)]
    fn new(net: u64, family: u16, addr: &[u8; 16], port: u16) -> LoopKey {
        let (family, addr) = normalize(family, addr);
        LoopKey {
            net,
            addr,
            port,
            family,
            _pad: 0,
        }
    }

    /// The client end of a socket that just opened: its own end if it
    /// connected, its peer's if it was accepted. None for an unknown role.
    #[inline(always)]
    pub fn client_end(net: u64, info: &SockInfo) -> Option<LoopKey> {
        match info.role {
            ROLE_CONNECTED => Some(LoopKey::new(
                net,
                info.family,
                &info.local_addr,
                info.local_port,
            )),
            ROLE_ACCEPTED => Some(LoopKey::new(
                net,
                info.family,
                &info.peer_addr,
                info.peer_port,
            )),
            _ => None,
        }
    }

    /// A closing socket (role no longer known) may have left either end:
    /// its own (`local`) or its peer's.
    #[inline(always)]
    pub fn end(net: u64, info: &SockInfo, local: bool) -> LoopKey {
        if local {
            LoopKey::new(net, info.family, &info.local_addr, info.local_port)
        } else {
            LoopKey::new(net, info.family, &info.peer_addr, info.peer_port)
        }
    }
}

/// Whether a proxy's connection stays inside its pod: one end is a
/// loopback address (the app on 127.0.0.1, or REDIRECT's 127.0.0.1 for the
/// app's outbound traffic) or both ends share an address (the pod's own).
/// A connection across the pod edge (to another pod, or accepted from one)
/// is not. Inlined and copy-free: the kernel programs that call it have no
/// stack to spare for a call (older verifiers add the callee's stack to
/// the caller's, within 512 bytes).
#[inline(always)]
pub fn stays_in_pod(info: &SockInfo) -> bool {
    is_loopback(info.family, &info.local_addr)
        || is_loopback(info.family, &info.peer_addr)
        || info.local_addr == info.peer_addr
}

#[inline(always)]
fn is_loopback(family: u16, a: &[u8; 16]) -> bool {
    match family {
        AF_INET => a[0] == 127,
        // ::1, or 127.0.0.0/8 mapped (::ffff:127.x.y.z).
        AF_INET6 => {
            let head = u64::from_ne_bytes([a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]]);
            let mid = u32::from_ne_bytes([a[8], a[9], a[10], a[11]]);
            let last = u32::from_be_bytes([a[12], a[13], a[14], a[15]]);
            head == 0
                && ((mid == 0 && last == 1)
                    || (a[10] == 0xff && a[11] == 0xff && a[8] == 0 && a[9] == 0 && a[12] == 127))
        }
        _ => false,
    }
}

/// A waiting socket in LOOP_PEERS: its address, with the low bit set for
/// a proxy's (sockets are at least 8-byte aligned).
pub const fn waiting(sk: u64, proxy: bool) -> u64 {
    sk | proxy as u64
}

/// The socket and whether it is a proxy's, from [`waiting`].
pub const fn waiting_of(v: u64) -> (u64, bool) {
    (v & !1, v & 1 == 1)
}

/// `SockEdge::peer` of an app's socket: its proxy socket, with the low bit
/// set (of a proxy's socket: the app's socket, bit clear).
pub const APP_SIDE: u64 = 1;
/// `SockEdge::peer` of a proxy's socket while it looks for the app's:
/// a connection that was open before the profiler started (no opening to
/// link it at). Found during the proxy's next write to it: over loopback,
/// the app's socket receives the data on the same CPU before the write
/// returns.
pub const SEEKING: u64 = 2;
/// How many proxy sockets are SEEKING (one global count): while none is,
/// the data-ready hook spends one load on it.
pub const LOOP_SEEKING: &str = "LOOP_SEEKING";
/// Per CPU: the last socket that is no proxy's to receive data while a
/// proxy's thread ran (the app's, during the proxy's write), while some
/// proxy socket is SEEKING.
pub const LOOP_LAST_RX: &str = "LOOP_LAST_RX";

/// Whether `app`, a socket that received data during a write to proxy
/// socket `proxy` (both as read from the kernel), is that connection's
/// other end: the same namespace, and the app's own end is the proxy's
/// peer (the client end, where the proxy `accepted` it: REDIRECT hid what
/// the app dialled) or both ends are each other's.
#[inline(always)]
pub fn is_other_end(
    proxy: &SockInfo,
    proxy_net: u64,
    app: &SockInfo,
    app_net: u64,
    accepted: bool,
) -> bool {
    let same = |fa: u16, a: &[u8; 16], pa: u16, fb: u16, b: &[u8; 16], pb: u16| {
        pa == pb && normalize(fa, a) == normalize(fb, b)
    };
    let app_is_peer = same(
        app.family,
        &app.local_addr,
        app.local_port,
        proxy.family,
        &proxy.peer_addr,
        proxy.peer_port,
    );
    let proxy_is_peer = same(
        proxy.family,
        &proxy.local_addr,
        proxy.local_port,
        app.family,
        &app.peer_addr,
        app.peer_port,
    );
    proxy_net != 0 && proxy_net == app_net && app_is_peer && (accepted || proxy_is_peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        sock::ROLE_UNKNOWN,
        test_addr::{mapped, v4},
    };

    fn sock(role: u8, local: ([u8; 16], u16), peer: ([u8; 16], u16)) -> SockInfo {
        SockInfo {
            local_addr: local.0,
            peer_addr: peer.0,
            local_port: local.1,
            peer_port: peer.1,
            family: AF_INET,
            role,
            _pad: 0,
        }
    }

    const POD: [u8; 4] = [10, 244, 0, 10];
    const LO: [u8; 4] = [127, 0, 0, 1];

    #[test]
    fn the_apps_outbound_connection_meets_the_proxy_it_was_redirected_to() {
        // The app dialled 10.244.0.11:8080; REDIRECT sent it to 15001.
        let app = sock(
            ROLE_CONNECTED,
            (v4(POD), 40000),
            (v4([10, 244, 0, 11]), 8080),
        );
        let proxy = sock(ROLE_ACCEPTED, (v4(LO), 15001), (v4(POD), 40000));
        assert_eq!(LoopKey::client_end(7, &app), LoopKey::client_end(7, &proxy));
        assert!(stays_in_pod(&proxy));
        // Another pod's namespace never matches.
        assert_ne!(LoopKey::client_end(7, &app), LoopKey::client_end(8, &proxy));
    }

    #[test]
    fn the_proxys_connection_to_the_app_meets_the_apps_accepted_socket() {
        let proxy = sock(ROLE_CONNECTED, (v4(LO), 51000), (v4(LO), 8080));
        let app = sock(ROLE_ACCEPTED, (v4(LO), 8080), (v4(LO), 51000));
        assert_eq!(LoopKey::client_end(7, &proxy), LoopKey::client_end(7, &app));
        assert!(stays_in_pod(&proxy) && stays_in_pod(&app));
        // Also to the pod's own address (Istio's inbound default).
        let proxy = sock(ROLE_CONNECTED, (v4(POD), 51000), (v4(POD), 8080));
        assert!(stays_in_pod(&proxy));
    }

    #[test]
    fn a_dual_stack_proxy_meets_an_ipv4_app() {
        let app = sock(ROLE_CONNECTED, (v4(POD), 40000), (v4([10, 96, 0, 1]), 80));
        let mut proxy = sock(ROLE_ACCEPTED, (mapped(LO), 15001), (mapped(POD), 40000));
        proxy.family = AF_INET6;
        assert_eq!(LoopKey::client_end(7, &app), LoopKey::client_end(7, &proxy));
        assert!(stays_in_pod(&proxy));
    }

    #[test]
    fn connections_across_the_pod_edge_are_not_the_loopback_half() {
        // Accepted from another pod (REDIRECT to the pod's address), and
        // connected to another pod.
        let inbound = sock(
            ROLE_ACCEPTED,
            (v4(POD), 15006),
            (v4([10, 244, 0, 11]), 40000),
        );
        let upstream = sock(
            ROLE_CONNECTED,
            (v4(POD), 40000),
            (v4([10, 244, 0, 11]), 8080),
        );
        assert!(!stays_in_pod(&inbound) && !stays_in_pod(&upstream));
        let mut six = sock(ROLE_CONNECTED, ([0; 16], 1), ([0; 16], 2));
        six.family = AF_INET6;
        six.local_addr[15] = 1;
        assert!(stays_in_pod(&six), "::1");
        six.local_addr[0] = 0xfd;
        six.peer_addr[0] = 0xfe;
        assert!(!stays_in_pod(&six));
        // A dual-stack socket's IPv4 loopback peer.
        six.local_addr = mapped(POD);
        six.peer_addr = mapped(LO);
        assert!(stays_in_pod(&six), "::ffff:127.0.0.1");
        six.peer_addr = mapped([10, 244, 0, 11]);
        assert!(!stays_in_pod(&six));
    }

    #[test]
    fn a_closing_socket_is_found_by_either_end() {
        let app = sock(ROLE_CONNECTED, (v4(POD), 40000), (v4(LO), 15001));
        let key = LoopKey::client_end(7, &app).expect("a connected socket has a client end");
        let mut closing = app;
        closing.role = ROLE_UNKNOWN;
        assert_eq!(LoopKey::client_end(7, &closing), None);
        assert_eq!(LoopKey::end(7, &closing, true), key);
        let accepted = sock(ROLE_ACCEPTED, (v4(LO), 15001), (v4(POD), 40000));
        assert_eq!(LoopKey::end(7, &accepted, false), key);
    }

    #[test]
    fn an_open_connection_is_matched_by_its_ends_in_one_namespace() {
        // The proxy connected to the app (127.0.0.1:8080).
        let proxy = sock(ROLE_UNKNOWN, (v4(LO), 51000), (v4(LO), 8080));
        let app = sock(ROLE_UNKNOWN, (v4(LO), 8080), (v4(LO), 51000));
        assert!(is_other_end(&proxy, 7, &app, 7, false));
        assert!(!is_other_end(&proxy, 7, &app, 8, false), "another pod");
        // Another connection to the app: same server end, other client.
        let other = sock(ROLE_UNKNOWN, (v4(LO), 8080), (v4(LO), 51001));
        assert!(!is_other_end(&proxy, 7, &other, 7, false));
        // The app's outbound connection, REDIRECTed to the proxy: the app's
        // socket still names what it dialled.
        let proxy = sock(ROLE_UNKNOWN, (v4(LO), 15001), (v4(POD), 40000));
        let app = sock(ROLE_UNKNOWN, (v4(POD), 40000), (v4([10, 244, 0, 11]), 8080));
        assert!(is_other_end(&proxy, 7, &app, 7, true));
        assert!(!is_other_end(&proxy, 7, &app, 7, false));
        let mut later = app;
        later.local_port = 40001;
        assert!(!is_other_end(&proxy, 7, &later, 7, true));
        assert!(!is_other_end(&proxy, 0, &app, 0, true), "namespace unread");
    }

    #[test]
    fn a_waiting_socket_keeps_its_side() {
        let sk = 0xffff_8880_1234_5600;
        assert_eq!(waiting_of(waiting(sk, true)), (sk, true));
        assert_eq!(waiting_of(waiting(sk, false)), (sk, false));
    }
}
