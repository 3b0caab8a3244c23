//! fentry/fexit variant: the same TCP functions as the kprobes, cheaper, on
//! kernels that allow BPF trampolines. fexit sees arguments and return value.
use aya_ebpf::{
    macros::{fentry, fexit},
    programs::{FEntryContext, FExitContext},
};

use crate::track::{arrival, io, tracked_task};

#[fexit(function = "tcp_recvmsg")]
pub fn fx_tcp_recvmsg(ctx: FExitContext) -> u32 {
    if let Some(task) = tracked_task()
        && let Ok(ret) = ctx.ret::<i32>()
    {
        io::on_read(task, ctx.arg::<u64>(0), i64::from(ret));
    }
    0
}

#[fexit(function = "tcp_sendmsg")]
pub fn fx_tcp_sendmsg(ctx: FExitContext) -> u32 {
    if let Some(task) = tracked_task()
        && let Ok(ret) = ctx.ret::<i32>()
    {
        io::on_write(task, ctx.arg::<u64>(0), i64::from(ret));
    }
    0
}

#[fentry(function = "tcp_data_ready")]
pub fn fe_tcp_data_ready(ctx: FEntryContext) -> u32 {
    arrival::on_data_ready(ctx.arg::<u64>(0));
    0
}
