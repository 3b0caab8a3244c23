//! Stable sock tracepoints (Linux 6.2+ for send/recv length and data_ready).
//! Offsets are those of the format files under events/sock/*/format.
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use profiler_common::sock::{AF_INET, AF_INET6, IPPROTO_TCP, SockInfo};

use crate::track::{arrival, pair, state};

/// Fields common to sock_send_length and sock_recv_length.
#[inline(always)]
fn tcp_sk_and_ret(ctx: &TracePointContext) -> Option<(u64, i64)> {
    // SAFETY: offsets from the tracepoint's format file; read_at is bounds-checked by the kernel.
    unsafe {
        if ctx.read_at::<u16>(18).ok()? != IPPROTO_TCP {
            return None;
        }
        Some((
            ctx.read_at::<u64>(8).ok()?,
            i64::from(ctx.read_at::<i32>(20).ok()?),
        ))
    }
}

#[tracepoint(category = "sock", name = "sock_recv_length")]
pub fn tp_sock_recv_length(ctx: TracePointContext) -> u32 {
    if let Some((sk, ret)) = tcp_sk_and_ret(&ctx) {
        pair::on_read(&ctx, sk, ret);
    }
    0
}

#[tracepoint(category = "sock", name = "sock_send_length")]
pub fn tp_sock_send_length(ctx: TracePointContext) -> u32 {
    if let Some((sk, ret)) = tcp_sk_and_ret(&ctx) {
        pair::on_write(sk, ret);
    }
    0
}

#[tracepoint(category = "sock", name = "sk_data_ready")]
pub fn tp_sk_data_ready(ctx: TracePointContext) -> u32 {
    // SAFETY: offsets from the format file.
    unsafe {
        if ctx.read_at::<u16>(18) == Ok(IPPROTO_TCP)
            && let Ok(sk) = ctx.read_at::<u64>(8)
        {
            arrival::on_data_ready(sk);
        }
    }
    0
}

#[tracepoint(category = "sock", name = "inet_sock_set_state")]
pub fn tp_inet_sock_set_state(ctx: TracePointContext) -> u32 {
    let _ = try_set_state(&ctx);
    0
}

fn try_set_state(ctx: &TracePointContext) -> Result<(), i32> {
    // SAFETY: offsets from the format file.
    unsafe {
        if ctx.read_at::<u16>(30)? != IPPROTO_TCP {
            return Ok(());
        }
        let sk = ctx.read_at::<u64>(8)?;
        let old = ctx.read_at::<i32>(16)?;
        let new = ctx.read_at::<i32>(20)?;
        let family = ctx.read_at::<u16>(28)?;
        let mut info = SockInfo {
            local_port: ctx.read_at::<u16>(24)?,
            peer_port: ctx.read_at::<u16>(26)?,
            family,
            ..SockInfo::default()
        };
        if family == AF_INET {
            info.local_addr[..4].copy_from_slice(&ctx.read_at::<[u8; 4]>(32)?);
            info.peer_addr[..4].copy_from_slice(&ctx.read_at::<[u8; 4]>(36)?);
        } else if family == AF_INET6 {
            info.local_addr = ctx.read_at::<[u8; 16]>(40)?;
            info.peer_addr = ctx.read_at::<[u8; 16]>(56)?;
        }
        state::on_state(sk, old, new, info);
    }
    Ok(())
}
