//! Userspace side of the TRACKED_FILTER array: which slot holds what.
use std::collections::BTreeMap;

use profiler_common::maps::filter::{TGID_COLLISION, tgid_slot};

/// The slots to write for a set of tracked tgids: the tgid itself, or the
/// collision marker where two tracked tgids share a slot.
pub fn tgid_slots(tgids: impl IntoIterator<Item = u32>) -> BTreeMap<u32, u32> {
    let mut m = BTreeMap::new();
    for t in tgids {
        let v = m.entry(tgid_slot(t)).or_insert(t);
        if *v != t {
            *v = TGID_COLLISION;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use profiler_common::maps::filter::{LEN, TgidVerdict, passes_tgid};

    use super::*;

    #[test]
    fn filter_passes_exactly_the_tracked() {
        let slots = tgid_slots([4242u32, 4242 + LEN, 777]);
        let check = |t: u32| passes_tgid(slots.get(&tgid_slot(t)).copied().unwrap_or(0), t);
        assert_eq!(check(777), TgidVerdict::Yes);
        // Two tracked tgids share a slot: the hash map decides.
        assert_eq!(check(4242), TgidVerdict::AskMap);
        assert_eq!(check(4242 + LEN), TgidVerdict::AskMap);
        assert_eq!(check(778), TgidVerdict::No);
        assert_eq!(check(777 + LEN), TgidVerdict::No);
        // The idle task (softirq context) never passes.
        assert_eq!(passes_tgid(0, 0), TgidVerdict::No);
    }
}
