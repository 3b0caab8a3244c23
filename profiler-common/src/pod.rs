//! `aya::Pod` for the shared records: userspace only (feature `user`).

// SAFETY: every type here is #[repr(C)], Copy, made of integers and byte
// arrays with explicit padding fields, so any bit pattern is a valid value.
unsafe impl aya::Pod for crate::events::Io {}
// SAFETY: as above.
unsafe impl aya::Pod for crate::events::SockEvent {}
// SAFETY: as above.
unsafe impl aya::Pod for crate::slots::SockSlot {}
// SAFETY: as above.
unsafe impl aya::Pod for crate::sock::SockInfo {}
// SAFETY: as above.
unsafe impl aya::Pod for crate::ring::Record {}
// SAFETY: as above.
unsafe impl aya::Pod for crate::ring::RingCtl {}

// SAFETY: plain #[repr(C)] integers, valid for any bit pattern.
unsafe impl aya::Pod for crate::sched::ThreadSched {}
// SAFETY: as above.
unsafe impl aya::Pod for crate::sched::ThreadBits {}
// SAFETY: as above.
unsafe impl aya::Pod for crate::edge::FlowKey {}
// SAFETY: as above.
unsafe impl aya::Pod for crate::edge::SockEdge {}
