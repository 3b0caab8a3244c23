//! What kernel and user code share: map names, `#[repr(C)]` records, ring
//! layout and slot logic; and, for userspace only (feature `std`), the
//! pairing of reads with writes, unit-tested on the host.
#![cfg_attr(not(any(feature = "std", test)), no_std)]

pub mod edge;
pub mod events;
pub mod loopback;
pub mod maps;
#[cfg(any(feature = "std", test))]
pub mod pairing;
pub mod ring;
pub mod sched;
pub mod slots;
pub mod sock;
#[cfg(test)]
mod test_addr;

#[cfg(feature = "user")]
mod pod;
