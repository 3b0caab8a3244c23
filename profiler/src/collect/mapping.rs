//! A shared, read-write mapping of an mmap-able array map (BPF_F_MMAPABLE):
//! how userspace reads the per-CPU rings and the threads' slots without a
//! system call per entry.
use std::{io, ptr::NonNull};

use aya::maps::MapData;

/// A shared, read-write mapping of one mmap-able array map.
pub struct Mapping {
    pub ptr: NonNull<u8>,
    pub len: usize,
}

impl Mapping {
    pub fn new(map: &MapData, entries: u32, value_size: usize) -> io::Result<Mapping> {
        use std::os::fd::{AsFd, AsRawFd};
        // SAFETY: sysconf has no memory-safety preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let len = (entries as usize * value_size).div_ceil(page) * page;
        // SAFETY: a fresh shared mapping of the map's own fd; the kernel
        // checks the length against the map.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mapping { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what new() mapped, once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
