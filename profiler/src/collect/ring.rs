//! Reading the kernel's per-CPU rings (profiler_common::ring) through mmap:
//! take what each CPU published since the last drain, then hand the slots
//! back by moving that CPU's tail.

// The kernel publishes a record with a plain store after it, which orders
// the two only where stores are never reordered (x86's TSO). Elsewhere the
// programs would need a store-release (BPF_STORE_REL, Linux 6.15+).
#[cfg(not(target_arch = "x86_64"))]
compile_error!("the per-CPU rings rely on x86-64 store ordering; see collect/ring.rs");
use std::{
    io,
    ptr::NonNull,
    sync::atomic::{AtomicU64, Ordering},
};

use aya::maps::{Array, IterableMap, MapData};
use profiler_common::ring::{Record, RingCtl, readable, record_index, slots_per_cpu};

/// A shared, read-write mapping of one mmap-able array map.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(map: &MapData, entries: u32, value_size: usize) -> io::Result<Mapping> {
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

pub struct Rings {
    // The maps stay open as long as they are mapped.
    _ctl_map: Array<MapData, RingCtl>,
    _ring_map: Array<MapData, Record>,
    ctl: Mapping,
    records: Mapping,
    cpus: u32,
    slots: u64,
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

impl Rings {
    /// Map both arrays and tell each CPU's ring its size; call before any
    /// program is attached. The sizes must agree with
    /// [`slots_per_cpu`], or the maps were not made by `ebpf::open`.
    pub fn new(ctl: Array<MapData, RingCtl>, ring: Array<MapData, Record>) -> io::Result<Rings> {
        let info = |a: &MapData| a.info().map_err(io::Error::other);
        let cpus = info(ctl.map())?.max_entries();
        let total = info(ring.map())?.max_entries();
        let per_cpu = slots_per_cpu(cpus);
        if cpus == 0 || total != cpus * per_cpu {
            return Err(invalid(format!(
                "ring maps disagree: {cpus} control blocks, {total} slots (want {per_cpu} per CPU)"
            )));
        }
        let ctl_mapping = Mapping::new(ctl.map(), cpus, size_of::<RingCtl>())?;
        let records = Mapping::new(ring.map(), total, size_of::<Record>())?;
        let rings = Rings {
            _ctl_map: ctl,
            _ring_map: ring,
            ctl: ctl_mapping,
            records,
            cpus,
            slots: u64::from(per_cpu),
        };
        for cpu in 0..cpus {
            // SAFETY: within the mapping; no program writes a ring yet.
            unsafe { (&raw mut (*rings.ctl(cpu)).slots).write_volatile(rings.slots) };
        }
        Ok(rings)
    }

    /// Records all rings hold together.
    pub fn capacity(&self) -> u64 {
        u64::from(self.cpus) * self.slots
    }

    fn ctl(&self, cpu: u32) -> *mut RingCtl {
        debug_assert!(cpu < self.cpus);
        // SAFETY: within the mapping (cpu < cpus entries of RingCtl).
        unsafe { self.ctl.ptr.as_ptr().cast::<RingCtl>().add(cpu as usize) }
    }

    /// Records one CPU's ring holds.
    pub fn slots_per_cpu(&self) -> u64 {
        self.slots
    }

    /// Hand `each` every record published since the last drain, CPU by
    /// CPU (each CPU's records in the order it wrote them), one at a time
    /// from a copy on the stack: the records go to their decoding without
    /// a buffer of their own between (one 64-byte copy a record less).
    /// Returns the most one CPU's ring held, and how many were handed.
    pub fn drain(&mut self, mut each: impl FnMut(&Record)) -> (u64, usize) {
        let mut fullest = 0;
        let mut taken = 0;
        for cpu in 0..self.cpus {
            let ctl = self.ctl(cpu);
            // SAFETY: the control block lives in the mapping, 8-byte aligned
            // (page-aligned base, 128-byte entries). The kernel publishes
            // head after the record; only this process writes tail.
            let (head, tail) = unsafe {
                (
                    AtomicU64::from_ptr(&raw mut (*ctl).head).load(Ordering::Acquire),
                    AtomicU64::from_ptr(&raw mut (*ctl).tail).load(Ordering::Relaxed),
                )
            };
            let range = readable(head, tail, self.slots);
            fullest = fullest.max(range.end - range.start);
            taken += (range.end - range.start) as usize;
            for pos in range.clone() {
                let i = record_index(cpu, pos, self.slots) as usize;
                // SAFETY: i < cpus * slots, the mapping's entry count; a
                // published slot is not rewritten until tail passes it.
                let r = unsafe {
                    self.records
                        .ptr
                        .as_ptr()
                        .cast::<Record>()
                        .add(i)
                        .read_volatile()
                };
                each(&r);
            }
            // SAFETY: as above; Release: the reads above happen before the
            // kernel may reuse these slots.
            unsafe {
                AtomicU64::from_ptr(&raw mut (*ctl).tail).store(range.end, Ordering::Release)
            };
        }
        (fullest, taken)
    }
}
