//! kprobe variant, for kernels without the sock tracepoints (Linux < 6.2):
//! the TCP functions the tracepoints sit behind. A send's entry saves the
//! socket per thread and its return pairs it with the byte count. A read is
//! seen where tcp_recvmsg hands back the bytes it copied (tcp_cleanup_rbuf,
//! which has both), not by a kretprobe: a kretprobe holds one of a few
//! instances (about two per CPU) for as long as its function runs, and every
//! thread on the node blocked in a read holds one, so returns go missing
//! (Linux 6.1 and 6.12 lost a third of a blocking proxy's reads that way).
use aya_ebpf::{
    macros::{kprobe, kretprobe},
    programs::{ProbeContext, RetProbeContext},
};

use crate::{
    maps::ENTRY_ARGS,
    track::{arrival, io, tracked_task},
};

#[inline(always)]
fn save_sk(ctx: &ProbeContext) {
    if let Some((_, tid)) = tracked_task()
        && let Some(sk) = ctx.arg::<u64>(0)
    {
        let _ = ENTRY_ARGS.insert(&tid, &sk, 0);
    }
}

#[inline(always)]
fn take_sk() -> Option<((u32, u32), u64)> {
    let task = tracked_task()?;
    // SAFETY: copied out at once.
    let sk = unsafe { ENTRY_ARGS.get(&task.1) }.copied()?;
    let _ = ENTRY_ARGS.remove(&task.1);
    Some((task, sk))
}

/// tcp_cleanup_rbuf(sk, copied): the end of every tcp_recvmsg, with the
/// bytes copied (negative: an error, which on_read ignores).
#[kprobe]
pub fn kp_tcp_cleanup_rbuf(ctx: ProbeContext) -> u32 {
    if let Some(task) = tracked_task()
        && let Some(sk) = ctx.arg::<u64>(0)
        && let Some(copied) = ctx.arg::<i32>(1)
    {
        io::on_read(task, sk, i64::from(copied), || true);
    }
    0
}

#[kprobe]
pub fn kp_tcp_sendmsg(ctx: ProbeContext) -> u32 {
    save_sk(&ctx);
    0
}

#[kretprobe]
pub fn krp_tcp_sendmsg(ctx: RetProbeContext) -> u32 {
    if let Some((task, sk)) = take_sk() {
        io::on_write(task, sk, ctx.ret::<i64>(), || true);
    }
    0
}

#[kprobe]
pub fn kp_tcp_data_ready(ctx: ProbeContext) -> u32 {
    if let Some(sk) = ctx.arg::<u64>(0) {
        arrival::on_data_ready(sk);
    }
    0
}
