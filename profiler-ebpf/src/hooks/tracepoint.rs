//! Stable sock tracepoints (Linux 6.2+ for send/recv length and data_ready).
//! send/recv are raw tracepoints where the kernel's BTF says where `sock`
//! keeps its protocol, else classic ones (their records carry it);
//! set_state is classic (its record carries the endpoints); data_ready is
//! raw (see below). Offsets are those of the format files under
//! events/sock/*/format.
use aya_ebpf::{
    EbpfContext, Global,
    helpers::bpf_probe_read_kernel,
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use profiler_common::sock::{AF_INET, AF_INET6, IPPROTO_TCP, SockInfo};

use crate::track::{arrival, io, state, tracked_task};

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

/// Where `sock` keeps `sk_protocol` on this kernel, from its BTF, set by
/// the loader (0: unknown, and the raw tracepoints are never attached).
#[unsafe(no_mangle)]
static SK_PROTOCOL_OFFSET: Global<u32> = Global::new(0);

/// Whether `sk` is a TCP socket, read from the socket: asked only of one
/// a tracked task uses that is not watched yet.
#[inline(always)]
fn is_tcp(sk: u64) -> bool {
    let at = (sk as *const u8).wrapping_add(SK_PROTOCOL_OFFSET.load() as usize);
    // SAFETY: bpf_probe_read_kernel tolerates any address.
    unsafe { bpf_probe_read_kernel(at.cast::<u16>()) }.is_ok_and(|p| p == IPPROTO_TCP)
}

/// sk and ret of sock_send_length / sock_recv_length(sk, ret, flags). Raw,
/// not BTF, tracepoints: the verifier forbids the socket slot's hash of a
/// typed pointer, and a raw argument is a plain number.
#[inline(always)]
fn raw_sk_and_ret(ctx: &RawTracePointContext) -> (u64, i64) {
    (ctx.arg::<u64>(0), i64::from(ctx.arg::<u64>(1) as i32))
}

/// Raw tracepoints, not classic ones, where they can be: the kernel fills
/// no record before the program runs, which every send and receive on the
/// node pays for, tracked or not (about 75 ns each here).
#[raw_tracepoint(tracepoint = "sock_recv_length")]
pub fn rtp_sock_recv_length(ctx: RawTracePointContext) -> i32 {
    // The task check comes first: an untracked process pays one lookup.
    if let Some(task) = tracked_task() {
        let (sk, ret) = raw_sk_and_ret(&ctx);
        io::on_read(task, sk, ret, || is_tcp(sk));
    }
    0
}

#[raw_tracepoint(tracepoint = "sock_send_length")]
pub fn rtp_sock_send_length(ctx: RawTracePointContext) -> i32 {
    if let Some(task) = tracked_task() {
        let (sk, ret) = raw_sk_and_ret(&ctx);
        io::on_write(task, sk, ret, || is_tcp(sk));
    }
    0
}

#[tracepoint(category = "sock", name = "sock_recv_length")]
pub fn tp_sock_recv_length(ctx: TracePointContext) -> u32 {
    // The task check comes first: an untracked process pays one lookup.
    if let Some(task) = tracked_task()
        && let Some((sk, ret)) = tcp_sk_and_ret(&ctx)
    {
        io::on_read(task, sk, ret, || true);
    }
    0
}

#[tracepoint(category = "sock", name = "sock_send_length")]
pub fn tp_sock_send_length(ctx: TracePointContext) -> u32 {
    if let Some(task) = tracked_task()
        && let Some((sk, ret)) = tcp_sk_and_ret(&ctx)
    {
        io::on_write(task, sk, ret, || true);
    }
    0
}

/// Raw, not classic: a classic tracepoint's program is skipped while any
/// other program runs on the CPU, and data_ready often fires in a softirq
/// that interrupted one (a delayed-ACK timer releasing a Nagle-held segment
/// over loopback), which lost arrivals. Only watched sockets pass, and only
/// TCP sockets are ever watched, so the protocol needs no check.
#[raw_tracepoint(tracepoint = "sk_data_ready")]
pub fn rtp_sk_data_ready(ctx: RawTracePointContext) -> i32 {
    arrival::on_data_ready(ctx.arg::<u64>(0));
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
