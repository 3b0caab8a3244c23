//! tc classifiers. `tc_pod_iface` proves the clsact path loads and attaches
//! (`profiler check`, in a scratch namespace). `profiler_in` and
//! `profiler_out` go on each followed pod's edge (the node side of its
//! veth: egress enters the pod, ingress leaves it); the packet timestamps
//! at the pod edge stand on them. Observe only: every packet goes on
//! (TC_ACT_UNSPEC, which is also tcx's "next").
use aya_ebpf::{bindings::TC_ACT_PIPE, macros::classifier, programs::TcContext};

const PASS_ON: i32 = -1;

#[classifier]
pub fn tc_pod_iface(_ctx: TcContext) -> i32 {
    TC_ACT_PIPE
}

#[classifier]
pub fn profiler_in(_ctx: TcContext) -> i32 {
    PASS_ON
}

#[classifier]
pub fn profiler_out(_ctx: TcContext) -> i32 {
    PASS_ON
}
