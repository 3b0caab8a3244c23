//! tc classifier on a pod's interfaces. For now it only proves the clsact
//! path loads and attaches; packet timestamps at the pod interface stand on it.
use aya_ebpf::{bindings::TC_ACT_PIPE, macros::classifier, programs::TcContext};

#[classifier]
pub fn tc_pod_iface(_ctx: TcContext) -> i32 {
    TC_ACT_PIPE
}
