//! The profiler's socket slots, seen from outside: a test takes every free
//! slot for a socket that does not exist, so each socket the profiler
//! watches next lives out of its slot (in its maps behind the slots), the
//! path a real slot collision takes.
use aya::maps::{Array, HashMap, Map, MapData, loaded_maps};
use profiler_common::{edge::SockEdge, slots::SockSlot};

/// The ids of the loaded maps named `name`, oldest first (a failure's
/// message names them: another capture's maps would be newer).
pub fn loaded(name: &str) -> Vec<u32> {
    let mut ids: Vec<u32> = loaded_maps()
        .filter_map(Result::ok)
        .filter(|m| m.name_as_str() == Some(name))
        .map(|m| m.id())
        .collect();
    ids.sort_unstable();
    ids
}

/// The newest loaded map named `name` (the running capture's).
fn newest(name: &str) -> MapData {
    let id = loaded(name)
        .last()
        .copied()
        .unwrap_or_else(|| panic!("no BPF map {name} loaded: is a capture running?"));
    MapData::from_id(id).unwrap_or_else(|e| panic!("open BPF map {name} (id {id}): {e}"))
}

/// Take every free slot of SOCK_SLOTS (for addresses no socket has: a
/// kernel object is never below 4 GiB). Returns how many were taken.
pub fn take_free_slots() -> u32 {
    let mut slots: Array<MapData, SockSlot> =
        Array::try_from(Map::Array(newest("SOCK_SLOTS"))).expect("SOCK_SLOTS is an array");
    let mut taken = 0;
    for i in 0..slots.len() {
        let s = slots.get(&i, 0).expect("read a slot");
        if s.sk == 0 {
            let fake = SockSlot {
                sk: u64::from(i) + 1,
                ..s
            };
            slots.set(i, fake, 0).expect("take a slot");
            taken += 1;
        }
    }
    taken
}

/// Sockets whose pod edge entry lives out of their slot, now.
pub fn spilled_edges() -> usize {
    let spill: HashMap<MapData, u64, SockEdge> =
        HashMap::try_from(Map::LruHashMap(newest("SOCK_EDGE_SPILL")))
            .expect("SOCK_EDGE_SPILL is an LRU hash");
    spill.keys().filter_map(Result::ok).count()
}
