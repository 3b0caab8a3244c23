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

use crate::track::{edge, now_ns};

const PASS_ON: i32 = -1;
const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_TCP: u8 = 6;

#[classifier]
pub fn tc_pod_iface(_ctx: TcContext) -> i32 {
    TC_ACT_PIPE
}

/// A TCP packet carrying data: its flow from the pod's side (the pod's end
/// is the destination going in, the source going out).
#[inline(always)]
fn tcp_with_data(ctx: &TcContext, into_pod: bool) -> Option<FlowKey> {
    let proto = u16::from_be(ctx.load::<u16>(12).ok()?);
    let (family, src, dst, l4, ip_payload) = match proto {
        ETH_P_IP => {
            let ver_ihl = ctx.load::<u8>(ETH_HLEN).ok()?;
            if ctx.load::<u8>(ETH_HLEN + 9).ok()? != IPPROTO_TCP {
                return None;
            }
            let ihl = usize::from(ver_ihl & 0x0f) * 4;
            let total = usize::from(u16::from_be(ctx.load::<u16>(ETH_HLEN + 2).ok()?));
            let (mut s, mut d) = ([0u8; 16], [0u8; 16]);
            s[..4].copy_from_slice(&ctx.load::<[u8; 4]>(ETH_HLEN + 12).ok()?);
            d[..4].copy_from_slice(&ctx.load::<[u8; 4]>(ETH_HLEN + 16).ok()?);
            (AF_INET, s, d, ETH_HLEN + ihl, total.checked_sub(ihl)?)
        }
        ETH_P_IPV6 => {
            // Extension headers before TCP are not followed: proxies' TCP
            // carries none.
            if ctx.load::<u8>(ETH_HLEN + 6).ok()? != IPPROTO_TCP {
                return None;
            }
            let payload = usize::from(u16::from_be(ctx.load::<u16>(ETH_HLEN + 4).ok()?));
            let s = ctx.load::<[u8; 16]>(ETH_HLEN + 8).ok()?;
            let d = ctx.load::<[u8; 16]>(ETH_HLEN + 24).ok()?;
            (AF_INET6, s, d, ETH_HLEN + 40, payload)
        }
        _ => return None,
    };
    let sport = u16::from_be(ctx.load::<u16>(l4).ok()?);
    let dport = u16::from_be(ctx.load::<u16>(l4 + 2).ok()?);
    let doff = usize::from(ctx.load::<u8>(l4 + 12).ok()? >> 4) * 4;
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
        edge::on_packet_in(&key, now_ns());
    }
    PASS_ON
}

/// Out of the pod: stamp the proxy socket the data came from.
#[classifier]
pub fn profiler_out(ctx: TcContext) -> i32 {
    if let Some(key) = tcp_with_data(&ctx, false) {
        edge::on_packet_out(&key, now_ns());
    }
    PASS_ON
}
