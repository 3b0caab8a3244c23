//! tc classifiers. `tc_pod_iface` proves the clsact path loads and attaches
//! (`profiler check`, in a scratch namespace). `profiler_in` and
//! `profiler_out` go on each followed pod's edge, the node side of its veth:
//! its egress is the way into the pod, its ingress the way out. Observe
//! only: every packet goes on (TC_ACT_UNSPEC, which is also tcx's "next").
use aya_ebpf::{bindings::TC_ACT_PIPE, macros::classifier, programs::TcContext};
use profiler_common::{
    edge::FlowKey,
    sock::{AF_INET, AF_INET6},
};

use crate::track::edge;

const PASS_ON: i32 = -1;
const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_TCP: u8 = 6;

#[classifier]
pub fn tc_pod_iface(_ctx: TcContext) -> i32 {
    TC_ACT_PIPE
}

/// A `T` at `offset` of the packet's linear data, bounds-checked for the
/// verifier; None past its end (headers not in the linear part: the packet
/// goes on unstamped).
#[inline(always)]
fn at<T: Copy>(ctx: &TcContext, offset: usize) -> Option<T> {
    let start = ctx.data();
    if start + offset + size_of::<T>() > ctx.data_end() {
        return None;
    }
    // SAFETY: within [data, data_end), checked above; unaligned read.
    Some(unsafe { ((start + offset) as *const T).read_unaligned() })
}

/// A TCP packet carrying data: its flow from the pod's side (the pod's end
/// is the destination going in, the source going out). Direct packet
/// access: a helper call per field cost about 200 ns a packet here.
#[inline(always)]
fn tcp_with_data(ctx: &TcContext, into_pod: bool) -> Option<FlowKey> {
    let proto = u16::from_be(at::<u16>(ctx, 12)?);
    let (family, src, dst, l4, ip_payload) = match proto {
        ETH_P_IP => {
            let ver_ihl = at::<u8>(ctx, ETH_HLEN)?;
            if at::<u8>(ctx, ETH_HLEN + 9)? != IPPROTO_TCP {
                return None;
            }
            let ihl = usize::from(ver_ihl & 0x0f) * 4;
            let total = usize::from(u16::from_be(at::<u16>(ctx, ETH_HLEN + 2)?));
            let (mut s, mut d) = ([0u8; 16], [0u8; 16]);
            s[..4].copy_from_slice(&at::<[u8; 4]>(ctx, ETH_HLEN + 12)?);
            d[..4].copy_from_slice(&at::<[u8; 4]>(ctx, ETH_HLEN + 16)?);
            (AF_INET, s, d, ETH_HLEN + ihl, total.checked_sub(ihl)?)
        }
        ETH_P_IPV6 => {
            // Extension headers before TCP are not followed: proxies' TCP
            // carries none.
            if at::<u8>(ctx, ETH_HLEN + 6)? != IPPROTO_TCP {
                return None;
            }
            let payload = usize::from(u16::from_be(at::<u16>(ctx, ETH_HLEN + 4)?));
            let s = at::<[u8; 16]>(ctx, ETH_HLEN + 8)?;
            let d = at::<[u8; 16]>(ctx, ETH_HLEN + 24)?;
            (AF_INET6, s, d, ETH_HLEN + 40, payload)
        }
        _ => return None,
    };
    let ports = at::<[u8; 4]>(ctx, l4)?;
    let sport = u16::from_be_bytes([ports[0], ports[1]]);
    let dport = u16::from_be_bytes([ports[2], ports[3]]);
    let doff = usize::from(at::<u8>(ctx, l4 + 12)? >> 4) * 4;
    if ip_payload <= doff {
        return None;
    }
    Some(if into_pod {
        FlowKey::new(family, &dst, &src, dport, sport)
    } else {
        FlowKey::new(family, &src, &dst, sport, dport)
    })
}

/// Into the pod: stamp the proxy socket the data is for.
#[classifier]
pub fn profiler_in(ctx: TcContext) -> i32 {
    if let Some(key) = tcp_with_data(&ctx, true) {
        edge::on_packet(&key, true);
    }
    PASS_ON
}

/// Out of the pod: stamp the proxy socket the data came from.
#[classifier]
pub fn profiler_out(ctx: TcContext) -> i32 {
    if let Some(key) = tcp_with_data(&ctx, false) {
        edge::on_packet(&key, false);
    }
    PASS_ON
}
