//! A test fixture, never attached by the profiler: a classifier that holds
//! each packet for FIXTURE_HOLD_NS[0] ns (busy, in the kernel's receive
//! path), so a test can put a known kernel delay between the pod edge and
//! the socket and see it land in kernel_in.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::bpf_ktime_get_ns, macros::classifier, macros::map, maps::Array, programs::TcContext,
};

#[map(name = "FIXTURE_HOLD_NS")]
static FIXTURE_HOLD_NS: Array<u64> = Array::with_max_entries(1, 0);

/// bpf_loop's callback: stop once the deadline (in the context) is past.
extern "C" fn until(_i: u64, deadline: *mut c_void) -> i64 {
    // SAFETY: the context is the u64 the caller passed.
    let deadline = unsafe { *(deadline as *const u64) };
    // SAFETY: a plain helper call.
    i64::from(unsafe { bpf_ktime_get_ns() } >= deadline)
}

#[classifier]
pub fn fixture_hold(_ctx: TcContext) -> i32 {
    if let Some(&hold) = FIXTURE_HOLD_NS.get(0) {
        // SAFETY: plain helper calls; the context outlives the loop.
        unsafe {
            let mut deadline = bpf_ktime_get_ns() + hold;
            aya_ebpf::helpers::generated::bpf_loop(
                1 << 20,
                until as *mut c_void,
                (&mut deadline as *mut u64).cast(),
                0,
            );
        }
    }
    -1
}
