//! Addresses as the kernel stores them, for the host tests of the modules
//! that key sockets by address (`edge`, `loopback`).

/// An IPv4 address in the first four bytes.
pub fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut x = [0; 16];
    x[..4].copy_from_slice(&a);
    x
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), as a dual-stack socket
/// has it.
pub fn mapped(a: [u8; 4]) -> [u8; 16] {
    let mut x = [0; 16];
    x[10] = 0xff;
    x[11] = 0xff;
    x[12..].copy_from_slice(&a);
    x
}
