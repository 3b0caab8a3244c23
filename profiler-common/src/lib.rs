//! What kernel and user code share: map names, `#[repr(C)]` records, and the
//! pure pairing logic the eBPF programs call, unit-tested on the host.
#![no_std]

pub mod events;
pub mod maps;
pub mod pairing;
pub mod ring;
pub mod slots;
pub mod sock;

#[cfg(feature = "user")]
mod pod;
