//! fentry/fexit variant: the same TCP functions as the kprobes, cheaper, on
//! kernels that allow BPF trampolines. fexit sees arguments and return value.
use aya_ebpf::{
    EbpfContext,
    helpers::bpf_get_func_arg,
    macros::{fentry, fexit},
    programs::{FEntryContext, FExitContext},
};

use crate::track::{arrival, io, tracked_task};

/// The socket argument as a plain number. Read straight from the context it
/// is a typed `struct sock *`, and the verifier refuses the hashing the
/// socket tables do on it ("pointer arithmetic with >>= operator
/// prohibited"); the helper hands back its value instead (Linux 5.17+).
#[inline(always)]
fn sk_arg(ctx: &impl EbpfContext) -> Option<u64> {
    let mut sk = 0u64;
    // SAFETY: the helper writes one u64 to a stack slot we own.
    let err = unsafe { bpf_get_func_arg(ctx.as_ptr(), 0, &raw mut sk) };
    (err == 0 && sk != 0).then_some(sk)
}

#[fexit(function = "tcp_recvmsg")]
pub fn fx_tcp_recvmsg(ctx: FExitContext) -> u32 {
    if let Some(task) = tracked_task()
        && let Ok(ret) = ctx.ret::<i32>()
        && let Some(sk) = sk_arg(&ctx)
    {
        io::on_read(task, sk, i64::from(ret), || true);
    }
    0
}

#[fexit(function = "tcp_sendmsg")]
pub fn fx_tcp_sendmsg(ctx: FExitContext) -> u32 {
    if let Some(task) = tracked_task()
        && let Ok(ret) = ctx.ret::<i32>()
        && let Some(sk) = sk_arg(&ctx)
    {
        io::on_write(task, sk, i64::from(ret), || true);
    }
    0
}

#[fentry(function = "tcp_data_ready")]
pub fn fe_tcp_data_ready(ctx: FEntryContext) -> u32 {
    if let Some(sk) = sk_arg(&ctx) {
        arrival::on_data_ready(sk);
    }
    0
}
