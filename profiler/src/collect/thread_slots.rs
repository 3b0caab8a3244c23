//! The threads' slots (profiler_common::sched::THREAD_SLOTS) as userspace
//! sees them, through mmap: which threads hold a slot, and freeing the
//! slot of a thread that ended so that another may take it; and what a
//! pass over the followed threads keeps and drops ([`prune`]).
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

/// What a pass over the followed threads found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Threads still followed: their bits of the thread filter are set.
    pub followed: Vec<u32>,
    /// (slot, thread) of slots whose thread ended.
    pub free: Vec<(u32, u32)>,
    /// Entries of THREAD_SCHED to remove: a thread that ended, or one that
    /// holds its slot now (it is looked up there first; the entry is left
    /// from before it took the slot).
    pub remove: Vec<u32>,
}

/// Sort the slots' holders (`held`: (slot, thread)) and the threads of
/// THREAD_SCHED (`spilled`), given the holder of a thread's slot and
/// whether a thread is alive.
pub fn prune(
    held: impl IntoIterator<Item = (u32, u32)>,
    spilled: impl IntoIterator<Item = u32>,
    holder_of: impl Fn(u32) -> u32,
    alive: impl Fn(u32) -> bool,
) -> Pruned {
    let mut p = Pruned::default();
    for (i, tid) in held {
        if alive(tid) {
            p.followed.push(tid);
        } else {
            p.free.push((i, tid));
        }
    }
    for tid in spilled {
        if alive(tid) && holder_of(tid) != tid {
            p.followed.push(tid);
        } else {
            p.remove.push(tid);
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_frees_ended_threads_slots_and_drops_stale_entries() {
        // Slot 1: thread 1, alive. Slot 2: thread 16386, ended. Slot 5:
        // thread 16389, alive. In the table: 5 (alive, its slot 16389's),
        // 1 (alive, now in its slot: a stale entry), 9 (ended).
        let holder = |tid: u32| match tid % 16384 {
            1 => 1,
            2 => 16386,
            5 => 16389,
            _ => 0,
        };
        let alive = |tid: u32| [1, 5, 16389].contains(&tid);
        let p = prune([(1, 1), (2, 16386), (5, 16389)], [5, 1, 9], holder, alive);
        assert_eq!(
            p,
            Pruned {
                followed: vec![1, 16389, 5],
                free: vec![(2, 16386)],
                remove: vec![1, 9],
            }
        );
    }
}
