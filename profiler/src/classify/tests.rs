use super::*;

// The server pod, the client pod, loopback; shared with the aggregation
// side's tests.
pub(crate) const POD: [u8; 4] = [10, 244, 0, 11];
pub(crate) const OTHER_POD: [u8; 4] = [10, 244, 0, 10];
pub(crate) const LO: [u8; 4] = [127, 0, 0, 1];

pub(crate) fn sock(local: [u8; 4], lport: u16, peer: [u8; 4], pport: u16, role: u8) -> SockInfo {
    let mut s = SockInfo {
        family: AF_INET,
        local_port: lport,
        peer_port: pport,
        role,
        ..SockInfo::default()
    };
    s.local_addr[..4].copy_from_slice(&local);
    s.peer_addr[..4].copy_from_slice(&peer);
    s
}

/// Classify as the server pod's sidecar sees it (its address, its ports).
fn classify_with(excluded: &[u16], src: &SockInfo, dst: &SockInfo) -> Verdict {
    let addrs = [IpAddr::from(POD), IpAddr::from(LO)];
    PodView {
        local_addrs: &addrs,
        listen_ports: &[15001, 15006],
        excluded_ports: excluded,
    }
    .classify(src, dst)
}

fn classify(src: &SockInfo, dst: &SockInfo) -> Verdict {
    classify_with(&DEFAULT_EXCLUDED_PORTS, src, dst)
}

#[test]
fn inbound_hop_both_legs() {
    // Accepted from the other pod's sidecar on 15006; connected to the app on loopback.
    let down = sock(POD, 15006, OTHER_POD, 40000, ROLE_ACCEPTED);
    let up = sock(LO, 41000, LO, 8080, ROLE_CONNECTED);
    assert_eq!(
        classify(&down, &up),
        Verdict::Hop(Direction::Inbound, Leg::Request)
    );
    assert_eq!(
        classify(&up, &down),
        Verdict::Hop(Direction::Inbound, Leg::Response)
    );
}

#[test]
fn outbound_hop_both_legs() {
    // The app (pod address) was redirected to 15001; the proxy called the other pod.
    let down = sock(LO, 15001, POD, 50000, ROLE_ACCEPTED);
    let up = sock(POD, 51000, OTHER_POD, 8080, ROLE_CONNECTED);
    assert_eq!(
        classify(&down, &up),
        Verdict::Hop(Direction::Outbound, Leg::Request)
    );
    assert_eq!(
        classify(&up, &down),
        Verdict::Hop(Direction::Outbound, Leg::Response)
    );
}

#[test]
fn roles_fall_back_to_listening_ports() {
    let down = sock(POD, 15006, OTHER_POD, 40000, ROLE_UNKNOWN);
    let up = sock(LO, 41000, LO, 8080, ROLE_UNKNOWN);
    assert_eq!(
        classify(&down, &up),
        Verdict::Hop(Direction::Inbound, Leg::Request)
    );
    assert_eq!(classify(&SockInfo::default(), &up), Verdict::Unclassified);
}

#[test]
fn control_ports_are_excluded_and_configurable() {
    let down = sock(POD, 15021, OTHER_POD, 40000, ROLE_ACCEPTED);
    let up = sock(LO, 41000, LO, 8080, ROLE_CONNECTED);
    assert_eq!(classify(&down, &up), Verdict::Excluded);
    assert_eq!(
        classify_with(&[], &down, &up),
        Verdict::Hop(Direction::Inbound, Leg::Request)
    );
}

#[test]
fn traffic_passing_through_is_unclassified() {
    let down = sock(POD, 15006, [10, 0, 0, 1], 40000, ROLE_ACCEPTED);
    let up = sock(POD, 41000, [10, 0, 0, 2], 8080, ROLE_CONNECTED);
    assert_eq!(classify(&down, &up), Verdict::Unclassified);
}

#[test]
fn v4_mapped_v6_is_v4() {
    let mut raw = [0u8; 16];
    raw[10] = 0xff;
    raw[11] = 0xff;
    raw[12..].copy_from_slice(&LO);
    assert_eq!(addr(AF_INET6, &raw), Some(IpAddr::from(LO)));
}
