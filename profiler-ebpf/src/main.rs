//! Kernel programs. Entry points live in `hooks/` (one file per hook family:
//! tracepoints, kprobes, fentry, tc, and the tiny probes `profiler check`
//! loads); they gather inputs and call `track/`, which timestamps arrivals,
//! pairs forwards with `profiler_common::pairing`, and reports them.
#![no_std]
#![no_main]
// One shared count is updated atomically (the BPF target has no atomic types).
#![allow(internal_features)]
#![feature(core_intrinsics)]

mod hooks;
mod maps;
mod track;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
