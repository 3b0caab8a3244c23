//! Stable sock tracepoints (Linux 6.2+ for send/recv length and data_ready).
//! Offsets are those of the format files under events/sock/*/format.
use aya_ebpf::{EbpfContext, macros::tracepoint, programs::TracePointContext};
use profiler_common::sock::{AF_INET, AF_INET6, IPPROTO_TCP, SockInfo};

use crate::track::{arrival, pair, state, tracked_task};

/// A field of the tracepoint record: a plain load, which the verifier
/// allows for tracepoint context (no helper call on the hot path).
#[inline(always)]
fn field<T: Copy>(ctx: &TracePointContext, offset: usize) -> T {
    // SAFETY: offsets come from the format file and are aligned for T; the
    // verifier checks every context access.
    unsafe { (ctx.as_ptr() as *const u8).add(offset).cast::<T>().read() }
}

/// sk and ret of sock_send_length / sock_recv_length, for TCP sockets.
#[inline(always)]
fn tcp_sk_and_ret(ctx: &TracePointContext) -> Option<(u64, i64)> {
    if field::<u16>(ctx, 18) != IPPROTO_TCP {
        return None;
    }
    Some((field::<u64>(ctx, 8), i64::from(field::<i32>(ctx, 20))))
}

#[tracepoint(category = "sock", name = "sock_recv_length")]
pub fn tp_sock_recv_length(ctx: TracePointContext) -> u32 {
    // The task check comes first: an untracked process pays one lookup.
    if let Some(task) = tracked_task()
        && let Some((sk, ret)) = tcp_sk_and_ret(&ctx)
    {
        pair::on_read(&ctx, task, sk, ret);
    }
    0
}

#[tracepoint(category = "sock", name = "sock_send_length")]
pub fn tp_sock_send_length(ctx: TracePointContext) -> u32 {
    if let Some(task) = tracked_task()
        && let Some((sk, ret)) = tcp_sk_and_ret(&ctx)
    {
        pair::on_write(task, sk, ret);
    }
    0
}

#[tracepoint(category = "sock", name = "sk_data_ready")]
pub fn tp_sk_data_ready(ctx: TracePointContext) -> u32 {
    if field::<u16>(&ctx, 18) == IPPROTO_TCP {
        arrival::on_data_ready(field::<u64>(&ctx, 8));
    }
    0
}

#[tracepoint(category = "sock", name = "inet_sock_set_state")]
pub fn tp_inet_sock_set_state(ctx: TracePointContext) -> u32 {
    let _ = try_set_state(&ctx);
    0
}

fn try_set_state(ctx: &TracePointContext) -> Result<(), i32> {
    if field::<u16>(ctx, 30) != IPPROTO_TCP {
        return Ok(());
    }
    let family = field::<u16>(ctx, 28);
    let mut info = SockInfo {
        local_port: field::<u16>(ctx, 24),
        peer_port: field::<u16>(ctx, 26),
        family,
        ..SockInfo::default()
    };
    if family == AF_INET {
        info.local_addr[..4].copy_from_slice(&field::<u32>(ctx, 32).to_ne_bytes());
        info.peer_addr[..4].copy_from_slice(&field::<u32>(ctx, 36).to_ne_bytes());
    } else if family == AF_INET6 {
        info.local_addr[..8].copy_from_slice(&field::<u64>(ctx, 40).to_ne_bytes());
        info.local_addr[8..].copy_from_slice(&field::<u64>(ctx, 48).to_ne_bytes());
        info.peer_addr[..8].copy_from_slice(&field::<u64>(ctx, 56).to_ne_bytes());
        info.peer_addr[8..].copy_from_slice(&field::<u64>(ctx, 64).to_ne_bytes());
    }
    state::on_state(
        field::<u64>(ctx, 8),
        field::<i32>(ctx, 16),
        field::<i32>(ctx, 20),
        info,
    );
    Ok(())
}
