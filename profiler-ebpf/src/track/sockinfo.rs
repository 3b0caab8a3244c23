//! A proxy socket's endpoints, reported once (before any forward on it), and
//! its close. Userspace classifies forwards from these.
use aya_ebpf::helpers::bpf_probe_read_kernel;
use profiler_common::{
    events::{KIND_SOCK_CLOSE, KIND_SOCK_OPEN, SockEvent},
    sock::{AF_INET, SockInfo, sock_common},
};

use super::emit::emit;

#[inline(always)]
pub fn report_open(sk: u64, info: &SockInfo, at_ns: u64) {
    report(KIND_SOCK_OPEN, sk, info, at_ns);
}

#[inline(always)]
pub fn report_close(sk: u64, at_ns: u64) {
    report(KIND_SOCK_CLOSE, sk, &SockInfo::default(), at_ns);
}

#[inline(always)]
fn report(kind: u32, sk: u64, info: &SockInfo, at_ns: u64) {
    emit(SockEvent {
        kind,
        _pad: 0,
        sk,
        at_ns,
        info: *info,
    });
}

/// Endpoints of a socket the proxy had before the profiler started, read
/// from the leading, never-moved fields of struct sock_common (IPv4 only;
/// the role is left unknown for userspace to infer from listening ports).
#[inline(always)]
pub fn read_existing(sk: u64) -> SockInfo {
    let mut info = SockInfo::default();
    let base = sk as *const u8;
    // SAFETY: bpf_probe_read_kernel tolerates any address.
    unsafe {
        let family: u16 =
            bpf_probe_read_kernel(base.add(sock_common::FAMILY) as *const u16).unwrap_or(0);
        if family != AF_INET {
            return info;
        }
        info.family = family;
        let daddr: u32 =
            bpf_probe_read_kernel(base.add(sock_common::DADDR) as *const u32).unwrap_or(0);
        let saddr: u32 =
            bpf_probe_read_kernel(base.add(sock_common::RCV_SADDR) as *const u32).unwrap_or(0);
        info.peer_addr[..4].copy_from_slice(&daddr.to_ne_bytes());
        info.local_addr[..4].copy_from_slice(&saddr.to_ne_bytes());
        info.peer_port = u16::from_be(
            bpf_probe_read_kernel(base.add(sock_common::DPORT) as *const u16).unwrap_or(0),
        );
        info.local_port =
            bpf_probe_read_kernel(base.add(sock_common::NUM) as *const u16).unwrap_or(0);
    }
    info
}
