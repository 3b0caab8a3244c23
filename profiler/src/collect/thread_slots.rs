//! The threads' slots (profiler_common::sched::THREAD_SLOTS) as userspace
//! sees them, through mmap: which threads hold a slot, and freeing the
//! slot of a thread that ended so that another may take it.
use std::io;

use aya::maps::{Array, IterableMap, MapData};
use profiler_common::sched::{ThreadSlot, thread_slot, thread_slots_mask};

use super::mapping::Mapping;

pub struct ThreadSlots {
    // The map stays open as long as it is mapped.
    _map: Array<MapData, ThreadSlot>,
    slots: Mapping,
    len: u32,
}

impl ThreadSlots {
    pub fn new(map: Array<MapData, ThreadSlot>) -> io::Result<ThreadSlots> {
        let len = map.map().info().map_err(io::Error::other)?.max_entries();
        if thread_slots_mask(len).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the thread slots map has {len} entries, not a power of two"),
            ));
        }
        let slots = Mapping::new(map.map(), len, size_of::<ThreadSlot>())?;
        Ok(ThreadSlots {
            _map: map,
            slots,
            len,
        })
    }

    fn tid_at(&self, i: u32) -> *mut u32 {
        assert!(i < self.len);
        // SAFETY: within the mapping (i < len entries).
        unsafe {
            let slot = self.slots.ptr.as_ptr().cast::<ThreadSlot>().add(i as usize);
            &raw mut (*slot).tid
        }
    }

    /// The thread holding slot `i` (0: free).
    pub fn holder(&self, i: u32) -> u32 {
        // SAFETY: a u32 the kernel writes whole; read once.
        unsafe { self.tid_at(i).read_volatile() }
    }

    /// The thread holding the slot where thread `tid` would be.
    pub fn holder_of(&self, tid: u32) -> u32 {
        self.holder(thread_slot(tid, self.len - 1))
    }

    /// Each slot's holder, as (slot, thread id), free slots left out.
    pub fn held(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        (0..self.len).filter_map(|i| {
            let tid = self.holder(i);
            (tid != 0).then_some((i, tid))
        })
    }

    /// Free slot `i` if thread `tid` still holds it (a new holder that took
    /// it meanwhile keeps it).
    pub fn free(&self, i: u32, tid: u32) {
        let p = self.tid_at(i);
        // SAFETY: as in holder(). Between the check and the store the kernel
        // may only give the slot to a thread of the same id (the ended
        // one's id reused): it then starts over at its next read or write.
        unsafe {
            if p.read_volatile() == tid {
                p.write_volatile(0);
            }
        }
    }
}
